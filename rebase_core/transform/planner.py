"""Writing plans: code does what code can, the LLM makes only constrained choices.

Measured with the offline 1.5B teacher (shared/design/plans.md): free-form plans leak the label
into the input and invert label maps; constrained choices (an enum of the dataset's fields for
each field marker of the task) are right; one question per source label value beats one map in
one call. So, per (dataset, config):

1. Code lists the fields (columns and `column[Marker]` sub-fields, `plan.row_fields`), the task's
   field markers and labels, and the label values the rows hold.
2. Rules settle what they can without a call: a marker whose name a field carries ("Premise:" ←
   `premise` or `input[Premise]`), a source label equal to a task label, a negated task label
   ("non-entailment": the other label of a two-label task, else dropped), and for an
   extractive task the fields where the answers occur (`plan_rules`).
3. One call picks, from enums, the field for each remaining marker, the answer field, and
   whether the dataset fits at all; one short call per label value still unmapped.
4. `check_plan` validates it on sample rows; a failed check is asked once more, told why.

Every call goes through `complete_many` (cache, retries), so a rerun costs nothing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rebase_core.llm import LLM, Message, Request, ResponseCache, complete_many
from rebase_core.transform.checks import input_markers
from rebase_core.transform.choices import (
    choice_format,
    distractor_pool,
    letter_index,
    without_options,
)
from rebase_core.transform.parse import first_json_object
from rebase_core.transform.plan import (
    DROP,
    Plan,
    PlanCheck,
    answer_text,
    check_plan,
    is_extractive,
    label_value,
    observed_values,
    row_fields,
    task_labels,
)
from rebase_core.transform.plan_rules import (
    field_label,
    rule_label_map,
    slot_key,
    span_slots,
    words,
)
from rebase_core.transform.prompt import render_examples
from rebase_core.types import Progress, ProgressFn, ScoredRow, Task, no_progress

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 5  # rows shown to the LLM and checked
MAX_LABEL_VALUES = 12  # an output field with more distinct values is not a label column
PLAN_STATUSES = ("valid", "invalid", "none")

FIELDS_TEMPLATE = """\
You help turn the rows of a dataset into examples of a task. Code will fill the task's input \
from the dataset's fields; you only choose which field goes where.

The task: {instruction}
Examples of the task (input, then output):
{examples}

The dataset "{dataset}": {description}
Its fields, with their values in {n} sample rows:
{fields}

{questions}
If no field of this dataset can sensibly fill the task's input and output, answer "fits": false.
Answer with a JSON object."""

LABEL_TEMPLATE = """\
The task: {instruction}
Its labels: {labels}.

A dataset "{dataset}" labels its rows with the value {value!r}. For example, this row:
{row}

