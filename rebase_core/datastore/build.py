"""Building and extending a datastore: a map over (dataset, config) shards, committed one by one."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rebase_core.corpus import (
    DEFAULT_MAX_CELL_CHARS,
    DEFAULT_MAX_CONFIG_ROWS,
    DEFAULT_ROWS_PER_CONFIG,
    SampledShard,
    Shard,
    describe,
    list_shards,
    sample_shard,
)
from rebase_core.datastore.files import (
    FORMAT_VERSION,
    SCHEMA,
    SIDECARS,
    build_lock,
    committed_counts,
    connect,
    meta_shards,
    open_chroma,
    sidecar_len,
)
from rebase_core.embed import Embedder, get_embedder
from rebase_core.errors import DatasetError, InputError, RebaseError, StoreError
from rebase_core.settings import Settings
from rebase_core.store import (
    text_hash,
)
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)

# The bundled default: sized so the build takes about 20 minutes on the 2-core machine
# (see the datastore note: rows and cells counted there).
BUNDLED_ROWS_PER_CONFIG = 100
# A build is a batch job: 2 embedding threads, with OpenMP told not to spin, which keeps 2 threads
# nearly as fast as 1 when the other core is busy and ~1.7x faster when it is idle.
BUILD_THREADS = 2


@dataclass(frozen=True, slots=True)
class BuildParams:
    """How rows are sampled from each shard (method.md §1)."""

    rows_per_config: int = DEFAULT_ROWS_PER_CONFIG
    max_config_rows: int = DEFAULT_MAX_CONFIG_ROWS
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS

    def to_json(self) -> str:
        return json.dumps(
            {
                "rows_per_config": self.rows_per_config,
                "max_config_rows": self.max_config_rows,
                "max_cell_chars": self.max_cell_chars,
            },
            sort_keys=True,
        )


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    dataset: str
    config: str
    rows: int
    cells: int
    skipped: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one build call did."""

    store: str
    shards_built: int
    shards_skipped: int
    shards_already_done: int
    rows_added: int
    cells_added: int
    seconds: float
    embed_seconds: float
    stopped_early: bool
    outcomes: tuple[ShardOutcome, ...] = ()

    @property
    def cells_per_s(self) -> float:
        return self.cells_added / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        head = (
            f"{self.shards_built} shard(s) built, {self.shards_skipped} skipped, "
            f"{self.shards_already_done} already in the store; +{self.rows_added:,} rows, "
            f"+{self.cells_added:,} cells in {self.seconds:.0f} s"
        )
        return head + (" (stopped early; run again to resume)" if self.stopped_early else "")


class _EmbedCache:
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


# ----------------------------------------------------------------------------- build


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


class _Writer:
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
        self._known = _KnownTexts()
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


class _KnownTexts:
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


def build_datastore(
    store: str | Path,
    sources: Sequence[str],
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    params: BuildParams | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
    engine: str | Engine = "local",
    chroma_shards: int | None = None,
) -> BuildReport:
    """Build or extend the datastore at `store` from `sources` (idempotent and resumable).

    Every spec is expanded before any work, so a typo in the third source fails at once. Within a
    multi-config source, a config that cannot be read is recorded as skipped with its reason; a
    source that is a single file or folder raises instead (its only dataset is unusable).

    `chroma_shards`: cell collections of a new store's index (by text hash; default 1); an
    existing store keeps its own. `engine`: `local` (this process) or `ray` (Ray Data on the
    cluster `RAY_ADDRESS` names, else a local Ray; see ray_engine.py), or an `Engine` callable.
    Every engine writes the same store.
    """
    store = Path(store).expanduser()
    if not sources:
        raise InputError("No source given; use --source bundled, a local path, or hf:<id>.")
    params = params or BuildParams()
    if params.rows_per_config < 1 or params.max_config_rows < 1 or params.max_cell_chars < 16:
        raise InputError(
            f"Invalid build settings {params}: rows per config and the row cap must be >= 1, "
            "and cells must keep at least 16 characters."
        )
    embedder = embedder or get_embedder(settings.embedder, settings.threads)
    run_engine = _resolve_engine(engine)
    started = time.perf_counter()
    shards_by_spec = [(spec, list_shards(spec, settings)) for spec in dict.fromkeys(sources)]
    with build_lock(store):
        writer = _Writer(store, settings, embedder, chroma_shards)
        try:
            return _run_build(
                writer, store, shards_by_spec, params, on_progress, should_stop, started, run_engine
            )
        finally:
            writer.close()


