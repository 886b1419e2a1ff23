"""The datastore's files: SQLite schema, append-only vector sidecars, Chroma, the build lock."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rebase_core.errors import StoreError
from rebase_core.settings import Settings
from rebase_core.store import (
    ChromaIndex,
    make_clients,
)

logger = logging.getLogger(__name__)


# 2: Chroma holds one record per distinct cell text (1 had one per cell).
FORMAT_VERSION = "2"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets(
    idx INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    license TEXT NOT NULL DEFAULT '',
    keywords TEXT NOT NULL DEFAULT '[]',
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS shards(
    idx INTEGER PRIMARY KEY,
    dataset_idx INTEGER NOT NULL REFERENCES datasets(idx),
    config TEXT NOT NULL,
    source TEXT NOT NULL,
    split TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL,
    n_source_rows INTEGER,
    row_start INTEGER NOT NULL,
    row_end INTEGER NOT NULL,
    cell_start INTEGER NOT NULL,
    cell_end INTEGER NOT NULL,
    skipped TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0,
    built_at TEXT NOT NULL,
    UNIQUE(dataset_idx, config)
);
CREATE TABLE IF NOT EXISTS rows(
    idx INTEGER PRIMARY KEY,
    dataset_idx INTEGER NOT NULL,
    config TEXT NOT NULL,
    row_id TEXT NOT NULL,
    cells TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rows_by_key ON rows(dataset_idx, config, row_id);
CREATE VIRTUAL TABLE IF NOT EXISTS rows_fts USING fts5(
    text, content='', tokenize='unicode61 remove_diacritics 2'
);
"""

SIDECARS = {
    "vectors.f32": np.float32,
    "cell_ids.u64": np.uint64,
    "row_start.i64": np.int64,
    "row_dataset.i32": np.int32,
}


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def sidecar_len(path: Path, dtype: Any, width: int = 1) -> int:
    if not path.exists():
        return 0
    return path.stat().st_size // (np.dtype(dtype).itemsize * width)


@contextlib.contextmanager
def build_lock(store: Path) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    with (store / "build.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(
                f"Another build is writing to {store}; wait for it to finish (see the "
                "Datastore page or `python -m rebase_core job list`)."
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def chroma_prefix(store: Path, settings: Settings) -> str:
    """Collection-name prefix: none when embedded; the store's name on a shared server."""
    if not settings.chroma_url:
        return ""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in store.name)
    return f"{safe[:48]}_"


def open_chroma(store: Path, settings: Settings, shards: int = 1) -> ChromaIndex:
    """The store's index: embedded in `store/chroma`, or on the server(s) `REBASE_CHROMA_URL`
    names (comma-separated servers share the `shards` cell collections round-robin)."""
    clients = make_clients(store / "chroma", settings.chroma_url)
    return ChromaIndex(clients, prefix=chroma_prefix(store, settings), shards=shards)


def meta_shards(meta: dict[str, str]) -> int:
    """How many cell collections a store's index has (the `chroma_shards` meta key; 1 if none)."""
    return int(meta.get("chroma_shards", "1") or 1)


def committed_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT COALESCE(MAX(cell_end), 0), COALESCE(MAX(row_end), 0) FROM shards"
    ).fetchone()
    return int(row[0]), int(row[1])
