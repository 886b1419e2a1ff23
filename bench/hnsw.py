"""HNSW settings for the cell index, chosen by measurement on real MiniLM vectors.

    .venv/bin/python bench/hnsw.py [--cells 200000] [--depths 3000 12000]

Takes the cell vectors of the default datastore (real all-MiniLM-L6-v2 embeddings of the bundled
corpus) and, for each candidate HNSW configuration, adds them to a fresh Chroma collection and
asks it for the top-N cells of the task-side query vectors retrieval uses (the mean example
input and mean final-answer vectors of every preset task). Prints, per configuration: add rate,
disk per million cells, query p50, and recall@N against the exact top-N — the quantity the
retrieval bound relies on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.retrieval import task_vectors
from rebase_core.settings import Settings
from rebase_core.task import task_from_dict

CONFIGS = {
    "chroma default (M16, efc100)": {"space": "cosine"},
    "M16, efc200": {"space": "cosine", "ef_construction": 200},
    "M32, efc200": {"space": "cosine", "ef_construction": 200, "max_neighbors": 32},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--depths", type=int, nargs="+", default=[3000, 12000])
    parser.add_argument(
        "--unique",
        action="store_true",
        help="index each distinct vector once (label cells repeat thousands of times)",
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = Settings.from_mapping(os.environ)
    store = open_datastore(settings.default_store, settings)
    n = min(args.cells, store.n_cells)
    vectors = np.ascontiguousarray(store.vectors[:n], dtype=np.float32)
    if args.unique:
        _, first = np.unique(vectors, axis=0, return_index=True)
        vectors = vectors[np.sort(first)]
        n = len(vectors)
    embedder = get_embedder(store.embedder_name, 1)
    queries = []
    for path in sorted((ROOT / "assets" / "presets").glob("*.json")):
        tv = task_vectors(task_from_dict(json.loads(path.read_text())), embedder)
        queries += [tv.m_in / np.linalg.norm(tv.m_in), tv.m_out / np.linalg.norm(tv.m_out)]
    # Recall counts a returned cell as right when it scores at least the exact N-th similarity:
    # label cells ("True", "entailment") repeat thousands of times, so the exact top-N is an
    # arbitrary pick among ties and set overlap would call equally good answers wrong.
    sims = [vectors @ q for q in queries]
    kth = {d: [float(np.partition(-s, d - 1)[d - 1]) * -1 for s in sims] for d in args.depths}
    print(
        f"HNSW benchmark: {n:,} real MiniLM cell vectors, {len(queries)} task queries, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for name in args.configs:
        config = CONFIGS[name]
        folder = Path(tempfile.mkdtemp(prefix="rebase-hnsw-"))
        try:
            client = chromadb.PersistentClient(
                path=str(folder), settings=ChromaSettings(anonymized_telemetry=False)
            )
            col = client.create_collection(
                "cells", embedding_function=None, configuration={"hnsw": config}
            )
            started = time.perf_counter()
            for start in range(0, n, 5000):
                col.add(
                    ids=[str(i) for i in range(start, min(n, start + 5000))],
                    embeddings=vectors[start : start + 5000],
                )
            add_rate = n / (time.perf_counter() - started)
            size = int(subprocess.check_output(["du", "-sb", str(folder)]).split()[0])
            line = f"{name:30s} add {add_rate:6.0f}/s, {size / n * 1e6 / 1e9:.2f} GB/M cells"
            for depth in args.depths:
                times, recalls = [], []
                for q, s, t in zip(queries, sims, kth[depth], strict=True):
                    t0 = time.perf_counter()
                    got = col.query(query_embeddings=q[None, :], n_results=depth, include=[])
                    times.append(time.perf_counter() - t0)
                    returned = np.asarray([int(i) for i in got["ids"][0]], dtype=np.int64)
                    recalls.append(float((s[returned] >= t - 1e-6).sum()) / depth)
                line += (
                    f" | top-{depth}: p50 {statistics.median(times) * 1000:.0f} ms, recall "
                    f"mean {statistics.fmean(recalls):.4f} min {min(recalls):.4f}"
                )
            print(line, flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
