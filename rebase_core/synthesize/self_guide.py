"""SELF-GUIDE (Zhao et al. 2024): the student writes inputs, answers them, and filters by rules."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rebase_core.llm import Message, Request, Result, estimate_tokens
from rebase_core.synthesize.config import SelfGuideConfig, SynthesisResult
from rebase_core.synthesize.rules import (
    clean_reply,
    label_schedule,
    length_bounds,
    noise_reason,
    self_consistency,
)
from rebase_core.synthesize.run import OnFailure, OnPair, Run, provider_failure, seed_for
from rebase_core.task import final_answer, is_chain_of_thought
from rebase_core.transform import is_classification, label_of, normalise_text
from rebase_core.types import Failure, Task

INPUT_TEMPLATE = """\
{instruction}

Example inputs:
{inputs}

Write one new example input like these{label_note}. Reply with the input text only, no \
explanation."""

ANSWER_TEMPLATE = """\
{instruction}

{examples}

Input: {input}
Output:"""


@dataclass(frozen=True, slots=True)
class _Rules:
    """What SELF-GUIDE's filters need to know about the task."""

    labels: Mapping[str, str]  # label_of(output) -> the label as the examples write it
    cot: bool
    bounds: tuple[float, float] | None  # output length bounds (generation tasks)
    input_refs: tuple[str, ...]
    output_refs: tuple[str, ...]

    def vote_key(self, answer: str) -> str:
        """What answers agree on: the label (classification) or the normalised text."""
        if self.labels:
            return _label_in(answer, self.labels) or label_of(answer)
        return normalise_text(answer)


def _rules(task: Task, config: SelfGuideConfig) -> _Rules:
    classification = is_classification(task)
    labels = (
        {label_of(e.output): final_answer(e.output).strip() for e in task.examples}
        if classification
        else {}
    )
    bounds = None
    if not classification and config.length_filter:
        bounds = length_bounds([e.output for e in task.examples], config.min_length_slack)
    return _Rules(
        labels=labels,
        cot=is_chain_of_thought(task.examples),
        bounds=bounds,
        input_refs=tuple(e.input for e in task.examples),
        output_refs=tuple(e.output for e in task.examples),
    )


def _label_in(text: str, labels: Mapping[str, str]) -> str | None:
    """The task label an answer names: its final answer if that is a label, else the one label
    named as a word in it (as the reference maps verbose answers), else None."""
    direct = label_of(text)
    if direct in labels:
        return direct
    named = [k for k in labels if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)]
    return named[0] if len(named) == 1 else None


def _judge_answer(result: Result, rules: _Rules) -> tuple[str | None, str]:
    """(answer, "") for a usable sample, (None, reason) for a rejected one."""
    assert result.completion is not None
    if result.completion.finish_reason == "length" and not rules.labels:
        return None, "length"
    text = clean_reply(result.completion.text)
    if not text:
        return None, "empty"
    if noise_reason(text, rules.output_refs):
        return None, "noise"
    if rules.labels:
        label = _label_in(text, rules.labels)
        if label is None:
            return None, "off-label"
        return (text if rules.cot else rules.labels[label]), ""
    if rules.bounds is not None and not rules.bounds[0] <= len(text) <= rules.bounds[1]:
        return None, "length"
    return text, ""


def _input_request(
    run: Run, config: SelfGuideConfig, index: int, label: str | None, max_tokens: int
) -> Request:
    key = f"s{index:05d}"
    lines = [f"- {e.input}" for e in run.task.examples]
    lines += [f"- {x}" for x in run.shown_earlier(key, config.earlier_shown)]
    prompt = INPUT_TEMPLATE.format(
        instruction=run.task.instruction,
        inputs="\n".join(lines),
        label_note=f', one whose answer is "{label}"' if label else "",
    )
    return Request(
        key=key,
        messages=(Message("user", prompt),),
        temperature=config.input_temperature,
        max_tokens=max_tokens,
        seed=seed_for(config.seed, key),
    )


def _answer_requests(
    run: Run, config: SelfGuideConfig, key: str, text: str, max_tokens: int
) -> list[Request]:
    examples = "\n\n".join(f"Input: {e.input}\nOutput: {e.output}" for e in run.task.examples)
    prompt = ANSWER_TEMPLATE.format(instruction=run.task.instruction, examples=examples, input=text)
    return [
        Request(
            key=f"{key}@{s}",
            messages=(Message("user", prompt),),
            temperature=config.answer_temperature,
            max_tokens=max_tokens,
            sample=s,
            seed=seed_for(config.seed, key, s + 1),
        )
        for s in range(config.samples)
    ]


