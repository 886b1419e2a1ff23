"""Transformation: prompt, parsing and repair, retry, failures by reason, filter, dedup, resume."""

import json
import time

import pytest

from rebase_core import jobs
from rebase_core.errors import InputError, ParseError, RateLimitError
from rebase_core.llm import ResponseCache
from rebase_core.llm.fake import FakeLLM
from rebase_core.transform import (
    TransformConfig,
    build_messages,
    guess_language,
    parse_pair,
    quality_warnings,
    transform,
)
from rebase_core.types import Example, Pair, ScoredRow, Task
from rebase_core.workspace import Workspace

TASK = Task(
    "nli",
    "Decide whether the hypothesis follows from the premise.",
    (
        Example("A man sleeps / A person rests.", "entailment"),
        Example("A cat eats / A dog runs.", "neutral"),
    ),
)
COT_TASK = Task(
    "math",
    "Solve the problem.",
    (Example("2 apples plus 1?", "Two plus one is three. So the answer is 3."),),
)


def _row(i, **cells):
    cells = cells or {"text": f"row number {i} says something", "label": "x"}
    return ScoredRow("ds", "default", str(i), 0.5, 0.5, 0.4, 0.6, "text", "label", "desc", cells)


def _reply_for(call):
    """A well-behaved teacher: a new pair built from the row in the prompt."""
    row = json.loads(call.prompt.split("as JSON:\n", 1)[1].split("\n", 1)[0])
    return json.dumps({"input": f"Premise: {row['text']}. Hypothesis: ok.", "output": "entailment"})


def test_prompt_holds_instruction_examples_and_cut_row():
    long_row = _row(1, text="word " * 200, label="y")
    (msg,) = build_messages(TASK, long_row, TransformConfig())
    assert TASK.instruction in msg.content
    assert '{"input": "A man sleeps / A person rests.", "output": "entailment"}' in msg.content
    row_json = json.loads(msg.content.split("as JSON:\n", 1)[1].split("\n", 1)[0])
    assert len(row_json["text"]) == 250 and row_json["text"].endswith("…")
    assert "reason the same way" not in msg.content
    (cot,) = build_messages(COT_TASK, _row(2), TransformConfig())
    assert "reason the same way" in cot.content
    huge = _row(3, text="a" * 3000, label="b" * 3000, extra="c" * 3000)
    (msg,) = build_messages(TASK, huge, TransformConfig())
    assert set(json.loads(msg.content.split("as JSON:\n", 1)[1].split("\n", 1)[0])) == {
        "text",
        "label",
    }
    with pytest.raises(InputError, match="must contain"):
        TransformConfig(template="no placeholders")


@pytest.mark.parametrize(
    "reply",
    [
        '{"input": "q", "output": "a"}',
        'Sure!\n```json\n{"input": "q", "output": "a"}\n```',
        "{“input”: “q”, “output”: “a”,}",
        'Here: {"Input": "\\"q\\"", "OUTPUT": "a"} hope it helps',
        '{"input": "q", "output": "a",\n}',
    ],
)
def test_parse_and_repair(reply):
    assert parse_pair(reply) == ("q", "a")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("", "empty"),
        ("no json here", "not a JSON object"),
        ('{"question": "q"}', "lacks"),
        ('{"input": "q", "output": "  "}', "empty"),
    ],
)
def test_parse_failures_say_why(reply, message):
    with pytest.raises(ParseError, match=message):
        parse_pair(reply)


