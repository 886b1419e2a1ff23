"""Ranking signals: a task and datastore rows in order, best first (contracts.md).

One JSONL line per instance:

    {"task": {"name", "instruction", "examples", ["exclude_datasets"]},
     "ranking": [{"dataset", "config", "row_id"}, ...], "source": "teacher|curation|..."}

Rows not in `ranking` are unranked. A signal names rows by their datastore key; `resolve_signals`
checks every one against the store before anything trains on it, so a signal from another store
is a clear error rather than a silent gap.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.datastore import Datastore
from rebase_core.errors import InputError
from rebase_core.jsonl import read_jsonl
from rebase_core.task import task_from_dict
from rebase_core.types import Task

SIGNAL_SOURCES = ("teacher", "curation")  # others may come from elsewhere (any string)
MIN_RANKED = 2  # a ranking of one row says nothing about order


@dataclass(frozen=True, slots=True)
class RowRef:
    """A datastore row by its key (what a signal names)."""

    dataset: str
    config: str
    row_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.config, self.row_id)

    def to_json_dict(self) -> dict[str, str]:
        return {"dataset": self.dataset, "config": self.config, "row_id": self.row_id}

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any], *, where: str = "row") -> RowRef:
        if not isinstance(d, Mapping) or "dataset" not in d or "row_id" not in d:
            raise InputError(
                f"{where}: a ranked row must be an object with dataset, config and row_id, got "
                f"{d!r:.80}."
            )
        return cls(str(d["dataset"]), str(d.get("config") or "default"), str(d["row_id"]))


@dataclass(frozen=True, slots=True)
class RankingSignal:
    """One training instance: the task and rows in order of usefulness, best first."""

    task: Task
    ranking: tuple[RowRef, ...]
    source: str = "teacher"

    def to_json_dict(self) -> dict[str, Any]:
        task = self.task.to_dict()
        if not task.get("exclude_datasets"):
            task.pop("exclude_datasets", None)
        return {
            "task": task,
            "ranking": [r.to_json_dict() for r in self.ranking],
            "source": self.source,
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any], *, where: str = "signal") -> RankingSignal:
        ranking = d.get("ranking")
        if not isinstance(ranking, list):
            raise InputError(
                f"{where}: 'ranking' must be a list of rows (dataset, config, row_id), got "
                f"{ranking!r:.60}."
            )
        task = task_from_dict(d.get("task"), source=f"{where}: task")
        rows = tuple(RowRef.from_json_dict(r, where=f"{where}: ranking") for r in ranking)
        return cls(task, rows, str(d.get("source") or "teacher"))


def write_signals(signals: Iterable[RankingSignal], path: str | Path) -> int:
    """Write signals as JSONL (atomically); returns how many."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"Output folder {path.parent} does not exist; create it first.")
    lines = [json.dumps(s.to_json_dict(), ensure_ascii=False) for s in signals]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return len(lines)


def read_signals(paths: str | Path | Sequence[str | Path]) -> list[RankingSignal]:
    """Signals from one or more JSONL files; a bad line is an InputError naming file and line.
    No signals at all is an error too: there is nothing to train or evaluate on."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[RankingSignal] = []
    for path in paths:
        for i, record in enumerate(read_jsonl(path), start=1):
            out.append(RankingSignal.from_json_dict(record, where=f"{path}: signal {i}"))
    if not out:
        names = ", ".join(str(p) for p in paths) or "(none given)"
        raise InputError(
            f"No ranking signals in {names}; collect some with `python -m rebase_core retriever "
            "collect`."
        )
    return out


def signal_counts(signals: Iterable[RankingSignal]) -> dict[str, int]:
    """Instances per source ('teacher': 40, 'curation': 3)."""
    return dict(Counter(s.source for s in signals))


def resolve_signals(store: Datastore, signals: Sequence[RankingSignal]) -> list[list[int]]:
    """The store's row indexes of every signal's ranking, in order. Raises InputError naming the
    first row the store lacks (signals collected on another datastore) or a signal that ranks
    fewer than two rows."""
    resolved = []
    for i, signal in enumerate(signals, start=1):
        if len(signal.ranking) < MIN_RANKED:
            raise InputError(
                f"Signal {i} ({signal.task.name!r}) ranks {len(signal.ranking)} row(s); a ranking "
                f"needs at least {MIN_RANKED}. Drop it or collect it again."
            )
        idxs = []
        for ref in signal.ranking:
            idx = store.find_row(*ref.key)
            if idx is None:
                raise InputError(
                    f"Signal {i} ({signal.task.name!r}) names the row {'/'.join(ref.key)}, which "
                    f"the datastore {store.path} does not hold; use the store the signals were "
                    "collected on."
                )
            idxs.append(idx)
        resolved.append(idxs)
    return resolved


def split_by_task(
    signals: Sequence[RankingSignal], heldout_share: float, *, seed: int = 0
) -> tuple[list[RankingSignal], list[RankingSignal]]:
    """(train, held out): whole tasks go to one side, so held-out figures are on unseen tasks."""
    names = sorted({s.task.name for s in signals})
    n_out = round(len(names) * heldout_share) if len(names) >= 5 else 0
    rng = random.Random(seed)
    held = set(rng.sample(names, n_out)) if n_out else set()
    return (
        [s for s in signals if s.task.name not in held],
        [s for s in signals if s.task.name in held],
    )
