"""Reading a built datastore: vectors, rows, datasets, stats and the cell indexes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rebase_core.datastore.files import (
    FORMAT_VERSION,
    SIDECARS,
    committed_counts,
    connect,
    meta_shards,
    open_chroma,
    sidecar_len,
)
from rebase_core.embed import Embedder
from rebase_core.errors import StoreError
from rebase_core.settings import Settings
from rebase_core.store import (
    HNSW_CONFIG,
    ChromaCellIndex,
    ChromaIndex,
    ExactIndex,
)
from rebase_core.types import DatasetInfo, Row

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreStats:
    datasets: int
    configs: int
    rows: int
    cells: int
    bytes: int
    skipped_configs: int
    embedder: str
    dim: int
    sources: tuple[tuple[str, int, int, int], ...] = ()  # (source, datasets, rows, cells)
    hnsw: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "configs": self.configs,
            "rows": self.rows,
            "cells": self.cells,
            "bytes": self.bytes,
            "skipped_configs": self.skipped_configs,
            "embedder": self.embedder,
            "dim": self.dim,
            "sources": [
                {"source": s, "datasets": d, "rows": r, "cells": c} for s, d, r, c in self.sources
            ],
            "hnsw": self.hnsw,
        }


# ----------------------------------------------------------------------------- storage helpers


class Datastore:
    """A built store opened for reading: vectors, rows, datasets and the Chroma index."""

    def __init__(self, path: str | Path, settings: Settings) -> None:
        self.path = Path(path).expanduser()
        self._settings = settings
        if not (self.path / "store.sqlite").exists():
            raise StoreError(
                f"No datastore at {self.path}. Build one with `python -m rebase_core datastore "
                f"build --store {self.path} --source bundled` or on the Datastore page."
            )
        self.conn = connect(self.path / "store.sqlite")
        meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if meta and meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{self.path} was built by an older version (format "
                f"{meta.get('format_version')}, now {FORMAT_VERSION}); build it again into a "
                "new folder (or delete this one)."
            )
        self.embedder_name = meta.get("embedder", "")
        self.chroma_shards = meta_shards(meta)
        self.dim = int(meta.get("dim", 0))
        self.n_cells, self.n_rows = committed_counts(self.conn)
        self.vectors = self._sidecar("vectors.f32", self.n_cells, self.dim)
        self.row_start = self._sidecar("row_start.i64", self.n_rows)
        self.row_dataset = self._sidecar("row_dataset.i32", self.n_rows)
        self.row_end = np.append(self.row_start[1:], self.n_cells).astype(np.int64)
        ds = self.conn.execute(
            "SELECT idx, name, description, vector FROM datasets ORDER BY idx"
        ).fetchall()
        size = max((int(r[0]) for r in ds), default=0) + 1
        self.dataset_names = [""] * size
        self.dataset_descriptions = [""] * size
        self.dataset_vectors = np.zeros((size, self.dim), dtype=np.float32)
        for idx, name, description, blob in ds:
            self.dataset_names[idx] = name
            self.dataset_descriptions[idx] = description
            self.dataset_vectors[idx] = np.frombuffer(blob, dtype=np.float32)
        self._chroma: ChromaIndex | None = None
        self._cell_index: ChromaCellIndex | None = None
        self._dataset_rows: dict[int, np.ndarray] | None = None

    def _sidecar(self, name: str, length: int, width: int = 1) -> np.ndarray:
        dtype = SIDECARS[name]
        shape = (length, width) if width > 1 else (length,)
        if length == 0:
            return np.zeros(shape, dtype=dtype)
        path = self.path / name
        if sidecar_len(path, dtype, width) < length:
            raise StoreError(
                f"{path} is shorter than the store's index says; the store is damaged. Rebuild "
                "it into a new folder."
            )
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)

    def close(self) -> None:
        self.conn.close()

    @property
    def chroma(self) -> ChromaIndex:
        if self._chroma is None:
            self._chroma = open_chroma(self.path, self._settings, self.chroma_shards)
        return self._chroma

    def cell_index(self, kind: str = "chroma") -> ChromaCellIndex | ExactIndex:
        """The ANN index over cells (`chroma`) or the exhaustive scan (`exact`)."""
        if kind == "exact":
            return ExactIndex(self.vectors)
        if self._cell_index is None:
            ids = self._sidecar("cell_ids.u64", self.n_cells)
            order = np.argsort(ids, kind="stable")
            self._cell_index = ChromaCellIndex(self.chroma, np.asarray(ids)[order], order)
        return self._cell_index

    def dataset_rows(self) -> dict[int, np.ndarray]:
        """Row indexes of each dataset (by dataset index), ascending; computed once."""
        if self._dataset_rows is None:
            order = np.argsort(self.row_dataset, kind="stable")
            grouped = np.asarray(self.row_dataset)[order]
            bounds = np.flatnonzero(np.diff(grouped)) + 1
            self._dataset_rows = {
                int(ds[0]): rows.astype(np.int64)
                for rows, ds in zip(np.split(order, bounds), np.split(grouped, bounds), strict=True)
                if len(rows)
            }
        return self._dataset_rows

    def rows(self, row_idxs: Sequence[int]) -> list[Row]:
        """Full rows (cells as embedded), in the order asked."""
        wanted = [int(i) for i in row_idxs]
        found: dict[int, Row] = {}
        for chunk in range(0, len(wanted), 900):
            part = wanted[chunk : chunk + 900]
            marks = ",".join("?" * len(part))
            for idx, d_idx, config, row_id, cells in self.conn.execute(
                f"SELECT idx, dataset_idx, config, row_id, cells FROM rows WHERE idx IN ({marks})",
                part,
            ):
                found[idx] = Row(self.dataset_names[d_idx], config, row_id, json.loads(cells))
        return [found[i] for i in wanted if i in found]

    def find_row(self, dataset: str, config: str, row_id: str) -> int | None:
        """The row index of (dataset, config, row_id), or None."""
        got = self.conn.execute(
            "SELECT r.idx FROM rows r JOIN datasets d ON d.idx = r.dataset_idx "
            "WHERE d.name = ? AND r.config = ? AND r.row_id = ?",
            (dataset, config, row_id),
        ).fetchone()
        return int(got[0]) if got else None

    def keyword_rows(self, query: str) -> np.ndarray:
        """Row indexes whose cells contain every word of `query` (case-insensitive)."""
        words = [w for w in "".join(c if c.isalnum() else " " for c in query).split() if w]
        if not words:
            return np.arange(self.n_rows, dtype=np.int64)
        match = " AND ".join(f'"{w}"' for w in words)
        got = self.conn.execute("SELECT rowid FROM rows_fts WHERE rows_fts MATCH ?", (match,))
        return np.fromiter((r[0] for r in got), dtype=np.int64)

    def datasets(self) -> list[DatasetInfo]:
        """Every dataset with its configs, row and cell counts."""
        out = []
        for (
            name,
            description,
            source,
            license_,
            keywords,
            configs,
            rows,
            cells,
        ) in self.conn.execute(
            "SELECT d.name, d.description, d.source, d.license, d.keywords, "
            "GROUP_CONCAT(s.config, '\x1f'), SUM(s.row_end - s.row_start), "
            "SUM(s.cell_end - s.cell_start) FROM datasets d LEFT JOIN shards s "
            "ON s.dataset_idx = d.idx GROUP BY d.idx ORDER BY d.name"
        ):
            out.append(
                DatasetInfo(
                    name=name,
                    description=description,
                    source=source,
                    license=license_,
                    keywords=tuple(json.loads(keywords or "[]")),
                    configs=tuple((configs or "").split("\x1f")) if configs else (),
                    n_rows=int(rows or 0),
                    n_cells=int(cells or 0),
                )
            )
        return out

    def search_datasets(
        self, text: str, embedder: Embedder, n: int = 20
    ) -> list[tuple[str, float]]:
        """Datasets whose descriptions are closest in meaning to `text` (Chroma, cosine)."""
        if not text.strip():
            return []
        vector = embedder.embed([text])[0]
        return self.chroma.search_descriptions(vector, n)

    def shards(self) -> list[dict[str, Any]]:
        """Per-config build records: counts, split used, skip reason, notes."""
        cols = (
            "dataset",
            "config",
            "source",
            "split",
            "n_source_rows",
            "rows",
            "cells",
            "skipped",
            "notes",
            "built_at",
        )
        got = self.conn.execute(
            "SELECT d.name, s.config, s.source, s.split, s.n_source_rows, s.row_end - s.row_start, "
            "s.cell_end - s.cell_start, s.skipped, s.notes, s.built_at FROM shards s "
            "JOIN datasets d ON d.idx = s.dataset_idx ORDER BY d.name, s.config"
        )
        return [dict(zip(cols, r, strict=True)) | {"notes": json.loads(r[8])} for r in got]

    def stats(self) -> StoreStats:
        configs, skipped = self.conn.execute(
            "SELECT COUNT(*), SUM(skipped != '') FROM shards"
        ).fetchone()
        n_datasets = self.conn.execute(
            "SELECT COUNT(DISTINCT dataset_idx) FROM shards WHERE skipped = ''"
        ).fetchone()[0]
        sources = tuple(
            (str(s), int(d), int(r or 0), int(c or 0))
            for s, d, r, c in self.conn.execute(
                "SELECT source, COUNT(DISTINCT dataset_idx), SUM(row_end - row_start), "
                "SUM(cell_end - cell_start) FROM shards GROUP BY source ORDER BY source"
            )
        )
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return StoreStats(
            datasets=int(n_datasets),
            configs=int(configs) - int(skipped or 0),
            rows=self.n_rows,
            cells=self.n_cells,
            bytes=size,
            skipped_configs=int(skipped or 0),
            embedder=self.embedder_name,
            dim=self.dim,
            sources=sources,
            hnsw=dict(HNSW_CONFIG),
        )


def open_datastore(path: str | Path, settings: Settings) -> Datastore:
    """Open a built store for reading (raises StoreError with a fix when there is none).

    `path` may also name a shared store (a published folder or fsspec URL, or a folder whose
    `shared.json` points to one): that opens a `SharedDatastore` with the same interface.
    """
    from rebase_core.datastore.shared import SharedDatastore, is_shared

    if is_shared(path):
        return SharedDatastore(path, settings)
    return Datastore(path, settings)
