"""An on-disk response cache: a rerun of the same requests costs nothing.

One SQLite file (`settings.llm_cache_db`) in WAL mode, so worker threads and other processes (a
background transform job and the app) read and write it at once. Each operation opens its own
short connection, which keeps it safe across threads without a connection pool. The key is the
sha256 of everything that changes the answer: provider spec, endpoint, messages, temperature,
max_tokens, JSON schema, seed and sample number. Only replies are stored, never keys or headers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from rebase_core.errors import RebaseError
from rebase_core.llm.base import LLM, Completion, Message, Request, Usage

KEY_VERSION = 1  # bump when the key's recipe changes, so old entries are never misread

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    text TEXT NOT NULL,
    model TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot put {type(value).__name__} into a cache key")


def request_hash(
    spec: str,
    messages: Sequence[Message],
    *,
    temperature: float,
    max_tokens: int,
    json_schema: Mapping[str, Any] | None = None,
    seed: int | None = None,
    sample: int = 0,
    endpoint: str = "",
) -> str:
    """The cache key: sha256 over a canonical JSON of everything that shapes the reply."""
    payload = {
        "v": KEY_VERSION,
        "spec": spec,
        "endpoint": endpoint,
        "messages": [[m.role, m.content] for m in messages],
        "temperature": round(float(temperature), 6),
        "max_tokens": int(max_tokens),
        "json_schema": json_schema,
        "seed": seed,
        "sample": int(sample),
    }
    blob = json.dumps(
        payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cache_key(llm: LLM, request: Request) -> str:
    """The cache key of one runner request sent to `llm`."""
    return request_hash(
        llm.spec,
        request.messages,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        json_schema=request.json_schema,
        seed=request.seed,
        sample=request.sample,
        endpoint=str(getattr(llm, "endpoint", "") or ""),
    )


class ResponseCache:
    """Completions by request hash, in SQLite."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RebaseError(
                f"Cannot create the folder of the LLM response cache {self.path} ({exc}); check "
                "the workspace path (REBASE_HOME) and its permissions."
            ) from exc
        with self._db() as conn, conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection; SQLite failures become a RebaseError that says the fix."""
        try:
            with closing(sqlite3.connect(self.path, timeout=self.busy_timeout_s)) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise RebaseError(
                f"The LLM response cache {self.path} failed ({exc}). If the disk is full, free "
                "space; if the file is damaged, delete it (the cache only saves repeat calls)."
            ) from exc

    def get(self, key: str) -> Completion | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """The cached completions among `keys` (marked `cached=True`)."""
        found: dict[str, Completion] = {}
        unique = list(dict.fromkeys(keys))
        with self._db() as conn:
            for start in range(0, len(unique), 500):  # stay under SQLite's variable limit
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT key, text, model, finish_reason, input_tokens, output_tokens "
                    f"FROM responses WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, model, finish, n_in, n_out in rows:
                    found[key] = Completion(
                        text=text,
                        usage=Usage(int(n_in), int(n_out)),
                        model=model,
                        finish_reason=finish,
                        cached=True,
                    )
        return found

    def put(self, key: str, spec: str, completion: Completion) -> None:
        with self._db() as conn, conn:
            conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    spec,
                    completion.text,
                    completion.model,
                    completion.finish_reason,
                    completion.usage.input_tokens,
                    completion.usage.output_tokens,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self, spec: str | None = None) -> int:
        """Delete all entries (or one provider spec's); returns how many went."""
        with self._db() as conn, conn:
            if spec is None:
                cur = conn.execute("DELETE FROM responses")
            else:
                cur = conn.execute("DELETE FROM responses WHERE spec = ?", (spec,))
            return int(cur.rowcount)