def test_every_failure_is_counted_by_reason():
    rows = [_row(i) for i in range(6)]
    script = {
        "0": ['{"input": "good one", "output": "entailment"}'],
        "1": ['```json\n{"input": "fenced", "output": "neutral"}\n```'],
        "2": ["garbage", "still garbage"],  # retried once, then a parse failure
        "3": ["garbage", '{"input": "fixed on retry", "output": "neutral"}'],
        "4": ['{"input": "good one", "output": "neutral"}'],  # duplicate of row 0's input
        "5": [RateLimitError("slow down", retry_after_s=0.0)] * 2,  # fails after retries
    }

    def reply(call):
        row_id = json.loads(call.prompt.split("as JSON:\n", 1)[1].split("\n", 1)[0])[
            "text"
        ].split()[2]
        item = script[row_id].pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    llm = FakeLLM(reply)
    result = transform(TASK, rows, llm, TransformConfig(max_retries=1, concurrency=2))
    assert [p.input for p in result.pairs] == ["good one", "fenced", "fixed on retry"]
    assert result.failure_counts == {"parse": 1, "duplicate": 1, "provider": 1}
    reasons = {k.split("\x1f")[2]: f.reason for k, f in result.failures}
    assert reasons == {"2": "parse", "4": "duplicate", "5": "provider"}
    first = result.pairs[0]
    assert first.origin == "rebase" and first.source.row_id == "0" and first.llm == "fake"
    assert first.prompt_version.startswith("p-")
    assert "previous answer could not be used" in llm.history[-1].prompt or any(
        "previous answer could not be used" in c.prompt for c in llm.history
    )


def test_llm_filter_drops_pairs_it_rejects():
    def reply(call):
        if "Answer with one word" in call.prompt:
            return "No" if "row number 1" in call.prompt else "Yes"
        return _reply_for(call)

    result = transform(TASK, [_row(0), _row(1)], FakeLLM(reply), TransformConfig(llm_filter=True))
    assert [p.source.row_id for p in result.pairs] == ["0"]
    assert result.failure_counts == {"filtered": 1}