Which label of the task means the same as {value!r}? Answer "{drop}" if none of them does, or \
if {value!r} could mean more than one of them."""


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    """The plan for one (dataset, config) and how it was reached.

    status: "valid" (checked, usable), "invalid" (checked, problems remain), "none" (the LLM
    or the rules found that nothing fits). `rows` is how many kept rows the plan covers.
    """

    dataset: str
    config: str
    status: str
    plan: Plan | None
    check: PlanCheck | None
    reason: str = ""
    calls: int = 0
    rows: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.config)


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """How plans are written: greedy, short replies, a few sample rows."""

    sample_rows: int = SAMPLE_ROWS
    temperature: float = 0.0
    max_tokens: int = 300
    repair: bool = True
    max_retries: int = 4
    concurrency: int = 2


def _show(value: str, max_chars: int = 140) -> str:
    flat = " ".join(value.split())
    return json.dumps(flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…")


def _fields_table(names: Sequence[str], fields: Sequence[Mapping[str, str]]) -> str:
    lines = []
    for name in names:
        values = [_show(f.get(name, "")) for f in fields[:3]]
        lines.append(f"- {name}: " + " | ".join(values))
    return "\n".join(lines)


@dataclass
class _Draft:
    """The choices a plan is built from (filled by rules, then the LLM)."""

    slots: dict[str, str] = field(default_factory=dict)  # marker (or "input") → field
    output: str = ""
    label_map: dict[str, str] = field(default_factory=dict)
    fits: bool = True
    weak: bool = False  # the rules guessed a field from retrieval scores, not from its name

    def copy(self) -> _Draft:
        return _Draft(dict(self.slots), self.output, dict(self.label_map), self.fits, self.weak)


@dataclass(frozen=True, slots=True)
class InputSkeleton:
    """The shape every example input shares: fixed leading and trailing lines (a question
    header, "Options:\n- Yes\n- No"), free text before the first field marker (`lead`), and the
    field markers in between. Each of `slots` is filled from one field of a row."""

    prefix: str
    lead: bool
    markers: tuple[str, ...]
    suffix: str

    @property
    def slots(self) -> tuple[str, ...]:
        return (("input",) if self.lead else ()) + self.markers

    def template(self, fields: Mapping[str, str]) -> str:
        parts = [self.prefix] if self.prefix else []
        if self.lead:
            parts.append("{" + fields["input"] + "}")
        parts += [f"{m} {{{fields[m]}}}" for m in self.markers]
        if self.suffix:
            parts.append(self.suffix)
        return "\n".join(parts)


def input_skeleton(task: Task) -> InputSkeleton:
    r"""The examples' shared input shape (see `InputSkeleton`).

    >>> from rebase_core.types import Example
    >>> t = Task("t", "i", (Example("Q?\nStory one.\nOptions:\n- Yes\n- No", "Yes"),
    ...                     Example("Q?\nStory two.\nOptions:\n- Yes\n- No", "No")))
    >>> input_skeleton(t)
    InputSkeleton(prefix='Q?', lead=True, markers=(), suffix='Options:\n- Yes\n- No')
    """
    lines = [e.input.strip().splitlines() for e in task.examples]
    shortest = min(len(x) for x in lines)
    head = 0
    while head < shortest - 1 and all(x[head] == lines[0][head] for x in lines):
        head += 1
    tail = 0
    while tail < shortest - head - 1 and all(x[-1 - tail] == lines[0][-1 - tail] for x in lines):
        tail += 1
    if len(lines) == 1:
        head = tail = 0  # one example: nothing can be told fixed
    prefix = "\n".join(lines[0][:head])
    suffix = "\n".join(lines[0][len(lines[0]) - tail :]) if tail else ""
    middles = ["\n".join(x[head : len(x) - tail]) for x in lines]
    markers = tuple(m for m in input_markers(task) if all(m in mid for mid in middles))
    lead = not markers or all(mid.split(markers[0], 1)[0].strip() for mid in middles)
    return InputSkeleton(prefix, lead, markers, suffix)


class _Planner:
    """Plans one dataset's rows (see `plan_dataset`)."""

    def __init__(
        self,
        task: Task,
        rows: Sequence[ScoredRow],
        llm: LLM | None,
        config: PlannerConfig,
        cache: ResponseCache | None,
    ) -> None:
        self.task, self.rows, self.llm, self.config, self.cache = task, rows, llm, config, cache
        # A multiple-choice task's options are code's (`choices`): the row fills the rest.
        self.choices = choice_format(task)
        shape = without_options(task)
        self.markers = input_markers(shape)
        self.skeleton = input_skeleton(shape)
        self.labels = task_labels(task)
        self.samples = [dict(r.row) for r in rows[: config.sample_rows]]
        sample_fields = [row_fields(r, self.markers) for r in self.samples]
        # Fields most sample rows have and at least one fills: a cell cut to the store's
        # length limit loses its last "Question:" part (a Quoref passage), and a row without a
        # field the plan names makes no pair, the others still do.
        seen = Counter(name for f in sample_fields for name in f)
        self.fields = [
            name
            for name in dict.fromkeys(name for f in sample_fields for name in f)
            if 2 * seen[name] > len(sample_fields)
            and any(f.get(name, "").strip() for f in sample_fields)
        ]
        self.sample_fields = sample_fields
        self.calls = 0

    def _complete(self, requests: list[Request]) -> list[str | None]:
        if self.llm is None:  # rules only: nothing is asked
            return [None] * len(requests)
        results = complete_many(
            self.llm,
            requests,
            concurrency=self.config.concurrency,
            cache=self.cache,
            max_retries=self.config.max_retries,
        )
        self.calls += len(requests)  # what a fresh run pays; cached replies cost nothing here
        return [r.completion.text if r.completion else None for r in results]

    # -- rules
    def rule_draft(self) -> _Draft:
        draft = _Draft()
        for marker in self.skeleton.slots:
            if marker == "input":
                continue
            want = words(marker.rstrip(":"))
            named = [f for f in self.fields if field_label(f) == want]
            if named:
                draft.slots[marker] = named[0]
        if is_extractive(self.task) and self.span_rule(draft):
            return draft
        # The retrieval's best-matching output cell is where the answer most often is.
        by_score = Counter(r.output_column for r in self.rows if r.output_column in self.fields)
        if by_score:
            draft.output = by_score.most_common(1)[0][0]
        # A label task whose input is one free text, from a dataset whose labels the rules map
        # in full (the same labels, or their negations): the retrieval's best-matching input
        # cell. Anything less (other labels, an open task) asks the LLM whether it fits at all.
        values = (
            observed_values((dict(r.row) for r in self.rows), draft.output, self.task)
            if self.labels and draft.output
            else Counter()
        )
        settled = bool(values) and set(rule_label_map(self.task, list(values))) >= set(values) - {
            ""
        }
        if settled and self.skeleton.slots == ("input",):
            inputs = Counter(
                r.input_column
                for r in self.rows
                if r.input_column in self.fields and r.input_column != draft.output
            )
            if inputs:
                draft.slots["input"] = inputs.most_common(1)[0][0]
                draft.weak = True  # an LLM, when there is one, still says whether it fits
        return draft

    def span_rule(self, draft: _Draft) -> bool:
        """An extractive task's answer and unsettled markers from the rows' structure
        (`plan_rules.span_slots`); False, and the draft untouched, when the rows show none."""
        if "input" in self.skeleton.slots or not self.skeleton.slots:
            return False
        found = span_slots(
            self.task,
            self.skeleton.slots,
            self.markers,
            self.fields,
            self.sample_fields,
            draft.slots,
        )
        if found is None:
            return False
        draft.slots.update(found[0])
        draft.output = found[1]
        return True

    # -- the LLM's choices
    def field_choices(self, draft: _Draft, note: str) -> dict[str, list[str]]:
        """The fields each input marker may take: a marker the rules settled keeps its field
        (a repair, told why, reopens them), and the others choose among the fields no settled
        marker holds — each part of the input needs its own field, and a weak teacher left to
        choose freely gave two markers the same one ("the input uses X twice")."""
        settled = {} if note else {m: f for m, f in draft.slots.items() if f in self.fields}
        free = [f for f in self.fields if f not in set(settled.values())] or list(self.fields)
        return {m: [settled[m]] if m in settled else free for m in self.skeleton.slots}

    def _fields_request(self, draft: _Draft, note: str, sample: int) -> Request:
        properties: dict[str, object] = {}
        questions = []
        for marker, allowed in self.field_choices(draft, note).items():
            key = slot_key(marker)
            properties[key] = {"type": "string", "enum": allowed}
            what = (
                f'the part of the input after "{marker}"'
                if marker != "input"
                else "the input's main text"
            )
            questions.append(f'- "{key}": the field that holds {what}.')
        properties["answer_field"] = {"type": "string", "enum": list(self.fields)}
        if self.choices is not None:
            questions.append(
                '- "answer_field": the field that holds the correct answer itself (a short '
                "value such as a date or a number; code lists it among lettered options); it "
                "must not be a field of the input."
            )
        else:
            questions.append(
                '- "answer_field": the field that holds the answer (the task\'s output); it must '
                "not be a field of the input."
            )
        properties["fits"] = {"type": "boolean"}
        prompt = FIELDS_TEMPLATE.format(
            instruction=self.task.instruction,
            examples=render_examples(self.task),
            dataset=self.rows[0].dataset,
            description=(self.rows[0].description or "(no description)")[:400],
            n=len(self.samples),
            fields=_fields_table(self.fields, self.sample_fields),
            questions="For each key, pick one field:\n" + "\n".join(questions),
        )
        if note:
            prompt += f"\n\nA previous answer could not be used: {note}. Choose again."
        schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        return Request(
            key=f"plan-fields-{self.rows[0].dataset}-{self.rows[0].config}-{sample}",
            messages=(Message("user", prompt),),
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            json_schema=schema,
            sample=sample,
        )

    def ask_fields(self, draft: _Draft, note: str = "", sample: int = 0) -> _Draft:
        (text,) = self._complete([self._fields_request(draft, note, sample)])
        raw = first_json_object(text or "")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if not isinstance(answer, Mapping):
            logger.info("plan: unparseable field choice for %s", self.rows[0].dataset)
            out = draft.copy()
            out.fits = False
            return out
        out = draft.copy()
        for marker, allowed in self.field_choices(draft, note).items():
            chosen = answer.get(slot_key(marker))
            open_choice = marker not in draft.slots or bool(note)  # a repair reopens the rules'
            if open_choice and isinstance(chosen, str) and chosen in allowed:
                out.slots[marker] = chosen
        chosen_output = answer.get("answer_field")
        open_choice = not draft.output or bool(note)
        if open_choice and isinstance(chosen_output, str) and chosen_output in self.fields:
            out.output = chosen_output
        out.fits = answer.get("fits") is not False
        return out

    def ask_labels(self, draft: _Draft) -> _Draft:
        if not self.labels or not draft.output:
            return draft
        values = observed_values((dict(r.row) for r in self.rows), draft.output, self.task)
        draft.label_map = {
            **rule_label_map(self.task, list(values)),
            **{k: v for k, v in draft.label_map.items()},
        }
        todo = [v for v in values if v and v not in draft.label_map]
        if not todo or self.llm is None:
            return draft
        choices = [*self.labels.values(), DROP]
        requests = []
        for value in todo:
            example = next(
                r
                for r in self.rows
                if label_value(answer_text(row_fields(r.row, self.markers).get(draft.output, "")))
                == value
            )
            row_json = json.dumps(
                {k: " ".join(v.split())[:200] for k, v in example.row.items()}, ensure_ascii=False
            )
            prompt = LABEL_TEMPLATE.format(
                instruction=self.task.instruction,
                labels=", ".join(repr(c) for c in self.labels.values()),
                dataset=example.dataset,
                value=value,
                row=row_json,
                drop=DROP,
            )
            schema = {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": choices}},
                "required": ["label"],
                "additionalProperties": False,
            }
            requests.append(
                Request(
                    key=f"plan-label-{value}",
                    messages=(Message("user", prompt),),
                    temperature=self.config.temperature,
                    max_tokens=40,
                    json_schema=schema,
                )
            )
        for value, text in zip(todo, self._complete(requests), strict=True):
            raw = first_json_object(text or "")
            try:
                label = json.loads(raw).get("label") if raw else None
            except (ValueError, AttributeError):
                label = None
            draft.label_map[value] = label if label in choices else DROP
        return draft

    def build(self, draft: _Draft, author: str) -> Plan | None:
        if not draft.output or any(m not in draft.slots for m in self.skeleton.slots):
            return None
        choices = 0
        distractors: tuple[str, ...] = ()
        if self.choices is not None:
            answers = [
                answer_text(row_fields(r.row, self.markers).get(draft.output, ""))
                for r in self.rows
            ]
            # Rows that list their own options and answer with a letter keep them; the others
            # get options made from their answer.
            lettered = sum(letter_index(a) is not None for a in answers if a)
            if lettered * 2 <= sum(1 for a in answers if a):
                choices = self.choices.count
                distractors = distractor_pool(answers)
        return Plan(
            dataset=self.rows[0].dataset,
            config=self.rows[0].config,
            input_template=self.skeleton.template(draft.slots),
            output_field=draft.output,
            label_map=dict(draft.label_map),
            author="rule" if author == "rule" else "llm",
            choices=choices,
            distractors=distractors,
        )


