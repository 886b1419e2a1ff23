"""The Ray build engine: the same shard map as the local build, run by Ray Data.

One Ray task per (dataset, config) reads and samples it (`ray.data.Dataset.map`, a block per
shard); a pool of embedding actors (`map_batches(..., compute=ActorPoolStrategy(...))`, one GPU
each when the cluster has GPUs) embeds the cells and the description; the driver — this process —
streams the results back in shard order and commits each through the single store writer, so the
store is the one the local engine writes (same rows, order, vectors and ids), a rerun skips
finished shards, and a build killed half-way resumes at the first uncommitted one. A task whose
worker dies is retried and a dead actor restarted (Ray Data's defaults: max_retries and
max_restarts -1); a config that cannot be read is a skipped shard, as locally.

`RAY_ADDRESS` (read by `ray.init` itself) names a cluster; without it a local Ray is started.
Ray is imported only here and only when this engine runs.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rebase_core.corpus import Shard
from rebase_core.datastore.build import BuildParams, ShardWork
from rebase_core.datastore.writer import EmbedCache
from rebase_core.embed import Embedder, MiniLMEmbedder
from rebase_core.errors import InputError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # rebase_core, shipped to the workers
# Sampling is reading arrow/json files: a small CPU share, so it runs beside the embedders.
SAMPLE_TASK_CPUS = 0.1


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast, with the fix, when a `host:port` or `ray://host:port` cluster is unreachable
    (`ray.init` itself waits minutes); `auto`, `local` and no address are left to Ray."""
    if not address or address in {"auto", "local"}:
        return
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(
            f"RAY_ADDRESS={address!r} is not host:port, ray://host:port, auto or local."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError(
            f"Could not reach the Ray cluster at {address} ({exc}); start it with `ray start "
            "--head` there, fix RAY_ADDRESS, or unset it to use a local Ray."
        ) from exc


def connect_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Join the cluster at `address` (default: the one `RAY_ADDRESS` names, which `ray.init`
    reads), or start a local Ray; no-op when already connected.

    The package travels to the workers (`py_modules`), so a cluster needs only Python, Ray and the
    requirements installed, not this checkout.
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            "The ray engine needs Ray: `pip install 'ray[data]'` (pinned in requirements.txt), "
            "or build with --engine local."
        ) from exc
    if ray.is_initialized():
        return
    check_ray_address(address)
    if address:
        init_kwargs["address"] = address
    init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("log_to_driver", False)
    try:
        ray.init(runtime_env={"py_modules": [str(PACKAGE_DIR)]}, **init_kwargs)
    except ConnectionError as exc:
        raise InputError(
            f"Could not reach the Ray cluster ({exc}); check RAY_ADDRESS (e.g. ray://head:10001 "
            "or auto with `ray start --head` running), or unset it to use a local Ray."
        ) from exc


def portable_embedder(embedder: Embedder, threads: int | None = None) -> Embedder:
    """An embedder to send to the actors: MiniLM rebuilt from its settings (each actor loads the
    model itself, on its GPU when it has one; `threads` torch threads on a CPU); lighter
    embedders travel as they are."""
    if isinstance(embedder, MiniLMEmbedder):
        return MiniLMEmbedder(
            threads=threads or embedder.threads,
            batch_size=embedder.batch_size,
            precision=embedder.precision,
        )
    return embedder


class _SampleTask:
    """Ray Data row map: one shard in, its pickled `ShardWork` inputs out (sampling only)."""

    def __init__(self, params: BuildParams) -> None:
        self.params = params

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from rebase_core.datastore.build import sample_or_skip

        shard = pickle.loads(row["shard"])
        sample, error = sample_or_skip(shard, self.params)
        return {"k": row["k"], "sample": pickle.dumps((sample, error))}


class _EmbedActor:
    """Ray Data batch map (an actor): embeds each sampled shard's cells and description, keeping
    one embedding cache for its lifetime (label cells repeat across shards)."""

    def __init__(self, embedder: Embedder) -> None:
        self.cache = EmbedCache(embedder)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from rebase_core.corpus import describe
        from rebase_core.datastore.writer import prepare_shard

        works = []
        for blob in batch["sample"]:
            sample, error = pickle.loads(blob)
            prepared = prepare_shard(sample, self.cache.embed)
            description = describe(sample.shard, sample)
            vector = self.cache.description(description)
            works.append(pickle.dumps(ShardWork(prepared, description, vector, error)))
        return {"k": np.asarray(batch["k"]), "work": np.asarray(works, dtype=object)}


@dataclass(frozen=True, slots=True)
class RayEngine:
    """Build engine on Ray Data. `actors`: embedding actors (default: one per GPU, else one per
    `threads` CPUs); `threads`: torch threads per actor (default: the embedder's)."""

    actors: int | None = None
    threads: int | None = None
    address: str | None = None  # None: RAY_ADDRESS (read by ray.init), else a local Ray
    init_kwargs: tuple[tuple[str, Any], ...] = ()

    def plan(self, embedder: Embedder) -> tuple[int, float, float, Embedder]:
        """(actors, CPUs per actor, GPUs per actor, the embedder each actor gets)."""
        import ray

        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 1.0))
        gpus = int(resources.get("GPU", 0))
        portable = portable_embedder(embedder, self.threads)
        threads = self.threads or int(getattr(portable, "threads", 1) or 1)
        if gpus:
            return self.actors or gpus, 1.0, 1.0, portable
        actors = self.actors or max(1, int(cpus // threads))
        # Leave room for the sampling tasks, so the pool never starves them of CPUs.
        per_actor = min(float(threads), (cpus - 2 * SAMPLE_TASK_CPUS) / actors)
        if per_actor <= 0:
            raise InputError(
                f"The Ray cluster has {cpus:g} CPUs, too few for {actors} embedding actors; "
                "choose fewer actors."
            )
        return actors, per_actor, 0.0, portable

    def __call__(
        self, shards: Sequence[Shard], params: BuildParams, embedder: Embedder
    ) -> Iterator[ShardWork]:
        if not shards:
            return iter(())
        connect_ray(self.address, **dict(self.init_kwargs))
        return self._run(shards, params, embedder)

    def _run(
        self, shards: Sequence[Shard], params: BuildParams, embedder: Embedder
    ) -> Iterator[ShardWork]:
        import ray
        from ray.data import ActorPoolStrategy

        actors, actor_cpus, actor_gpus, portable = self.plan(embedder)
        logger.info(
            "ray build: %d shards, %d embedding actor(s) (%.2g CPU, %g GPU each)",
            len(shards),
            actors,
            actor_cpus,
            actor_gpus,
        )
        items = [{"k": k, "shard": pickle.dumps(shard)} for k, shard in enumerate(shards)]
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
        ds.context.execution_options.preserve_order = True  # commit in the local engine's order
        ds.context.enable_progress_bars = False  # progress goes through on_progress
        ds = ds.map(_SampleTask(params), num_cpus=SAMPLE_TASK_CPUS)
        ds = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=(portable,),
            compute=ActorPoolStrategy(min_size=1, max_size=actors),
            batch_size=1,
            batch_format="numpy",
            num_cpus=actor_cpus,
            num_gpus=actor_gpus,
        )
        for expected, row in enumerate(ds.iter_rows()):
            if int(row["k"]) != expected:  # preserve_order is what keeps the store's order
                raise RuntimeError(f"ray build: shard {row['k']} arrived, {expected} expected")
            work: ShardWork = pickle.loads(row["work"])
            yield work
