"""Before and after: a task's top rows under the base and under a trained retriever, with what
moved and the ranker's score beside the old one (why it moved)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.retriever.ranker import Scorer, ranker_input
from rebase_core.retriever.versions import TrainedRetriever
from rebase_core.types import ScoredRow, Task

DEPTH_FACTOR = 10  # ranks are looked up this far down each list


@dataclass(frozen=True, slots=True)
class MovedRow:
    """A row of either top list: its ranks (0 = best; None = beyond the looked-up depth) and
    scores before and after, and the ranker's score when a ranker was given."""

    row: ScoredRow
    base_rank: int | None
    new_rank: int | None
    base_score: float | None
    new_score: float | None
    ranker_score: float | None = None

    @property
    def moved(self) -> int | None:
        """Places gained (positive: up), or None when a rank is unknown."""
        if self.base_rank is None or self.new_rank is None:
            return None
        return self.base_rank - self.new_rank


def compare_top_rows(
    store: Datastore,
    task: Task,
    base: Embedder,
    retriever: TrainedRetriever,
    k: int = 20,
    *,
    ranker: Scorer | None = None,
    options: RetrievalOptions | None = None,
) -> list[MovedRow]:
    """The union of both top-k lists, in the new order (rows that left the top k last)."""
    opts = replace(options or RetrievalOptions(), top_k=DEPTH_FACTOR * k)
    before = retrieve(store, task, base, opts).rows
    after = retrieve(store, task, retriever.query_embedder(base), opts).rows
    rank_before = {r.key: i for i, r in enumerate(before)}
    rank_after = {r.key: i for i, r in enumerate(after)}
    rows: dict[tuple[str, str, str], ScoredRow] = {r.key: r for r in before[:k]}
    rows.update({r.key: r for r in after[:k]})
    score_before = {r.key: r.score for r in before}
    score_after = {r.key: r.score for r in after}
    keys = sorted(rows, key=lambda key: (rank_after.get(key, len(after)), rank_before.get(key, 0)))
    scores: Sequence[float | None] = [None] * len(keys)
    if ranker is not None:
        shown = [ranker_input(rows[key].row, rows[key].description) for key in keys]
        scores = [float(s) for s in ranker.score(task, shown)]
    return [
        MovedRow(
            row=rows[key],
            base_rank=rank_before.get(key),
            new_rank=rank_after.get(key),
            base_score=score_before.get(key),
            new_score=score_after.get(key),
            ranker_score=score,
        )
        for key, score in zip(keys, scores, strict=True)
    ]
