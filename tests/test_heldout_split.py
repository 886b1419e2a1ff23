"""The curated held-out split: deterministic, stable as pairs are added, kept out of training,
offered on the Evaluate page."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core import evaluate as ev
from rebase_core import finetune as ft
from rebase_core.errors import InputError
from rebase_core.heldout_split import (
    curated_test_set,
    is_held_out,
    set_split,
    split_since,
    training_pairs,
)
from rebase_core.settings import PROJECT_ROOT
from rebase_core.types import Example, Pair, Task
from rebase_core.workspace import Workspace

TASK = Task("sentiment", "Positive or negative?", (Example("A delight.", "positive"),))


def _pairs(n: int, status: str = "accepted") -> list[Pair]:
    return [
        Pair(f"p{i}", f"review {i}", "positive" if i % 2 else "negative", "rebase", status)
        for i in range(n)
    ]


def test_the_split_is_a_fixed_share_and_a_pair_never_changes_side():
    ids = [f"pair-{i}" for i in range(2000)]
    held = {i for i in ids if is_held_out(i)}
    assert 0.17 < len(held) / len(ids) < 0.23  # about one in five
    more = ids + [f"new-{i}" for i in range(500)]
    assert {i for i in more[:2000] if is_held_out(i)} == held  # adding pairs moves none


def test_training_leaves_the_held_out_pairs_out_once_the_split_is_on(settings):
    pairs = _pairs(40)
    assert training_pairs(settings, TASK.name, pairs) == pairs  # off: everything trains
    choice = ft.choose_pairs(pairs)
    config = ft.TrainConfig(student="x", per_device_batch=1, grad_accum=1)
    before = ft.plan_training(settings, TASK, choice, config)
    set_split(settings, TASK.name, True)
    assert split_since(settings, TASK.name) and split_since(settings, "other") is None
    kept = training_pairs(settings, TASK.name, pairs)
    held = {p.id for p in pairs if is_held_out(p.id)}
    assert held and {p.id for p in kept} == {p.id for p in pairs} - held
    after = ft.plan_training(settings, TASK, choice, config)
    assert after.n_pairs == len(kept) < before.n_pairs
    assert after.run_dir != before.run_dir  # other data, another run
    set_split(settings, TASK.name, False)
    assert training_pairs(settings, TASK.name, pairs) == pairs


def test_the_test_file_holds_the_curated_held_out_pairs_only(settings):
    with pytest.raises(InputError, match="split of task 'sentiment' is off"):
        curated_test_set(settings, TASK.name, _pairs(5))
    set_split(settings, TASK.name, True)
    pending = [Pair(f"q{i}", "x", "y", "rebase", "pending") for i in range(40)]
    pairs = _pairs(40) + pending
    got = curated_test_set(settings, TASK.name, pairs)
    rows = [json.loads(line) for line in got.path.read_text().splitlines()]
    assert got.n_curated == 40 and got.n_test == len(rows) > 0
    assert {r["id"] for r in rows} == {p.id for p in _pairs(40) if is_held_out(p.id)}
    assert ev.load_test_set(got.path)[0].keys() == {"input", "output"}
    mtime = got.path.stat().st_mtime_ns
    assert curated_test_set(settings, TASK.name, pairs).path.stat().st_mtime_ns == mtime
    none_held = [p for p in _pairs(40) if not is_held_out(p.id)]
    assert curated_test_set(settings, TASK.name, none_held).path is None


def test_the_choices_default_to_the_curated_split_when_there_are_curated_pairs(settings):
    assert ev.eval_set_choices(settings, TASK.name).default == "upload"
    choices = ev.eval_set_choices(settings, TASK.name, n_curated=12)
    assert choices.default == ev.CURATED_CHOICE and ev.CURATED_CHOICE in choices.keys


def test_a_run_trained_on_test_pairs_is_named(settings, tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"id": "p1", "input": "a", "output": "b"}) + "\n")
    data = tmp_path / "train.jsonl"
    data.write_text(
        json.dumps({"id": "p1", "input": "a", "output": "b"})
        + "\n"
        + json.dumps({"id": "p2", "input": "c", "output": "d"})
        + "\n"
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"data_files": [str(data)]}))

    class Run:
        name, path = "r1", run_dir

    assert ev.runs_trained_on([Run()], test) == {"r1": 1}


def test_the_evaluate_page_offers_the_split_and_then_scores_on_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(TASK)
    ws.set_value("current_task", rec.id)
    ws.add_pairs(ws.create_pair_run(rec.id, "transform", llm="fake"), rec.id, _pairs(40))
    ws.close()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert at.selectbox(key="ev_test").value == ev.CURATED_CHOICE
    assert "Hold out 1 in 5" in at.info[0].value
    next(b for b in at.button if b.label == "Hold out 1 in 5 curated pairs").click().run()
    assert not at.exception
    n_held = sum(is_held_out(p.id) for p in _pairs(40))
    assert any(f"**{n_held}** of your 40 curated pairs are held out" in c.value for c in at.caption)
    submit = next(b for b in at.button if b.label == "Evaluate")
    assert not submit.disabled  # the untrained student can be scored now
