"""Baselines: annealing, multi-vote, self-consistency, label conditioning, filters, failures by
reason, resume without paying twice, the job and the CLI."""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from rebase_core import jobs
from rebase_core.errors import InputError, ProviderError
from rebase_core.llm import ResponseCache
from rebase_core.llm.fake import FakeLLM
from rebase_core.settings import PROJECT_ROOT
from rebase_core.synthesize import (
    DirectConfig,
    SelfGuideConfig,
    annealed_temperature,
    clean_reply,
    cut_answer_field,
    estimate_synthesis,
    label_schedule,
    length_bounds,
    make_config,
    multi_vote,
    noise_reason,
    parse_pairs,
    self_consistency,
    synthesize,
)
from rebase_core.types import Example, Task
from rebase_core.workspace import Workspace

SENTIMENT = Task(
    "sentiment",
    "Classify the sentiment of the movie review as positive or negative.",
    (
        Example("A moving, beautifully shot film with a superb cast.", "positive"),
        Example("Dull, overlong and badly acted; I left halfway through.", "negative"),
        Example("The plot was thin but the music carried it.", "positive"),
    ),
)
SUMMARY = Task(
    "summary",
    "Summarise the sentence in a few words.",
    (
        Example(
            "The city council voted on Monday to build a new bridge over the river.",
            "The council approved building a new bridge across the river.",
        ),
        Example(
            "Heavy rain closed the schools across the whole region today, officials said.",
            "Schools across the whole region were closed by heavy rain.",
        ),
    ),
)


def _asked(prompt: str) -> int:
    return int(re.search(r"Write (\d+) new examples", prompt).group(1))


class Writer:
    """A direct-generation teacher: each call returns as many new pairs as asked, numbered."""

    def __init__(self, start: int = 0) -> None:
        self.counter = itertools.count(start)

    def __call__(self, call):
        items = []
        for _ in range(_asked(call.prompt)):
            k = next(self.counter)
            items.append({"input": f"review number {k} of a film", "output": "positive"})
        return json.dumps({"examples": items})


# --- pure pieces ----------------------------------------------------------------------------


def test_direct_cuts_the_answer_field_its_writer_put_into_the_input():
    nli = Task(
        "nli",
        "Does the premise entail the hypothesis?",
        (
            Example("Premise: A dog runs.\nHypothesis: An animal moves.", "entailment"),
            Example("Premise: A dog sleeps.\nHypothesis: The dog runs.", "contradiction"),
        ),
    )
    reply = {
        "examples": [
            {
                "input": "Premise: The sun is hot.\nHypothesis: The sun is cold."
                "\noutput: contradiction",
                "output": "contradiction",
            },
            {"input": "Premise: It rains.\nHypothesis: It is wet.", "output": "entailment"},
        ]
    }
    llm = FakeLLM(lambda call: json.dumps(reply))
    config = DirectConfig(per_call=2, calls_per_round=1, concurrency=1, max_attempts=1.0)
    result = synthesize(nli, llm, "direct", 2, config)
    assert [p.input for p in result.pairs] == [
        "Premise: The sun is hot.\nHypothesis: The sun is cold.",
        "Premise: It rains.\nHypothesis: It is wet.",
    ]
    # A task whose own inputs carry such a line keeps it: it is the task's format.
    qa = "Question: 2+2?\nAnswer: "
    assert cut_answer_field("Question: 3+3?\nAnswer: 6", [qa]) == "Question: 3+3?\nAnswer: 6"


def test_temperature_is_annealed_from_start_to_cap():
    temps = [annealed_temperature(i, 5, 0.5, 1.3) for i in range(7)]
    assert temps[0] == 0.5 and temps[4] == pytest.approx(1.3)
    assert temps == sorted(temps) and len(set(temps[:5])) == 5
    assert temps[5] == temps[6] == pytest.approx(1.3)  # top-up calls stay at the cap
    assert annealed_temperature(0, 1, 0.5, 1.3) == 0.5


def test_direct_calls_follow_the_schedule_and_the_provider_cap():
    llm = FakeLLM(Writer(), spec="fake")
    config = DirectConfig(per_call=2, calls_per_round=1, concurrency=1)
    result = synthesize(SENTIMENT, llm, "direct", 10, config)
    assert len(result.pairs) == 10 and result.calls == 5
    assert [c.temperature for c in llm.history] == [
        pytest.approx(annealed_temperature(i, 5, 0.5, 1.2)) for i in range(5)
    ]
    assert [p.extra["temperature"] for p in result.pairs][::2] == [
        c.temperature for c in llm.history
    ]
    anthropic = FakeLLM(Writer(), spec="anthropic:claude-haiku-4-5")
    synthesize(SENTIMENT, anthropic, "direct", 10, config)
    assert max(c.temperature for c in anthropic.history) == 1.0  # Anthropic's maximum


