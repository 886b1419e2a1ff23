"""Scale-out benchmark: the Ray build vs the local build, and queries through a shared store.

    .venv/bin/python bench/scaleout.py [--configs 60] [--rows-per-config 64] [--threads 2]
                                        [--actors 1] [--queries 27]

In one process, on a deterministic sample of bundled configs and the real MiniLM:
1. build: a fresh store with the local engine (`--threads` torch threads), then a fresh store with
   the Ray engine on a local Ray of the machine's CPUs (`--actors` embedding actors of
   `--threads` threads each: the same compute), timed from the call (Ray already started, as a
   cluster is; model loads are counted for both, actor start for Ray); prints cells/s of each,
   the time to the first shard and the rate after it, and Ray/local
   (target >= 0.9: the engine must not cost what it promises to save), and checks the two stores
   hold the same cells;
2. query: publishes the local store to a `chroma run` server on loopback (tables to a folder) and
   times, over the preset tasks, the index query (`nearest_ids`, the retrieval's candidate step)
   and the whole index-method retrieval, embedded vs through the server; p50 and p90;
3. sharding: the same store published over 2 cell collections; the merge's overhead on p50, and
   whether the top-K equals the unsharded one.
Also prints per-core cells/s, what the README's sizing table starts from.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np
from scaleout_fixtures import chroma_server

from rebase_core.corpus import list_shards
from rebase_core.datastore import BuildParams, open_datastore
from rebase_core.datastore.build import _run_build, local_engine
from rebase_core.datastore.ray_engine import RayEngine, connect_ray
from rebase_core.datastore.shared import publish_datastore
from rebase_core.datastore.writer import StoreWriter
from rebase_core.embed import MiniLMEmbedder
from rebase_core.retrieval import RetrievalOptions, retrieve, task_vectors
from rebase_core.settings import Settings
from rebase_core.task import load_task


def _build(store: Path, settings, embedder, chosen, params, engine) -> tuple[float, int, float]:
    """(seconds, cells, seconds until the first shard's work arrived)."""
    store.mkdir(parents=True)
    writer = StoreWriter(store, settings, embedder)
    first: list[float] = []

    def timed(shards, build_params, emb):
        for work in engine(shards, build_params, emb):
            first.append(first[0] if first else time.perf_counter() - started)
            yield work

    started = time.perf_counter()
    report = _run_build(
        writer, store, [("bundled", chosen)], params, lambda p: None, lambda: False, started, timed
    )
    seconds = time.perf_counter() - started
    writer.close()
    return seconds, report.cells_added, first[0] if first else 0.0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=60)
    parser.add_argument("--rows-per-config", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--queries", type=int, default=27)
    parser.add_argument("--depth", type=int, default=4000, help="index candidates per query")
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    shards = list_shards("bundled", settings)
    step = max(1, len(shards) // args.configs)
    chosen = shards[::step][: args.configs]
    params = BuildParams(args.rows_per_config)
    cpus = os.cpu_count() or 1
    print(
        f"scale-out benchmark: {len(chosen)} configs x {args.rows_per_config} rows, "
        f"{cpus} cores, load {os.getloadavg()[0]:.1f}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="rebase-bench-scaleout-"))
    try:
        t0 = time.perf_counter()
        connect_ray(num_cpus=cpus, object_store_memory=300 * 2**20)
        ray_init_s = time.perf_counter() - t0
        # Both engines load the model inside their timing, as a CLI build does (the Ray actors
        # also import torch there; this process imports it at the local build's first embed).
        embedder = MiniLMEmbedder(threads=args.threads)
        local_s, local_cells, local_first = _build(
            tmp / "local", settings, embedder, chosen, params, local_engine
        )
        ray = RayEngine(actors=args.actors, threads=args.threads)
        fresh = MiniLMEmbedder(threads=args.threads)
        ray_s, ray_cells, ray_first = _build(tmp / "ray", settings, fresh, chosen, params, ray)
        a, b = open_datastore(tmp / "local", settings), open_datastore(tmp / "ray", settings)
        same = (a.n_cells, a.n_rows) == (b.n_cells, b.n_rows) and bool(
            np.allclose(np.asarray(a.vectors), np.asarray(b.vectors), atol=1e-4)
        )
        local_rate, ray_rate = local_cells / local_s, ray_cells / ray_s
        print(
            f"build  local  {local_cells:,} cells in {local_s:6.1f} s = {local_rate:6.1f} cells/s"
        )
        print(
            f"build  ray    {ray_cells:,} cells in {ray_s:6.1f} s = {ray_rate:6.1f} cells/s "
            f"({args.actors} actor(s) x {args.threads} threads; ray.init {ray_init_s:.1f} s "
            "not counted)"
        )
        print(
            f"first shard after: local {local_first:.1f} s, ray {ray_first:.1f} s (actor start and "
            f"model load); after it: local {local_cells / (local_s - local_first):.1f}, ray "
            f"{ray_cells / (ray_s - ray_first):.1f} cells/s"
        )
        ratio = ray_rate / local_rate
        print(f"build  ratio ray/local = {ratio:.2f} (target >= 0.9); same store: {same}")
        print(
            f"per core (local engine, {args.threads} threads): "
            f"{local_rate / min(args.threads, cpus):.0f} cells/s"
        )
        import ray as ray_module

        ray_module.shutdown()

        tasks = [load_task(p) for p in sorted((ROOT / "assets" / "presets").glob("*.json"))]
        tasks = tasks[: args.queries]
        vectors = [task_vectors(t, embedder) for t in tasks]
        with chroma_server(tmp / "server") as url:
            on_server = replace(settings, chroma_url=url)
            publish_datastore(tmp / "local", str(tmp / "share"), on_server, prefix="one_")
            publish_datastore(
                tmp / "local", str(tmp / "share2"), on_server, index_shards=2, prefix="two_"
            )
            stores = {
                "embedded": a,
                "server": open_datastore(tmp / "share", on_server),
                "server, 2 shards": open_datastore(tmp / "share2", on_server),
            }
            options = RetrievalOptions(top_k=1000, method="index", candidates=args.depth)
            results: dict[str, tuple[list[float], list[float], list[list[tuple]]]] = {}
            for name, store in stores.items():
                store.chroma.nearest_ids(vectors[0].m_in, 10)  # connect, load the index
                index_s, full_s, tops = [], [], []
                for tv, task in zip(vectors, tasks, strict=True):
                    t = time.perf_counter()
                    store.chroma.nearest_ids(tv.m_in, args.depth)
                    index_s.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    got = retrieve(store, task, embedder, options)
                    full_s.append(time.perf_counter() - t)
                    tops.append([(r.dataset, r.config, r.row_id) for r in got.rows])
                results[name] = (index_s, full_s, tops)
            base = results["embedded"]
            for name, (index_s, full_s, tops) in results.items():
                print(
                    f"query  {name:17s} index({args.depth}) p50 {_pct(index_s, 50):6.1f} ms "
                    f"p90 {_pct(index_s, 90):6.1f} ms; retrieval p50 {_pct(full_s, 50):6.1f} ms; "
                    f"top-1000 equal to embedded: {tops == base[2]}"
                )
            one, two = results["server"], results["server, 2 shards"]
            print(
                "shards merge overhead (2 vs 1, same server): index p50 "
                f"{_pct(two[0], 50) / _pct(one[0], 50):.2f}x, retrieval p50 "
                f"{statistics.median(two[1]) / statistics.median(one[1]):.2f}x"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