def test_rerun_with_cache_costs_nothing(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    llm = FakeLLM(_reply_for)
    first = transform(TASK, [_row(i) for i in range(5)], llm, cache=cache)
    calls = len(llm.history)
    again = transform(TASK, [_row(i) for i in range(5)], llm, cache=cache)
    assert len(llm.history) == calls == 5
    assert [p.id for p in again.pairs] == [p.id for p in first.pairs]
    assert again.usage.cached == 5 and again.usage.cost_usd == 0.0


def test_warnings_for_label_collapse_and_language():
    pairs = [
        Pair(
            str(i),
            f"The premise number {i} is about the house and the garden.",
            "entailment",
            "rebase",
        )
        for i in range(12)
    ]
    warnings, counts = quality_warnings(TASK, pairs)
    assert counts == {"entailment": 12}
    assert any("Label collapse" in w for w in warnings)
    assert any("'neutral'" in w for w in warnings)
    slovenian = [
        Pair(str(i), "Premisa je, da se mož ne in to je tudi v hiši za vse", "neutral", "rebase")
        for i in range(3)
    ]
    warnings, _ = quality_warnings(TASK, pairs[:9] + slovenian)
    assert any("not in the examples' language" in w for w in warnings)
    assert guess_language("これは日本語の文です") == "cjk"
    assert guess_language("The cat is on the mat and it is happy") == "en"


def _wait(folder, timeout_s=60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = jobs.job_status(folder)
        if status.state in jobs.FINAL_STATES:
            return status
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_transform_job_crash_and_resume_pays_nothing_twice(settings):
    """Kill a transform job half-way; the rerun keeps the saved pairs, resumes, and is served
    from the cache for every call the first run already paid for."""
    import os
    import signal

    ws = Workspace(settings.workspace_db)
    rec = ws.save_task(TASK)
    rows = [_row(i) for i in range(40)]
    run = ws.save_retrieval(rec, "store", {}, "exact", 0.0, rows, list(range(40)))
    pair_run = ws.create_pair_run(rec.id, "transform", llm="fake")
    params = {
        "pair_run": pair_run,
        "retrieval_run": run,
        "task_id": rec.id,
        "llm": "fake",
        "llm_options": {"latency_s": 0.05},
        # The fake's default reply ("fake input <digest>") is not built from the row; the
        # per-row rewrite is what is resumed here (plans: test_plans.py).
        "config": {"concurrency": 1, "min_grounding": 0, "mode": "rewrite"},
    }
    env = {}
    job = jobs.start_job(settings, "transform", params, env=env)
    deadline = time.time() + 60
    while len(ws.pairs(run_id=pair_run)) < 8 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(jobs.job_status(job.folder).pid, signal.SIGKILL)
    assert _wait(job.folder).state == "failed"
    saved = {p.id for p in ws.pairs(run_id=pair_run)}
    assert 8 <= len(saved) < 40
    ws.set_status(sorted(saved)[:3], "accepted")
    cache_rows = len(ResponseCache(settings.llm_cache_db))
    again = jobs.start_job(settings, "transform", params, env=env)
    status = _wait(again.folder)
    assert status.state == "done", status.error
    final = ws.pairs(run_id=pair_run)
    assert len(final) == 40 and saved <= {p.id for p in final}
    assert ws.status_counts(run_id=pair_run)["accepted"] == 3
    # Rows saved before the kill were skipped; rows whose call was cached cost nothing: the
    # rerun paid only for the calls the cache did not have.
    assert len(ResponseCache(settings.llm_cache_db)) == 40
    assert status.result["paid_calls"] == 40 - cache_rows
    assert status.result["cached_calls"] == cache_rows - len(saved)


def test_cli_transform_writes_pairs_and_exits_2_on_bad_input(tmp_path):
    import os
    import subprocess
    import sys

    from rebase_core.settings import PROJECT_ROOT

    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK.to_dict()))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(_row(i).to_json_dict()) + "\n" for i in range(3)))
    env = dict(os.environ, REBASE_HOME=str(tmp_path / "home"))

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "rebase_core", "transform", *args],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env=env,
            timeout=120,
        )

    out = tmp_path / "pairs.jsonl"
    fake = ("--llm", "fake", "--min-grounding", "0")  # its replies do not use the row
    ok = run("--task", str(task), "--rows", str(rows), *fake, "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(pairs) == 3 and {p["origin"] for p in pairs} == {"rebase"}
    assert {p["source"]["row_id"] for p in pairs} == {"0", "1", "2"}
    assert run("--task", str(task), "--rows", str(tmp_path / "x"), "--llm", "fake").returncode == 2
    bad = run("--task", str(task), "--rows", str(rows), "--llm", "nope:x")
    assert bad.returncode == 2 and "Unknown LLM provider" in bad.stderr
    url = run("--task", str(task), "--rows", str(rows), "--llm", "openai:m", "--base-url", "x y")
    assert url.returncode == 2 and "not an http(s) URL" in url.stderr
    assert len(url.stderr.strip().splitlines()) == 1  # one line, no provider failure per row


def test_replies_missing_the_examples_field_markers_are_retried_then_counted():
    task = Task(
        "nli",
        "Relation?",
        (
            Example("Premise: a.\nHypothesis: b.", "entailment"),
            Example("Premise: c.\nHypothesis: d.", "neutral"),
        ),
    )
    replies = {
        "0": ['{"input": "Premise: x.\\nHypothesis: y.", "output": "neutral"}'],
        "1": [
            '{"input": "Premise: cut off ", "output": "neutral"}',
            '{"input": "Premise: fixed.\\nHypothesis: now.", "output": "entailment"}',
        ],
        "2": ['{"input": "Sentence 1: The movie ", "output": "neutral"}'] * 2,
    }

    def reply(call):
        row_id = json.loads(call.prompt.split("as JSON:\n", 1)[1].split("\n", 1)[0])[
            "text"
        ].split()[2]
        return replies[row_id].pop(0)

    result = transform(task, [_row(i) for i in range(3)], FakeLLM(reply))
    assert [p.source.row_id for p in result.pairs] == ["0", "1"]
    ((_, failure),) = result.failures
    assert failure.reason == "format" and "'Hypothesis:'" in failure.detail
    off = transform(
        task,
        [_row(2)],
        FakeLLM(lambda c: '{"input": "no markers", "output": "x"}'),
        TransformConfig(format_check=False),
    )
    assert [p.input for p in off.pairs] == ["no markers"]


def test_balance_by_label_keeps_an_even_share_of_each_label():
    from rebase_core.transform import balance_by_label

    task = Task("t", "i", (Example("a", "yes"), Example("b", "no")), metric="accuracy")
    pairs = [Pair(str(i), f"q{i}", "yes" if i % 4 else "no", "rebase") for i in range(12)]
    kept = balance_by_label(task, pairs)
    assert sorted(p.output for p in kept) == ["no"] * 3 + ["yes"] * 3
    assert [p.id for p in kept] == ["0", "1", "2", "3", "4", "8"]
    open_task = Task("t", "i", (Example("a", "the Black Sea"),), metric="exact_match")
    assert balance_by_label(open_task, pairs) == pairs


def test_estimate_counts_the_calls_the_cache_already_has(tmp_path):
    from rebase_core.transform import estimate_transform

    cache = ResponseCache(tmp_path / "cache.sqlite")
    rows = [_row(i) for i in range(4)]
    llm = FakeLLM(_reply_for)
    before = estimate_transform(TASK, rows, llm, TransformConfig(), cache=cache)
    assert (before.requests, before.cached) == (4, 0) and before.input_tokens > 0
    transform(TASK, rows[:3], llm, cache=cache)
    after = estimate_transform(TASK, rows, llm, TransformConfig(), cache=cache)
    assert (after.requests, after.cached) == (4, 3)


def test_inputs_not_built_from_the_row_are_retried_then_counted():
    task = Task(
        "nli",
        "Relation?",
        (
            Example("Premise: a.\nHypothesis: b.", "entailment"),
            Example("Premise: c.\nHypothesis: d.", "neutral"),
        ),
    )
    rows = [
        _row(0, text="Richard yelled at Ethan in the crowded kitchen", label="entailment"),
        _row(1, text="Marta painted the blue fence near the river", label="neutral"),
    ]
    invented = '{"input": "Premise: The quick brown fox jumps.\\nHypothesis: A fox sleeps.", '
    invented += '"output": "neutral"}'
    calls = []

    def teacher(call):
        calls.append(call.prompt)
        if "Richard" in call.prompt and "build it from the row" in call.prompt:
            return json.dumps(
                {
                    "input": "Premise: Richard yelled at Ethan.\nHypothesis: Ethan heard Richard.",
                    "output": "entailment",
                }
            )
        return invented

    result = transform(task, rows, FakeLLM(teacher), TransformConfig(concurrency=1))
    assert [p.source.row_id for p in result.pairs] == ["0"]
    assert "Richard" in result.pairs[0].input
    ((key, failure),) = result.failures
    assert key.endswith("\x1f1") and failure.reason == "ungrounded"
    assert failure.detail.startswith("the input shares 0% of its words with the source row")
    assert len(calls) == 4  # each row once, and once more told why
    off = transform(task, rows[1:], FakeLLM(teacher), TransformConfig(min_grounding=0))
    assert [p.output for p in off.pairs] == ["neutral"]
    with pytest.raises(InputError, match="min_grounding"):
        TransformConfig(min_grounding=1.5)


def test_grounding_leaves_out_what_words_cannot_judge():
    from rebase_core.transform.checks import grounding

    task = Task("t", "i", (Example("Premise: a\nHypothesis: b", "x"),))
    row = {"text": "The committee approved the budget on Monday"}
    assert grounding(task, "Premise: committee budget approved.\nHypothesis: Monday.", row) == 1.0
    assert grounding(task, "Premise: ok\nHypothesis: no", row) is None  # too few words
    german = "Premise: Der Ausschuss hat den Haushalt genehmigt und das ist gut.\nHypothesis: ja"
    assert grounding(task, german, row) is None  # a translation of the row
    assert (
        grounding(task, "Premise: 委员会批准了预算\nHypothesis: 是的", {"text": "委员会"}) is None
    )
