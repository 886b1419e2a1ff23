"""Writing a datastore: embedding a shard's cells (pure) and appending it to the store.

`prepare_shard` embeds every cell of a sampled shard and touches no store, so any engine (this
process, a Ray actor) can run it; `StoreWriter` is the one writer of a store — the SQLite tables,
the vector sidecars and the Chroma index — and commits a shard at a time, so a killed build
resumes where it stopped (`_repair_after_crash` drops what a crash left half-written).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rebase_core.corpus import SampledShard, Shard
from rebase_core.datastore.files import (
    FORMAT_VERSION,
    SCHEMA,
    SIDECARS,
    committed_counts,
    connect,
    meta_shards,
    open_chroma,
    sidecar_len,
)
from rebase_core.embed import Embedder
from rebase_core.errors import InputError, StoreError
from rebase_core.settings import Settings
from rebase_core.store import text_hash

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    dataset: str
    config: str
    rows: int
    cells: int
    skipped: str = ""
    notes: tuple[str, ...] = ()


class EmbedCache:
    """Embeds texts once: label-like cells ("True", "entailment") repeat thousands of times."""

    def __init__(self, embedder: Embedder, max_entries: int = 50_000, max_chars: int = 200) -> None:
        self.embedder = embedder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._descriptions: dict[str, np.ndarray] = {}  # one per dataset: a few thousand at most
        self.seconds = 0.0

    def description(self, text: str) -> np.ndarray:
        """A dataset description's vector, embedded once per distinct text: every config of a
        dataset carries the same description, usually longer than the cell cache keeps (it was
        a quarter of a starter build's time, embedded again for each config)."""
        if text not in self._descriptions:
            self._descriptions[text] = self.embed([text])[0]
        return self._descriptions[text]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            hit = self._cache.get(text)
            if hit is not None:
                out[i] = hit
                self._cache.move_to_end(text)
            else:
                todo.setdefault(text, []).append(i)
        if todo:
            started = time.perf_counter()
            unique = list(todo)
            vectors = self.embedder.embed(unique)
            self.seconds += time.perf_counter() - started
            for text, vec in zip(unique, vectors, strict=True):
                out[todo[text]] = vec
                if len(text) <= self._max_chars:
                    self._cache[text] = vec
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return out


@dataclass(frozen=True, slots=True)
class PreparedShard:
    """A shard's rows with every cell embedded: the unit of work a build maps over."""

    sample: SampledShard
    texts: tuple[str, ...]  # cell texts in row order
    columns: tuple[str, ...]
    row_of_cell: np.ndarray  # index into sample.rows
    vectors: np.ndarray
    seconds: float


def prepare_shard(
    sample: SampledShard, embed: Callable[[Sequence[str]], np.ndarray]
) -> PreparedShard:
    """Embed every cell of a sampled shard (pure: no store access, so it can run anywhere)."""
    started = time.perf_counter()
    texts: list[str] = []
    columns: list[str] = []
    owners: list[int] = []
    for r, (_, cells) in enumerate(sample.rows):
        for column, text in cells.items():
            texts.append(text)
            columns.append(column)
            owners.append(r)
    vectors = embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    return PreparedShard(
        sample,
        tuple(texts),
        tuple(columns),
        np.asarray(owners, dtype=np.int64),
        np.asarray(vectors, dtype=np.float32),
        time.perf_counter() - started,
    )


class StoreWriter:
    """Appends shards to a store; owns the SQLite connection, the sidecars and Chroma."""

    def __init__(
        self, store: Path, settings: Settings, embedder: Embedder, chroma_shards: int | None = None
    ) -> None:
        self.store = store
        self.conn = connect(store / "store.sqlite")
        self.conn.executescript(SCHEMA)
        shards = self._check_meta(embedder, chroma_shards)
        self.chroma = open_chroma(store, settings, shards)
        self.embedder = embedder
        self.n_cells, self.n_rows = committed_counts(self.conn)
        self._known = KnownTexts()
        self._repair_after_crash()

    def _check_meta(self, embedder: Embedder, chroma_shards: int | None) -> int:
        """Write a new store's meta, or check an existing one's; returns its index shards."""
        if chroma_shards is not None and chroma_shards < 1:
            raise InputError(f"--chroma-shards must be at least 1, got {chroma_shards}.")
        meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            entries = [
                ("format_version", FORMAT_VERSION),
                ("embedder", embedder.name),
                ("dim", str(embedder.dim)),
                ("created_at", now),
            ]
            if chroma_shards and chroma_shards > 1:  # unsharded stores keep the old meta
                entries.append(("chroma_shards", str(chroma_shards)))
            self.conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", entries)
            return chroma_shards or 1
        if chroma_shards is not None and chroma_shards != meta_shards(meta):
            raise StoreError(
                f"{self.store} has {meta_shards(meta)} index shard(s), not {chroma_shards}; "
                "leave --chroma-shards out to extend it, or build into a new --store folder."
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{self.store} was built by an older version (format "
                f"{meta.get('format_version')}, now {FORMAT_VERSION}); build a new store (delete "
                "the folder or choose another --store)."
            )
        if meta.get("embedder") != embedder.name or int(meta.get("dim", 0)) != embedder.dim:
            raise StoreError(
                f"{self.store} was built with the {meta.get('embedder')!r} embedder "
                f"({meta.get('dim')}-d), not {embedder.name!r}; use --embedder "
                f"{meta.get('embedder')} or a new --store folder."
            )
        return meta_shards(meta)

    def _repair_after_crash(self) -> None:
        """Cut sidecars and Chroma back to what SQLite says was committed.

        Chroma records are per distinct text: a crashed shard may have added texts no committed
        cell holds; those (read from the uncommitted tail of cell_ids) are deleted.
        """
        width = {"vectors.f32": self.embedder.dim}
        ids_path = self.store / "cell_ids.u64"
        if ids_path.exists():
            all_ids = np.fromfile(ids_path, dtype=np.uint64)
            self._known.add(all_ids[: self.n_cells])
            tail = np.unique(all_ids[self.n_cells :])
            orphans = tail[~self._known.contains(tail)]
            if len(orphans):
                logger.warning("dropping %d Chroma records of an unfinished shard", len(orphans))
                self.chroma.delete_cells(orphans)
        for name, dtype in SIDECARS.items():
            path = self.store / name
            committed = self.n_rows if name.startswith("row_") else self.n_cells
            have = sidecar_len(path, dtype, width.get(name, 1))
            if have > committed:
                logger.warning("%s: dropping %d uncommitted entries", name, have - committed)
                with path.open("r+b") as fh:
                    fh.truncate(committed * np.dtype(dtype).itemsize * width.get(name, 1))

    def done_shards(self) -> dict[tuple[str, str], str]:
        """Shards a build need not touch again: every built one, and skipped Hub configs.

        Skipped local and bundled configs are tried again (cheap), so a rule that changed, a
        fixed file or a larger size cap takes effect on the next build.
        """
        rows = self.conn.execute(
            "SELECT d.name, s.config, s.params FROM shards s "
            "JOIN datasets d ON d.idx = s.dataset_idx "
            "WHERE s.skipped = '' OR s.source LIKE 'hf:%'"
        ).fetchall()
        return {(name, config): params for name, config, params in rows}

    def dataset_source(self, name: str) -> str | None:
        row = self.conn.execute("SELECT source FROM datasets WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def ensure_dataset(self, shard: Shard, description: str, vector: np.ndarray) -> int:
        row = self.conn.execute(
            "SELECT idx FROM datasets WHERE name = ?", (shard.dataset,)
        ).fetchone()
        if row:
            return int(row[0])
        cur = self.conn.execute(
            "INSERT INTO datasets(name, description, source, license, keywords, vector) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                shard.dataset,
                description,
                shard.source,
                shard.license,
                json.dumps(list(shard.keywords)),
                vector.astype(np.float32).tobytes(),
            ),
        )
        self.chroma.add_descriptions(
            [shard.dataset],
            vector[None, :],
            [description],
            [{"dataset": shard.dataset, "source": shard.source, "license": shard.license}],
        )
        return int(cur.lastrowid or 0)

    def _append(self, name: str, array: np.ndarray) -> None:
        with (self.store / name).open("ab") as fh:
            fh.write(np.ascontiguousarray(array, dtype=SIDECARS[name]).tobytes())
            fh.flush()
            os.fsync(fh.fileno())

    def write(self, prepared: PreparedShard, dataset_idx: int, params: str) -> ShardOutcome:
        sample = prepared.sample
        shard = sample.shard
        n_new_cells = len(prepared.texts)
        cell_start, row_start = self.n_cells, self.n_rows
        if n_new_cells:
            ids = np.asarray([text_hash(t) for t in prepared.texts], dtype=np.uint64)
            starts = np.zeros(len(sample.rows), dtype=np.int64)
            counts = np.bincount(prepared.row_of_cell, minlength=len(sample.rows))
            starts[1:] = np.cumsum(counts)[:-1]
            self._append("vectors.f32", prepared.vectors)
            self._append("cell_ids.u64", ids)
            self._append("row_start.i64", starts + cell_start)
            self._append("row_dataset.i32", np.full(len(sample.rows), dataset_idx, dtype=np.int32))
            # One Chroma record per text not seen before, with the cell where it first appears.
            _, first = np.unique(ids, return_index=True)
            first = np.sort(first[~self._known.contains(ids[first])])
            metadatas = [
                {
                    "dataset": shard.dataset,
                    "config": shard.config,
                    "row_id": sample.rows[int(prepared.row_of_cell[k])][0],
                    "column": prepared.columns[k],
                }
                for k in first.tolist()
            ]
            self.chroma.add_cells(ids[first], prepared.vectors[first], metadatas)
        n_rows = len(sample.rows) if n_new_cells else 0
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.conn.execute("BEGIN")
        try:
            for k, (row_id, cells) in enumerate(sample.rows[:n_rows]):
                idx = row_start + k
                self.conn.execute(
                    "INSERT INTO rows(idx, dataset_idx, config, row_id, cells) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (idx, dataset_idx, shard.config, row_id, json.dumps(cells, ensure_ascii=False)),
                )
                self.conn.execute(
                    "INSERT INTO rows_fts(rowid, text) VALUES (?, ?)",
                    (idx, "\n".join(cells.values())),
                )
            self.conn.execute(
                "INSERT OR REPLACE INTO shards(dataset_idx, config, source, split, params, "
                "n_source_rows, row_start, row_end, cell_start, cell_end, skipped, notes, seconds, "
                "built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dataset_idx,
                    shard.config,
                    shard.source,
                    sample.split,
                    params,
                    sample.n_source_rows,
                    row_start,
                    row_start + n_rows,
                    cell_start,
                    cell_start + n_new_cells,
                    sample.skipped,
                    json.dumps(list(sample.notes)),
                    prepared.seconds,
                    now,
                ),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.n_cells += n_new_cells
        self.n_rows += n_rows
        if n_new_cells:
            self._known.add(ids)
        return ShardOutcome(
            shard.dataset, shard.config, n_rows, n_new_cells, sample.skipped, sample.notes
        )

    def close(self) -> None:
        self.conn.close()


class KnownTexts:
    """The text ids already in the store: a sorted array plus a small set of recent additions
    (merged in batches, so a build over millions of cells never re-sorts per shard)."""

    def __init__(self) -> None:
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def add(self, ids: np.ndarray) -> None:
        unique = np.unique(ids)
        if len(unique) > 50_000:  # a whole store at start-up: merge at once
            self._sorted = np.union1d(self._sorted, unique)
            return
        self._recent.update(int(i) for i in unique)
        if len(self._recent) > 200_000:
            merged = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
            self._sorted = np.union1d(self._sorted, merged)
            self._recent.clear()

    def contains(self, ids: np.ndarray) -> np.ndarray:
        found = np.zeros(len(ids), dtype=bool)
        if len(self._sorted):
            at = np.minimum(np.searchsorted(self._sorted, ids), len(self._sorted) - 1)
            found = self._sorted[at] == ids
        if self._recent:
            found |= np.fromiter((int(i) in self._recent for i in ids), dtype=bool, count=len(ids))
        return found
