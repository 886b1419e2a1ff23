"""Per-dataset plans: map a dataset's fields and human labels onto the task once, apply per row.

A `Plan` says, for one (dataset, config), how a row becomes a pair without an LLM call: an input
template over the row's fields with the fixed text of the task's format ("Premise: {premise}"),
the field that holds the answer, and — for label tasks — a map from the source's label values to
the task's labels (values the task has no label for are dropped). Applying a plan is pure string
work (`apply_plan`), so it is grounded in its row by construction and costs nothing per row.
For a lettered multiple-choice task, code writes the options from the row's answer
(`choices.py`; `Plan.choices`), or keeps a row's own options and puts its letter in the task's
form.

A row's *fields* are its columns plus, for a cell written as "Marker: text" lines
("Premise: …\\nHypothesis: …", as many BIG-bench inputs are), one sub-field per marker, named
`column[Marker]`: many sources pack the task's fields into one cell.

`check_plan` is what stands between a plan (the LLM's, the user's) and a training set: it
applies the plan to sample rows and says what blocks it (problems) and what a human should look
at (warnings): a field the rows lack, the answer leaking into the input, a field marker every
example has missing from the template, a label the task does not have, several label values
all sent to one label (every row would get it), an LLM's map of a dataset's one known value to
a label it does not name, a marker filled with a repeated one-word label where the examples have
a phrase, no sample row kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rebase_core.errors import InputError
from rebase_core.task import final_answer
from rebase_core.transform.checks import input_markers, is_classification, label_of
from rebase_core.transform.choices import (
    MAX_OPTION_CHARS,
    ChoiceFormat,
    choice_format,
    letter_index,
    make_options,
    render_options,
    without_options,
)
from rebase_core.transform.spans import is_span, span_in
from rebase_core.types import Task

DROP = "drop"  # a label-map value: rows with this source label make no pair
PLAN_AUTHORS = ("llm", "rule", "user")
MAX_INPUT_CHARS = 6000  # a planned input longer than this is skipped (and flagged)
NOT_SPAN = "not in the input (the task's answers are spans of it)"  # why such a row is skipped

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_LINE_MARKER = re.compile(r"(?:^|\n)[ \t]*([A-Z][\w ()/-]{0,30}?):[ \t]*")


def normalise_value(value: str) -> str:
    """A label value as compared and stored in label maps: lower case, no trailing dots/space."""
    return label_of(value) if value.strip() else ""


def label_value(value: str) -> str:
    """The label a source cell states: the normalised cell, or — for a long cell that opens with
    a short answer and explains it ("Yes. Frost is common in December …") — that answer; a
    named answer ("Answer: entailment") is its value.

    >>> [label_value(v) for v in ("Entailment.", "answer: entailment", "Yes. It is." + " x" * 20)]
    ['entailment', 'entailment', 'yes']
    """
    text = value.strip()
    if len(text) > 40:
        head = re.split(r"[.;:!?\n]", text, maxsplit=1)[0]
        if head and len(head.split()) <= 3:
            text = head
    named = re.fullmatch(
        r"(?is)(?:the\s+)?(?:answer|label|verdict)\s*(?:is)?\s*[:=-]?\s*(.+)", text
    )
    if named and len(named.group(1).split()) <= 3:
        text = named.group(1)  # "Answer: entailment", "label = yes"
    return normalise_value(text)


@functools.lru_cache(maxsize=256)
def task_labels(task: Task) -> dict[str, str]:
    """The task's labels (normalised → as the examples write them); empty for open tasks and
    for lettered multiple-choice tasks, whose letters name options, not classes (`choices`).
    (Cached per task: plans apply it to every row; do not mutate the result.)"""
    if not is_classification(task) or choice_format(task) is not None:
        return {}
    out: dict[str, str] = {}
    for example in task.examples:
        answer = final_answer(example.output).strip().rstrip(".").strip()
        out.setdefault(normalise_value(answer), answer)
    return out


def answer_text(value: str) -> str:
    """A cell's answer text: the first item when the cell holds a JSON list (several gold
    answers, as BIG-bench targets do), else the cell."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            items = json.loads(text)
        except ValueError:
            return text
        if isinstance(items, list) and items and all(isinstance(i, str) for i in items):
            return items[0].strip()
    return text