@dataclass(frozen=True, slots=True)
class ShardWork:
    """The pure part of building one shard, done wherever an engine runs it: the sampled rows with
    their cells embedded, the dataset's description and its vector; `error` is why sampling failed
    (the shard is then recorded as skipped, or the build fails when it is a source's only one)."""

    prepared: PreparedShard
    description: str
    description_vector: np.ndarray
    error: RebaseError | None = None


def sample_or_skip(shard: Shard, params: BuildParams) -> tuple[SampledShard, RebaseError | None]:
    """Sample a shard; a config that cannot be read becomes an empty, skipped sample."""
    try:
        return (
            sample_shard(
                shard,
                rows_per_config=params.rows_per_config,
                max_config_rows=params.max_config_rows,
                max_cell_chars=params.max_cell_chars,
            ),
            None,
        )
    except RebaseError as exc:
        logger.warning("%s [%s]: %s", shard.dataset, shard.config, exc)
        return SampledShard(shard, (), "", None, (), f"skipped ({exc})"), exc


def work_on_shard(
    shard: Shard,
    params: BuildParams,
    embed: Callable[[Sequence[str]], np.ndarray],
    embed_description: Callable[[str], np.ndarray] | None = None,
) -> ShardWork:
    """Sample and embed one shard: the map a build runs (locally, or in Ray tasks and actors).
    `embed_description` (default: `embed` on the one text) lets a caller reuse the vector of a
    description it has embedded before."""
    sample, error = sample_or_skip(shard, params)
    prepared = prepare_shard(sample, embed)
    description = describe(shard, sample)
    vector = embed_description(description) if embed_description else embed([description])[0]
    return ShardWork(prepared, description, vector, error)


# A build engine: given the shards to build, yields their work in the same order, lazily (the
# writer commits each before asking for the next, so a stop or a crash loses at most one shard).
Engine = Callable[[Sequence[Shard], BuildParams, Embedder], Iterator[ShardWork]]


def local_engine(
    shards: Sequence[Shard], params: BuildParams, embedder: Embedder
) -> Iterator[ShardWork]:
    """One shard after another in this process, sharing one embedding cache (each distinct
    description embedded once: see `_EmbedCache.description`)."""
    cache = _EmbedCache(embedder)
    for shard in shards:
        yield work_on_shard(shard, params, cache.embed, cache.description)


def _plan_build(
    writer: _Writer, shards_by_spec: list[tuple[str, list[Shard]]]
) -> tuple[list[tuple[Shard, bool]], int]:
    """The shards still to build (with whether each is its source's only one), and how many are
    already in the store."""
    done = writer.done_shards()
    todo: list[tuple[Shard, bool]] = []
    already = 0
    for _spec, shards in shards_by_spec:
        for shard in shards:
            owner = writer.dataset_source(shard.dataset)
            if owner is not None and owner != shard.source:
                raise InputError(
                    f"Dataset name {shard.dataset!r} is already used by source {owner!r}; "
                    "rename the file or folder so each dataset has its own name."
                )
            if (shard.dataset, shard.config) in done:
                already += 1
                continue
            todo.append((shard, len(shards) == 1))
    return todo, already


ENGINES = ("local", "ray")


def _resolve_engine(engine: str | Engine) -> Engine:
    if callable(engine):
        return engine
    if engine == "local":
        return local_engine
    if engine == "ray":
        from rebase_core.datastore.ray_engine import RayEngine

        return RayEngine()
    raise InputError(f"Unknown build engine {engine!r}: expected one of {', '.join(ENGINES)}.")


