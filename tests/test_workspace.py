"""The SQLite workspace: task versions, retrieval runs, pairs, curation history and undo."""

import threading

import pytest

from rebase_core.errors import InputError
from rebase_core.types import Example, Failure, Pair, PairSource, ScoredRow, Task
from rebase_core.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws.sqlite")


TASK = Task("nli", "Decide the relation.", (Example("a", "entailment"),))


def _pairs(n):
    return [
        Pair(
            id=f"p{i}",
            input=f"in {i}",
            output=f"out {i}",
            origin="rebase",
            source=PairSource("ds", "default", str(i), 0.5),
            extra={"key": f"k{i}"},
        )
        for i in range(n)
    ]


def test_task_versions_and_history(ws):
    first = ws.save_task(TASK)
    same = ws.save_task(TASK)
    assert (first.version, same.version) == (1, 1)
    edited = Task(TASK.name, "Decide it.", TASK.examples)
    second = ws.save_task(edited, note="shorter")
    assert second.version == 2
    assert ws.get_task("nli").task == edited
    assert ws.get_task("nli", version=1).task == TASK
    assert [v.version for v in ws.task_history(first.id)] == [2, 1]
    with pytest.raises(InputError):
        ws.get_task("missing")


def test_edits_survive_reopening(tmp_path):
    path = tmp_path / "ws.sqlite"
    ws = Workspace(path)
    rec = ws.save_task(TASK)
    run = ws.create_pair_run(rec.id, "transform", llm="fake")
    ws.add_pairs(run, rec.id, _pairs(3))
    ws.edit_pair("p1", output="contradiction")
    ws.set_status(["p0"], "accepted")
    ws.close()
    again = Workspace(path)
    assert again.get_pair("p1").output == "contradiction"
    assert again.get_pair("p1").status == "edited"
    assert again.status_counts(run_id=run) == {
        "pending": 1,
        "accepted": 1,
        "rejected": 0,
        "edited": 1,
    }


def test_adding_the_same_pairs_twice_adds_nothing_and_resume_keys(ws):
    rec = ws.save_task(TASK)
    run = ws.create_pair_run(rec.id, "transform")
    assert ws.add_pairs(run, rec.id, _pairs(3)) == 3
    assert ws.add_pairs(run, rec.id, _pairs(4)) == 1
    assert ws.done_keys(run) == {"k0", "k1", "k2", "k3"}
    ws.add_failure(run, "k9", Failure("parse", "not JSON", PairSource("ds", "default", "9")))
    (failed,) = ws.failures(run)
    key, failure = failed.key, failed.failure
    assert key == "k9" and failure.reason == "parse" and failure.source.row_id == "9"


def test_bulk_action_history_and_undo(ws):
    rec = ws.save_task(TASK)
    run = ws.create_pair_run(rec.id, "transform")
    ws.add_pairs(run, rec.id, _pairs(4))
    ws.edit_pair("p0", input="better input")
    ws.set_status(["p1", "p2", "p3"], "rejected")
    last = ws.last_action(rec.id)
    assert last is not None and (last.action, last.pairs) == ("rejected", 3)
    undone = ws.undo(rec.id)
    assert undone is not None and (undone.action, undone.pairs) == ("rejected", 3)
    assert {p.status for p in ws.pairs(run_id=run)} == {"edited", "pending"}
    undone = ws.undo(rec.id)
    assert undone is not None and (undone.action, undone.pairs) == ("edit", 1)
    p0 = ws.get_pair("p0")
    assert (p0.input, p0.status) == ("in 0", "pending")
    assert ws.undo(rec.id) is None
    actions = [e.action for e in ws.history("p0")]
    assert actions == ["edit", "undo"]
    assert ws.history("p0")[0].after.input == "better input"


def test_accepting_an_edited_pair_keeps_it_edited_and_empty_edits_fail(ws):
    rec = ws.save_task(TASK)
    run = ws.create_pair_run(rec.id, "transform")
    ws.add_pairs(run, rec.id, _pairs(1))
    ws.edit_pair("p0", output="neutral")
    ws.set_status(["p0"], "accepted")
    assert ws.get_pair("p0").status == "edited"
    with pytest.raises(InputError, match="non-empty"):
        ws.edit_pair("p0", output="  ")


def test_retrieval_runs_and_selection(ws):
    rec = ws.save_task(TASK)
    rows = [
        ScoredRow(
            "ds", "default", str(i), 0.5 - i / 100, 0.5, 0.4, 0.6, "a", "b", "d", {"a": f"text {i}"}
        )
        for i in range(5)
    ]
    run = ws.save_retrieval(rec, "/store", {"top_k": 5}, "exact", 0.1, rows, list(range(5)))
    assert ws.set_selected(run, [1, 3], False) == 2
    assert ws.set_selected(run, [1], False) == 0
    kept = ws.retrieved_rows(run, selected_only=True)
    assert [r.rank for r in kept] == [0, 2, 4]
    assert ws.retrieval_runs(rec.id)[0].n_selected == 3
    assert kept[0].row == rows[0]
    assert ws.kept_rows(run) == [rows[0], rows[2], rows[4]]
    assert ws.kept_rows(run, limit=2) == [rows[0], rows[2]]


def test_concurrent_writers_lose_nothing(ws):
    rec = ws.save_task(TASK)
    run = ws.create_pair_run(rec.id, "transform")
    ws.add_pairs(run, rec.id, _pairs(40))

    def work(offset):
        for i in range(offset, 40, 4):
            ws.set_status([f"p{i}"], "accepted")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ws.status_counts(run_id=run)["accepted"] == 40
