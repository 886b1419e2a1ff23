"""Running a transformation: chunks of rows through plans or the LLM, retries, filter, dedup."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from rebase_core.errors import InputError, ParseError
from rebase_core.llm import (
    LLM,
    Message,
    Request,
    ResponseCache,
    Result,
    RunCalls,
    RunEstimate,
    UsageSummary,
    complete_many,
    estimate_run,
    summarize_usage,
)
from rebase_core.task import is_chain_of_thought
from rebase_core.transform.checks import (
    format_problem,
    grounding,
    normalise_text,
    quality_warnings,
)
from rebase_core.transform.parse import parse_pair
from rebase_core.transform.plan import Plan
from rebase_core.transform.planned import planned_pairs
from rebase_core.transform.prompt import (
    FILTER_TEMPLATE,
    PAIR_SCHEMA,
    TransformConfig,
    build_messages,
    prompt_version,
    render_examples,
    row_key,
)
from rebase_core.types import (
    Failure,
    Pair,
    PairSource,
    Progress,
    ProgressFn,
    ScoredRow,
    Task,
    no_progress,
)

logger = logging.getLogger(__name__)

FAILURE_REASONS = (
    "provider",
    "parse",
    "empty",
    "format",
    "ungrounded",
    "filtered",
    "duplicate",
    "no-plan",  # --mode plan, and the row's dataset has no valid plan
    "no-label",  # the plan maps the row's label to no task label (or drops it)
    "plan",  # the plan cannot be applied to the row (an empty or missing field)
    "rationale-mismatch",  # the rationale's final answer is not the row's known answer
)
TRANSFORM_MODES = ("auto", "plan", "rewrite")


@dataclass(frozen=True, slots=True)
class TransformResult:
    pairs: tuple[Pair, ...]
    failures: tuple[tuple[str, Failure], ...]  # (row key, failure)
    usage: UsageSummary | None
    warnings: tuple[str, ...] = ()
    label_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def failure_counts(self) -> dict[str, int]:
        return dict(Counter(f.reason for _, f in self.failures))


def pair_id(task: Task, key: str, version: str, llm_spec: str, sample: int = 0) -> str:
    raw = "\x1f".join((task.name, key, version, llm_spec, str(sample)))
    return "rb-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def _requests(
    task: Task, rows: Sequence[ScoredRow], config: TransformConfig, sample: int = 0
) -> list[Request]:
    return [
        Request(
            key=row_key(row),
            messages=build_messages(task, row, config),
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            json_schema=PAIR_SCHEMA if config.json_schema else None,
            sample=sample,
        )
        for row in rows
    ]


_RETRIED = ("parse", "empty", "format", "ungrounded")  # failures asked for once more, told why
_RETRY_NOTE = (
    "\n\nYour previous answer could not be used ({reason}). Answer again with only a JSON "
    'object of the form {{"input": "...", "output": "..."}}.'
)


def transform(
    task: Task,
    rows: Sequence[ScoredRow],
    llm: LLM,
    config: TransformConfig | None = None,
    *,
    cache: ResponseCache | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
    on_pair: Callable[[Pair], None] | None = None,
    on_failure: Callable[[str, Failure], None] | None = None,
    known_inputs: Sequence[str] = (),
    plans: Mapping[tuple[str, str], Plan] | None = None,
) -> TransformResult:
    """Turn every row into a pair (see the module docstring).

    `plans` maps (dataset, config) to a checked plan (`plan_datasets`). With `config.mode`
    "auto" rows of planned datasets are made by their plan and the others rewritten by the LLM;
    "plan" makes only planned pairs (the other rows fail as "no-plan"); "rewrite" ignores plans.

    Rows go in chunks (a few times the concurrency), and `on_pair` / `on_failure` are called as
    each chunk finishes, so callers persist as the run goes. A reply that cannot be parsed is
    asked for once more (a second sample, told the reason). `known_inputs` are inputs that
    already exist (earlier pairs of a resumed run): new pairs repeating them count as duplicates.
    """
    config = config or TransformConfig()
    if not rows:
        raise InputError("No rows to transform: retrieve rows and keep some first.")
    by_key = {row_key(r): r for r in rows}
    if len(by_key) != len(rows):
        raise InputError("The rows contain duplicates (the same dataset/config/row_id twice).")
    seen: dict[str, str] = {normalise_text(e.input): "a task example" for e in task.examples}
    seen.update({normalise_text(x): "an earlier pair" for x in known_inputs})
    state = _RunState(task, llm, config, cache, should_stop, by_key, seen, plans or {})
    chunk = max(8, 4 * config.concurrency)
    keys = list(by_key)
    for start in range(0, len(keys), chunk):
        if should_stop():
            break
        pairs, failures = state.run_chunk(keys[start : start + chunk])
        for pair in pairs:
            if on_pair is not None:
                on_pair(pair)
        for key, failure in failures:
            if on_failure is not None:
                on_failure(key, failure)
        on_progress(
            Progress(
                min(len(keys), start + chunk),
                len(keys),
                f"{len(state.pairs)} pairs, {len(state.failures)} failed",
            )
        )
    warnings, labels = quality_warnings(task, state.pairs)
    return TransformResult(
        pairs=tuple(state.pairs),
        failures=tuple(state.failures),
        usage=summarize_usage(llm.spec, state.results) if state.results else None,
        warnings=tuple(warnings),
        label_counts=labels,
    )


class _RunState:
    """What one transform call has produced so far, and how to process one chunk of rows."""

    def __init__(
        self,
        task: Task,
        llm: LLM,
        config: TransformConfig,
        cache: ResponseCache | None,
        should_stop: Callable[[], bool],
        by_key: Mapping[str, ScoredRow],
        seen: dict[str, str],
        plans: Mapping[tuple[str, str], Plan],
    ) -> None:
        self.task, self.llm, self.config, self.cache = task, llm, config, cache
        self.plans = {} if config.mode == "rewrite" else dict(plans)
        self.should_stop = should_stop
        self.by_key = by_key
        self.seen = seen
        self.version = prompt_version(config.template)
        self.pairs: list[Pair] = []
        self.failures: list[tuple[str, Failure]] = []
        self.results: list[Result] = []  # every call's, for the usage summary
        self.calls = RunCalls(
            llm,
            concurrency=config.concurrency,
            max_retries=config.max_retries,
            cache=cache,
            should_stop=should_stop,
            results=self.results,
        )

    def _source(self, key: str) -> PairSource:
        r = self.by_key[key]
        return PairSource(r.dataset, r.config, r.row_id, r.score)

    def _parse(
        self,
        results: list[Result],
        parsed: dict[str, tuple[str, str]],
        failures: dict[str, Failure],
    ) -> None:
        for result in results:
            if result.completion is None:
                if result.error_kind != "cancelled":
                    failures[result.key] = Failure(
                        "provider", result.error, self._source(result.key)
                    )
                continue
            try:
                pair = parse_pair(result.completion.text)
            except ParseError as exc:
                reason = "empty" if "empty" in str(exc) else "parse"
                failures[result.key] = Failure(reason, str(exc), self._source(result.key))
                continue
            problem = self._problem(result.key, pair[0])
            if problem:
                failures[result.key] = Failure(*problem, self._source(result.key))
                parsed.pop(result.key, None)
                continue
            parsed[result.key] = pair
            failures.pop(result.key, None)

    def _problem(self, key: str, input: str) -> tuple[str, str] | None:
        """(reason, detail) when a parsed pair's input is off-format or not built from its row."""
        if self.config.format_check:
            problem = format_problem(self.task, input)
            if problem:
                return "format", problem
        if self.config.min_grounding:
            share = grounding(self.task, input, self.by_key[key].row)
            if share is not None and share < self.config.min_grounding:
                return "ungrounded", (
                    f"the input shares {share:.0%} of its words with the source row "
                    f"({self.config.min_grounding:.0%} needed): build it from the row"
                )
        return None

    def _planned(self, keys: list[str], failures: dict[str, Failure]) -> list[Pair]:
        """Pairs of the rows whose dataset has a plan (the rest: nothing here)."""
        rows = [self.by_key[k] for k in keys]
        batch = planned_pairs(
            self.task,
            rows,
            self.plans,
            self.llm,
            self.config,
            task_hash=lambda key, version, spec: pair_id(self.task, key, version, spec),
            cache=self.cache,
            should_stop=self.should_stop,
        )
        self.results.extend(batch.results)
        failures.update(dict(batch.failures))
        return batch.pairs

    def run_chunk(self, keys: list[str]) -> tuple[list[Pair], list[tuple[str, Failure]]]:
        failures: dict[str, Failure] = {}
        planned_keys = [k for k in keys if self.by_key[k].key[:2] in self.plans]
        candidates = self._planned(planned_keys, failures) if planned_keys else []
        rewrite_keys = [k for k in keys if self.by_key[k].key[:2] not in self.plans]
        if self.config.mode == "plan":
            for key in rewrite_keys:
                failures[key] = Failure(
                    "no-plan",
                    "its dataset has no valid plan (choose rewrite for it, or fix its plan)",
                    self._source(key),
                )
            rewrite_keys = []
        if rewrite_keys:
            candidates += self._rewrite(rewrite_keys, failures)
        pairs = self._dedup(candidates, failures)
        chunk_failures = [(k, failures[k]) for k in keys if k in failures]
        self.pairs.extend(pairs)
        self.failures.extend(chunk_failures)
        return pairs, chunk_failures

    def _rewrite(self, keys: list[str], failures: dict[str, Failure]) -> list[Pair]:
        """The paper's per-row rewrite of these rows (parse, retry once told why, filter)."""
        rows = [self.by_key[k] for k in keys]
        parsed: dict[str, tuple[str, str]] = {}
        self._parse(self.calls.complete(_requests(self.task, rows, self.config)), parsed, failures)
        retry_keys = [k for k, f in failures.items() if f.reason in _RETRIED]
        if retry_keys and not self.should_stop():
            retries = []
            for key in retry_keys:
                base = _requests(self.task, [self.by_key[key]], self.config, sample=1)[0]
                note = _RETRY_NOTE.format(reason=failures[key].detail[:100])
                message = Message("user", base.messages[-1].content + note)
                retries.append(replace(base, messages=(*base.messages[:-1], message)))
            self._parse(self.calls.complete(retries), parsed, failures)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        candidates = [
            Pair(
                id=pair_id(self.task, key, self.version, self.llm.spec),
                input=parsed[key][0],
                output=parsed[key][1],
                origin="rebase",
                source=self._source(key),
                llm=self.llm.spec,
                prompt_version=self.version,
                created_at=now,
                extra={"key": key},
                method="rewrite",
            )
            for key in keys
            if key in parsed
        ]
        if self.config.llm_filter and candidates and not self.should_stop():
            candidates = _llm_filter(
                self.task,
                candidates,
                self.llm,
                self.config,
                self.cache,
                self.should_stop,
                failures,
            )
        return candidates

    def _dedup(self, candidates: list[Pair], failures: dict[str, Failure]) -> list[Pair]:
        pairs = []
        for pair in candidates:
            key = str(pair.extra["key"])
            norm = normalise_text(pair.input)
            if self.config.dedup and norm in self.seen:
                failures[key] = Failure(
                    "duplicate", f"same input as {self.seen[norm]}", pair.source
                )
                continue
            self.seen[norm] = f"the pair from {pair.source.dataset if pair.source else '?'}"
            pairs.append(pair)
        return pairs


