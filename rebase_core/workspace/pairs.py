"""Pair runs (transform, baselines) with their pairs, and the failure of every work unit that
gave none."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rebase_core.errors import InputError
from rebase_core.types import PAIR_STATUSES, Failure, Pair, PairSource
from rebase_core.workspace.db import Database, utc_now
from rebase_core.workspace.records import PairRun, RunFailure


def stored_extra(pair: Pair) -> dict[str, Any]:
    """The `extra` column: the pair's extras, and its method (no column of its own)."""
    return {**pair.extra, "method": pair.method} if pair.method else dict(pair.extra)


class PairStore(Database):
    """Pair runs, pairs, failures."""

    def create_pair_run(
        self,
        task_id: int,
        kind: str,
        *,
        llm: str = "",
        prompt_version: str = "",
        params: Mapping[str, Any] | None = None,
        job_id: str = "",
    ) -> int:
        with self._tx() as conn:
            return int(
                conn.execute(
                    "INSERT INTO pair_runs(task_id, kind, llm, prompt_version, params, job_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        task_id,
                        kind,
                        llm,
                        prompt_version,
                        json.dumps(dict(params or {}), default=str),
                        job_id,
                        utc_now(),
                    ),
                ).lastrowid
                or 0
            )

    def set_pair_run_job(self, run_id: int, job_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE pair_runs SET job_id = ? WHERE id = ?", (job_id, run_id))

    def pair_runs(self, task_id: int, kind: str | None = None) -> list[PairRun]:
        sql = (
            "SELECT id, task_id, kind, llm, prompt_version, params, job_id, created_at "
            "FROM pair_runs WHERE task_id = ?"
        )
        params: list[Any] = [task_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        return [
            PairRun(int(i), int(t), k, llm, pv, json.loads(p), j, at)
            for i, t, k, llm, pv, p, j, at in self._query(sql + " ORDER BY id DESC", params)
        ]

    def get_pair_run(self, run_id: int) -> PairRun:
        got = self._query(
            "SELECT id, task_id, kind, llm, prompt_version, params, job_id, created_at "
            "FROM pair_runs WHERE id = ?",
            (run_id,),
        )
        if not got:
            raise InputError(f"No pair run {run_id} in the workspace.")
        i, t, k, llm, pv, p, j, at = got[0]
        return PairRun(int(i), int(t), k, llm, pv, json.loads(p), j, at)

    def add_pairs(self, run_id: int, task_id: int, pairs: Sequence[Pair]) -> int:
        """Insert new pairs (ids already present are left alone: resuming adds nothing twice)."""
        now = utc_now()
        with self._tx() as conn:
            start = conn.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM pairs WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            added = 0
            for k, pair in enumerate(pairs):
                cur = conn.execute(
                    "INSERT OR IGNORE INTO pairs(id, run_id, task_id, position, input, output, "
                    "origin, status, source, llm, prompt_version, extra, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        pair.id,
                        run_id,
                        task_id,
                        int(start) + k,
                        pair.input,
                        pair.output,
                        pair.origin,
                        pair.status,
                        json.dumps(pair.source.to_json_dict()) if pair.source else None,
                        pair.llm,
                        pair.prompt_version,
                        json.dumps(stored_extra(pair), default=str),
                        pair.created_at or now,
                        now,
                    ),
                )
                added += cur.rowcount
        return added

    def add_failure(self, run_id: int, key: str, failure: Failure) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO failures(run_id, key, reason, detail, source, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    key,
                    failure.reason,
                    failure.detail,
                    json.dumps(failure.source.to_json_dict()) if failure.source else None,
                    utc_now(),
                ),
            )

    def clear_failure(self, run_id: int, key: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM failures WHERE run_id = ? AND key = ?", (run_id, key))

    def failures(self, run_id: int) -> list[RunFailure]:
        out = []
        for key, reason, detail, source in self._query(
            "SELECT key, reason, detail, source FROM failures WHERE run_id = ? ORDER BY at",
            (run_id,),
        ):
            src = PairSource.from_json_dict(json.loads(source)) if source else None
            out.append(RunFailure(key, Failure(reason, detail, src)))
        return out

    def done_keys(self, run_id: int) -> set[str]:
        """Keys of work units of a run that already produced a pair (for resuming)."""
        keys = set()
        for (extra,) in self._query("SELECT extra FROM pairs WHERE run_id = ?", (run_id,)):
            key = json.loads(extra).get("key")
            if key:
                keys.add(str(key))
        return keys

    def _row_to_pair(self, row: Sequence[Any]) -> Pair:
        pid, inp, out, origin, status, source, llm, pv, extra, created = row
        src = json.loads(source) if source else None
        extras = json.loads(extra)  # the pair's method is kept among the extras
        return Pair(
            id=pid,
            input=inp,
            output=out,
            origin=origin,
            status=status,
            source=PairSource.from_json_dict(src) if src else None,
            llm=llm,
            prompt_version=pv,
            created_at=created,
            extra=extras,
            method=str(extras.pop("method", "") or ""),
        )

    _PAIR_COLUMNS = (
        "id, input, output, origin, status, source, llm, prompt_version, extra, created_at"
    )

    def pairs(
        self,
        *,
        run_id: int | None = None,
        task_id: int | None = None,
        statuses: Sequence[str] | None = None,
        origins: Sequence[str] | None = None,
    ) -> list[Pair]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("run_id", run_id), ("task_id", task_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for column, values in (("status", statuses), ("origin", origins)):
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            self._row_to_pair(r)
            for r in self._query(
                f"SELECT {self._PAIR_COLUMNS} FROM pairs {where} ORDER BY run_id, position", params
            )
        ]

    def get_pair(self, pair_id: str) -> Pair:
        got = self._query(f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,))
        if not got:
            raise InputError(f"No pair {pair_id!r} in the workspace.")
        return self._row_to_pair(got[0])

    def status_counts(
        self, *, run_id: int | None = None, task_id: int | None = None
    ) -> dict[str, int]:
        clause, value = ("run_id", run_id) if run_id is not None else ("task_id", task_id)
        counts = dict.fromkeys(PAIR_STATUSES, 0)
        for status, n in self._query(
            f"SELECT status, COUNT(*) FROM pairs WHERE {clause} = ? GROUP BY status", (value,)
        ):
            counts[status] = int(n)
        return counts