def _token_budget(texts: Sequence[str], cap: int) -> int:
    """Room for a reply three times as long as the longest of `texts` (at least 64 tokens), within
    `cap`: generated inputs run longer than the examples, and a cut one is dropped."""
    return max(64, min(cap, 3 * max(estimate_tokens(t) for t in texts) + 32))


def synthesize_self_guide(
    run: Run,
    config: SelfGuideConfig,
    on_pair: OnPair,
    on_failure: OnFailure,
) -> SynthesisResult:
    rules = _rules(run.task, config)
    budget = math.ceil(config.max_attempts * run.target)  # inputs written, at most
    schedule = label_schedule(sorted(set(rules.labels.values())), budget, config.seed)
    input_tokens = _token_budget([e.input for e in run.task.examples], config.max_input_tokens)
    output_tokens = _token_budget([e.output for e in run.task.examples], config.max_output_tokens)
    asked: Counter[str] = Counter()
    index = 0
    while run.kept < run.target and index < budget and not run.should_stop():
        size = min(config.inputs_per_round, run.target - run.kept, budget - index)
        plan = list(range(index, index + size))
        index += size
        run.calls += size
        for i in plan:
            if schedule:
                asked[schedule[i]] += 1
        done = [f"s{i:05d}" for i in plan if run.is_done(f"s{i:05d}")]
        todo = [i for i in plan if f"s{i:05d}" not in done]
        requests = [
            _input_request(run, config, i, schedule[i] if schedule else None, input_tokens)
            for i in todo
        ]
        run.take_done(done)
        if not todo:
            run.finish_round([], [], on_pair, on_failure)
            continue
        results = run.complete(requests, "writing inputs")
        if run.should_stop():
            break
        failures: list[tuple[str, Failure]] = []
        inputs: dict[str, str] = {}  # key -> input that passed the input filters
        round_seen: dict[str, str] = {}
        for i, result in zip(todo, results, strict=True):
            key = f"s{i:05d}"
            if result.completion is None:
                failures.append((key, provider_failure(result)))
                continue
            text = clean_reply(result.completion.text)
            norm = normalise_text(text)
            if not norm:  # nothing, or only punctuation
                failures.append((key, Failure("empty", f"the student wrote {text!r}")))
            elif result.completion.finish_reason == "length":
                failures.append((key, Failure("length", f"the input hit {input_tokens} tokens")))
            elif (why := noise_reason(text, rules.input_refs)) is not None:
                failures.append((key, Failure("noise", f"the input {why}: {text[:80]!r}")))
            elif norm in run.seen or norm in round_seen:
                where = run.seen.get(norm) or f"input {round_seen[norm]}"
                failures.append((key, Failure("duplicate", f"same input as {where}")))
            else:
                inputs[key] = text
                round_seen[norm] = key
        answer_requests = [
            r
            for key, text in inputs.items()
            for r in _answer_requests(run, config, key, text, output_tokens)
        ]
        answers = run.complete(answer_requests, "answering") if answer_requests else []
        if run.should_stop():
            break
        for key, text in inputs.items():  # a repeat of an input is a duplicate, kept or not
            run.seen.setdefault(normalise_text(text), f"input {key}")
        by_input: dict[str, list[Result]] = defaultdict(list)
        for result in answers:
            by_input[result.key.split("@")[0]].append(result)
        pairs = []
        for key, text in inputs.items():
            samples = [r for r in by_input[key] if r.completion is not None]
            if not samples:
                failures.append((key, provider_failure(by_input[key][0])))
                continue
            judged = [_judge_answer(r, rules) for r in samples]
            vote = self_consistency([a for a, _ in judged], config.min_share, key=rules.vote_key)
            if vote.answer is None:
                rejected = Counter(reason for a, reason in judged if a is None)
                if vote.votes == 0:
                    reason, _ = rejected.most_common(1)[0]
                    detail = ", ".join(f"{k}: {v}" for k, v in rejected.items())
                    failures.append((key, Failure(reason, f"every answer was rejected ({detail})")))
                else:
                    failures.append(
                        (
                            key,
                            Failure(
                                "inconsistent",
                                f"the top answer got {vote.votes} of {vote.answered} samples "
                                f"({vote.share:.0%} < {config.min_share:.0%})",
                            ),
                        )
                    )
                continue
            extra: dict[str, Any] = {"share": round(vote.share, 3), "samples": vote.answered}
            if schedule:
                extra["asked_label"] = schedule[int(key[1:])]
            pairs.append(run.pair(key, key, text, vote.answer, **extra))
        run.finish_round(pairs, failures, on_pair, on_failure)
    return run.result(asked)
