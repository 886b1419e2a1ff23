"""The workspace's records: what its methods return (frozen; no tuples to unpack by position)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rebase_core.transform.plan import Plan
from rebase_core.types import Failure, Pair, ScoredRow, Task


def task_hash(task: Task) -> str:
    """A fingerprint of what a task asks (plans made for another version do not apply)."""
    return hashlib.sha256(json.dumps(task.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: int
    name: str
    version: int
    task: Task
    updated_at: str


@dataclass(frozen=True, slots=True)
class TaskVersion:
    """One saved version of a task (its history, newest first)."""

    version: int
    saved_at: str
    note: str
    task: Task


@dataclass(frozen=True, slots=True)
class RetrievalRun:
    id: int
    task_id: int
    task_version: int
    store: str
    options: Mapping[str, Any]
    method: str
    seconds: float
    n_rows: int
    n_selected: int
    created_at: str


@dataclass(frozen=True, slots=True)
class RetrievedRow:
    """A row of a retrieval run: its rank (0 = best), the row, and whether the user keeps it."""

    rank: int
    row: ScoredRow
    selected: bool


@dataclass(frozen=True, slots=True)
class PairRun:
    id: int
    task_id: int
    kind: str  # "transform" | "direct" | "self-guide" | "manual"
    llm: str
    prompt_version: str
    params: Mapping[str, Any]
    job_id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class RunFailure:
    """A work unit of a pair run (a row, a baseline call) that gave no pair, and why."""

    key: str
    failure: Failure


@dataclass(frozen=True, slots=True)
class PairEvent:
    id: int
    batch: str
    pair_id: str
    action: str
    before: Pair | None
    after: Pair | None
    at: str
    undone: bool


@dataclass(frozen=True, slots=True)
class Action:
    """One undoable curation action: its batch id, its name (accepted, edit, …), pairs touched."""

    batch: str
    action: str
    pairs: int


@dataclass(frozen=True, slots=True)
class PromptVersion:
    version: str
    template: str
    created_at: str


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A dataset's plan for a task, as saved: the outcome of planning (or the user's edit) and
    what the user chose to do with the dataset's rows (`use`: plan, rewrite or skip; "" = the
    default, plan when valid)."""

    dataset: str
    config: str
    status: str  # valid | invalid | none
    plan: Plan | None
    reason: str
    warnings: tuple[str, ...]
    use: str
    rows: int
    calls: int
    updated_at: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.config)

    @property
    def chosen(self) -> str:
        """What the rows get: the user's choice, else the plan when valid, else a rewrite."""
        return self.use or ("plan" if self.status == "valid" else "rewrite")

    @property
    def applied(self) -> Plan | None:
        """The plan a transform applies to these rows: valid, and chosen (else None)."""
        return self.plan if self.chosen == "plan" and self.status == "valid" else None