def test_multi_vote_keeps_the_most_frequent_output():
    candidates = [
        ("a", "Is it good?", "yes"),
        ("b", "is it good", "no"),
        ("c", "Other input", "x"),
        ("d", "IS IT GOOD?!", "no"),
        ("e", "Tie here", "one"),
        ("f", "tie here.", "two"),
    ]
    winners, losers = multi_vote(candidates)
    # The winner keeps the key of the first candidate with the winning output.
    assert winners == [
        ("b", "is it good", "no", 2),
        ("c", "Other input", "x", 1),
        ("e", "Tie here", "one", 1),  # a tie goes to the output generated first
    ]
    assert sorted(losers) == [("a", "b"), ("d", "b"), ("f", "e")]


def test_direct_votes_duplicates_out_and_counts_them():
    replies = iter(
        [
            {
                "examples": [{"input": "Great fun", "output": "positive"}] * 2
                + [{"input": "great fun!", "output": "negative"}]
            },
            {
                "examples": [
                    {"input": "Awful", "output": "negative"},
                    {"input": "...", "output": "negative"},
                    {
                        "input": "A moving, beautifully shot film with a superb cast.",
                        "output": "positive",
                    },
                ]
            },
        ]
    )
    llm = FakeLLM(lambda call: json.dumps(next(replies)))
    config = DirectConfig(per_call=3, calls_per_round=2, concurrency=1, max_attempts=1.0)
    result = synthesize(SENTIMENT, llm, "direct", 6, config)
    assert [(p.input, p.output, p.extra["votes"]) for p in result.pairs] == [
        ("Great fun", "positive", 2),
        ("Awful", "negative", 1),
    ]
    # Two outvoted, one copy of an example; an input of punctuation only counts as empty.
    assert result.failure_counts == {"duplicate": 3, "empty": 1}
    details = sorted(f.detail for _, f in result.failures)
    assert "same input as a task example" in details


def test_self_consistency_share_threshold_and_ties():
    vote = self_consistency(["positive", "Positive.", "negative", None, "positive"], 0.5)
    assert (vote.answer, vote.votes, vote.answered) == ("positive", 3, 5)
    assert vote.share == pytest.approx(0.6)
    # Rejected samples (None) count against the share.
    assert self_consistency(["a", None, None, None], 0.3).answer is None
    assert self_consistency(["a", None, None], 0.3).share == pytest.approx(1 / 3)
    # A tie goes to the shortest answer; the kept text is the shortest spelling of its group.
    tie = self_consistency(["a long answer", "short", "A long answer!", "short."], 0.3)
    assert tie.answer == "short" and tie.votes == 2
    assert self_consistency([None, None], 0.1).answer is None
    assert self_consistency([], 0.1).answered == 0


def test_label_schedule_is_balanced_and_seeded():
    labels = ["neg", "neu", "pos"]
    for count in (1, 7, 30):
        got = Counter(label_schedule(labels, count, seed=4))
        assert max(got.values()) - min(got.get(x, 0) for x in labels) <= 1
    assert label_schedule(labels, 12, 1) == label_schedule(labels, 12, 1)
    assert label_schedule(labels, 12, 1) != label_schedule(labels, 12, 2)
    assert label_schedule([], 5, 0) == []


def test_noise_cleaning_and_length_rules():
    assert noise_reason("Input: the film") == "contains an 'input' label"
    assert noise_reason("see the output") == "contains an 'output' label"
    assert noise_reason("fill in the __ here") == "contains '__'"
    assert noise_reason("one\n\ntwo") == "contains a blank line"
    assert noise_reason("A fine film.") is None
    # What the task's own examples contain is part of its format, not noise.
    assert noise_reason("one\n\ntwo", ["first\n\nsecond"]) is None
    assert clean_reply('Input: "A great film."\nOutput: positive') == "A great film."
    assert clean_reply("[output] = negative") == "negative"
    lo, hi = length_bounds(["abcd", "abcdefgh"], min_slack=0.0)  # mean 6, std 2
    assert (lo, hi) == (2.0, 10.0)
    assert length_bounds(["abcd"], min_slack=0.5) == (2.0, 6.0)  # one example: the slack


