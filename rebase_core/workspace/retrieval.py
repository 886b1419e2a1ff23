"""Retrieval runs: the rows each run found, in rank order, and which of them the user keeps."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rebase_core.types import ScoredRow
from rebase_core.workspace.db import Database, utc_now
from rebase_core.workspace.records import RetrievalRun, RetrievedRow, TaskRecord


class RetrievalStore(Database):
    """Retrieval runs and their rows."""

    def save_retrieval(
        self,
        task: TaskRecord,
        store: str,
        options: Mapping[str, Any],
        method: str,
        seconds: float,
        rows: Sequence[ScoredRow],
        row_idxs: Sequence[int],
    ) -> int:
        with self._tx() as conn:
            run_id = int(
                conn.execute(
                    "INSERT INTO retrieval_runs(task_id, task_version, store, options, method, "
                    "seconds, n_rows, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        task.id,
                        task.version,
                        store,
                        json.dumps(dict(options), default=list),
                        method,
                        seconds,
                        len(rows),
                        utc_now(),
                    ),
                ).lastrowid
                or 0
            )
            conn.executemany(
                "INSERT INTO retrieved_rows(run_id, rank, row_idx, dataset, score, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, rank, int(idx), r.dataset, r.score, json.dumps(r.to_json_dict()))
                    for rank, (r, idx) in enumerate(zip(rows, row_idxs, strict=True))
                ],
            )
        return run_id

    def retrieval_runs(self, task_id: int) -> list[RetrievalRun]:
        return [
            RetrievalRun(
                int(i), int(t), int(v), s, json.loads(o), m, float(sec), int(n), int(sel or 0), at
            )
            for i, t, v, s, o, m, sec, n, sel, at in self._query(
                "SELECT r.id, r.task_id, r.task_version, r.store, r.options, r.method, r.seconds, "
                "r.n_rows, (SELECT SUM(selected) FROM retrieved_rows WHERE run_id = r.id), "
                "r.created_at FROM retrieval_runs r WHERE r.task_id = ? ORDER BY r.id DESC",
                (task_id,),
            )
        ]

    def retrieved_rows(self, run_id: int, *, selected_only: bool = False) -> list[RetrievedRow]:
        """The run's rows in rank order (only the kept ones with `selected_only`)."""
        sql = "SELECT rank, data, selected FROM retrieved_rows WHERE run_id = ?"
        if selected_only:
            sql += " AND selected = 1"
        return [
            RetrievedRow(int(rank), ScoredRow.from_json_dict(json.loads(data)), bool(sel))
            for rank, data, sel in self._query(sql + " ORDER BY rank", (run_id,))
        ]

    def kept_rows(self, run_id: int, limit: int | None = None) -> list[ScoredRow]:
        """The rows the user keeps, best first (the first `limit` of them)."""
        rows = [r.row for r in self.retrieved_rows(run_id, selected_only=True)]
        return rows[:limit] if limit else rows

    def retrieved_row(
        self, run_id: int, dataset: str, config: str, row_id: str
    ) -> ScoredRow | None:
        """One row of a retrieval run by its datastore key (the source of a ReBase pair)."""
        for (data,) in self._query(
            "SELECT data FROM retrieved_rows WHERE run_id = ? AND dataset = ?", (run_id, dataset)
        ):
            row = ScoredRow.from_json_dict(json.loads(data))
            if row.config == config and row.row_id == row_id:
                return row
        return None

    def set_selected(self, run_id: int, ranks: Iterable[int], selected: bool) -> int:
        """Select or deselect rows of a run by rank; returns how many changed."""
        ranks = [int(r) for r in ranks]
        with self._tx() as conn:
            changed = 0
            for start in range(0, len(ranks), 900):
                part = ranks[start : start + 900]
                marks = ",".join("?" * len(part))
                cur = conn.execute(
                    f"UPDATE retrieved_rows SET selected = ? WHERE run_id = ? "
                    f"AND rank IN ({marks}) "
                    "AND selected != ?",
                    (int(selected), run_id, *part, int(selected)),
                )
                changed += cur.rowcount
        return changed

    def set_dataset_selected(self, run_id: int, datasets: Iterable[str], selected: bool) -> int:
        """Keep or drop every row of the named datasets in a run, in one transaction; returns
        how many rows changed."""
        names = sorted({str(d) for d in datasets})
        if not names:
            return 0
        marks = ",".join("?" * len(names))
        with self._tx() as conn:
            cur = conn.execute(
                f"UPDATE retrieved_rows SET selected = ? WHERE run_id = ? "
                f"AND dataset IN ({marks}) AND selected != ?",
                (int(selected), run_id, *names, int(selected)),
            )
            return int(cur.rowcount)
