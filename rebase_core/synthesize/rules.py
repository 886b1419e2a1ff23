"""The pure rules of the baselines: temperature schedule, votes, label schedule, filters, parsing.

No I/O and no LLM: each piece is a function of its arguments, tested on its own.
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rebase_core.errors import ParseError
from rebase_core.transform import (
    first_json_object,
    normalise_text,
    parse_pair,
    strip_wrapping_quotes,
)


def annealed_temperature(index: int, planned: int, start: float, cap: float) -> float:
    """Temperature of the `index`-th call of `planned`: linear from `start` to `cap`, then `cap`.

    By call index rather than by pairs kept (prompt2model's variant), so a call's temperature, and
    with it its cache key, does not depend on how earlier calls turned out.
    """
    if planned <= 1:
        return start if index == 0 else cap
    return round(start + (cap - start) * min(1.0, index / (planned - 1)), 4)


def max_temperature_for(spec: str) -> float:
    """The highest temperature a provider accepts (Anthropic: 1.0)."""
    return 1.0 if spec.startswith("anthropic:") else 2.0


def multi_vote(
    candidates: Sequence[tuple[str, str, str]],
) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str]]]:
    """Vote duplicated inputs out: candidates are (key, input, output) in generation order.

    Inputs are compared normalised (case, punctuation, spaces). For each input the most frequent
    output wins, ties going to the one generated first; the winner keeps the key of its first
    occurrence. Returns (winners as (key, input, output, votes), losers as (key, winner key)).
    """
    groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for cand in candidates:
        groups[normalise_text(cand[1])].append(cand)
    winners: list[tuple[str, str, str, int]] = []
    losers: list[tuple[str, str]] = []
    for group in groups.values():
        votes = Counter(normalise_text(out) for _, _, out in group)
        best = max(votes.values())
        # First in generation order among the most voted outputs.
        key, inp, out = next(c for c in group if votes[normalise_text(c[2])] == best)
        winners.append((key, inp, out, best))
        losers.extend((c[0], key) for c in group if c[0] != key)
    order = {c[0]: i for i, c in enumerate(candidates)}
    winners.sort(key=lambda w: order[w[0]])
    return winners, losers


@dataclass(frozen=True, slots=True)
class Vote:
    """The outcome of self-consistency over one input's samples."""

    answer: str | None  # None: no answer reached the share
    share: float  # the top answer's votes ÷ answered samples
    votes: int
    answered: int
    counts: Mapping[str, int] = field(default_factory=dict)


def self_consistency(
    answers: Sequence[str | None],
    min_share: float,
    *,
    key: Callable[[str], str] = normalise_text,
) -> Vote:
    """The most frequent answer if its share of the samples reaches `min_share`.

    `answers` holds one entry per answered sample; None is a sample the filters rejected (it counts
    in the denominator: a rejected sample votes for nothing). Answers are grouped by `key`; ties
    between groups go to the shortest answer, and the text kept is the shortest of its group.
    """
    answered = len(answers)
    groups: dict[str, list[str]] = defaultdict(list)
    for answer in answers:
        if answer is not None and answer.strip():
            groups[key(answer)].append(answer)
    if not groups or answered == 0:
        return Vote(None, 0.0, 0, answered)
    counts = {k: len(v) for k, v in groups.items()}
    best = max(
        groups,
        key=lambda k: (counts[k], -min(len(a) for a in groups[k])),
    )
    share = counts[best] / answered
    text = min(groups[best], key=len)
    counts_by_text = {min(v, key=len): len(v) for v in groups.values()}
    return Vote(text if share >= min_share else None, share, counts[best], answered, counts_by_text)


def label_schedule(labels: Sequence[str], count: int, seed: int) -> list[str]:
    """`count` labels to condition inputs on: seeded shuffles of the label set, one after another,
    so after any prefix every label has been asked for as often as any other, give or take one."""
    if not labels:
        return []
    out: list[str] = []
    cycle = 0
    while len(out) < count:
        order = sorted(labels)
        random.Random(f"{seed}|labels|{cycle}").shuffle(order)
        out.extend(order)
        cycle += 1
    return out[:count]


def length_bounds(texts: Sequence[str], min_slack: float = 0.5) -> tuple[float, float]:
    """(low, high) character lengths: mean ± 2 std of the texts (the reference's rule), widened to
    at least mean ± `min_slack`·mean so one or two examples do not pin a single length."""
    lengths = [len(t) for t in texts]
    mean = statistics.fmean(lengths)
    spread = 2 * statistics.pstdev(lengths) if len(lengths) > 1 else 0.0
    half = max(spread, min_slack * mean)
    return max(0.0, mean - half), mean + half


_TEMPLATE_NOISE = (
    ("an 'input' label", re.compile(r"\binput\b", re.IGNORECASE)),
    ("an 'output' label", re.compile(r"\boutput\b", re.IGNORECASE)),
    ("'__'", re.compile(r"__")),
    ("a blank line", re.compile(r"\n[ \t]*\n")),
)


def noise_reason(text: str, references: Sequence[str] = ()) -> str | None:
    """Why a text looks like template noise (None if it does not). A pattern that occurs in one of
    the `references` (the task's own examples) is allowed: it is part of the task's format."""
    for what, pattern in _TEMPLATE_NOISE:
        if pattern.search(text) and not any(pattern.search(r) for r in references):
            return f"contains {what}"
    return None


_LEAD_LABEL = re.compile(
    r"^\s*\[?(?:new\s+)?(?:example\s+)?(?:input|output|answer)\]?\s*[:=]\s*", re.IGNORECASE
)
_NEXT_FIELD = re.compile(r"\n\s*\[?(?:input|output|answer)\]?\s*[:=]", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """A student reply without a leading field label ("Input:", "[output] =") and without the
    template's next field when the model goes on writing it; wrapping quotes removed."""
    return strip_wrapping_quotes(cut_answer_field(_LEAD_LABEL.sub("", text.strip(), count=1)))


def cut_answer_field(text: str, references: Sequence[str] = ()) -> str:
    r"""An input without the answer field its writer went on to add ("...\noutput: contradiction"
    inside the JSON input: the pair's answer, given away in its input). Kept as is when the task's
    own inputs (`references`) have such a line: then it is part of the format.

    >>> cut_answer_field("Premise: A.\nHypothesis: B.\noutput: contradiction")
    'Premise: A.\nHypothesis: B.'
    """
    if any(_NEXT_FIELD.search(r) for r in references):
        return text
    found = _NEXT_FIELD.search(text)
    return text[: found.start()].rstrip() if found else text


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """Every (input, output) object in a reply, in order: the items of {"examples": [...]}, a bare
    list, or the complete objects of a reply cut short. Each item goes through `parse_pair`
    (strict JSON, then its repairs); an object that is not a pair is searched for pairs inside."""
    found: list[tuple[str, str]] = []
    rest = text
    while True:
        obj = first_json_object(rest)
        if obj is None:
            return found
        start = rest.find(obj)
        try:
            found.append(parse_pair(obj))
            rest = rest[start + len(obj) :]
        except ParseError:
            rest = rest[start + 1 :]  # not a pair itself: look inside it
