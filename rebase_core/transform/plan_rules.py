"""What code settles in a plan without asking an LLM (the planner's rules, `planner`).

- Fields named like the task's markers ("Premise:" ← `premise` or `input[Premise]`).
- Label values: a source label equal to a task label, or a negated one ("non-entailment").
- Extractive tasks (answers copied from the input): where the answers occur in the rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from rebase_core.transform.plan import (
    DROP,
    answer_text,
    row_fields,
    task_labels,
)
from rebase_core.transform.spans import is_span, is_whole_item, span_in
from rebase_core.types import Task


def slot_key(marker: str) -> str:
    """A marker's key in the LLM's answer and in a row's fields: "Question:" → "Question"."""
    return marker.rstrip(":").strip() or "input"


def words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def field_label(name: str) -> str:
    """The part of a field's name that says what it holds: `input[Premise]` → `premise`."""
    inner = re.search(r"\[([^\]]+)\]$", name)
    return words(inner.group(1) if inner else name.rsplit(".", 1)[-1])


def negated(value: str) -> str | None:
    """`non-entailment` / `not entailment` / `no entailment` → `entailment`."""
    m = re.fullmatch(r"(?:non|not|no)[\s_-]*(.+)", value)
    return m.group(1).strip() if m else None


def rule_label_map(task: Task, values: Sequence[str]) -> dict[str, str]:
    """The label-map entries rules can decide: equal labels and negated ones ("non-X")."""
    labels = task_labels(task)
    out: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        if value in labels:
            out[value] = labels[value]
            continue
        base = negated(value)
        if base is not None and base in labels:
            others = [v for k, v in labels.items() if k != base]
            out[value] = others[0] if len(others) == 1 else DROP
    return out


def related(a: str, b: str) -> bool:
    """Whether two fields overlap: the same, or one a `column[Marker]` part of the other."""
    return a == b or a.startswith(b + "[") or b.startswith(a + "[")


def answer_and_host(
    fields: Sequence[str], samples: Sequence[Mapping[str, str]]
) -> tuple[str, str] | None:
    """The (answer, host) fields of `span_slots`: the answer a short whole-word span of
    the host, not a whole item of it (`is_whole_item`: a list of answers or options), in most
    sample rows (at least 2). The most such rows wins; then a host's part over the whole
    (`input[Passage]` over `input`); then the widest host (a context over a question that
    names the answer).

    >>> rows = [{"q": f"Who is {n}?", "a": n, "p": f"{n} is here now."} for n in ("Ann", "Bo")]
    >>> answer_and_host(["p", "q", "a"], rows)
    ('a', 'p')
    """
    found: dict[tuple[str, str], int] = {}
    for answer in fields:
        for host in fields:
            if related(answer, host):
                continue
            hits = 0
            for row in samples:
                value, text = answer_text(row.get(answer, "")), row.get(host, "")
                hits += (
                    bool(value)
                    and 2 * len(value) <= len(text)
                    and span_in(value, text) is not None
                    and not is_whole_item(value, text)
                )
            if hits >= 2 and 2 * hits > len(samples):
                found[answer, host] = hits
    if not found:
        return None
    most = max(found.values())
    best = [k for k, n in found.items() if n == most]
    parts = [(a, h) for a, h in best if not any(o != h and o.startswith(h + "[") for _, o in best)]
    return max(parts, key=lambda k: sum(len(row.get(k[1], "")) for row in samples))


def shape_distance(wanted: Sequence[str], values: Sequence[str]) -> float | None:
    """How unlike a field's values are a marker's example values: the gap in the share that
    are questions (end in "?") plus the gap in log length; None when the shares differ by more
    than half or the field is mostly empty.

    >>> shape_distance(["Who won?"], ["What is it?", "Why?"]) is not None
    True
    >>> shape_distance(["Who won?"], ["The cat sat.", "It rains."]) is None
    True
    """
    filled = [v.strip() for v in values if v.strip()]
    if not wanted or 2 * len(filled) < len(values) or not filled:
        return None

    def share(texts: Sequence[str]) -> float:
        return sum(t.strip().endswith("?") for t in texts) / len(texts)

    def log_length(texts: Sequence[str]) -> float:  # of the median text, in words
        return math.log(1 + sorted(len(t.split()) for t in texts)[len(texts) // 2])

    gap = abs(share(wanted) - share(filled))
    if gap > 0.5:
        return None
    return gap + 0.25 * abs(log_length(wanted) - log_length(filled))


def span_slots(
    task: Task,
    slots: Sequence[str],
    markers: Sequence[str],
    fields: Sequence[str],
    samples: Sequence[Mapping[str, str]],
    settled: Mapping[str, str],
) -> tuple[dict[str, str], str] | None:
    """An extractive task's plan from the rows' structure: (the field for each marker not in
    `settled`, the answer field), or None when the rows show none. The answer field is one
    whose value is a whole-word span of another field (its host) in most sample rows, the host
    fills the marker whose example values hold the examples' answers (the context), and every
    other marker takes the free field shaped most like its example values (questions end in
    "?"). Asked, the 1.5B teacher found that nothing fits a Quoref row and took question fields
    for answers. `slots`: the skeleton's markers (no free lead text); `samples`: the sample
    rows' fields (`row_fields`)."""
    found = answer_and_host(fields, samples)
    if found is None:
        return None
    answer, host = found
    examples = [row_fields({"input": e.input}, markers) for e in task.examples]
    wanted = {m: [f.get(f"input[{slot_key(m)}]", "") for f in examples] for m in slots}
    holds = {
        m: sum(is_span(e.output, v) for e, v in zip(task.examples, wanted[m], strict=True))
        for m in wanted
    }
    context = max(wanted, key=lambda m: (holds[m], sum(len(v) for v in wanted[m])))
    chosen = {context: host} if context not in settled else {}
    taken = {answer, host, *settled.values(), *chosen.values()}
    free = [f for f in fields if not any(related(f, t) for t in taken)]
    for marker in slots:
        if marker in settled or marker in chosen:
            continue
        ranked = sorted(
            (d, f)
            for f in free
            if (d := shape_distance(wanted[marker], [s.get(f, "") for s in samples])) is not None
        )
        if not ranked:
            return None
        chosen[marker] = ranked[0][1]
        free = [f for f in free if not related(f, ranked[0][1])]
    return chosen, answer
