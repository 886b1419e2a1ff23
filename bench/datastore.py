"""Datastore build benchmark: build throughput vs the raw embedder on the same texts.

    .venv/bin/python bench/datastore.py [--configs 120] [--rows-per-config 64] [--threads 2]

Takes a deterministic sample of configs from the bundled corpus, then in one process:
1. raw: embeds every cell text of those configs with the same embedder settings (batches of the
   embedder's size, texts in build order, duplicates included), timed;
2. build: builds a fresh datastore from the same configs (sampling, embedding with the label cache,
   sidecars, Chroma, SQLite), timed.
Prints cells/s for both and their ratio (what our overhead costs, aim >= 0.85; above 1 means the
embedding cache saved more than the writes cost), peak RSS and disk per million cells.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebase_core.corpus import list_shards, sample_shard
from rebase_core.datastore import BuildParams, open_datastore
from rebase_core.datastore.build import _run_build
from rebase_core.datastore.writer import StoreWriter
from rebase_core.embed import MiniLMEmbedder
from rebase_core.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=120)
    parser.add_argument("--rows-per-config", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    shards = list_shards("bundled", settings)
    step = max(1, len(shards) // args.configs)
    chosen = shards[::step][: args.configs]
    samples = [sample_shard(s, rows_per_config=args.rows_per_config) for s in chosen]
    texts = [t for s in samples for _, cells in s.rows for t in cells.values()]
    print(
        f"datastore build benchmark: {len(chosen)} configs, {len(texts):,} cells, "
        f"{args.threads} threads, load {os.getloadavg()[0]:.1f}"
    )

    embedder = MiniLMEmbedder(threads=args.threads)
    embedder.embed(texts[:64])  # load the model and warm up outside the timings
    t0 = time.perf_counter()
    for start in range(0, len(texts), 512):
        embedder.embed(texts[start : start + 512])
    raw_s = time.perf_counter() - t0

    store = Path(tempfile.mkdtemp(prefix="rebase-bench-store-"))
    try:
        writer = StoreWriter(store, settings, embedder)
        t0 = time.perf_counter()
        report = _run_build(
            writer,
            store,
            [("bundled", chosen)],
            BuildParams(args.rows_per_config),
            lambda p: None,
            lambda: False,
            t0,
        )
        build_s = time.perf_counter() - t0
        writer.close()
        opened = open_datastore(store, settings)
        size = opened.stats().bytes
        cells = opened.n_cells
        opened.close()
    finally:
        shutil.rmtree(store, ignore_errors=True)
    raw_rate = len(texts) / raw_s
    build_rate = report.cells_added / build_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  raw embedder : {raw_rate:8.0f} cells/s ({raw_s:.1f} s, precision {embedder.precision})"
    )
    print(
        f"  build        : {build_rate:8.0f} cells/s ({build_s:.1f} s; embedding "
        f"{report.embed_seconds:.1f} s of it)"
    )
    print(f"  ratio        : {build_rate / raw_rate:.2f}  (build / raw, same texts, same run)")
    print(f"  peak RSS     : {peak_mb:,.0f} MB")
    print(
        f"  disk         : {size / 1e6:,.1f} MB for {cells:,} cells = "
        f"{size / cells * 1e6 / 1e9:.2f} GB per million cells"
    )


if __name__ == "__main__":
    main()
