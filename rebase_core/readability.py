"""How readable a retrieval's top rows are (issue 16 §4): identical rows, the share of the
largest dataset, and how high the first dataset of the task's own kind comes.

A support-routing task's top 20 held 18 rows of one dataset, and a date dataset's rows repeated
across two of its configs with the same cells. `content_key` says when two rows are the same row
(retrieval's dedup uses it); `top_readability` and `best_rank` are the figures
`bench/readability.py` prints before and after the app's defaults.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rebase_core.types import ScoredRow


def content_key(cells: Mapping[str, str]) -> tuple[str, ...]:
    """What makes two rows the same row: their cell texts in column order, runs of whitespace
    collapsed. Column names do not count (two configs may name the same columns differently),
    case and punctuation do: "( ] )" and "[ ) ]" are different rows, as are two emojis.

    >>> content_key({"q": "2 +  2", "a": "4"}) == content_key({"input": "2 + 2", "target": "4"})
    True
    >>> content_key({"q": "( ]"}) == content_key({"q": "[ )"})
    False
    """
    return tuple(" ".join(text.split()) for text in cells.values())


@dataclass(frozen=True, slots=True)
class TopReadability:
    """Figures of the first `n` rows of a retrieval (fewer when it returned fewer)."""

    n: int
    datasets: int  # distinct datasets among them
    largest_dataset: str
    largest_share: float  # share of the n rows from the largest dataset, 0..1
    duplicates: int  # rows whose cells repeat a better-ranked row's (content_key)
    mean_score: float


def top_readability(rows: Sequence[ScoredRow], n: int = 100) -> TopReadability:
    """The figures of `rows[:n]` (rows best first)."""
    top = list(rows[:n])
    if not top:
        return TopReadability(0, 0, "", 0.0, 0, 0.0)
    counts = Counter(r.dataset for r in top)
    largest, largest_n = counts.most_common(1)[0]
    keys = [content_key(r.row) for r in top]
    return TopReadability(
        n=len(top),
        datasets=len(counts),
        largest_dataset=largest,
        largest_share=largest_n / len(top),
        duplicates=len(keys) - len(set(keys)),
        mean_score=sum(r.score for r in top) / len(top),
    )


def best_rank(rows: Sequence[ScoredRow], dataset_pattern: str) -> int | None:
    """The 1-based rank of the first row whose dataset name matches the regular expression
    (searched anywhere in the name, any case), or None when no row's does.

    >>> rows = [ScoredRow(d, "c", "0", 0.5, 0.5, 0.5, 0.5, "x", "x", "", {}) for d in "ab"]
    >>> best_rank(rows, "B"), best_rank(rows, "z")
    (2, None)
    """
    pattern = re.compile(dataset_pattern, re.IGNORECASE)
    return next((i for i, r in enumerate(rows, 1) if pattern.search(r.dataset)), None)
