"""The workspace's SQLite file: schema, connection, transactions, and the small tables (prompt
versions, key/value settings). Every call commits before it returns (WAL mode)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebase_core.workspace.records import PromptVersion

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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """The connection every part of the workspace shares. Thread-safe."""

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

    # ------------------------------------------------------------------------- prompts, kv

    def save_prompt(self, version: str, template: str, note: str = "") -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO prompts(version, template, note, created_at) "
                "VALUES (?, ?, ?, ?)",
                (version, template, note, utc_now()),
            )

    def prompts(self) -> list[PromptVersion]:
        """Saved prompt versions, newest first."""
        return [
            PromptVersion(v, t, at)
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