def _run_build(
    writer: _Writer,
    store: Path,
    shards_by_spec: list[tuple[str, list[Shard]]],
    params: BuildParams,
    on_progress: ProgressFn,
    should_stop: Callable[[], bool],
    started: float,
    engine: Engine = local_engine,
) -> BuildReport:
    todo, already = _plan_build(writer, shards_by_spec)
    outcomes: list[ShardOutcome] = []
    rows_added = cells_added = 0
    embed_seconds = 0.0
    stopped = False
    works = engine([shard for shard, _ in todo], params, writer.embedder)
    try:
        for k, (shard, single) in enumerate(todo):
            if should_stop():
                stopped = True
                break
            on_progress(Progress(k, len(todo), f"{shard.dataset} [{shard.config}]"))
            work = next(works)
            if single and work.error is not None:
                raise work.error
            sample = work.prepared.sample
            if single and sample.skipped:
                raise DatasetError(f"{shard.dataset}: {sample.skipped}.")
            embed_seconds += work.prepared.seconds
            dataset_idx = writer.ensure_dataset(shard, work.description, work.description_vector)
            outcome = writer.write(work.prepared, dataset_idx, params.to_json())
            outcomes.append(outcome)
            rows_added += outcome.rows
            cells_added += outcome.cells
    finally:
        close = getattr(works, "close", None)
        if close is not None:
            close()
    on_progress(Progress(len(outcomes), len(todo), f"done: +{cells_added:,} cells"))
    report = BuildReport(
        store=str(store),
        shards_built=sum(1 for o in outcomes if not o.skipped),
        shards_skipped=sum(1 for o in outcomes if o.skipped),
        shards_already_done=already,
        rows_added=rows_added,
        cells_added=cells_added,
        seconds=time.perf_counter() - started,
        embed_seconds=embed_seconds,
        stopped_early=stopped,
        outcomes=tuple(outcomes),
    )
    logger.info("%s: %s", store, report.summary())
    return report


def run_build_job(params: dict[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler: `{"store", "sources", "rows_per_config"?, "max_config_rows"?, ...}`."""
    build = BuildParams(
        rows_per_config=int(params.get("rows_per_config", DEFAULT_ROWS_PER_CONFIG)),
        max_config_rows=int(params.get("max_config_rows", DEFAULT_MAX_CONFIG_ROWS)),
        max_cell_chars=int(params.get("max_cell_chars", DEFAULT_MAX_CELL_CHARS)),
    )
    threads = int(params.get("threads") or settings.threads)
    embedder = get_embedder(params.get("embedder") or settings.embedder, threads)
    report = build_datastore(
        params["store"],
        list(params["sources"]),
        settings,
        embedder=embedder,
        params=build,
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
        engine=str(params.get("engine") or "local"),
    )
    return {
        "summary": report.summary(),
        "rows_added": report.rows_added,
        "cells_added": report.cells_added,
        "shards_skipped": report.shards_skipped,
        "seconds": report.seconds,
    }


# ----------------------------------------------------------------------------- reading


def build_job_key(store: str | Path) -> str:
    """One build at a time per store folder."""
    return f"datastore_build:{Path(store).expanduser().resolve()}"


def start_build_job(
    settings: Settings,
    store: str | Path,
    sources: Sequence[str],
    params: BuildParams | None = None,
    *,
    threads: int = BUILD_THREADS,
    engine: str = "local",
) -> Any:
    """Start (or find the running) background build of `store`; returns its JobStatus.

    `engine="ray"` runs the job's build on Ray (the cluster the job's `RAY_ADDRESS` names)."""
    from rebase_core.jobs import start_job

    if not sources:
        raise InputError("No source given; choose the bundled corpus, a path, a file or a Hub id.")
    if engine not in ENGINES:
        raise InputError(f"Unknown build engine {engine!r}: expected one of {', '.join(ENGINES)}.")
    params = params or BuildParams()
    return start_job(
        settings,
        "datastore_build",
        {
            "store": str(Path(store).expanduser().resolve()),
            "sources": list(sources),
            "rows_per_config": params.rows_per_config,
            "max_config_rows": params.max_config_rows,
            "max_cell_chars": params.max_cell_chars,
            "threads": threads,
            "engine": engine,
        },
        key=build_job_key(store),
        env={"OMP_WAIT_POLICY": "PASSIVE"},
    )
