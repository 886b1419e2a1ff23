"""The shared store: a built datastore published for a team, queried with no local copy.

Layout at the target (a folder on a shared mount, or any fsspec URL: `s3://…`, `gs://…`, …):
- `manifest.json`: format, embedder, dim, counts, and where the index is (collection prefix,
  number of cell shards);
- `datasets.parquet` (names, descriptions, vectors), `shards.parquet` (what was built),
  `rows.parquet` (the full rows as embedded, in row order, in row groups of ROW_GROUP rows, so
  showing a few rows reads a few groups);
- the four sidecars byte for byte (`vectors.f32`, `cell_ids.u64`, `row_start.i64`,
  `row_dataset.i32`): exact rescoring reads the same float32 vectors the embedded store reads,
  memory-mapped on a mount, read once into memory from an object store.
The ANN index lives on a Chroma server (`chroma run`; `REBASE_CHROMA_URL`, comma-separated for
one server per shard). Because the vectors, ids and row order are the store's own, retrieval
through a `SharedDatastore` equals retrieval through the embedded store it was published from.

A store built with `REBASE_CHROMA_URL` set already has its index on the server; publishing then
writes only the tables. A store with an embedded index gets its records copied to the server
(adds are idempotent: a rerun skips shards that are complete).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rebase_core.datastore.files import FORMAT_VERSION, SIDECARS, build_lock, chroma_prefix
from rebase_core.datastore.read import Datastore, StoreStats, open_datastore
from rebase_core.errors import InputError, StoreError
from rebase_core.settings import Settings
from rebase_core.store import HNSW_CONFIG, ChromaIndex, make_clients
from rebase_core.types import DatasetInfo, Progress, ProgressFn, Row, no_progress

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
POINTER = "shared.json"  # in a local folder: {"url": "<shared store>"} makes it open the share
ROW_GROUP = 4096
_COPY_CHUNK = 64 * 2**20
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _fs(target: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(target)
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"Cannot open {target!r} ({exc}): use a folder path or an fsspec URL whose filesystem "
            "is installed (s3:// needs s3fs, gs:// needs gcsfs)."
        ) from exc
    return fs, str(path)


def normalise_target(target: str | Path) -> str:
    """A URL or path as a string; repairs a URL a `Path` collapsed (`s3:/b/x` -> `s3://b/x`)."""
    text = str(target)
    if not _URL.match(text):
        text = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?!/)", r"\1://", text)
    return text


def is_shared(target: str | Path) -> bool:
    """Whether `target` is a published store, or a local folder pointing to one."""
    text = normalise_target(target)
    if _URL.match(text) and not text.startswith("file://"):
        return True
    folder = Path(text.removeprefix("file://")).expanduser()
    return not (folder / "store.sqlite").exists() and (
        (folder / MANIFEST).exists() or (folder / POINTER).exists()
    )


def resolve_share(target: str | Path) -> str:
    """The share a target names: itself, or the URL in its `shared.json` pointer."""
    text = normalise_target(target)
    pointer = Path(text.removeprefix("file://")).expanduser() / POINTER
    if not _URL.match(text) and pointer.exists():
        return str(json.loads(pointer.read_text())["url"])
    return text


@dataclass(frozen=True, slots=True)
class PublishReport:
    target: str
    rows: int
    cells: int
    index_records_copied: int
    index_shards: int
    bytes_written: int

    def summary(self) -> str:
        return (
            f"published {self.rows:,} rows, {self.cells:,} cells ({self.bytes_written / 1e6:,.1f} "
            f"MB) to {self.target}; index: {self.index_shards} shard(s), "
            f"{self.index_records_copied:,} records copied"
        )


def publish_datastore(
    store: str | Path,
    target: str,
    settings: Settings,
    *,
    index_shards: int | None = None,
    prefix: str | None = None,
    on_progress: ProgressFn = no_progress,
) -> PublishReport:
    """Write the store's tables and sidecars to `target` and make sure its index is on the server
    `settings.chroma_url` names (copying it there, over `index_shards` collections, when the
    store's own index is elsewhere)."""

    if not settings.chroma_url:
        raise InputError(
            "Publishing needs a Chroma server for the index: set REBASE_CHROMA_URL (e.g. "
            "http://host:8000 after `chroma run --path DIR --port 8000`)."
        )
    if is_shared(store):
        raise InputError(f"{store} is already a shared store; publish the store it came from.")
    path = Path(store).expanduser()
    if not (path / "store.sqlite").exists():
        raise StoreError(f"No datastore at {path} to publish; build one there first.")
    with build_lock(path):  # not while a build writes to it
        source = open_datastore(store, settings)
        try:
            return _publish(source, target, settings, index_shards, prefix, on_progress)
        finally:
            source.close()


def _publish(
    source: Datastore,
    target: str,
    settings: Settings,
    index_shards: int | None,
    prefix: str | None,
    on_progress: ProgressFn,
) -> PublishReport:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = normalise_target(target)
    fs, root = _fs(target)
    fs.makedirs(root, exist_ok=True)
    shards = index_shards or source.chroma_shards
    prefix = prefix if prefix is not None else chroma_prefix(source.path, settings)
    written = 0
    steps = 5
    on_progress(Progress(0, steps, "copying the vector sidecars"))
    committed = {  # bytes: a crashed build's uncommitted tail is left behind
        "vectors.f32": source.n_cells * source.dim * 4,
        "cell_ids.u64": source.n_cells * 8,
        "row_start.i64": source.n_rows * 8,
        "row_dataset.i32": source.n_rows * 4,
    }
    for name in SIDECARS:
        left = committed[name]
        with (source.path / name).open("rb") as src, fs.open(f"{root}/{name}", "wb") as dst:
            while left and (chunk := src.read(min(_COPY_CHUNK, left))):
                dst.write(chunk)
                written += len(chunk)
                left -= len(chunk)
    on_progress(Progress(1, steps, "writing the row table"))
    tables = {
        "datasets.parquet": source.conn.execute(
            "SELECT idx, name, description, source, license, keywords, vector FROM datasets "
            "ORDER BY idx"
        ),
        "shards.parquet": source.conn.execute(
            "SELECT d.name AS dataset, s.config, s.source, s.split, s.n_source_rows, s.row_start, "
            "s.row_end, s.cell_start, s.cell_end, s.skipped, s.notes, s.built_at FROM shards s "
            "JOIN datasets d ON d.idx = s.dataset_idx ORDER BY d.name, s.config"
        ),
    }
    for name, cursor in tables.items():
        cols = [c[0] for c in cursor.description]
        table = pa.Table.from_pylist([dict(zip(cols, r, strict=True)) for r in cursor])
        written += _write_parquet(fs, f"{root}/{name}", table, pq)
    schema = pa.schema(
        [
            ("idx", pa.int64()),
            ("dataset_idx", pa.int32()),
            ("config", pa.string()),
            ("row_id", pa.string()),
            ("cells", pa.string()),
            ("text", pa.string()),  # the cells joined, for keyword filters
        ]
    )
    with (
        fs.open(f"{root}/rows.parquet", "wb") as fh,
        pq.ParquetWriter(fh, schema, compression="zstd") as out,
    ):
        cursor = source.conn.execute(
            "SELECT idx, dataset_idx, config, row_id, cells FROM rows ORDER BY idx"
        )
        while batch := cursor.fetchmany(ROW_GROUP):
            texts = ["\n".join(json.loads(b[4]).values()) for b in batch]
            cols = list(zip(*batch, strict=True))
            out.write_table(
                pa.Table.from_arrays([*map(list, cols), texts], schema=schema),
                row_group_size=ROW_GROUP,
            )
    written += int(fs.size(f"{root}/rows.parquet"))
    on_progress(Progress(3, steps, "putting the index on the server"))
    copied = _publish_index(source, settings, prefix, shards)
    manifest = {
        "format_version": FORMAT_VERSION,
        "embedder": source.embedder_name,
        "dim": source.dim,
        "rows": source.n_rows,
        "cells": source.n_cells,
        "row_group": ROW_GROUP,
        "chroma_prefix": prefix,
        "chroma_shards": shards,
        "hnsw": HNSW_CONFIG,
    }
    with fs.open(f"{root}/{MANIFEST}", "w") as fh:  # last: a share without it is unfinished
        fh.write(json.dumps(manifest, indent=1))
    on_progress(Progress(steps, steps, "published"))
    report = PublishReport(target, source.n_rows, source.n_cells, copied, shards, written)
    logger.info("%s", report.summary())
    return report


def _write_parquet(fs: Any, path: str, table: Any, pq: Any) -> int:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    with fs.open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return len(buf.getvalue())


def _publish_index(source: Datastore, settings: Settings, prefix: str, shards: int) -> int:
    """Copy the store's index records to the server's collections unless they are there."""
    target = ChromaIndex(make_clients(None, settings.chroma_url), prefix=prefix, shards=shards)
    if (source.path / "chroma").exists():  # built embedded: its records are in the folder
        own = ChromaIndex(make_clients(source.path / "chroma"), shards=source.chroma_shards)
    else:  # built with REBASE_CHROMA_URL: the index is on the server already
        own = source.chroma
    if target.count() >= own.count() and target.descriptions.count() >= own.descriptions.count():
        return 0
    copied = 0
    for ids, vectors, metadatas in own.records():
        target.add_cells(np.asarray(ids, dtype=np.uint64), vectors, metadatas)
        copied += len(ids)
    got = own.descriptions.get(include=["embeddings", "documents", "metadatas"])
    if got["ids"]:
        names = [str((m or {}).get("dataset", "")) for m in got["metadatas"]]
        target.add_descriptions(
            names,
            np.asarray(got["embeddings"], dtype=np.float32),
            list(got["documents"] or []),
            [dict(m or {}) for m in got["metadatas"]],
        )
    return copied


class SharedDatastore(Datastore):
    """A published store opened for reading: the same interface as `Datastore`, no SQLite."""

    def __init__(self, target: str | Path, settings: Settings) -> None:
        import pyarrow.parquet as pq

        self.url = resolve_share(target)
        self.path = Path(self.url.split("://", 1)[-1])
        self._settings = settings
        self._fs, self._root = _fs(self.url)
        protocols = self._fs.protocol
        self._local = "file" in (protocols if isinstance(protocols, tuple) else (protocols,))
        try:
            with self._fs.open(f"{self._root}/{MANIFEST}") as fh:
                self.manifest = json.loads(fh.read())
        except FileNotFoundError as exc:
            raise StoreError(
                f"No shared datastore at {self.url} (no {MANIFEST}); publish one with "
                f"`python -m rebase_core datastore publish --store DIR --to {self.url}`."
            ) from exc
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{self.url} was published by another version (format "
                f"{self.manifest.get('format_version')}, now {FORMAT_VERSION}); publish it again."
            )
        self.embedder_name = str(self.manifest["embedder"])
        self.dim = int(self.manifest["dim"])
        self.chroma_shards = int(self.manifest.get("chroma_shards", 1))
        self.n_cells, self.n_rows = int(self.manifest["cells"]), int(self.manifest["rows"])
        self.vectors = self._sidecar("vectors.f32", self.n_cells, self.dim)
        self.row_start = self._sidecar("row_start.i64", self.n_rows)
        self.row_dataset = self._sidecar("row_dataset.i32", self.n_rows)
        self.row_end = np.append(self.row_start[1:], self.n_cells).astype(np.int64)
        datasets = self._table("datasets.parquet").to_pylist()
        size = max((int(d["idx"]) for d in datasets), default=0) + 1
        self.dataset_names = [""] * size
        self.dataset_descriptions = [""] * size
        self.dataset_vectors = np.zeros((size, self.dim), dtype=np.float32)
        self._datasets = datasets
        for d in datasets:
            self.dataset_names[d["idx"]] = d["name"]
            self.dataset_descriptions[d["idx"]] = d["description"]
            self.dataset_vectors[d["idx"]] = np.frombuffer(d["vector"], dtype=np.float32)
        self._shards = self._table("shards.parquet").to_pylist()
        rows_path = f"{self._root}/rows.parquet"
        # Arrow's own file on a mount; a Python file object only for remote filesystems.
        self._rows_handle = None if self._local else self._fs.open(rows_path, "rb")
        self._rows_file = pq.ParquetFile(rows_path if self._local else self._rows_handle)
        self._groups: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._row_keys: dict[tuple[int, str, str], int] | None = None
        self._chroma: ChromaIndex | None = None
        self._cell_index = None
        self._dataset_rows = None

    def _table(self, name: str) -> Any:
        import pyarrow.parquet as pq

        if self._local:
            return pq.read_table(f"{self._root}/{name}")
        with self._fs.open(f"{self._root}/{name}", "rb") as fh:
            return pq.read_table(fh)

    def _sidecar(self, name: str, length: int, width: int = 1) -> np.ndarray:
        dtype = SIDECARS[name]
        shape = (length, width) if width > 1 else (length,)
        if length == 0:
            return np.zeros(shape, dtype=dtype)
        path = f"{self._root}/{name}"
        if int(self._fs.size(path)) < length * width * np.dtype(dtype).itemsize:
            raise StoreError(f"{self.url}/{name} is shorter than its manifest says; publish again.")
        if self._local:  # a mount: memory-mapped like the embedded store's sidecars
            return np.memmap(path, dtype=dtype, mode="r", shape=shape)
        with self._fs.open(path, "rb") as fh:
            data = fh.read(length * width * np.dtype(dtype).itemsize)
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    def close(self) -> None:
        self._rows_file.close()
        if self._rows_handle is not None:
            self._rows_handle.close()

    @property
    def chroma(self) -> ChromaIndex:
        if self._chroma is None:
            if not self._settings.chroma_url:
                raise InputError(
                    f"The shared store {self.url} keeps its index on a Chroma server: set "
                    "REBASE_CHROMA_URL to that server (e.g. http://host:8000)."
                )
            self._chroma = ChromaIndex(
                make_clients(None, self._settings.chroma_url),
                prefix=str(self.manifest.get("chroma_prefix", "")),
                shards=self.chroma_shards,
            )
        return self._chroma

    def _group(self, g: int) -> list[dict[str, Any]]:
        if g not in self._groups:
            self._groups[g] = self._rows_file.read_row_group(
                g, columns=["idx", "dataset_idx", "config", "row_id", "cells"]
            ).to_pylist()
            while len(self._groups) > 64:
                self._groups.popitem(last=False)
        self._groups.move_to_end(g)
        return self._groups[g]

    def rows(self, row_idxs: Sequence[int]) -> list[Row]:
        group = int(self.manifest.get("row_group", ROW_GROUP))
        out = []
        for i in (int(i) for i in row_idxs):
            if not 0 <= i < self.n_rows:
                continue
            r = self._group(i // group)[i % group]
            out.append(
                Row(
                    self.dataset_names[r["dataset_idx"]],
                    r["config"],
                    r["row_id"],
                    json.loads(r["cells"]),
                )
            )
        return out

    def find_row(self, dataset: str, config: str, row_id: str) -> int | None:
        if self._row_keys is None:
            keys = self._rows_file.read(columns=["idx", "dataset_idx", "config", "row_id"])
            self._row_keys = {
                (int(d), str(c), str(r)): int(i)
                for i, d, c, r in zip(
                    *(keys[col].to_pylist() for col in keys.column_names), strict=True
                )
            }
        try:
            d_idx = self.dataset_names.index(dataset)
        except ValueError:
            return None
        return self._row_keys.get((d_idx, config, row_id))

    def keyword_rows(self, query: str) -> np.ndarray:
        """Rows whose text holds every word of `query` as a whole word (case-insensitive): the
        embedded store's full-text match, by a scan of the text column."""
        import pyarrow.compute as pc

        words = [w for w in "".join(c if c.isalnum() else " " for c in query).split() if w]
        if not words:
            return np.arange(self.n_rows, dtype=np.int64)
        found = []
        for batch in self._rows_file.iter_batches(columns=["idx", "text"], batch_size=65536):
            mask = None
            for w in words:
                hit = pc.match_substring_regex(batch.column(1), rf"(?i)(^|\W){re.escape(w)}(\W|$)")
                mask = hit if mask is None else pc.and_(mask, hit)
            found.append(np.asarray(batch.column(0).filter(mask)))
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)

    def datasets(self) -> list[DatasetInfo]:
        per: dict[str, list[dict[str, Any]]] = {}
        for s in self._shards:
            per.setdefault(s["dataset"], []).append(s)
        out = []
        for d in sorted(self._datasets, key=lambda d: d["name"]):
            shards = per.get(d["name"], [])
            out.append(
                DatasetInfo(
                    name=d["name"],
                    description=d["description"],
                    source=d["source"],
                    license=d["license"],
                    keywords=tuple(json.loads(d["keywords"] or "[]")),
                    configs=tuple(s["config"] for s in shards),
                    n_rows=sum(s["row_end"] - s["row_start"] for s in shards),
                    n_cells=sum(s["cell_end"] - s["cell_start"] for s in shards),
                )
            )
        return out

    def shards(self) -> list[dict[str, Any]]:
        return [
            {
                "dataset": s["dataset"],
                "config": s["config"],
                "source": s["source"],
                "split": s["split"],
                "n_source_rows": s["n_source_rows"],
                "rows": s["row_end"] - s["row_start"],
                "cells": s["cell_end"] - s["cell_start"],
                "skipped": s["skipped"],
                "notes": json.loads(s["notes"]),
                "built_at": s["built_at"],
            }
            for s in self._shards
        ]

    def stats(self) -> StoreStats:
        built = [s for s in self._shards if not s["skipped"]]
        by_source: dict[str, list[dict[str, Any]]] = {}
        for s in self._shards:
            by_source.setdefault(s["source"], []).append(s)
        size = sum(
            int(info.get("size") or 0)
            for info in self._fs.ls(self._root, detail=True)
            if info.get("type") == "file"
        )
        return StoreStats(
            datasets=len({s["dataset"] for s in built}),
            configs=len(built),
            rows=self.n_rows,
            cells=self.n_cells,
            bytes=size,
            skipped_configs=len(self._shards) - len(built),
            embedder=self.embedder_name,
            dim=self.dim,
            sources=tuple(
                (
                    src,
                    len({s["dataset"] for s in group}),
                    sum(s["row_end"] - s["row_start"] for s in group),
                    sum(s["cell_end"] - s["cell_start"] for s in group),
                )
                for src, group in sorted(by_source.items())
            ),
            hnsw=dict(self.manifest.get("hnsw", HNSW_CONFIG)),
        )


def link_shared(folder: str | Path, target: str) -> Path:
    """Make a local store folder (e.g. the workspace's default) open the share `target`."""
    folder = Path(folder).expanduser()
    if (folder / "store.sqlite").exists():
        raise InputError(
            f"{folder} holds a built store; link the share into an empty folder (another --store)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / POINTER).write_text(json.dumps({"url": normalise_target(target)}))
    return folder / POINTER