def test_parse_pairs_reads_lists_and_salvages_cut_replies():
    wrapped = '{"examples": [{"input": "a", "output": "b"}, {"input": "c", "output": "d"}]}'
    assert parse_pairs(wrapped) == [("a", "b"), ("c", "d")]
    assert parse_pairs('```json\n[{"input": "a", "output": "b"}]\n```') == [("a", "b")]
    cut = '{"examples": [{"input": "a", "output": "b"}, {"input": "c", "outp'
    assert parse_pairs(cut) == [("a", "b")]
    assert parse_pairs("“input”: no") == []
    assert parse_pairs(
        '{"examples": [{"input": "", "output": "x"}, {"input": "y", "output": "z",}]}'
    ) == [("y", "z")]


def test_configs_validate_and_estimates_scale():
    with pytest.raises(InputError, match="per_call"):
        DirectConfig(per_call=0)
    with pytest.raises(InputError, match="Unknown direct setting"):
        make_config("direct", {"samples": 3})
    with pytest.raises(InputError, match="Unknown method"):
        make_config("magic")
    with pytest.raises(InputError, match="at least 1"):
        synthesize(SENTIMENT, FakeLLM(), "direct", 0)
    est = estimate_synthesis(SENTIMENT, "openai:gpt-4o-mini", "direct", 100)
    assert (est.calls, est.max_calls) == (20, 60)
    assert 0 < est.cost_usd < est.max_cost_usd
    sg = estimate_synthesis(SENTIMENT, "local:smollm2-135m-instruct", "self-guide", 10)
    assert sg.calls == 10 * (1 + SelfGuideConfig().samples) and sg.cost_usd == 0.0


# --- failures by reason ---------------------------------------------------------------------


def test_direct_counts_every_failure_by_reason():
    def responder(call):
        index = len(llm.history)
        if index == 1:  # first call: 2 of the 3 pairs asked for
            return json.dumps({"examples": [{"input": f"p{i}", "output": "x"} for i in range(2)]})
        if index == 2:
            raise ProviderError("fake: the request was rejected (HTTP 400)")
        if index == 3:
            return "   "  # empty, and empty again when asked once more
        return "not json at all"

    llm = FakeLLM(responder)
    config = DirectConfig(per_call=3, calls_per_round=4, concurrency=1, max_attempts=1.0)
    result = synthesize(SENTIMENT, llm, "direct", 12, config)
    assert len(result.pairs) == 2
    assert result.failure_counts == {"missing": 1, "provider": 1, "empty": 1, "parse": 1}
    # Unparseable replies were asked for once more (a new sample, told why).
    retries = [c for c in llm.history if "could not be used" in c.prompt]
    assert len(retries) == 2
    assert any("Only 2 of the 12" in w for w in result.warnings)


class Student:
    """A scripted SELF-GUIDE student: inputs from the label it is asked for, answers by rule."""

    def __init__(self, *, bad_every: int = 0, answers=None, start: int = 0) -> None:
        self.counter = itertools.count(start)
        self.bad_every = bad_every
        self.answers = answers or (lambda text, sample: "negative" if "bad" in text else "positive")
        self.lock = threading.Lock()
        self.asked: Counter = Counter()

    def __call__(self, call):
        prompt = call.prompt
        if prompt.endswith("Output:"):
            text = prompt.rsplit("Input: ", 1)[1].rsplit("\nOutput:", 1)[0]
            return self.answers(text, call.seed)
        label = re.search(r'one whose answer is "([^"]+)"', prompt)
        label = label.group(1) if label else "none"
        with self.lock:
            k = next(self.counter)
            self.asked[label] += 1
        if self.bad_every and k % self.bad_every == self.bad_every - 1:
            return ["", "Input: fill the __ in", "Review:\n\nsomething"][k % 3]
        word = "bad" if label == "negative" else "good"
        return f"Input: a {word} film, review {k}"


def test_self_guide_conditions_on_balanced_labels():
    student = Student()
    llm = FakeLLM(student)
    config = SelfGuideConfig(inputs_per_round=4, samples=3)
    result = synthesize(SENTIMENT, llm, "self-guide", 9, config)
    assert len(result.pairs) == 9 and not result.failures
    # The labels asked for in the prompts are balanced, and reported.
    assert dict(student.asked) == dict(result.asked_labels)
    assert abs(student.asked["positive"] - student.asked["negative"]) <= 1
    assert Counter(p.output for p in result.pairs) == Counter(
        p.extra["asked_label"] for p in result.pairs
    )
    # Each input was answered `samples` times at the low temperature, with distinct seeds.
    answers = [c for c in llm.history if c.prompt.endswith("Output:")]
    assert len(answers) == 9 * 3 and {c.temperature for c in answers} == {0.2}
    assert len({c.seed for c in answers}) == len(answers)
    assert all(p.origin == "self-guide" and p.extra["share"] == 1.0 for p in result.pairs)