def plan_dataset(
    task: Task,
    rows: Sequence[ScoredRow],
    llm: LLM | None,
    config: PlannerConfig | None = None,
    *,
    cache: ResponseCache | None = None,
) -> PlanOutcome:
    """The plan for one (dataset, config)'s rows (all from one dataset/config; see module doc).

    With `llm` None only the rules plan: a dataset they cannot settle gets no plan."""
    config = config or PlannerConfig()
    dataset, cfg = rows[0].dataset, rows[0].config
    if any(r.key[:2] != (dataset, cfg) for r in rows):
        raise ValueError("plan_dataset takes the rows of one dataset/config")
    planner = _Planner(task, rows, llm, config, cache)
    if not planner.fields:
        return PlanOutcome(
            dataset, cfg, "none", None, None, "the rows have no text fields", 0, len(rows)
        )
    draft = planner.rule_draft()
    slot_markers = planner.skeleton.slots
    author = "rule"
    unsettled = any(m not in draft.slots for m in slot_markers) or not draft.output
    if unsettled and llm is None:
        unplaced = [m for m in slot_markers if m not in draft.slots] or ["the answer"]
        reason = f"no field is named like {', '.join(map(repr, unplaced))} (rules only)"
        return PlanOutcome(dataset, cfg, "none", None, None, reason, 0, len(rows))
    if unsettled or (draft.weak and llm is not None):
        # The LLM picks what the rules left open (and says whether the dataset fits at all);
        # with rules only, a weak guess stands: the labels matched in full.
        draft = planner.ask_fields(draft)
        author = "llm"
    outcome = _finish(planner, draft, author)
    if outcome.status == "invalid" and config.repair and outcome.reason and llm is not None:
        # Asked once more, told why; the rules' choices are open to the LLM this time.
        retry = planner.ask_fields(draft, note=outcome.reason[:300], sample=1)
        again = _finish(planner, retry, "llm")
        if again.status == "valid" or outcome.plan is None:
            outcome = again
    return replace(outcome, calls=planner.calls, rows=len(rows))


