"""Direct synthetic generation (prompt2model's generator): pairs from instruction and examples."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from typing import Any

from rebase_core.llm import Message, Request
from rebase_core.synthesize.config import DirectConfig, SynthesisResult
from rebase_core.synthesize.rules import (
    annealed_temperature,
    cut_answer_field,
    max_temperature_for,
    multi_vote,
    parse_pairs,
)
from rebase_core.synthesize.run import OnFailure, OnPair, Run, provider_failure, seed_for
from rebase_core.task import final_answer, is_chain_of_thought
from rebase_core.transform import (
    COT_NOTE,
    PAIR_SCHEMA,
    is_classification,
    normalise_text,
    render_examples,
)
from rebase_core.types import Failure

EXAMPLES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"examples": {"type": "array", "items": PAIR_SCHEMA}},
    "required": ["examples"],
    "additionalProperties": False,
}

DIRECT_TEMPLATE = """\
You write training data for a machine-learning model.

The task, in the words of its author:
{instruction}

Examples of the task, one JSON object each, with an "input" and the expected "output":
{examples}
{earlier}
Write {count} new examples of the task. Each must match the format and type of the examples \
exactly and have the correct output; make them varied, different from the examples and from \
each other.{cot_note}{label_note}
Answer with a JSON object {{"examples": [{{"input": "...", "output": "..."}}, ...]}} holding \
{count} examples, and nothing else.
"""


def _direct_request(run: Run, config: DirectConfig, index: int, count: int) -> Request:
    key = f"d{index:05d}"
    task = run.task
    order = list(task.examples)
    random.Random(f"{config.seed}|order|{key}").shuffle(order)  # vary the prompt between calls
    earlier = run.shown_earlier(key, config.earlier_shown)
    earlier_note = (
        "\nInputs written earlier; do not repeat them, write about other things:\n"
        + "\n".join(json.dumps(x, ensure_ascii=False) for x in earlier)
        + "\n"
        if earlier
        else ""
    )
    label_note = ""
    if is_classification(task):
        labels = sorted({final_answer(e.output).strip() for e in task.examples})
        label_note = f"\nUse the outputs {', '.join(map(repr, labels))} about equally often."
    prompt = DIRECT_TEMPLATE.format(
        instruction=task.instruction,
        examples=render_examples(replace(task, examples=tuple(order))),
        earlier=earlier_note,
        count=count,
        cot_note=COT_NOTE if is_chain_of_thought(task.examples) else "",
        label_note=label_note,
    )
    planned = max(1, math.ceil(run.target / config.per_call))
    cap = min(config.max_temperature, max_temperature_for(run.llm.spec))
    return Request(
        key=key,
        messages=(Message("user", prompt),),
        temperature=annealed_temperature(index, planned, min(config.start_temperature, cap), cap),
        max_tokens=config.max_tokens,
        json_schema=EXAMPLES_SCHEMA if config.json_schema else None,
        seed=seed_for(config.seed, key),
    )


_RETRY_NOTE = (
    "\n\nYour previous answer could not be used ({reason}). Answer again with only a JSON object "
    'of the form {{"examples": [{{"input": "...", "output": "..."}}]}}.'
)


def synthesize_direct(
    run: Run,
    config: DirectConfig,
    on_pair: OnPair,
    on_failure: OnFailure,
) -> SynthesisResult:
    budget = math.ceil(config.max_attempts * run.target)  # pairs asked for, at most
    asked = 0
    index = 0
    while run.kept < run.target and asked < budget and not run.should_stop():
        # This round's calls: enough to ask for exactly the pairs still missing.
        need = min(run.target - run.kept, budget - asked)
        plan: list[tuple[int, int]] = []  # (call index, pairs asked)
        while need > 0 and len(plan) < config.calls_per_round:
            count = min(config.per_call, need)
            plan.append((index, count))
            index += 1
            need -= count
        asked += sum(c for _, c in plan)
        run.calls += len(plan)
        done = [f"d{i:05d}" for i, _ in plan if run.is_done(f"d{i:05d}")]
        todo = [(i, c) for i, c in plan if f"d{i:05d}" not in done]
        requests = {i: _direct_request(run, config, i, c) for i, c in todo}
        run.take_done(done)
        if not todo:
            run.finish_round([], [], on_pair, on_failure)
            continue
        replies = run.complete(list(requests.values()), "writing pairs")
        results = dict(zip(requests, replies, strict=True))
        parsed: dict[int, list[tuple[str, str]]] = {}
        failures: list[tuple[str, Failure]] = []
        retry: dict[int, str] = {}
        for i, result in results.items():
            if result.completion is None:
                continue
            items = parse_pairs(result.completion.text)
            if items:
                parsed[i] = items
            else:
                retry[i] = "empty" if not result.completion.text.strip() else "no JSON pair"
        if retry and not run.should_stop():
            again = []
            for i, reason in retry.items():
                base = replace(requests[i], sample=1)
                text = base.messages[-1].content + _RETRY_NOTE.format(reason=reason)
                again.append(replace(base, messages=(Message("user", text),)))
            for request, result in zip(again, run.complete(again, "asking again"), strict=True):
                i = int(request.key[1:])
                if result.completion is not None:
                    items = parse_pairs(result.completion.text)
                    if items:
                        parsed[i] = items
                        retry.pop(i)
        if run.should_stop():
            break  # a round cut short is redone whole next time (its calls are cached)
        candidates: list[tuple[str, str, str]] = []
        for i, count in todo:
            key = f"d{i:05d}"
            result = results[i]
            if result.completion is None:
                failures.append((key, provider_failure(result)))
                continue
            if i in retry:
                reason = "empty" if retry[i] == "empty" else "parse"
                failures.append((key, Failure(reason, f"the reply held no pair ({retry[i]})")))
                continue
            items = parsed[i][:count]
            for j, (raw, out) in enumerate(items):
                # The local teacher wrote "\noutput: <label>" into 91 of 200 NLI inputs.
                inp = cut_answer_field(raw, [e.input for e in run.task.examples])
                if normalise_text(inp):
                    candidates.append((f"{key}#{j}", inp, out))
                else:  # only punctuation ("...", "?"): nothing to learn from
                    failures.append((f"{key}#{j}", Failure("empty", f"the input is {inp!r}")))
            failures.extend(
                (f"{key}#{j}", Failure("missing", f"the reply held {len(items)} of {count} pairs"))
                for j in range(len(items), count)
            )
        winners, losers = multi_vote(candidates)
        failures.extend(
            (k, Failure("duplicate", f"same input as {w}, whose output won the vote"))
            for k, w in losers
        )
        pairs = []
        for item_key, inp, out, votes in winners:
            if normalise_text(inp) in run.seen:
                failures.append(
                    (
                        item_key,
                        Failure("duplicate", f"same input as {run.seen[normalise_text(inp)]}"),
                    )
                )
                continue
            call_key = item_key.split("#")[0]
            temp = requests[int(call_key[1:])].temperature
            pairs.append(run.pair(call_key, item_key, inp, out, votes=votes, temperature=temp))
        run.finish_round(pairs, failures, on_pair, on_failure)
    return run.result()