def test_self_guide_filters_and_counts_failures_by_reason():
    split = Counter()
    lock = threading.Lock()

    def answers(text, seed):
        if text.endswith("review 1"):
            return "maybe"  # never a label: off-label
        if text.endswith("review 3"):  # one vote each: inconsistent
            with lock:
                split[text] += 1
                return ["positive", "negative", "unsure"][split[text] - 1]
        return "Output: positive" if "good" in text else "The answer is negative."

    student = Student(bad_every=5, answers=answers)
    config = SelfGuideConfig(inputs_per_round=5, samples=3, min_share=0.5, max_attempts=1.0)
    result = synthesize(SENTIMENT, FakeLLM(student), "self-guide", 10, config)
    counts = result.failure_counts
    # Inputs 4 and 9 (every 5th): an empty reply and template noise.
    assert counts.pop("empty", 0) + counts.pop("noise", 0) == 2
    assert counts == {"off-label": 1, "inconsistent": 1}
    assert len(result.pairs) == 10 - 4
    off = dict(result.failures)["s00003"]
    assert "1 of 3 samples" in off.detail
    assert {p.output for p in result.pairs} <= {"positive", "negative"}  # mapped to the labels


def test_self_guide_length_filter_on_generation_tasks():
    def answers(text, seed):
        return "x" * 200 if text.endswith(("1", "3")) else "A short summary of the given text."

    student = Student(answers=answers)
    result = synthesize(
        SUMMARY, FakeLLM(student), "self-guide", 5, SelfGuideConfig(samples=2, max_attempts=1.0)
    )
    assert result.failure_counts == {"length": 2}
    assert [p.output for p in result.pairs] == ["A short summary of the given text."] * 3
    assert not result.asked_labels  # a generation task: no label conditioning


# --- resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["direct", "self-guide"])
def test_stop_and_resume_pays_for_no_call_twice(tmp_path, method):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    task = SENTIMENT
    if method == "direct":
        config = DirectConfig(per_call=2, calls_per_round=2)
        make_llm = lambda start: FakeLLM(Writer(start))  # noqa: E731
    else:
        config = SelfGuideConfig(inputs_per_round=3, samples=2)
        make_llm = lambda start: FakeLLM(Student(start=start))  # noqa: E731
    saved = []
    first_llm = make_llm(0)
    first = synthesize(
        task,
        first_llm,
        method,
        12,
        config,
        cache=cache,
        on_pair=saved.append,
        should_stop=lambda: len(saved) >= 4,  # stop after the round that reaches 4 pairs
    )
    assert 4 <= len(saved) < 12 and list(first.pairs) == saved
    paid_first = {(c.prompt, c.temperature, c.seed) for c in first_llm.history}
    second_llm = make_llm(1000)
    second = synthesize(task, second_llm, method, 12, config, cache=cache, existing=saved)
    assert len(saved) + len(second.pairs) == 12
    assert not {p.id for p in saved} & {p.id for p in second.pairs}
    assert len({p.input for p in saved + list(second.pairs)}) == 12
    paid_second = {(c.prompt, c.temperature, c.seed) for c in second_llm.history}
    assert not paid_first & paid_second  # nothing paid twice
    # A third run finds everything done and skips it outright: not even a cache lookup.
    third_llm = make_llm(2000)
    everything = saved + list(second.pairs)
    third = synthesize(task, third_llm, method, 12, config, cache=cache, existing=everything)
    assert third.pairs == () and third_llm.history == [] and third.usage is None


def test_short_run_goes_on_with_a_larger_budget_and_pays_for_no_call_twice(tmp_path):
    """A run that spends its attempts short of the count: rerun at the same budget, it replays
    the same calls (all from the cache) to the same place; at a larger one, it replays them and
    goes on past them."""
    cache = ResponseCache(tmp_path / "cache.sqlite")
    student = Student(bad_every=2)  # every other input is empty or template noise
    short = SelfGuideConfig(inputs_per_round=3, samples=2, max_attempts=1.0)
    first_llm = FakeLLM(student)
    first = synthesize(SENTIMENT, first_llm, "self-guide", 10, short, cache=cache)
    assert 0 < len(first.pairs) < 10 and "attempts budget ran out" in first.warnings[0]
    saved = list(first.pairs)
    again_llm = FakeLLM(Student(bad_every=2))
    again = synthesize(SENTIMENT, again_llm, "self-guide", 10, short, cache=cache, existing=saved)
    assert again.pairs == () and again_llm.history == []  # the same budget: a replay
    longer = replace(short, max_attempts=4.0)
    longer_llm = FakeLLM(Student(bad_every=2, start=len(first_llm.history)))
    more = synthesize(SENTIMENT, longer_llm, "self-guide", 10, longer, cache=cache, existing=saved)
    assert len(saved) + len(more.pairs) == 10 and more.usage.cached > 0
    paid_first = {(c.prompt, c.temperature, c.seed) for c in first_llm.history}
    paid_more = {(c.prompt, c.temperature, c.seed) for c in longer_llm.history}
    assert paid_more and not paid_first & paid_more  # nothing paid twice
    assert more.usage.requests - more.usage.cached == len(longer_llm.history)