def _finish(planner: _Planner, draft: _Draft, author: str) -> PlanOutcome:
    rows = planner.rows
    dataset, cfg = rows[0].dataset, rows[0].config
    if not draft.fits:
        return PlanOutcome(dataset, cfg, "none", None, None, "the LLM found that no field fits")
    if planner.labels and draft.output:
        values = observed_values((dict(r.row) for r in rows), draft.output, planner.task)
        if len(values) > MAX_LABEL_VALUES:
            return PlanOutcome(
                dataset,
                cfg,
                "invalid",
                planner.build(draft, author),
                None,
                f"the answer field {draft.output!r} has {len(values)} different values; a label "
                "task needs a field of labels",
            )
        draft = planner.ask_labels(draft)
    plan = planner.build(draft, author)
    if plan is None:
        return PlanOutcome(dataset, cfg, "invalid", None, None, "some input field was not chosen")
    check = check_plan(plan, planner.task, planner.samples)
    if check.ok:
        return PlanOutcome(dataset, cfg, "valid", plan, check)
    return PlanOutcome(dataset, cfg, "invalid", plan, check, "; ".join(check.problems))


def group_rows(rows: Sequence[ScoredRow]) -> dict[tuple[str, str], list[ScoredRow]]:
    """Rows by (dataset, config), in the order each first appears (best first)."""
    groups: dict[tuple[str, str], list[ScoredRow]] = {}
    for row in rows:
        groups.setdefault((row.dataset, row.config), []).append(row)
    return groups


