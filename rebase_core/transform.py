"""Stage 3: rewrite each retrieved row into a new (input, output) pair for the task (method.md §3).

In: the task, retrieved rows (`ScoredRow`), an LLM. Out: `Pair`s with provenance, and a `Failure`
for every row that produced none (provider error, unparseable reply, empty pair, filtered out,
duplicate) — counted by reason, never dropped silently.

One LLM call per row. The prompt holds the instruction, the examples as JSON objects, and the row
as JSON (fields cut to ~250 characters; only the best-matching input and output cells when the
row is huge); when the examples reason step by step the new output must too (how ReBase distils
chain-of-thought). Replies are parsed strictly, repaired when possible (code fences, smart quotes,
trailing commas), and asked for once more when not. An optional second pass asks the LLM whether
each pair fits the task. Then exact duplicates are dropped, and label collapse and language drift
are reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rebase_core.errors import InputError, ParseError
from rebase_core.llm import (
    LLM,
    Message,
    Request,
    ResponseCache,
    Result,
    UsageSummary,
    complete_many,
    summarize_usage,
)
from rebase_core.task import final_answer, is_chain_of_thought
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

DEFAULT_TEMPLATE = """\
You write training data for a machine-learning model.

The task, in the words of its author:
{instruction}

Examples of the task, one JSON object each, with an "input" and the expected "output":
{examples}

Below is one row from a different dataset, as JSON:
{row}

Write ONE new example of the task. Its format and type must match the examples exactly, but \
its content should come from the row: decide which parts of the row are useful and build a new \
input, and its correct output, around them. Do not copy an example.{cot_note}{task_note}
Answer with a JSON object with exactly two string fields, "input" and "output", and nothing else.
"""

COT_NOTE = (
    "\nThe example outputs reason step by step before giving the final answer; your output must "
    "reason the same way and end with the final answer written exactly as in the examples "
    '(for instance "So the answer is X.").'
)

FILTER_TEMPLATE = """\
Here is a task and some examples of it:
{instruction}

{examples}

Is the following new example a correct, well-formed example of the same task, in the same \
format? Answer with one word, Yes or No.
{pair}
"""

PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}, "output": {"type": "string"}},
    "required": ["input", "output"],
    "additionalProperties": False,
}

FAILURE_REASONS = ("provider", "parse", "empty", "filtered", "duplicate")


@dataclass(frozen=True, slots=True)
class TransformConfig:
    """How rows are rewritten. Defaults follow the paper (T 0.7, up to 1,000 tokens)."""

    template: str = DEFAULT_TEMPLATE
    temperature: float = 0.7
    max_tokens: int = 1000
    max_field_chars: int = 250  # each row field is cut to this in the prompt
    max_row_chars: int = 4000  # above this, only the best input and output cells are shown
    json_schema: bool = True  # constrain the reply where the backend supports it
    llm_filter: bool = False  # second pass: "does this pair fit the task?"
    dedup: bool = True
    concurrency: int = 4
    max_retries: int = 4
    task_note: str = ""  # extra, task-specific instruction appended to the prompt

    def __post_init__(self) -> None:
        missing = [p for p in ("{instruction}", "{examples}", "{row}") if p not in self.template]
        if missing:
            raise InputError(
                f"The prompt template must contain {', '.join(missing)}; restore them (the "
                "default template shows where they go)."
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise InputError(f"temperature must be between 0 and 2, got {self.temperature}.")
        if self.max_tokens < 16:
            raise InputError(f"max_tokens must be at least 16, got {self.max_tokens}.")


def prompt_version(template: str) -> str:
    """A short, stable name for a template's content (pairs record which prompt made them)."""
    return "p-" + hashlib.sha256(template.encode("utf-8")).hexdigest()[:10]


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


# ----------------------------------------------------------------------------- prompts