@functools.lru_cache(maxsize=256)
def _task_markers(task: Task) -> tuple[str, ...]:
    return input_markers(task)


@functools.lru_cache(maxsize=256)
def _inline_pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    extra = [re.escape(m.rstrip(":").strip()) for m in markers if m.strip()]
    return re.compile(r"(?<![\w])(" + "|".join(extra) + r"):[ \t]*") if extra else None


def row_fields(
    row: Mapping[str, str],
    markers: Iterable[str] = (),
    columns: Iterable[str] | None = None,
) -> dict[str, str]:
    """The row's columns plus a `column[Marker]` sub-field for every "Marker:" segment of a cell.

    A segment starts at a capitalised marker at the start of a line, or at one of `markers` (the
    task's, e.g. "Question:") anywhere, and runs to the next one. Only `columns` are split when
    given (applying a plan needs just the columns it names).

    >>> row_fields({"input": "Premise: It rains.\\nHypothesis: It is wet.", "target": "yes"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'input': 'Premise: It rains.\\nHypothesis: It is wet.', 'target': 'yes',
     'input[Premise]': 'It rains.', 'input[Hypothesis]': 'It is wet.'}
    """
    fields = {str(k): str(v) for k, v in row.items()}
    inline = _inline_pattern(tuple(markers))
    split = set(columns) if columns is not None else None
    for column, text in list(fields.items()):
        if ":" not in text or (split is not None and column not in split):
            continue
        starts = {m.start(1): (m.group(1), m.end()) for m in _LINE_MARKER.finditer(text)}
        if inline is not None:
            for m in inline.finditer(text):
                starts.setdefault(m.start(1), (m.group(1), m.end()))
        ordered = sorted(starts.items())
        for i, (_, (name, value_start)) in enumerate(ordered):
            end = ordered[i + 1][0] if i + 1 < len(ordered) else len(text)
            value = text[value_start:end].strip()
            key = f"{column}[{name.strip()}]"
            if value and key not in fields:
                fields[key] = value
    return fields


