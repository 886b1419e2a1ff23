"""Whether an answer is written in a text: whole-word spans, and whole items of a list.

What an extractive plan rests on (`plan.py`, `plan_rules.py`): a SQuAD-like row's answer is a
span of its context, and a field that lists answers or options as whole items is no context.
"""

from __future__ import annotations

import json
import re

from rebase_core.transform.choices import letter_index


def is_span(answer: str, text: str) -> bool:
    """Whether an answer is a span of the text: whole words, and not a bare option letter (a
    letter answer "D" is "in" any text; logiqa's letters passed for SQuAD spans).

    >>> [is_span(a, "Paris is in France (D) ok") for a in ("france", "D", "ari", "is in")]
    [True, False, False, True]
    """
    answer = answer.strip()
    if not answer or letter_index(answer) is not None:
        return False
    # str.find over the lowered text, not a regex per answer: compiling one pattern per row
    # was 75% of applying a SQuAD plan (5k rows/s).
    needle, hay = answer.lower(), text.lower()
    at = hay.find(needle)
    while at != -1:
        end = at + len(needle)
        if (at == 0 or not _is_word_char(hay[at - 1])) and (
            end == len(hay) or not _is_word_char(hay[end])
        ):
            return True
        at = hay.find(needle, at + 1)
    return False


def _is_word_char(char: str) -> bool:
    """A regex `\\w` character: a letter or digit of any script, or the underscore."""
    return char.isalnum() or char == "_"


def span_in(answer: str, text: str) -> str | None:
    """The answer as a span of the text (`is_span`), without the full stop that closes it where
    only that keeps it from being one (natural_instructions writes "639." for "in 639 the"); None
    when it is none.

    >>> span_in("639.", "It reopened in 639 after"), span_in("Oslo", "In Paris.")
    ('639', None)
    """
    answer = answer.strip()
    for candidate in (answer, answer.rstrip(".").strip()):
        if is_span(candidate, text):
            return candidate
    return None


def is_whole_item(answer: str, text: str) -> bool:
    r"""Whether the answer is a whole item of a list the text is: a JSON list's item or a line,
    an option letter ("B. ", "(B)") and a closing full stop aside. A context holds its answer
    inside its sentences; a field that holds it as an item lists answers or options (BIG-bench's
    `targets`, CommonsenseQA's options), and using it as the context gives the answer away.

    >>> is_whole_item("B. michigan", "A. ohio\nB. michigan"), is_whole_item("9.", '["9.", "5."]')
    (True, True)
    >>> is_whole_item("Oslo", "He moved to Oslo.\nThen to Bergen.")
    False
    """
    items: list[str] = []
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            items = [str(i) for i in parsed]
    items = items or stripped.splitlines()

    def bare(value: str) -> str:
        value = re.sub(r"^\s*(?:\(?[A-Za-z]\)|[A-Za-z][.)]|[-*])\s+", "", value)
        return " ".join(value.lower().rstrip(". ").split())

    target = bare(answer)
    return bool(target) and any(bare(item) == target for item in items)
