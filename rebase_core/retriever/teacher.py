"""Teacher rankings: the LLM orders a task's top-N retrieved rows (Intermediate Distillation).

One call per task: the prompt holds the instruction, the examples and the rows numbered
[1]..[N]; the reply is an order of those numbers, best first (a JSON object `{"order": [...]}`,
constrained by a schema where the backend supports one). Only the order is used, never scores
or logits. The rows are shown in a shuffled order (seeded per task): listwise LLM rankers lean
towards the order they are shown, and shown in retrieval order that bias would teach the
retriever its own ranking back. A reply that only repeats the shown order is therefore no
judgement and counts as a failure (the offline 1.5B teacher does exactly that).
Replies are read leniently, because small teachers garble: `parse_ranking` keeps a
partial order when it still orders at least two rows, and counts it; a reply with no usable
order is a counted failure, never an exception. Every call goes through `complete_many`, so the
response cache makes a rerun free.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.llm import (
    LLM,
    Message,
    Request,
    ResponseCache,
    UsageSummary,
    complete_many,
    summarize_usage,
)
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.retriever.signals import MIN_RANKED, RankingSignal, RowRef
from rebase_core.transform.parse import first_json_object
from rebase_core.transform.prompt import TransformConfig, render_examples, render_row
from rebase_core.types import Example, Progress, ProgressFn, ScoredRow, Task, no_progress

RANKING_TEMPLATE = """\
You judge which rows of other datasets are good material for new training examples of a task.

The task: {instruction}
Examples of the task, one JSON object each:
{examples}

Candidate rows from other datasets, numbered:
{rows}

Order the {n} rows from most useful to least useful. A row is useful when a correct new example \
of the task, in the same format, can be written from its content. Answer with a JSON object \
{{"order": [...]}} that lists every row number from 1 to {n} exactly once, best first."""

RANKING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order": {"type": "array", "items": {"type": "integer"}}},
    "required": ["order"],
    "additionalProperties": False,
}

PARSE_STATUSES = ("complete", "partial", "failed")


@dataclass(frozen=True, slots=True)
class ParsedRanking:
    """What a teacher's reply says: positions into the candidate list (0-based), best first."""

    order: tuple[int, ...]
    status: str  # one of PARSE_STATUSES
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.status != "failed"


_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?![\d.])")


def _numbers_from_json(reply: str) -> list[int] | None:
    """The numbers of the first JSON list in the reply (inside an object, or bare), or None."""
    candidates: list[Any] = []
    obj = first_json_object(reply)
    if obj is not None:
        try:
            data = json.loads(obj)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            lists = [v for k, v in data.items() if isinstance(v, list) and k == "order"]
            lists += [v for v in data.values() if isinstance(v, list)]
            candidates.extend(lists[:1])
    if not candidates:
        start, end = reply.find("["), reply.rfind("]")
        if 0 <= start < end:
            try:
                data = json.loads(reply[start : end + 1])
            except json.JSONDecodeError:
                data = None
            if isinstance(data, list):
                candidates.append(data)
    if not candidates:
        return None
    numbers = []
    for item in candidates[0]:
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            numbers.append(item)
        elif isinstance(item, str | float):
            found = _NUMBER.search(str(item))
            if found:
                numbers.append(int(found.group(1)))
        elif isinstance(item, list) and item and isinstance(item[0], int):
            numbers.append(item[0])  # [[3], [1]]
    return numbers


def parse_ranking(reply: str, n: int) -> ParsedRanking:
    """Read a teacher's order of rows numbered 1..n (see the module docstring).

    complete: every row once (a list missing only one row is completed with it); partial: at
    least two rows in order, the others left unranked; failed: fewer than two usable numbers, or
    more out-of-range or repeated numbers than usable ones.

    >>> parse_ranking('{"order": [2, 3, 1]}', 3).order
    (1, 2, 0)
    >>> parse_ranking("Best: [3], then [1]", 5).status
    'partial'
    >>> parse_ranking("I cannot rank these.", 4).status
    'failed'
    """
    if n < MIN_RANKED:
        return ParsedRanking((), "failed", f"{n} candidate row(s): nothing to order")
    numbers = _numbers_from_json(reply)
    if numbers is None:
        bracketed = [int(m) for m in _BRACKETED.findall(reply)]
        numbers = (
            bracketed if len(bracketed) >= MIN_RANKED else [int(m) for m in _NUMBER.findall(reply)]
        )
    order: list[int] = []
    bad = 0
    for number in numbers:
        if 1 <= number <= n and number - 1 not in order:
            order.append(number - 1)
        else:
            bad += 1
    if len(order) < MIN_RANKED:
        return ParsedRanking((), "failed", f"no usable order in the reply {reply[:80]!r}")
    if bad > len(order):
        return ParsedRanking(
            (), "failed", f"{bad} out-of-range or repeated numbers against {len(order)} usable"
        )
    if len(order) == n - 1:
        order.extend(sorted(set(range(n)) - set(order)))
    if len(order) == n:
        return ParsedRanking(
            tuple(order), "complete", f"{bad} bad number(s) ignored" if bad else ""
        )
    return ParsedRanking(tuple(order), "partial", f"{len(order)} of {n} rows ordered")


