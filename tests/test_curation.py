"""Curation rules: what a reviewer's click does to a pair, drafts, filters, caps, regeneration."""

import pytest

from rebase_core import curation
from rebase_core.errors import InputError
from rebase_core.llm import ResponseCache
from rebase_core.llm.fake import FakeLLM
from rebase_core.transform import TransformConfig
from rebase_core.types import Example, Pair, PairSource, ScoredRow, Task
from rebase_core.workspace import Workspace

TASK = Task(
    "nli", "Decide the relation.", (Example("a / b", "entailment"), Example("c / d", "neutral"))
)


def _row(i: int) -> ScoredRow:
    return ScoredRow(
        "ds",
        "default",
        str(i),
        0.5,
        0.5,
        0.4,
        0.6,
        "text",
        "label",
        "d",
        {"text": f"row text {i}", "label": "x"},
    )


@pytest.fixture
def world(tmp_path):
    ws = Workspace(tmp_path / "ws.sqlite")
    rec = ws.save_task(TASK)
    retrieval = ws.save_retrieval(rec, "store", {}, "exact", 0.0, [_row(0), _row(1)], [0, 1])
    run_id = ws.create_pair_run(rec.id, "transform", params={"retrieval_run": retrieval})
    pairs = [
        Pair(f"p{i}", f"in {i}", label, "rebase", source=PairSource("ds", "default", str(i), 0.5))
        for i, label in enumerate(["entailment", "entailment", "neutral"])
    ]
    pairs.append(Pair("b0", "baseline input", "neutral", "direct"))
    ws.add_pairs(run_id, rec.id, pairs)
    return ws, rec, ws.get_pair_run(run_id)


def test_accept_keeps_a_pair_and_accepting_changed_text_is_an_edit(world):
    ws, _, _ = world
    curation.decide(ws, ws.get_pair("p0"), "accept", "in 0", "entailment")
    assert ws.get_pair("p0").status == "accepted"
    curation.keep_draft(ws, "p1", "in 1", "neutral")
    assert curation.draft(ws, "p1") == curation.Draft("in 1", "neutral")
    curation.decide(ws, ws.get_pair("p1"), "accept", "in 1", "neutral")
    p1 = ws.get_pair("p1")
    assert (p1.status, p1.output) == ("edited", "neutral")
    assert curation.draft(ws, "p1") is None  # a decision clears the draft
    with pytest.raises(InputError, match="Nothing to save"):
        curation.decide(ws, ws.get_pair("p2"), "save", "in 2", "neutral")
    curation.decide(ws, ws.get_pair("p2"), "reject", "in 2", "changed but rejected")
    assert (ws.get_pair("p2").status, ws.get_pair("p2").output) == ("rejected", "neutral")
    with pytest.raises(InputError, match="decision"):
        curation.decide(ws, ws.get_pair("p2"), "maybe", "", "")


def test_many_pairs_at_once_and_undo(world):
    ws, rec, _ = world
    curation.set_many(ws, ["p0", "p1", "p2"], "rejected")
    assert ws.status_counts(task_id=rec.id)["rejected"] == 3
    undone = curation.undo(ws, rec.id)
    assert undone is not None and (undone.action, undone.pairs) == ("rejected", 3)
    assert curation.undo(ws, rec.id) is None
    with pytest.raises(InputError, match="not 'edited'"):
        curation.set_many(ws, ["p0"], "edited")


def test_a_pair_knows_its_source_row(world):
    ws, _, run = world
    assert curation.source_row(ws, run, ws.get_pair("p1")) == _row(1)
    assert curation.source_row(ws, run, ws.get_pair("b0")) is None


def test_filters_combine_search_datasets_and_a_selection(world):
    ws, _, run = world
    pairs = ws.pairs(run_id=run.id)
    assert curation.source_datasets(pairs) == ["ds"]
    assert [p.id for p in curation.PairFilter("IN 1").apply(pairs)] == ["p1"]
    assert [p.id for p in curation.PairFilter(datasets=("ds",)).apply(pairs)] == ["p0", "p1", "p2"]
    chosen = curation.PairFilter("in", ids=frozenset({"p2", "b0"})).apply(pairs)
    assert [p.id for p in chosen] == ["p2", "b0"]
    assert len(curation.PairFilter().apply(pairs)) == 4


def test_a_label_cap_rejects_the_excess_of_each_label(world):
    ws, _, run = world
    pairs = ws.pairs(run_id=run.id)
    assert curation.over_label_cap(TASK, pairs, 1) == ["p1", "b0"]  # the second of each label
    assert curation.over_label_cap(TASK, pairs, 5) == []


def test_regenerate_asks_for_a_new_sample_each_time(world, tmp_path):
    ws, rec, run = world
    cache = ResponseCache(tmp_path / "cache.sqlite")  # the same sample would come from here
    llm = FakeLLM(
        replies=[
            '{"input": "new a / b", "output": "entailment"}',
            '{"input": "newer a / b", "output": "neutral"}',
        ]
    )
    config = TransformConfig(llm_filter=True)
    curation.keep_draft(ws, "p0", "typed", "typed")
    curation.regenerate_pair(ws, rec.task, run, ws.get_pair("p0"), llm, config, cache=cache)
    p0 = ws.get_pair("p0")
    assert (p0.input, p0.output, p0.status) == ("new a / b", "entailment", "pending")
    assert curation.draft(ws, "p0") is None
    curation.regenerate_pair(ws, rec.task, run, ws.get_pair("p0"), llm, config, cache=cache)
    assert ws.get_pair("p0").input == "newer a / b"
    assert len(llm.history) == 2  # no filter call: a regeneration is reviewed by the user
    with pytest.raises(InputError, match="retrieved row"):
        curation.regenerate_pair(ws, rec.task, run, ws.get_pair("b0"), llm, config)


def test_undo_of_one_run_leaves_the_other_runs_alone(world):
    ws, rec, run = world
    other = ws.create_pair_run(rec.id, "direct")
    ws.add_pairs(other, rec.id, [Pair("o1", "other input", "neutral", "direct")])
    curation.set_many(ws, ["p0"], "rejected")
    curation.set_many(ws, ["o1"], "accepted")  # the newest action of the task
    undone = curation.undo(ws, rec.id, run.id)
    assert undone is not None and undone.action == "rejected"
    assert (ws.get_pair("p0").status, ws.get_pair("o1").status) == ("pending", "accepted")
    assert curation.undo(ws, rec.id, run.id) is None


def test_the_run_under_review_is_remembered(world):
    ws, rec, run = world
    assert curation.curated_run(ws, rec.id) is None
    curation.set_curated_run(ws, rec.id, run.id)
    assert curation.curated_run(ws, rec.id) == run.id