def row_key(row: ScoredRow) -> str:
    return f"{row.dataset}\x1f{row.config}\x1f{row.row_id}"


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def render_row(row: ScoredRow, config: TransformConfig) -> str:
    """The row as the LLM sees it: JSON, long fields cut, only the best cells when huge."""
    full = json.dumps(dict(row.row), ensure_ascii=False)
    if len(full) > config.max_row_chars:
        best = {
            row.input_column: row.row.get(row.input_column, ""),
            row.output_column: row.row.get(row.output_column, ""),
        }
        cells = best
    else:
        cells = dict(row.row)
    return json.dumps(
        {k: _cut(v, config.max_field_chars) for k, v in cells.items()}, ensure_ascii=False
    )


def render_examples(task: Task) -> str:
    return "\n".join(
        json.dumps({"input": e.input, "output": e.output}, ensure_ascii=False)
        for e in task.examples
    )


def build_messages(task: Task, row: ScoredRow, config: TransformConfig) -> tuple[Message, ...]:
    cot = COT_NOTE if is_chain_of_thought(task.examples) else ""
    note = f"\n{config.task_note.strip()}" if config.task_note.strip() else ""
    try:
        prompt = config.template.format(
            instruction=task.instruction,
            examples=render_examples(task),
            row=render_row(row, config),
            cot_note=cot,
            task_note=note,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"The prompt template has a placeholder it cannot fill ({exc}); the allowed ones are "
            "{instruction}, {examples}, {row}, {cot_note} and {task_note}. Write literal braces "
            "as {{ and }}."
        ) from exc
    return (Message("user", prompt),)


# ----------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_SMART = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


def first_json_object(text: str) -> str | None:
    """The first balanced {...} in the text (string-aware)."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def strip_wrapping_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def parse_pair(text: str) -> tuple[str, str]:
    """The (input, output) of an LLM reply; raises ParseError with the reason.

    Strict JSON first; then repairs: code fences, the first {...} in the text, smart quotes,
    trailing commas, raw newlines inside strings. Keys are matched case-insensitively.
    """
    if not text or not text.strip():
        raise ParseError("the reply was empty")
    candidates = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    obj_text = first_json_object(text)
    if obj_text:
        candidates.append(obj_text)
    data: Any = None
    for candidate in candidates:
        for attempt in (
            candidate,
            candidate.translate(_SMART),
            re.sub(r",\s*([}\]])", r"\1", candidate.translate(_SMART)),
        ):
            try:
                data = json.loads(attempt, strict=False)
                break
            except json.JSONDecodeError:
                continue
        if isinstance(data, dict):
            break
    if not isinstance(data, dict):
        raise ParseError(f"the reply is not a JSON object: {text.strip()[:120]!r}")
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    missing = [k for k in ("input", "output") if k not in lowered]
    if missing:
        raise ParseError(
            f"the JSON lacks {' and '.join(repr(m) for m in missing)} (keys: {sorted(lowered)})"
        )
    inp = strip_wrapping_quotes(_as_text(lowered["input"]))
    out = strip_wrapping_quotes(_as_text(lowered["output"]))
    if not inp or not out:
        raise ParseError("empty input or output")
    return inp, out


# ----------------------------------------------------------------------------- checks


_STOPWORDS = {
    "en": "the and of to is in that it for was on are with as this be by not or",
    "de": "der die und das ist nicht ein eine zu den mit sich von auf für",
    "fr": "le la les et est des une un du que pas pour dans qui sur",
    "es": "el la los las y es de que en un una por con para no se",
    "it": "il la e di che è un una per non con del della sono",
    "pt": "o a os as e de que um uma para com não do da em",
    "nl": "de het een en van is dat niet op te met voor zijn",
    "sl": "je in na da se za so pa ki ni to v z s tudi",
    "pl": "i w na nie to się że jest z do jak o co",
}
_STOPSETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


def guess_language(text: str) -> str:
    """A rough language/script guess: 'cjk', 'cyrillic', 'arabic', … or a Latin language code
    from stopwords ('en', 'de', 'sl', …); 'unknown' when too short to tell."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "unknown"
    scripts = Counter(unicodedata.name(ch, "UNKNOWN").split()[0] for ch in letters)
    script, count = scripts.most_common(1)[0]
    if count / len(letters) > 0.5 and script != "LATIN":
        if script in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL"}:
            return "cjk"
        return script.lower()
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 4:
        return "unknown"
    hits = {lang: sum(1 for w in words if w in stops) for lang, stops in _STOPSETS.items()}
    lang, best = max(hits.items(), key=lambda kv: kv[1])
    return lang if best >= 2 else "unknown"