@dataclass(frozen=True, slots=True)
class TeacherConfig:
    """How teacher rankings are asked for."""

    top_n: int = 20  # rows of each task's retrieval the teacher orders
    max_field_chars: int = 150  # each row field is cut to this in the prompt
    max_row_chars: int = 600  # above this, only a row's best input and output cells are shown
    max_example_chars: int = 400  # each example's input and output are cut to this
    temperature: float = 0.0
    json_schema: bool = True  # constrain the reply where the backend supports it
    shuffle: bool = True  # show the rows in a seeded random order, not the retrieval order
    seed: int = 0
    concurrency: int = 4
    max_retries: int = 4

    def __post_init__(self) -> None:
        if self.top_n < MIN_RANKED:
            raise InputError(f"top_n must be at least {MIN_RANKED}, got {self.top_n}.")

    @property
    def max_tokens(self) -> int:
        return 32 + 6 * self.top_n  # room for the whole order, no more


def ranking_messages(
    task: Task, rows: Sequence[ScoredRow], config: TeacherConfig
) -> tuple[Message, ...]:
    """The teacher's prompt for ordering these rows (numbered from 1)."""
    shown = TransformConfig(
        max_field_chars=config.max_field_chars, max_row_chars=config.max_row_chars
    )
    listing = "\n".join(f"[{i}] {render_row(r, shown)}" for i, r in enumerate(rows, start=1))
    cut = config.max_example_chars
    shown_task = replace(
        task, examples=tuple(Example(e.input[:cut], e.output[:cut]) for e in task.examples)
    )
    prompt = RANKING_TEMPLATE.format(
        instruction=task.instruction,
        examples=render_examples(shown_task),
        rows=listing,
        n=len(rows),
    )
    return (Message("user", prompt),)


@dataclass(frozen=True, slots=True)
class CollectReport:
    """What a collection produced: the signals, how cleanly the replies parsed, what failed."""

    signals: tuple[RankingSignal, ...]
    complete: int
    partial: int
    failures: tuple[tuple[str, str], ...]  # (task name, why)
    usage: UsageSummary | None = None

    def summary(self) -> str:
        return (
            f"{len(self.signals)} rankings ({self.complete} complete, {self.partial} partial), "
            f"{len(self.failures)} failed"
        )


def collect_rankings(
    store: Datastore,
    tasks: Sequence[Task],
    embedder: Embedder,
    llm: LLM,
    config: TeacherConfig | None = None,
    *,
    options: RetrievalOptions | None = None,
    cache: ResponseCache | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> CollectReport:
    """Teacher rankings of each task's top-N rows (one LLM call per task, cached)."""
    config = config or TeacherConfig()
    if not tasks:
        raise InputError("No tasks to collect rankings for; give at least one task file.")
    options = replace(options or RetrievalOptions(), top_k=config.top_n)
    failures: list[tuple[str, str]] = []
    asked: list[tuple[Task, tuple[ScoredRow, ...]]] = []
    requests: list[Request] = []
    for i, task in enumerate(tasks):
        if should_stop():
            break
        on_progress(Progress(i, 2 * len(tasks), f"retrieving for {task.name}"))
        rows = retrieve(store, task, embedder, options).rows
        if len(rows) < MIN_RANKED:
            failures.append((task.name, f"{len(rows)} row(s) retrieved: nothing to order"))
            continue
        if config.shuffle:
            rows = tuple(random.Random(f"{config.seed}\x1f{task.name}").sample(rows, len(rows)))
        asked.append((task, rows))
        requests.append(
            Request(
                key=f"{i}\x1f{task.name}",
                messages=ranking_messages(task, rows, config),
                temperature=config.temperature,
                max_tokens=config.max_tokens,
                json_schema=RANKING_SCHEMA if config.json_schema else None,
            )
        )

    def progress(p: Progress) -> None:
        on_progress(Progress(len(tasks) + p.done, 2 * len(tasks), f"ranking: {p.message}"))

    results = complete_many(
        llm,
        requests,
        concurrency=config.concurrency,
        cache=cache,
        max_retries=config.max_retries,
        on_progress=progress,
        should_stop=should_stop,
    )
    signals: list[RankingSignal] = []
    counts = {"complete": 0, "partial": 0}
    for (task, rows), result in zip(asked, results, strict=True):
        if result.completion is None:
            if result.error_kind != "cancelled":
                failures.append((task.name, f"the LLM call failed: {result.error}"))
            continue
        parsed = parse_ranking(result.completion.text, len(rows))
        if not parsed.usable:
            failures.append((task.name, parsed.detail))
            continue
        if len(rows) > 3 and parsed.order == tuple(range(len(rows))):
            failures.append((task.name, "the reply repeats the rows in the order shown"))
            continue
        counts[parsed.status] += 1
        ranking = tuple(RowRef(*rows[p].key) for p in parsed.order)
        signals.append(RankingSignal(task, ranking, "teacher"))
    on_progress(Progress(2 * len(tasks), 2 * len(tasks), f"{len(signals)} rankings"))
    return CollectReport(
        signals=tuple(signals),
        complete=counts["complete"],
        partial=counts["partial"],
        failures=tuple(failures),
        usage=summarize_usage(llm.spec, results) if results else None,
    )