@functools.lru_cache(maxsize=1024)  # (applying a plan asks for every row)
def placeholders(template: str) -> tuple[str, ...]:
    """The field names a template uses, in order ("{{" and "}}" are literal braces)."""
    bare = template.replace("{{", "").replace("}}", "")
    return tuple(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(bare)))


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Fill a template's `{field}` slots with the row's (stripped) values; a missing field is a
    KeyError naming it."""
    parts = re.split(r"(\{\{|\}\})", template)
    out = []
    for part in parts:
        if part in ("{{", "}}"):
            out.append(part[0])
            continue
        out.append(_PLACEHOLDER.sub(lambda m: fields[m.group(1)].strip(), part))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Plan:
    """How one (dataset, config)'s rows become pairs (see the module docstring).

    `label_map` keys are normalised source values (`normalise_value`), values the task's labels
    as its examples write them, or `DROP`. `row_filter` keeps only rows whose field has one of
    the listed (normalised) values.
    """

    dataset: str
    config: str
    input_template: str
    output_field: str
    label_map: Mapping[str, str] = field(default_factory=dict)
    row_filter: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    author: str = "llm"
    # A lettered multiple-choice task (`choices`): how many options code makes from the row's
    # answer (0: a plain plan), and other answers of the dataset to draw distractors from.
    choices: int = 0
    distractors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.input_template.strip():
            raise InputError(
                f"The plan for {self.dataset}/{self.config} has an empty input template; give it "
                "the task's format with {field} slots, e.g. 'Premise: {premise}'."
            )
        if not placeholders(self.input_template):
            raise InputError(
                f"The plan for {self.dataset}/{self.config} has no {{field}} slot in its input "
                f"template {self.input_template!r:.80}: without one, every input is the same."
            )
        if not self.output_field.strip():
            raise InputError(
                f"The plan for {self.dataset}/{self.config} names no output field; pick the "
                "column that holds the answer."
            )
        if self.author not in PLAN_AUTHORS:
            raise InputError(f"A plan's author is one of {PLAN_AUTHORS}, got {self.author!r}.")
        if self.choices == 1 or self.choices < 0 or self.choices > 26:
            raise InputError(
                f"The plan for {self.dataset}/{self.config} asks for {self.choices} options; a "
                "multiple-choice plan makes 2 to 26 (0: not multiple-choice)."
            )

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.config)

    @property
    def split_columns(self) -> tuple[str, ...]:
        """The columns whose `column[Marker]` sub-fields the plan uses."""
        names = (*placeholders(self.input_template), self.output_field, *self.row_filter)
        return tuple(dict.fromkeys(n.split("[", 1)[0] for n in names if n.endswith("]")))

    @property
    def version(self) -> str:
        """A short name for what the plan does (not who wrote it): pairs record it."""
        parts: list[Any] = [
            self.dataset,
            self.config,
            self.input_template,
            self.output_field,
            sorted(self.label_map.items()),
            sorted((k, sorted(v)) for k, v in self.row_filter.items()),
        ]
        if self.choices:  # only then: plain plans keep the versions their pairs recorded
            parts += [self.choices, list(self.distractors)]
        content = json.dumps(parts, ensure_ascii=False)
        return "plan-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:10]

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "config": self.config,
            "input_template": self.input_template,
            "output_field": self.output_field,
            "label_map": dict(self.label_map),
            "row_filter": {k: list(v) for k, v in self.row_filter.items()},
            "note": self.note,
            "author": self.author,
            "version": self.version,
        }
        if self.choices:
            out["choices"] = self.choices
            out["distractors"] = list(self.distractors)
        return out

    @classmethod
    def from_json_dict(cls, data: Any, *, where: str = "plan") -> Plan:
        """A plan from its JSON form (a file, the page's JSON editor); every problem is an
        `InputError` naming the field."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}.")
        for name in ("dataset", "input_template", "output_field"):
            if not isinstance(data.get(name), str) or not data[name].strip():
                raise InputError(f"{where}: '{name}' must be a non-empty string.")
        label_map = data.get("label_map") or {}
        if not isinstance(label_map, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in label_map.items()
        ):
            raise InputError(
                f"{where}: 'label_map' must map source values to task labels (strings), "
                f"got {label_map!r:.80}."
            )
        row_filter = data.get("row_filter") or {}
        if not isinstance(row_filter, Mapping) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in row_filter.values()
        ):
            raise InputError(
                f"{where}: 'row_filter' must map a field to a list of kept values, "
                f"got {row_filter!r:.80}."
            )
        choices = data.get("choices") or 0
        if not isinstance(choices, int) or isinstance(choices, bool):
            raise InputError(
                f"{where}: 'choices' must be a number of options, got {choices!r:.40}."
            )
        distractors = data.get("distractors") or []
        if not isinstance(distractors, list) or not all(isinstance(d, str) for d in distractors):
            raise InputError(
                f"{where}: 'distractors' must be a list of wrong answers (strings), "
                f"got {distractors!r:.80}."
            )
        return cls(
            dataset=str(data["dataset"]),
            config=str(data.get("config") or "default"),
            input_template=str(data["input_template"]),
            output_field=str(data["output_field"]),
            label_map={normalise_value(k): v.strip() for k, v in label_map.items()},
            row_filter={
                str(k): tuple(normalise_value(x) for x in v) for k, v in row_filter.items()
            },
            note=str(data.get("note") or ""),
            author=str(data.get("author") or "user"),
            choices=choices,
            distractors=tuple(d.strip() for d in distractors if d.strip()),
        )


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """A plan applied to one row: the pair it makes, or why it makes none (`skipped`)."""

    row_id: str
    input: str = ""
    output: str = ""
    skipped: str = ""  # "" when the row makes a pair
    source_value: str = ""  # the output field's value in the row (before any label map)
    not_span: bool = False  # skipped because its answer is not a span of the input (extractive)

    @property
    def ok(self) -> bool:
        return not self.skipped