def _wait(folder, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = jobs.job_status(folder)
        if not status.is_active:
            return status
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_synthesize_job_killed_and_resumed(settings):
    """Kill the job half-way; the rerun keeps what was saved, finishes, and pays only for calls
    the cache does not hold."""
    ws = Workspace(settings.workspace_db)
    rec = ws.save_task(SENTIMENT)
    run_id = ws.create_pair_run(rec.id, "direct", llm="fake")
    params = {
        "pair_run": run_id,
        "task_id": rec.id,
        "method": "direct",
        "n": 24,
        "llm": "fake",
        "llm_options": {"latency_s": 0.05},
        "config": {"per_call": 1, "calls_per_round": 2, "concurrency": 1},
    }
    job = jobs.start_job(settings, "synthesize", params)
    deadline = time.time() + 60
    while len(ws.pairs(run_id=run_id)) < 6 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(jobs.job_status(job.folder).pid, signal.SIGKILL)
    assert _wait(job.folder).state == "failed"
    saved = {p.id for p in ws.pairs(run_id=run_id)}
    assert 6 <= len(saved) < 24
    ws.set_status(sorted(saved)[:2], "accepted")
    cached_before = len(ResponseCache(settings.llm_cache_db))
    status = _wait(jobs.start_job(settings, "synthesize", params).folder)
    assert status.state == "done", status.error
    final = ws.pairs(run_id=run_id)
    assert len(final) == 24 and saved <= {p.id for p in final}
    assert {p.origin for p in final} == {"direct"}
    assert ws.status_counts(run_id=run_id)["accepted"] == 2
    # Every call the rerun paid for is a new cache entry: nothing was paid for twice.
    assert status.result["paid_calls"] == len(ResponseCache(settings.llm_cache_db)) - cached_before
    assert status.result["total_pairs"] == 24
    # Failures (duplicates from identical prompts, if any) are kept with their reason.
    assert all(f.failure.reason in ("duplicate",) for f in ws.failures(run_id))


# --- CLI ------------------------------------------------------------------------------------


def test_cli_synthesize_writes_pairs_and_exits_2_on_bad_input(tmp_path):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(SENTIMENT.to_dict()))
    env = dict(os.environ, REBASE_HOME=str(tmp_path / "home"))

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "rebase_core", "synthesize", *args],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env=env,
            timeout=120,
        )

    out = tmp_path / "pairs.jsonl"
    failures = tmp_path / "failures.jsonl"
    base = ["--task", str(task), "--llm", "fake"]
    ok = run(
        *base,
        "--method",
        "direct",
        "--n",
        "4",
        "--out",
        str(out),
        "--per-call",
        "1",
        "--failures",
        str(failures),
    )
    assert ok.returncode == 0, ok.stderr
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(pairs) == 4 and {p["origin"] for p in pairs} == {"direct"}
    assert all(p["id"].startswith("dg-") and p["status"] == "pending" for p in pairs)
    assert "4 pairs" in ok.stderr and failures.exists()
    for bad, message in [
        (["--task", str(tmp_path / "nope.json"), "--method", "direct", "--n", "3"], "not exist"),
        ([*base, "--method", "direct", "--n", "0"], "--n must be"),
        ([*base, "--method", "direct", "--n", "3", "--samples", "4"], "--samples applies"),
        ([*base, "--method", "direct", "--n", "3", "--max-attempts", "0.5"], "max_attempts"),
        (["--task", str(task), "--method", "direct", "--n", "3", "--llm", "nope:x"], "provider"),
    ]:
        got = run(*bad)
        assert got.returncode == 2 and message in got.stderr, got.stderr
        assert len(got.stderr.strip().splitlines()) == 1
    assert run(*base, "--method", "sideways", "--n", "3").returncode == 2
