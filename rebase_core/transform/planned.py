"""Pairs from plans: applied per row for free, with an LLM rationale for reasoning tasks.

A plan gives each row's input and known answer (the source's human label, mapped). For a task
whose examples answer directly, that is the pair. For a task whose examples reason step by step,
the LLM is given the input *and the answer* and writes the reasoning that ends in it (rationale
mode): a weak teacher explains a known answer far better than it solves. The pair keeps the
source's answer; a rationale whose final answer disagrees is a `rationale-mismatch` failure,
asked once more, told why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rebase_core.llm import LLM, Message, Request, ResponseCache, Result, RunCalls
from rebase_core.task import final_answer, is_chain_of_thought
from rebase_core.transform.plan import Plan, PlannedRow, apply_plan, normalise_value
from rebase_core.transform.prompt import TransformConfig, prompt_version, render_examples, row_key
from rebase_core.types import Failure, Pair, PairSource, ScoredRow, Task

RATIONALE_TEMPLATE = """\
{instruction}

Examples, each an input and its output:
{examples}

Here is a new input and its correct final answer.
Input: {input}
Correct final answer: {answer}

Write the output for this input the way the examples write theirs: reason step by step, as \
briefly as the examples do, then end with the final answer exactly as the examples state it ("So \
the answer is {answer}."). Reply with the output only."""

RATIONALE_VERSION = prompt_version(RATIONALE_TEMPLATE)


def rationale_budget(task: Task, config: TransformConfig) -> int:
    """Tokens a rationale may take: twice the longest example output (~4 characters a token),
    at least 96, at most the config's. A weak teacher given 400 tokens rambled past them
    without concluding (a mismatch, asked again): half its calls' time on BBH."""
    longest = max((len(e.output) for e in task.examples), default=0)
    return min(config.max_tokens, max(96, 2 * longest // 4))


@dataclass
class PlannedBatch:
    """What planning a batch of rows produced."""

    pairs: list[Pair] = field(default_factory=list)
    failures: list[tuple[str, Failure]] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


def _source(row: ScoredRow, plan: Plan) -> PairSource:
    return PairSource(row.dataset, row.config, row.row_id, row.score, plan=plan.version)


def _rationale_request(
    task: Task,
    planned: PlannedRow,
    key: str,
    config: TransformConfig,
    note: str = "",
    sample: int = 0,
) -> Request:
    prompt = RATIONALE_TEMPLATE.format(
        instruction=task.instruction,
        examples=render_examples(task),
        input=planned.input,
        answer=planned.output,
    )
    if note:
        prompt += f"\n\nYour previous output could not be used ({note}). Write it again."
    return Request(
        key=key,
        messages=(Message("user", prompt),),
        temperature=config.temperature,
        max_tokens=rationale_budget(task, config),
        sample=sample,
    )


def rationale_problem(output: str, answer: str) -> str | None:
    """Why a rationale cannot be kept (None when its final answer is the known one)."""
    if not output.strip():
        return "the reply is empty"
    given = final_answer(output)
    if given == output.strip():
        return f'it does not end with "So the answer is {answer}."'
    if normalise_value(given) != normalise_value(answer):
        return f"it concludes {given[:40]!r}, but the answer is {answer!r}"
    return None


def planned_pairs(
    task: Task,
    rows: Sequence[ScoredRow],
    plans: Mapping[tuple[str, str], Plan],
    llm: LLM | None,
    config: TransformConfig,
    *,
    task_hash: Callable[[str, str, str], str],
    cache: ResponseCache | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PlannedBatch:
    """Pairs for rows whose (dataset, config) has a plan (`task_hash(key, version, llm)` names
    them). Rows the plan skips are failures ("no-label" for a label the plan drops or lacks,
    "plan" otherwise); dedup is the caller's."""
    batch = PlannedBatch()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    made: list[tuple[ScoredRow, Plan, PlannedRow]] = []
    for row in rows:
        plan = plans[(row.dataset, row.config)]
        planned = apply_plan(plan, task, row.row, row.row_id)
        if planned.ok:
            made.append((row, plan, planned))
        else:
            reason = "no-label" if planned.skipped.startswith("label ") else "plan"
            batch.failures.append(
                (row_key(row), Failure(reason, planned.skipped, _source(row, plan)))
            )
    if not is_chain_of_thought(task.examples):
        for row, plan, planned in made:
            key = row_key(row)
            batch.pairs.append(
                Pair(
                    id=task_hash(key, plan.version, "plan"),
                    input=planned.input,
                    output=planned.output,
                    origin="rebase",
                    source=_source(row, plan),
                    llm=plan.author,
                    prompt_version=plan.version,
                    created_at=now,
                    extra={"key": key},
                    method="plan",
                )
            )
        return batch
    if llm is None:
        raise ValueError("a reasoning task needs an LLM to write the rationales")
    calls = RunCalls(
        llm,
        concurrency=config.concurrency,
        max_retries=config.max_retries,
        cache=cache,
        should_stop=should_stop,
        results=batch.results,
    )
    outputs: dict[str, str] = {}
    problems: dict[str, str] = {}
    todo = {row_key(row): (row, plan, planned) for row, plan, planned in made}
    for attempt in (0, 1):
        keys = [k for k in todo if k not in outputs and (attempt == 0 or k in problems)]
        if not keys or should_stop():
            break
        requests = [
            _rationale_request(task, todo[k][2], k, config, problems.get(k, ""), attempt)
            for k in keys
        ]
        results = calls.complete(requests)
        for key, result in zip(keys, results, strict=True):
            if result.completion is None:
                if result.error_kind != "cancelled":
                    problems[key] = "provider: " + result.error
                continue
            text = result.completion.text.strip()
            problem = rationale_problem(text, todo[key][2].output)
            if problem:
                problems[key] = problem
            else:
                outputs[key] = text
                problems.pop(key, None)
    for key, (row, plan, planned) in todo.items():
        made_with = f"{plan.version}+{RATIONALE_VERSION}"  # the plan and the rationale prompt
        if key in outputs:
            batch.pairs.append(
                Pair(
                    id=task_hash(key, made_with, llm.spec),
                    input=planned.input,
                    output=outputs[key],
                    origin="rebase",
                    source=_source(row, plan),
                    llm=llm.spec,
                    prompt_version=made_with,
                    created_at=now,
                    extra={"key": key},
                    method="rationale",
                )
            )
        elif key in problems:
            detail = problems[key]
            reason = "provider" if detail.startswith("provider: ") else "rationale-mismatch"
            batch.failures.append((key, Failure(reason, detail, _source(row, plan))))
    return batch