def apply_plan(plan: Plan, task: Task, row: Mapping[str, str], row_id: str = "") -> PlannedRow:
    """One row through a plan: deterministic, no LLM (see the module docstring)."""
    fields = row_fields(row, _task_markers(task), plan.split_columns)
    for name, kept in plan.row_filter.items():
        if normalise_value(fields.get(name, "")) not in kept:
            return PlannedRow(row_id, skipped=f"filtered out by {name}")
    try:
        text = render_template(plan.input_template, fields)
    except KeyError as exc:
        return PlannedRow(row_id, skipped=f"the row has no field {exc.args[0]!r}")
    empty = [p for p in placeholders(plan.input_template) if not fields[p].strip()]
    if empty:
        return PlannedRow(row_id, skipped=f"empty field {empty[0]!r}")
    if len(text) > MAX_INPUT_CHARS:
        return PlannedRow(row_id, skipped=f"input of {len(text):,} characters (over the limit)")
    if plan.output_field not in fields:
        return PlannedRow(row_id, skipped=f"the row has no field {plan.output_field!r}")
    source = answer_text(fields[plan.output_field])
    if not source:
        return PlannedRow(row_id, skipped=f"empty field {plan.output_field!r}")
    fmt = choice_format(task)
    if plan.choices or fmt is not None:
        return _with_options(plan, fmt, row_id, text, source)
    output = source
    if is_extractive(task):
        span = span_in(source, text)
        if span is None:
            return PlannedRow(
                row_id,
                skipped=f"answer {source!r:.40}: {NOT_SPAN}",
                source_value=source,
                not_span=True,
            )
        return PlannedRow(row_id, input=text, output=span, source_value=source)
    labels = task_labels(task)
    if labels or plan.label_map:
        value = label_value(source)
        mapped = plan.label_map.get(value)
        if mapped is None and value in labels:
            mapped = labels[value]
        if mapped is None or mapped == DROP:
            why = "the plan drops it" if mapped == DROP else "the plan has no label for it"
            return PlannedRow(row_id, skipped=f"label {source!r:.40}: {why}", source_value=source)
        output = mapped
    return PlannedRow(row_id, input=text, output=output, source_value=source)