def _llm_filter(
    task: Task,
    pairs: list[Pair],
    llm: LLM,
    config: TransformConfig,
    cache: ResponseCache | None,
    should_stop: Callable[[], bool],
    failures: dict[str, Failure],
) -> list[Pair]:
    """Keep the pairs the LLM says fit the task (the paper's optional yes/no filter)."""
    requests = [
        Request(
            key=str(p.extra["key"]),
            messages=(
                Message(
                    "user",
                    FILTER_TEMPLATE.format(
                        instruction=task.instruction,
                        examples=render_examples(task),
                        pair=json.dumps({"input": p.input, "output": p.output}, ensure_ascii=False),
                    ),
                ),
            ),
            temperature=0.0,
            max_tokens=8,
        )
        for p in pairs
    ]
    results = complete_many(
        llm,
        requests,
        concurrency=config.concurrency,
        cache=cache,
        max_retries=config.max_retries,
        should_stop=should_stop,
    )
    kept = []
    for pair, result in zip(pairs, results, strict=True):
        answer = (result.completion.text if result.completion else "").strip().lower()
        if answer.startswith("yes"):
            kept.append(pair)
        elif result.completion is None and result.error_kind == "cancelled":
            continue
        else:
            detail = f"the filter said {answer[:20]!r}" if result.completion else result.error
            failures[str(pair.extra["key"])] = Failure("filtered", detail, pair.source)
    return kept


