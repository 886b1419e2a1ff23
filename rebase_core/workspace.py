"""The workspace: one SQLite file (WAL) holding what the user makes and decides.

Tasks (every save is a version), retrieval runs with their rows and the user's row selection,
pair runs (transform, baselines) with their pairs, every failure with its reason, and every
curation action as an event with the pair before and after — which gives per-pair history and
undo. Each call commits at once: a refresh, a crash or a second tab loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebase_core.errors import InputError
from rebase_core.task import task_from_dict
from rebase_core.transform.plan import PLAN_USES, Plan

if TYPE_CHECKING:
    from rebase_core.transform.planner import PlanOutcome
from rebase_core.types import PAIR_STATUSES, Failure, Pair, PairSource, ScoredRow, Task

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_versions(
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    saved_at TEXT NOT NULL,
    PRIMARY KEY(task_id, version)
);
CREATE TABLE IF NOT EXISTS retrieval_runs(
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    task_version INTEGER NOT NULL,
    store TEXT NOT NULL,
    options TEXT NOT NULL,
    method TEXT NOT NULL,
    seconds REAL NOT NULL,
    n_rows INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retrieved_rows(
    run_id INTEGER NOT NULL REFERENCES retrieval_runs(id),
    rank INTEGER NOT NULL,
    row_idx INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    score REAL NOT NULL,
    selected INTEGER NOT NULL DEFAULT 1,
    data TEXT NOT NULL,
    PRIMARY KEY(run_id, rank)
);
CREATE TABLE IF NOT EXISTS pair_runs(
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    kind TEXT NOT NULL,
    llm TEXT NOT NULL DEFAULT '',
    prompt_version TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    job_id TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pairs(
    id TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES pair_runs(id),
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    position INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT,
    llm TEXT NOT NULL DEFAULT '',
    prompt_version TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_by_run ON pairs(run_id, position);
CREATE INDEX IF NOT EXISTS pairs_by_task ON pairs(task_id, status);
CREATE TABLE IF NOT EXISTS failures(
    run_id INTEGER NOT NULL REFERENCES pair_runs(id),
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY(run_id, key)
);
CREATE TABLE IF NOT EXISTS pair_events(
    id INTEGER PRIMARY KEY,
    batch TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    action TEXT NOT NULL,
    before TEXT,
    after TEXT,
    at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_pair ON pair_events(pair_id, id);
CREATE TABLE IF NOT EXISTS prompts(
    version TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans(
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    task_hash TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    plan TEXT,
    reason TEXT NOT NULL DEFAULT '',
    warnings TEXT NOT NULL DEFAULT '[]',
    use TEXT NOT NULL DEFAULT '',
    rows INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY(task_id, dataset, config)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
class PairEvent:
    id: int
    batch: str
    pair_id: str
    action: str
    before: Pair | None
    after: Pair | None
    at: str
    undone: bool


def _stored_extra(pair: Pair) -> dict[str, Any]:
    """The `extra` column: the pair's extras, and its method (no column of its own)."""
    return {**pair.extra, "method": pair.method} if pair.method else dict(pair.extra)


def _pair_json(pair: Pair | None) -> str | None:
    return None if pair is None else json.dumps(pair.to_json_dict(), ensure_ascii=False)


def _pair_from_json(text: str | None) -> Pair | None:
    return None if text is None else Pair.from_json_dict(json.loads(text))