def _with_options(
    plan: Plan, fmt: ChoiceFormat | None, row_id: str, text: str, answer: str
) -> PlannedRow:
    """A pair for a lettered multiple-choice task (see `choices`). With `plan.choices` the
    options (the row's answer among distractors) follow the input and the output is the
    answer's letter; without, the row lists its own options and answers with a letter ("D",
    "[D]"), which becomes the task's form ("(D)"). `fmt`: the task's `choice_format`."""
    if fmt is None:
        return PlannedRow(row_id, skipped="the task's inputs list no lettered options")
    letter = letter_index(answer)
    if not plan.choices:
        if letter is None:
            return PlannedRow(
                row_id,
                skipped=f"answer {answer!r:.40}: not a letter; the task answers with one "
                "(give the plan 'choices' to list the answer among options)",
                source_value=answer,
            )
        return PlannedRow(row_id, input=text, output=fmt.answer(letter), source_value=answer)
    if letter is not None:
        return PlannedRow(
            row_id,
            skipped=f"answer {answer!r}: a letter of the row's own options (set 'choices' to 0)",
            source_value=answer,
        )
    if len(answer) > MAX_OPTION_CHARS or "\n" in answer:
        return PlannedRow(
            row_id, skipped=f"answer {answer!r:.40}: too long for an option", source_value=answer
        )
    fmt = replace(fmt, count=plan.choices)
    made = make_options(answer, plan.distractors, fmt, seed=row_id or text)
    if made is None:
        return PlannedRow(
            row_id, skipped=f"answer {answer!r:.40}: no distractors for it", source_value=answer
        )
    options, index = made
    return PlannedRow(
        row_id,
        input=f"{text}\n{render_options(options, fmt)}",
        output=fmt.answer(index),
        source_value=answer,
    )


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """What `check_plan` found: problems block the plan, warnings are for a human to look at."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    samples: tuple[PlannedRow, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def observed_values(rows: Iterable[Mapping[str, str]], name: str, task: Task) -> Counter[str]:
    """How often each (normalised) value of a field occurs in these rows."""
    markers = input_markers(task)
    return Counter(label_value(answer_text(row_fields(r, markers).get(name, ""))) for r in rows)


def check_plan(plan: Plan, task: Task, rows: Sequence[Mapping[str, str]]) -> PlanCheck:
    """Apply the plan to sample rows and check it (see the module docstring)."""
    problems: list[str] = []
    warnings: list[str] = []
    # A multiple-choice plan's options are code's: the examples' options header is not a field.
    markers = input_markers(without_options(task))  # (the same task unless multiple-choice)
    if plan.choices and choice_format(task) is None:
        problems.append(
            "the plan makes lettered options, but the task's example inputs list none: "
            "set 'choices' to 0"
        )
    if not rows:
        return PlanCheck(("there are no sample rows to check the plan on",), (), ())
    fields_seen = [row_fields(r, markers) for r in rows]
    available = set().union(*(f.keys() for f in fields_seen))
    used = placeholders(plan.input_template)
    for name in (*used, plan.output_field, *plan.row_filter):
        if name not in available:
            problems.append(
                f"the plan names the field {name!r}, which the rows lack (they have: "
                f"{', '.join(sorted(available)[:12])})"
            )
    bare = plan.input_template.replace("{{", "").replace("}}", "")
    twice = [n for n, k in Counter(_PLACEHOLDER.findall(bare)).items() if k > 1]
    if twice:
        problems.append(
            f"the input uses {twice[0]!r} twice: each part of the input needs its own field"
        )
    leaks = [p for p in used if plan.output_field == p or plan.output_field.startswith(p + "[")]
    if leaks:
        problems.append(
            f"the input uses {leaks[0]!r}, which holds the answer ({plan.output_field!r}): "
            "the answer would be given away"
        )
    missing = [m for m in markers if m not in plan.input_template]
    if missing:
        problems.append(
            f"the input template lacks {', '.join(map(repr, missing))}, which every example "
            "input has"
        )
    labels = task_labels(task)
    if labels:
        odd = sorted(
            v
            for v in set(plan.label_map.values())
            if v != DROP and normalise_value(v) not in labels
        )
        if odd:
            problems.append(
                f"the label map uses {', '.join(map(repr, odd))}, which the task does not have "
                f"(its labels: {', '.join(labels.values())}, or {DROP!r})"
            )
        seen = observed_values(rows, plan.output_field, task)
        unseen = sorted(k for k in plan.label_map if k not in seen)
        if unseen and seen:
            warnings.append(
                f"the label map names value(s) the sample rows do not have: "
                f"{', '.join(map(repr, unseen[:5]))}"
            )
        targets = Counter(v for v in plan.label_map.values() if v != DROP)
        shared = [label for label, n in targets.items() if n > 1]
        # Every value the plan knows (two or more: the sample rows' and the map's own keys, the
        # values the planner saw in all the dataset's retrieved rows) sent to one label, none
        # dropped: the plan would label every row the same whatever its own label says (the
        # 1.5B teacher mapped Legal-Support's answer letters 'a' and 'b' both to 'neutral', and
        # COPA's 'cause' and 'effect' both to 'neutral' where three sample rows held only
        # 'effect'). Synonyms sent to one label beside a dropped value still depend on the
        # row, as one kept value does.
        values = sorted({v for v in seen if v} | {k for k in plan.label_map if k})
        to_one = {k for k, v in plan.label_map.items() if v != DROP}
        target = next(iter(targets)) if len(targets) == 1 else ""
        if target and len(values) > 1 and set(values) <= to_one:
            problems.append(
                f"every value of {plan.output_field!r} ({', '.join(map(repr, values[:5]))}) maps "
                f"to {target!r}, so every row would get that label whatever its "
                f"own says: map the values to the task's labels by meaning, or to {DROP!r} "
                "where none fits"
            )
        elif (
            target
            and plan.author == "llm"
            and values == sorted(to_one)
            and normalise_value(values[0]) != normalise_value(target)
        ):
            # One value known, sent by the LLM to a label it does not name: every pair of the
            # dataset gets that label on the strength of one guess no row shows (the local
            # teacher sent LogiQA's answer letter 'a', StereoSet's 'intersentence' and russe's
            # 'no' to 'neutral': 23 of 200 NLI pairs). Rules (the same or negated labels) and a
            # user's own map may do it; the LLM's is a problem.
            problems.append(
                f"the only value of {plan.output_field!r} the rows show, {values[0]!r}, maps to "
                f"{target!r}, so every pair of this dataset would get that label on one guess: "
                f"map it only where {values[0]!r} means {target!r}, else to {DROP!r}"
            )
        elif shared:
            sources = [k for k, v in plan.label_map.items() if v == shared[0]]
            warnings.append(
                f"several source values map to {shared[0]!r} ({', '.join(map(repr, sources))}): "
                "check that they mean the same"
            )
    samples = tuple(apply_plan(plan, task, r, str(i)) for i, r in enumerate(rows))
    kept = [s for s in samples if s.ok]
    # An extractive task's rows whose answer is not a span of the input make no pair; a plan
    # that loses most rows so has the wrong answer field.
    outside = sum(s.not_span for s in samples)
    if outside > len(kept) and not problems:
        problems.append(
            f"every example's answer is copied from its input, but only {len(kept)} of "
            f"{len(kept) + outside} planned answers occur in their planned input: "
            f"{plan.output_field!r} does not hold answers of this kind"
        )
    thin = _one_word_markers(task, markers, [s.input for s in kept])
    if thin:
        problems.append(
            f"the plan fills {', '.join(map(repr, thin))} with a label or a category (one word, "
            "the same ones again) where every example has a phrase: that field is not that "
            "part of the input"
        )
    if not problems and not kept:
        reasons = Counter(s.skipped for s in samples).most_common(2)
        problems.append(
            f"the plan makes no pair from the {len(samples)} sample row(s) ("
            + "; ".join(f"{n}× {why}" for why, n in reasons)
            + ")"
        )
    if labels and kept:
        covered = {normalise_value(s.output) for s in kept}
        if len(covered) < len(labels):
            absent = [v for k, v in labels.items() if k not in covered]
            warnings.append(
                f"on the sample rows the plan gives no {', '.join(map(repr, absent))} pair"
            )
    longest = max(len(e.input) for e in task.examples)
    if kept and sorted(len(s.input) for s in kept)[len(kept) // 2] > 4 * longest + 500:
        warnings.append("the planned inputs are much longer than the examples' inputs")
    return PlanCheck(tuple(problems), tuple(warnings), samples)


def _one_word_markers(task: Task, markers: Sequence[str], inputs: Sequence[str]) -> list[str]:
    """The markers the planned inputs fill with a label or a category where every example has a
    phrase: one word each, no question, the same words again and again (the local teacher put
    WinoGrande's answer column, 'option1'/'option2', under 'Question:' for SQuAD: 33 of 200
    pairs asked "Question: option2")."""
    if len(inputs) < 2:
        return []

    def value(text: str, marker: str) -> str:
        return row_fields({"x": text}, markers).get(f"x[{marker.rstrip(':').strip()}]", "")

    thin = []
    for m in markers:
        planned = [value(i, m) for i in inputs]
        if (
            all(len(value(e.input, m).split()) >= 3 for e in task.examples)
            and all(len(v.split()) <= 1 and not v.endswith("?") for v in planned)
            and len(set(planned)) < len(planned)
        ):
            thin.append(m)
    return thin


@functools.lru_cache(maxsize=256)
def is_extractive(task: Task) -> bool:
    """Whether the task copies its answers from its input (extractive QA): no labels, no
    lettered options, and every example's answer is a span of its input."""
    return (
        not task_labels(task)
        and choice_format(task) is None
        and all(is_span(e.output, e.input) for e in task.examples)
    )