def plan_datasets(
    task: Task,
    rows: Sequence[ScoredRow],
    llm: LLM | None,
    config: PlannerConfig | None = None,
    *,
    cache: ResponseCache | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
    given: Mapping[tuple[str, str], Plan] | None = None,
) -> list[PlanOutcome]:
    """A plan (or the reason there is none) for every (dataset, config) among the rows.

    `given` plans (the user's, from a file or the page) are checked, not rewritten; a given
    plan that fails its check is reported "invalid" for that dataset and the others go on.
    """
    config = config or PlannerConfig()
    given = given or {}
    groups = group_rows(rows)
    outcomes: list[PlanOutcome] = []
    for i, (key, group) in enumerate(groups.items()):
        if should_stop():
            break
        if key in given:
            outcomes.append(check_given(task, given[key], group, config))
        else:
            outcomes.append(plan_dataset(task, group, llm, config, cache=cache))
        on_progress(Progress(i + 1, len(groups), f"planned {group[0].dataset}"))
    return outcomes


def check_given(
    task: Task, plan: Plan, rows: Sequence[ScoredRow], config: PlannerConfig | None = None
) -> PlanOutcome:
    """The outcome of a plan someone wrote: checked on the dataset's sample rows, no LLM."""
    config = config or PlannerConfig()
    samples = [dict(r.row) for r in rows[: config.sample_rows]]
    check = check_plan(plan, task, samples)
    status = "valid" if check.ok else "invalid"
    return PlanOutcome(
        plan.dataset, plan.config, status, plan, check, "; ".join(check.problems), 0, len(rows)
    )


def outcomes_to_json(outcomes: Sequence[PlanOutcome]) -> list[dict[str, object]]:
    """The plans file the CLI writes (`--plans-out`): each plan with its status and reason,
    ready to edit and pass back with `--plans`."""
    out: list[dict[str, object]] = []
    for o in outcomes:
        entry: dict[str, object] = (
            o.plan.to_json_dict() if o.plan else {"dataset": o.dataset, "config": o.config}
        )
        entry.update({"status": o.status, "reason": o.reason, "rows": o.rows})
        if o.check is not None and o.check.warnings:
            entry["warnings"] = list(o.check.warnings)
        out.append(entry)
    return out
