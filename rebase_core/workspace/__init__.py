"""The workspace: one SQLite file (WAL) holding what the user makes and decides.

Tasks (every save is a version), retrieval runs with their rows and the user's row selection,
pair runs (transform, baselines) with their pairs, every failure with its reason, every curation
action as an event with the pair before and after (per-pair history and undo), per-dataset plans,
prompt versions and small settings. Each call commits at once: a refresh, a crash or a second tab
loses nothing. Storage only: the rules of curation live in `rebase_core.curation`, runs in
`rebase_core.runs`. One module per table group; `Workspace` is all of them on one connection.
"""

from __future__ import annotations

from pathlib import Path

from rebase_core.workspace.events import CurationLog
from rebase_core.workspace.plans import PlanStore
from rebase_core.workspace.records import (
    Action,
    PairEvent,
    PairRun,
    PlanRecord,
    PromptVersion,
    RetrievalRun,
    RetrievedRow,
    RunFailure,
    TaskRecord,
    TaskVersion,
    task_hash,
)
from rebase_core.workspace.retrieval import RetrievalStore
from rebase_core.workspace.tasks import TaskStore

__all__ = [
    "Action",
    "PairEvent",
    "PairRun",
    "PlanRecord",
    "PromptVersion",
    "RetrievalRun",
    "RetrievedRow",
    "RunFailure",
    "TaskRecord",
    "TaskVersion",
    "Workspace",
    "open_workspace",
    "task_hash",
]


class Workspace(TaskStore, RetrievalStore, CurationLog, PlanStore):
    """The SQLite workspace. Thread-safe; every method commits before it returns."""


def open_workspace(path: str | Path) -> Workspace:
    return Workspace(path)