PLAN_USES = ("plan", "rewrite", "skip")  # what is done with a dataset's rows


def read_plan_choices(
    text: str, *, where: str = "plans file"
) -> tuple[dict[tuple[str, str], Plan], dict[tuple[str, str], str]]:
    """Plans and per-dataset choices from a plans file (a JSON list, as `--plans-out` writes).

    Each entry is a plan, or names only its dataset/config; `"use"` says what to do with the
    dataset's rows: "plan" (the default when the entry has a template), "rewrite" (the LLM
    rewrites each row) or "skip". A bad entry is an `InputError` naming its position.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{where}: not valid JSON ({exc}).") from exc
    items = data if isinstance(data, list) else [data]
    plans: dict[tuple[str, str], Plan] = {}
    uses: dict[tuple[str, str], str] = {}
    for i, item in enumerate(items):
        here = f"{where}, entry {i + 1}"
        if not isinstance(item, Mapping) or not isinstance(item.get("dataset"), str):
            raise InputError(f"{here}: expected an object with a 'dataset', got {item!r:.80}.")
        key = (item["dataset"], str(item.get("config") or "default"))
        use = item.get("use") or ("plan" if item.get("input_template") else "rewrite")
        if use not in PLAN_USES:
            raise InputError(f"{here}: 'use' must be one of {PLAN_USES}, got {use!r}.")
        uses[key] = str(use)
        if use == "plan":
            plans[key] = Plan.from_json_dict(item, where=here)
    return plans, uses
