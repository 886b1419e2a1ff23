"""The flow's checklist: each step is done when its output exists."""

from rebase_core.flow import STEPS, flow_status, next_step, store_exists
from rebase_core.types import Example, Pair, Task
from rebase_core.workspace import Workspace


def _done(steps):
    return [s.stage for s in steps if s.done]


def test_steps_are_done_as_their_outputs_appear(settings, tmp_path):
    ws = Workspace(tmp_path / "ws.sqlite")
    steps = flow_status(settings, ws, None)
    assert [s.stage for s in steps] == [stage for stage, _, _ in STEPS]
    assert _done(steps) == [] and next_step(steps).stage == "task"
    assert all(s.description for s in steps)

    record = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    assert _done(flow_status(settings, ws, record.id)) == ["task"]

    settings.default_store.mkdir(parents=True)
    (settings.default_store / "store.sqlite").write_bytes(b"")
    assert store_exists(settings.default_store)
    run = ws.create_pair_run(record.id, "direct", llm="fake")
    ws.add_pairs(run, record.id, [Pair(id="p", input="a", output="b", origin="direct")])
    assert _done(flow_status(settings, ws, record.id)) == ["task", "datastore", "compare"]
    ws.set_status(["p"], "accepted")
    (settings.runs_dir / "run-1" / "evals").mkdir(parents=True)
    assert "evaluate" not in _done(flow_status(settings, ws, record.id))
    (settings.runs_dir / "run-1" / "evals" / "test.json").write_text("{}")
    steps = flow_status(settings, ws, record.id)
    assert _done(steps) == ["task", "datastore", "transform", "compare", "finetune", "evaluate"]
    assert next_step(steps).stage == "retrieve"