def label_of(output: str) -> str:
    """The label an output names (its final answer, normalised)."""
    return re.sub(r"[\s.]+$", "", final_answer(output).strip().lower())


def is_classification(task: Task, max_labels: int = 10) -> bool:
    """Outputs look like labels: short final answers from a small set."""
    labels = [label_of(e.output) for e in task.examples]
    return all(len(label) <= 40 for label in labels) and len(set(labels)) <= max_labels


def quality_warnings(task: Task, pairs: Sequence[Pair]) -> tuple[list[str], dict[str, int]]:
    """Warnings for label collapse and for pairs not in the examples' language."""
    warnings: list[str] = []
    counts: dict[str, int] = {}
    if not pairs:
        return warnings, counts
    if is_classification(task):
        counts = dict(Counter(label_of(p.output) for p in pairs).most_common())
        labels = {label_of(e.output) for e in task.examples}
        top, n_top = next(iter(counts.items()))
        if len(pairs) >= 10 and n_top / len(pairs) > 0.7:
            warnings.append(
                f"Label collapse: {n_top / len(pairs):.0%} of the pairs say {top!r}. Retrieve "
                "more varied rows, cap rows per dataset, or reject some pairs."
            )
        absent = sorted(labels - set(counts))
        if len(pairs) >= 10 and absent:
            warnings.append(f"No pair has the label(s) {', '.join(map(repr, absent))}.")
        odd = [label for label in counts if label not in labels]
        if odd and sum(counts[label] for label in odd) / len(pairs) > 0.1:
            warnings.append(
                f"{sum(counts[label] for label in odd)} pair(s) answer with labels the examples "
                f"never use (e.g. {odd[0]!r})."
            )
    example_langs = Counter(guess_language(e.input) for e in task.examples)
    expected = {lang for lang in example_langs if lang != "unknown"}
    if expected:
        off = [p for p in pairs if guess_language(p.input) not in expected | {"unknown"}]
        if off and len(off) / len(pairs) > 0.05:
            langs = Counter(guess_language(p.input) for p in off).most_common(2)
            warnings.append(
                f"{len(off)} pair(s) ({len(off) / len(pairs):.0%}) are not in the examples' "
                f"language ({', '.join(sorted(expected))}): mostly {langs[0][0]}."
            )
    return warnings, counts


def normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# ----------------------------------------------------------------------------- transform


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
) -> TransformResult:
    """Rewrite every row into a pair (see the module docstring).

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
    state = _RunState(task, llm, config, cache, should_stop, by_key, seen)
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
    ) -> None:
        self.task, self.llm, self.config, self.cache = task, llm, config, cache
        self.should_stop = should_stop
        self.by_key = by_key
        self.seen = seen
        self.version = prompt_version(config.template)
        self.pairs: list[Pair] = []
        self.failures: list[tuple[str, Failure]] = []
        self.results: list[Result] = []

    def _source(self, key: str) -> PairSource:
        r = self.by_key[key]
        return PairSource(r.dataset, r.config, r.row_id, r.score)

    def _complete(self, requests: list[Request]) -> list[Result]:
        results = complete_many(
            self.llm,
            requests,
            concurrency=self.config.concurrency,
            cache=self.cache,
            max_retries=self.config.max_retries,
            should_stop=self.should_stop,
        )
        self.results.extend(results)
        return results

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
                parsed[result.key] = parse_pair(result.completion.text)
                failures.pop(result.key, None)
            except ParseError as exc:
                reason = "empty" if "empty" in str(exc) else "parse"
                failures[result.key] = Failure(reason, str(exc), self._source(result.key))

    def run_chunk(self, keys: list[str]) -> tuple[list[Pair], list[tuple[str, Failure]]]:
        rows = [self.by_key[k] for k in keys]
        parsed: dict[str, tuple[str, str]] = {}
        failures: dict[str, Failure] = {}
        self._parse(self._complete(_requests(self.task, rows, self.config)), parsed, failures)
        retry_keys = [k for k, f in failures.items() if f.reason in ("parse", "empty")]
        if retry_keys and not self.should_stop():
            retries = []
            for key in retry_keys:
                base = _requests(self.task, [self.by_key[key]], self.config, sample=1)[0]
                note = _RETRY_NOTE.format(reason=failures[key].detail[:100])
                message = Message("user", base.messages[-1].content + note)
                retries.append(replace(base, messages=(*base.messages[:-1], message)))
            self._parse(self._complete(retries), parsed, failures)
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
        chunk_failures = [(k, failures[k]) for k in keys if k in failures]
        self.pairs.extend(pairs)
        self.failures.extend(chunk_failures)
        return pairs, chunk_failures


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


# ----------------------------------------------------------------------------- background job


def run_transform_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler: transform the kept rows of a retrieval run into the pairs of a pair run.

    params: {"pair_run": id, "retrieval_run": id, "task_id": id, "llm": spec,
             "config": {...TransformConfig fields}, "limit": n | None, "base_url": str | None,
             "llm_options": {...provider options, e.g. api_version}}.
    Resumable: rows that already produced a pair are skipped; cached calls cost nothing.
    """
    from rebase_core.llm import get_llm
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    try:
        task = ws.get_task(int(params["task_id"])).task
        run_id = int(params["pair_run"])
        rows = [
            r for _, r, _ in ws.retrieved_rows(int(params["retrieval_run"]), selected_only=True)
        ]
        if params.get("limit"):
            rows = rows[: int(params["limit"])]
        done = ws.done_keys(run_id)
        todo = [r for r in rows if row_key(r) not in done]
        config = TransformConfig(**dict(params.get("config") or {}))
        llm = get_llm(
            params["llm"],
            settings,
            base_url=params.get("base_url"),
            **dict(params.get("llm_options") or {}),
        )
        cache = ResponseCache(settings.llm_cache_db)
        if not todo:
            return {"summary": f"all {len(rows)} rows already transformed", "pairs": 0}

        def progress(p: Progress) -> None:
            ctx.progress(Progress(len(done) + p.done, len(done) + (p.total or 0), p.message))

        known = [p.input for p in ws.pairs(run_id=run_id)]
        task_id = int(params["task_id"])

        def save_pair(pair: Pair) -> None:
            ws.add_pairs(run_id, task_id, [pair])
            ws.clear_failure(run_id, str(pair.extra["key"]))

        result = transform(
            task,
            todo,
            llm,
            config,
            cache=cache,
            known_inputs=known,
            on_progress=progress,
            should_stop=ctx.should_stop,
            on_pair=save_pair,
            on_failure=lambda k, f: ws.add_failure(run_id, k, f),
        )
        usage = result.usage
        return {
            "summary": f"{len(result.pairs)} new pairs, {len(result.failures)} failed "
            f"({', '.join(f'{k}: {v}' for k, v in result.failure_counts.items()) or 'none'})",
            "pairs": len(result.pairs),
            "failures": result.failure_counts,
            "warnings": list(result.warnings),
            "cost_usd": usage.cost_usd if usage else 0.0,
            "paid_calls": (usage.succeeded - usage.cached) if usage else 0,
            "cached_calls": usage.cached if usage else 0,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
        }
    finally:
        ws.close()