class Workspace:
    """The SQLite workspace. Thread-safe; every method commits before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # ------------------------------------------------------------------------- tasks

    def save_task(self, task: Task, note: str = "") -> TaskRecord:
        """Save a new version of the task (by name); identical content adds no version."""
        data = json.dumps(task.to_dict(), ensure_ascii=False, sort_keys=True)
        now = _now()
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM tasks WHERE name = ?", (task.name,)).fetchone()
            if row is None:
                task_id = int(
                    conn.execute(
                        "INSERT INTO tasks(name, created_at, updated_at) VALUES (?, ?, ?)",
                        (task.name, now, now),
                    ).lastrowid
                    or 0
                )
                last_version, last_data = 0, None
            else:
                task_id = int(row[0])
                last = conn.execute(
                    "SELECT version, data FROM task_versions WHERE task_id = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (task_id,),
                ).fetchone()
                last_version, last_data = (int(last[0]), last[1]) if last else (0, None)
            if last_data == data:
                return TaskRecord(task_id, task.name, last_version, task, now)
            version = last_version + 1
            conn.execute(
                "INSERT INTO task_versions(task_id, version, data, note, saved_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (task_id, version, data, note, now),
            )
            conn.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
        return TaskRecord(task_id, task.name, version, task, now)

    def get_task(self, name_or_id: str | int, version: int | None = None) -> TaskRecord:
        column = "id" if isinstance(name_or_id, int) else "name"
        got = self._query(
            f"SELECT id, name, updated_at FROM tasks WHERE {column} = ?", (name_or_id,)
        )
        if not got:
            raise InputError(f"No task {name_or_id!r} in the workspace.")
        task_id, name, updated = got[0]
        sql = "SELECT version, data FROM task_versions WHERE task_id = ?"
        params: list[Any] = [task_id]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        sql += " ORDER BY version DESC LIMIT 1"
        rows = self._query(sql, params)
        if not rows:
            raise InputError(f"Task {name!r} has no version {version}.")
        return TaskRecord(
            task_id, name, int(rows[0][0]), task_from_dict(json.loads(rows[0][1])), updated
        )

    def list_tasks(self) -> list[TaskRecord]:
        out = []
        for (task_id,) in self._query("SELECT id FROM tasks ORDER BY updated_at DESC, id DESC"):
            out.append(self.get_task(int(task_id)))
        return out

    def task_history(self, task_id: int) -> list[tuple[int, str, str, Task]]:
        """(version, saved_at, note, task) newest first."""
        return [
            (int(v), at, note, task_from_dict(json.loads(data)))
            for v, at, note, data in self._query(
                "SELECT version, saved_at, note, data FROM task_versions WHERE task_id = ? "
                "ORDER BY version DESC",
                (task_id,),
            )
        ]

    def delete_task(self, task_id: int) -> None:
        with self._tx() as conn:
            for table, column in (
                ("pair_events", "pair_id IN (SELECT id FROM pairs WHERE task_id = ?)"),
                ("failures", "run_id IN (SELECT id FROM pair_runs WHERE task_id = ?)"),
                ("pairs", "task_id = ?"),
                ("pair_runs", "task_id = ?"),
                ("retrieved_rows", "run_id IN (SELECT id FROM retrieval_runs WHERE task_id = ?)"),
                ("retrieval_runs", "task_id = ?"),
                ("task_versions", "task_id = ?"),
                ("tasks", "id = ?"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column}", (task_id,))

    # ------------------------------------------------------------------------- retrieval runs

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
                        _now(),
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

    def retrieved_rows(
        self, run_id: int, *, selected_only: bool = False
    ) -> list[tuple[int, ScoredRow, bool]]:
        """(rank, row, selected) in rank order."""
        sql = "SELECT rank, data, selected FROM retrieved_rows WHERE run_id = ?"
        if selected_only:
            sql += " AND selected = 1"
        return [
            (int(rank), ScoredRow.from_json_dict(json.loads(data)), bool(sel))
            for rank, data, sel in self._query(sql + " ORDER BY rank", (run_id,))
        ]

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

    # ------------------------------------------------------------------------- pair runs and pairs

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
                        _now(),
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
        now = _now()
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
                        json.dumps(_stored_extra(pair), default=str),
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
                    _now(),
                ),
            )

    def clear_failure(self, run_id: int, key: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM failures WHERE run_id = ? AND key = ?", (run_id, key))

    def failures(self, run_id: int) -> list[tuple[str, Failure]]:
        out = []
        for key, reason, detail, source in self._query(
            "SELECT key, reason, detail, source FROM failures WHERE run_id = ? ORDER BY at",
            (run_id,),
        ):
            src = json.loads(source) if source else None
            out.append(
                (
                    key,
                    Failure(
                        reason,
                        detail,
                        PairSource.from_json_dict(src) if src else None,
                    ),
                )
            )
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

    # ------------------------------------------------------------------------- curation

    def _write_pair(self, conn: sqlite3.Connection, pair: Pair) -> None:
        conn.execute(
            "UPDATE pairs SET input = ?, output = ?, status = ?, extra = ?, updated_at = ? "
            "WHERE id = ?",
            (
                pair.input,
                pair.output,
                pair.status,
                json.dumps(_stored_extra(pair)),
                _now(),
                pair.id,
            ),
        )

    def apply(self, changes: Sequence[tuple[str, Pair]], action: str) -> str:
        """Write new versions of pairs as one undoable action; returns the action's batch id.

        `changes` are (pair_id, new pair). Each change is recorded with the pair before and
        after, so history shows it and `undo` can restore it.
        """
        batch = uuid.uuid4().hex
        now = _now()
        with self._tx() as conn:
            for pair_id, new in changes:
                got = conn.execute(
                    f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,)
                ).fetchone()
                if got is None:
                    raise InputError(f"No pair {pair_id!r} in the workspace.")
                before = self._row_to_pair(got)
                if new.status not in PAIR_STATUSES:
                    raise InputError(f"Unknown status {new.status!r}; use one of {PAIR_STATUSES}.")
                if before == replace(new, created_at=before.created_at):
                    continue
                self._write_pair(conn, new)
                conn.execute(
                    "INSERT INTO pair_events(batch, pair_id, action, before, after, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (batch, pair_id, action, _pair_json(before), _pair_json(new), now),
                )
        return batch

    def set_status(self, pair_ids: Iterable[str], status: str) -> str:
        """Accept / reject / reset many pairs as one action.

        Accepting an edited pair keeps it 'edited' (an edit already implies acceptance).
        """
        changes = []
        for pair_id in pair_ids:
            pair = self.get_pair(pair_id)
            if status == "accepted" and pair.status == "edited":
                continue
            changes.append((pair_id, replace(pair, status=status)))
        return self.apply(changes, status if status != "pending" else "reset")

    def edit_pair(
        self, pair_id: str, *, input: str | None = None, output: str | None = None
    ) -> str:
        pair = self.get_pair(pair_id)
        new_input = pair.input if input is None else input
        new_output = pair.output if output is None else output
        if not new_input.strip() or not new_output.strip():
            raise InputError("A pair needs a non-empty input and output; reject it instead.")
        return self.apply(
            [(pair_id, replace(pair, input=new_input, output=new_output, status="edited"))], "edit"
        )

    def replace_pair_text(self, pair_id: str, input: str, output: str, action: str) -> str:
        """New text from a regeneration: back to pending, recorded like an edit."""
        pair = self.get_pair(pair_id)
        return self.apply(
            [(pair_id, replace(pair, input=input, output=output, status="pending"))], action
        )

    def history(self, pair_id: str) -> list[PairEvent]:
        return [
            PairEvent(int(i), b, p, a, _pair_from_json(bef), _pair_from_json(aft), at, bool(u))
            for i, b, p, a, bef, aft, at, u in self._query(
                "SELECT id, batch, pair_id, action, before, after, at, undone FROM pair_events "
                "WHERE pair_id = ? ORDER BY id",
                (pair_id,),
            )
        ]

    def original(self, pair_id: str) -> Pair:
        """The pair as it was first written (before any edit or regeneration)."""
        got = self._query(
            "SELECT before FROM pair_events WHERE pair_id = ? AND action != 'undo' ORDER BY id "
            "LIMIT 1",
            (pair_id,),
        )
        first = _pair_from_json(got[0][0]) if got else None
        return first or self.get_pair(pair_id)

    def count_actions(self, pair_id: str, action: str) -> int:
        got = self._query(
            "SELECT COUNT(*) FROM pair_events WHERE pair_id = ? AND action = ?", (pair_id, action)
        )
        return int(got[0][0])

    def last_action(self, task_id: int) -> tuple[str, str, int] | None:
        """(batch, action, number of pairs) of the newest action that can be undone."""
        got = self._query(
            "SELECT e.batch, e.action, COUNT(*) FROM pair_events e "
            "JOIN pairs p ON p.id = e.pair_id "
            "WHERE p.task_id = ? AND e.undone = 0 AND e.action != 'undo' "
            "GROUP BY e.batch ORDER BY MAX(e.id) DESC LIMIT 1",
            (task_id,),
        )
        return (got[0][0], got[0][1], int(got[0][2])) if got else None

    def undo(self, task_id: int) -> tuple[str, int] | None:
        """Undo the newest action on this task's pairs; returns (action, pairs restored)."""
        last = self.last_action(task_id)
        if last is None:
            return None
        batch, action, _ = last
        now = _now()
        with self._tx() as conn:
            events = conn.execute(
                "SELECT id, pair_id, before, after FROM pair_events WHERE batch = ? "
                "ORDER BY id DESC",
                (batch,),
            ).fetchall()
            for event_id, pair_id, before, after in events:
                restored = _pair_from_json(before)
                if restored is None:
                    continue
                self._write_pair(conn, restored)
                conn.execute("UPDATE pair_events SET undone = 1 WHERE id = ?", (event_id,))
                conn.execute(
                    "INSERT INTO pair_events(batch, pair_id, action, before, after, at, undone) "
                    "VALUES (?, ?, 'undo', ?, ?, ?, 1)",
                    (f"undo-{batch}", pair_id, after, before, now),
                )
        return action, len(events)

    # ------------------------------------------------------------------------- prompts, kv

    # ----------------------------------------------------------------------------- plans

    def save_plan(
        self,
        task_id: int,
        task: Task,
        outcome: PlanOutcome,
        *,
        keep_user_plans: bool = True,
    ) -> None:
        """Save a planning outcome (`transform.PlanOutcome`). A plan the user wrote or edited is
        not replaced by a fresh LLM plan (`keep_user_plans`), and the user's `use` choice stays."""
        plan: Plan | None = outcome.plan
        check = outcome.check
        with self._tx() as conn:
            current = conn.execute(
                "SELECT plan, task_hash FROM plans WHERE task_id = ? AND dataset = ? "
                "AND config = ?",
                (task_id, outcome.dataset, outcome.config),
            ).fetchone()
            users = bool(current and current[0] and current[1] == task_hash(task)) and (
                json.loads(current[0]).get("author") == "user"
            )
            if keep_user_plans and users and (plan is None or plan.author != "user"):
                return
            conn.execute(
                "INSERT INTO plans(task_id, task_hash, dataset, config, status, plan, reason, "
                "warnings, rows, calls, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(task_id, dataset, config) DO UPDATE SET task_hash = "
                "excluded.task_hash, status = excluded.status, plan = excluded.plan, reason = "
                "excluded.reason, warnings = excluded.warnings, rows = excluded.rows, calls = "
                "excluded.calls, updated_at = excluded.updated_at",
                (
                    task_id,
                    task_hash(task),
                    outcome.dataset,
                    outcome.config,
                    outcome.status,
                    json.dumps(plan.to_json_dict(), ensure_ascii=False) if plan else None,
                    outcome.reason,
                    json.dumps(list(check.warnings) if check is not None else []),
                    int(outcome.rows),
                    int(outcome.calls),
                    _now(),
                ),
            )

    def set_plan_use(self, task_id: int, dataset: str, config: str, use: str) -> None:
        """The user's choice for a dataset's rows: plan, rewrite, skip (or "" for the default)."""
        if use and use not in PLAN_USES:
            raise InputError(f"A dataset's rows are used by one of {PLAN_USES}, got {use!r}.")
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE plans SET use = ?, updated_at = ? WHERE task_id = ? AND dataset = ? "
                "AND config = ?",
                (use, _now(), task_id, dataset, config),
            )
            if not cur.rowcount:
                raise InputError(f"No plan is saved for {dataset}/{config}; plan it first.")

    def applied_plans(self, task_id: int, task: Task) -> dict[tuple[str, str], Plan]:
        """The saved plans a transform of this task version applies, by (dataset, config)."""
        return {r.key: r.applied for r in self.plans(task_id, task) if r.applied is not None}

    def plans(self, task_id: int, task: Task) -> list[PlanRecord]:
        """The saved plans of this task version, most rows first."""
        out = []
        for row in self._query(
            "SELECT dataset, config, status, plan, reason, warnings, use, rows, calls, "
            "updated_at FROM plans WHERE task_id = ? AND task_hash = ? "
            "ORDER BY rows DESC, dataset, config",
            (task_id, task_hash(task)),
        ):
            dataset, config, status, plan, reason, warnings, use, rows, calls, at = row
            out.append(
                PlanRecord(
                    dataset,
                    config,
                    status,
                    Plan.from_json_dict(json.loads(plan)) if plan else None,
                    reason,
                    tuple(json.loads(warnings)),
                    use,
                    int(rows),
                    int(calls),
                    at,
                )
            )
        return out

    def save_prompt(self, version: str, template: str, note: str = "") -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO prompts(version, template, note, created_at) "
                "VALUES (?, ?, ?, ?)",
                (version, template, note, _now()),
            )

    def prompts(self) -> list[tuple[str, str, str]]:
        """(version, template, created_at) newest first."""
        return [
            (v, t, at)
            for v, t, at in self._query(
                "SELECT version, template, created_at FROM prompts "
                "ORDER BY created_at DESC, rowid DESC"
            )
        ]

    def get_value(self, key: str, default: Any = None) -> Any:
        got = self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(got[0][0]) if got else default

    def delete_value(self, key: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    def set_value(self, key: str, value: Any) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                "excluded.value",
                (key, json.dumps(value)),
            )


def open_workspace(path: str | Path) -> Workspace:
    return Workspace(path)
