"""Curation signals: what a reviewer decided about a task's pairs, as a ranking of their rows.

A row ranks by the best fate of the pairs made from it: accepted or edited > pending >
rejected, and below those the rows whose transform failed as ungrounded or off-format (the row
could not be made into a pair of the task). Within a tier the rows keep their retrieval order.
Rows with no decision and no such failure are unranked. A task whose rows all share one tier
says nothing about order and gives no signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rebase_core.retriever.signals import MIN_RANKED, RankingSignal, RowRef

if TYPE_CHECKING:
    from rebase_core.workspace import Workspace

# Higher is better; a row keeps the best tier any of its pairs earns.
STATUS_TIERS = {"accepted": 3, "edited": 3, "pending": 2, "rejected": 1}
FAILED_TIER = 0
FAILURE_REASONS = ("ungrounded", "format")  # failures that say the row was unusable


def curation_signal(ws: Workspace, task_id: int) -> RankingSignal | None:
    """The ranking one task's curation implies (see the module docstring), or None."""
    record = ws.get_task(task_id)
    tier: dict[tuple[str, str, str], int] = {}
    score: dict[tuple[str, str, str], float] = {}
    for pair in ws.pairs(task_id=task_id, origins=["rebase"]):
        if pair.source is None or pair.status not in STATUS_TIERS:
            continue
        key = (pair.source.dataset, pair.source.config, pair.source.row_id)
        tier[key] = max(tier.get(key, FAILED_TIER), STATUS_TIERS[pair.status])
        score[key] = pair.source.score or 0.0
    for run in ws.pair_runs(task_id):
        for failed in ws.failures(run.id):
            source = failed.failure.source
            if failed.failure.reason not in FAILURE_REASONS or source is None:
                continue
            key = (source.dataset, source.config, source.row_id)
            tier.setdefault(key, FAILED_TIER)
            score.setdefault(key, source.score or 0.0)
    if len(tier) < MIN_RANKED or len(set(tier.values())) < 2:
        return None
    runs = ws.retrieval_runs(task_id)
    position: dict[tuple[str, str, str], int] = {}
    if runs:
        position = {row.key: i for i, row in enumerate(ws.kept_rows(runs[0].id))}
    unplaced = len(position)
    ordered = sorted(
        tier, key=lambda k: (-tier[k], position.get(k, unplaced), -score.get(k, 0.0), k)
    )
    return RankingSignal(record.task, tuple(RowRef(*k) for k in ordered), "curation")


def curation_signals(ws: Workspace, task_names: Iterable[str] | None = None) -> list[RankingSignal]:
    """Curation signals of every workspace task (or only of the tasks named)."""
    wanted = set(task_names) if task_names is not None else None
    out = []
    for record in ws.list_tasks():
        if wanted is not None and record.name not in wanted:
            continue
        signal = curation_signal(ws, record.id)
        if signal is not None:
            out.append(signal)
    return out
