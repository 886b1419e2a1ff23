"""Multiple-choice tasks: options made by code from a row's answer, the answer a letter.

Many reasoning tasks (BBH's date understanding, logical deduction, …) ask a question, list
lettered options ("Options:\\n(A) 12/14/1937\\n(B) …") and answer with a letter ("So the answer is
(D)."). Few sources hold their rows that way: a date calculator's row has a question and the
date. A plan for such a task keeps the row's question and answer and lets code write the
options: the row's own answer among distractors, shuffled, lettered in the examples' style, and
the pair's answer is the letter of the row's answer — still the source's, so the pair stays
grounded in its row by construction.

Distractors mix near misses (a date a day, a week, a month or a year off, in the answer's own
format; a number off by one or ten), since options a glance can tell apart teach nothing, and
other answers of the same dataset (the plan's `distractors`, taken from its rows when it was
written, so applying a plan depends only on the plan and the row) — one of them with a near
miss of its own, so the answer is not the one option with a neighbour. Which option is right
and the order are drawn from the row's id, so a row always gets the same options.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, timedelta

from rebase_core.task import final_answer
from rebase_core.types import Task

MAX_OPTION_CHARS = 120  # an answer longer than this is not an option
MAX_DISTRACTORS = 40  # other answers of a dataset a plan keeps
_OPTION_LINE = re.compile(r"^\s*(\(?)([A-Z])([).:])\s+(\S.*)$")


@dataclass(frozen=True, slots=True)
class ChoiceFormat:
    """How the task's examples list options and name the answer.

    header: the line above the options ("Options:", or "" when none), open/close: the
    letter's brackets ("(" and ")" for "(A)"), count: how many options an input lists (the
    examples' most common number), answer_open/answer_close: how the final answer names a
    letter ("(D)" or "D")."""

    header: str
    open: str
    close: str
    count: int
    answer_open: str
    answer_close: str

    def option(self, index: int, text: str) -> str:
        return f"{self.open}{chr(65 + index)}{self.close} {text}"

    def answer(self, index: int) -> str:
        return f"{self.answer_open}{chr(65 + index)}{self.answer_close}"


def _options_block(text: str) -> tuple[int, list[tuple[str, str, str, str]]] | None:
    """Where the lettered options start (line index) and the (open, letter, close, text) of
    each, when the text ends with options lettered A, B, C, … (at least two)."""
    lines = text.strip().splitlines()
    block: list[tuple[str, str, str, str]] = []
    i = len(lines) - 1
    while i >= 0:
        m = _OPTION_LINE.match(lines[i])
        if not m:
            break
        block.insert(0, (m.group(1), m.group(2), m.group(3), m.group(4).strip()))
        i -= 1
    if len(block) < 2 or [b[1] for b in block] != [chr(65 + k) for k in range(len(block))]:
        return None
    return i + 1, block


@functools.lru_cache(maxsize=256)
def choice_format(task: Task) -> ChoiceFormat | None:
    """The task's multiple-choice format, or None when it is not a lettered-options task: every
    example input ends with options lettered from A in one style, the options are not the same
    in every example (fixed options are labels), and every final answer is one of the letters.

    >>> from rebase_core.types import Example
    >>> t = Task("t", "i", (Example("Q1\\nOptions:\\n(A) 1\\n(B) 2", "So the answer is (B)."),
    ...                     Example("Q2\\nOptions:\\n(A) 3\\n(B) 4", "So the answer is (A).")))
    >>> choice_format(t)
    ChoiceFormat(header='Options:', open='(', close=')', count=2, answer_open='(', answer_close=')')
    """
    if not task.examples:
        return None
    styles: set[tuple[str, str]] = set()  # (open, close) of every option letter
    headers: set[str] = set()
    answers: set[tuple[str, str]] = set()  # (open, close) of every final answer's letter
    option_sets: set[tuple[str, ...]] = set()
    counts = Counter[int]()
    for example in task.examples:
        found = _options_block(example.input)
        if found is None:
            return None
        start, block = found
        styles.update((b[0], b[2]) for b in block)
        lines = example.input.strip().splitlines()
        headers.add(
            lines[start - 1].strip() if start and lines[start - 1].strip().endswith(":") else ""
        )
        counts[len(block)] += 1
        option_sets.add(tuple(b[3] for b in block))
        answer = final_answer(example.output).strip().rstrip(".")
        m = re.fullmatch(r"(\(?)([A-Z])(\)?)", answer)
        if not m or ord(m.group(2)) - 65 >= len(block):
            return None
        answers.add((m.group(1), m.group(3)))
    if len(styles) != 1 or len(headers) != 1 or len(answers) != 1:
        return None
    if len(option_sets) == 1:
        return None  # the same options everywhere: a label task ("(A) Yes / (B) No")
    ((open_, close),), (header,), ((answer_open, answer_close),) = styles, headers, answers
    count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return ChoiceFormat(header, open_, close, count, answer_open, answer_close)


def letter_index(answer: str) -> int | None:
    """The option an answer names when it is a bare letter ("D", "(D)", "[D]", "D."), else None.

    >>> [letter_index(a) for a in ("D", "(b)", "[C].", "Dog")]
    [3, None, 2, None]
    """
    m = re.fullmatch(r"[(\[]?([A-Z])[)\]]?\.?", answer.strip())
    return ord(m.group(1)) - 65 if m else None


def without_options(task: Task) -> Task:
    """The task with each example's options block (and its header) cut from the input: the
    shape a row's own fields fill, the options being code's."""
    fmt = choice_format(task)
    if fmt is None:
        return task
    examples = []
    for example in task.examples:
        found = _options_block(example.input)
        assert found is not None  # choice_format checked every example
        lines = example.input.strip().splitlines()[: found[0]]
        if fmt.header and lines and lines[-1].strip() == fmt.header:
            lines = lines[:-1]
        examples.append(replace(example, input="\n".join(lines).rstrip()))
    return replace(task, examples=tuple(examples))


_DATE_FORMATS = (
    "%m/%d/%Y",
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%Y/%m/%d",
)


def _as_date(text: str) -> tuple[date, str] | None:
    from datetime import datetime

    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date(), fmt
        except ValueError:
            continue
    return None


def _shift_month(day: date, months: int) -> date | None:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    try:
        return day.replace(year=year, month=month)
    except ValueError:
        return None


def near_misses(answer: str) -> list[str]:
    """Wrong answers close to the right one, in its format: dates a day, a week, a month, a
    year or ten years off; numbers off by one or ten; nothing for other text.

    >>> near_misses("12/14/1937")[:4]
    ['12/13/1937', '12/15/1937', '12/07/1937', '12/21/1937']
    >>> near_misses("42")
    ['41', '43', '32', '52']
    """
    parsed = _as_date(answer)
    out: list[str] = []
    if parsed is not None:
        day, fmt = parsed
        # "April 3" must not sit among "April 04"s: the odd format would give the answer away.
        unpadded = bool(re.search(r"(?<!\d)\d(?!\d)", answer))  # a lone digit: "4/3/2021"
        shifted: list[date | None] = [day + timedelta(days=d) for d in (-1, 1, -7, 7)]
        shifted += [_shift_month(day, m) for m in (-1, 1, -12, 12, -120)]
        for other in shifted:
            if other is not None and other.year >= 1:
                text = other.strftime(fmt)
                if unpadded:
                    text = re.sub(r"\b0(\d)\b", r"\1", text)
                if text != answer.strip() and text not in out:
                    out.append(text)
        return out
    m = re.fullmatch(r"(-?)(\d{1,12})", answer.strip())
    if m:
        value = int(answer.strip())
        for delta in (-1, 1, -10, 10):
            if value + delta >= 0 or value < 0:
                out.append(str(value + delta))
    return out


def make_options(
    answer: str, distractors: tuple[str, ...], fmt: ChoiceFormat, seed: str
) -> tuple[list[str], int] | None:
    """The options for one row (its answer among distractors, shuffled) and the index of its
    answer; None when fewer than two options can be made. Drawn from `seed` (the row's id)."""
    answer = answer.strip()
    if not answer or len(answer) > MAX_OPTION_CHARS or "\n" in answer:
        return None
    rng = random.Random(hashlib.sha256(f"{seed}\0{answer}".encode()).hexdigest())
    near = near_misses(answer)
    rng.shuffle(near)
    others = [d for d in distractors if d.strip() and d.strip() != answer]
    rng.shuffle(others)
    want = fmt.count - 1
    taken = {answer.lower()}
    chosen: list[str] = []

    def take(text: str) -> None:
        if len(chosen) < want and text.strip().lower() not in taken:
            chosen.append(text)
            taken.add(text.strip().lower())

    # One near miss of the answer, and a decoy pair (another answer and its own near miss), so
    # the answer is not the one option with neighbours (a tell a student would learn); then the
    # other answers, then the rest of the near misses.
    if near:
        take(near[0])
    for other in others:
        decoys = near_misses(other)
        if near and decoys:
            take(other)
            take(decoys[rng.randrange(len(decoys))])
            break
    for text in [*others, *near[1:]]:
        take(text)
    if not chosen:
        return None
    options = [answer, *chosen]
    rng.shuffle(options)
    return options, options.index(answer)


def render_options(options: list[str], fmt: ChoiceFormat) -> str:
    lines = [fmt.option(i, text) for i, text in enumerate(options)]
    return "\n".join([fmt.header, *lines] if fmt.header else lines)


def distractor_pool(values: list[str]) -> tuple[str, ...]:
    """The other answers a plan keeps to draw options from: distinct, short, one line, in
    order of first appearance, at most `MAX_DISTRACTORS`."""
    out: list[str] = []
    for value in values:
        text = value.strip()
        if text and len(text) <= MAX_OPTION_CHARS and "\n" not in text and text not in out:
            out.append(text)
        if len(out) >= MAX_DISTRACTORS:
            break
    return tuple(out)
