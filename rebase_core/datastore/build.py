"""Building and extending a datastore: a map over (dataset, config) shards, committed one by one."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
    build_lock,
)
from rebase_core.datastore.writer import (
    EmbedCache,
    PreparedShard,
    ShardOutcome,
    StoreWriter,
    prepare_shard,
)
from rebase_core.embed import Embedder, get_embedder
from rebase_core.errors import DatasetError, InputError, RebaseError
from rebase_core.settings import Settings
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
        writer = StoreWriter(store, settings, embedder, chroma_shards)
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
    description embedded once: see `EmbedCache.description`)."""
    cache = EmbedCache(embedder)
    for shard in shards:
        yield work_on_shard(shard, params, cache.embed, cache.description)


def _plan_build(
    writer: StoreWriter, shards_by_spec: list[tuple[str, list[Shard]]]
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
    writer: StoreWriter,
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