def estimate_transform(
    task: Task,
    rows: Sequence[ScoredRow],
    llm: LLM,
    config: TransformConfig,
    *,
    cache: ResponseCache | None = None,
    plans: Mapping[tuple[str, str], Plan] | None = None,
) -> RunEstimate:
    """Calls, tokens and cost of `transform` over these rows before it runs (the same requests,
    so calls already in the response cache count as free; retries and the filter not included).
    Rows a plan makes cost nothing (a reasoning task's rationale is counted as one rewrite-sized
    call); in "plan" mode the other rows are not asked either."""
    plans = {} if config.mode == "rewrite" else dict(plans or {})
    asked = [
        r
        for r in rows
        if (r.key[:2] in plans and is_chain_of_thought(task.examples))
        or (r.key[:2] not in plans and config.mode != "plan")
    ]
    return estimate_run(llm, _requests(task, asked, config), cache=cache)


def regenerate(
    task: Task,
    row: ScoredRow,
    llm: LLM,
    config: TransformConfig,
    *,
    sample: int,
    cache: ResponseCache | None = None,
) -> tuple[str, str]:
    """A fresh pair for one row (a new sample, so the cache does not return the old reply)."""
    (result,) = complete_many(
        llm,
        _requests(task, [row], config, sample=sample),
        concurrency=1,
        cache=cache,
        max_retries=config.max_retries,
    )
    if result.completion is None:
        raise ParseError(f"The LLM call failed: {result.error}")
    return parse_pair(result.completion.text)
