"""Retrieval benchmark: latency of a top-K ReBase retrieval, index path vs exhaustive, with recall.

    .venv/bin/python bench/retrieval.py                       # bundled store + 1M synthetic
    .venv/bin/python bench/retrieval.py --sizes bundled 1000000 5000000 --queries 20

For each store it runs the same queries through `method="exact"` (the numpy oracle: every cell)
and `method="index"` (Chroma candidates + exact rescoring + the bound check), in one process, and
prints p50/p95 latency (warm), their ratio, recall of the exhaustive top-K and the largest score
difference. Synthetic stores are random unit vectors with row/column structure (datasets of 3-5
columns, each column a noisy cluster around its dataset), built once into bench/out/ and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from rebase_core.corpus import SampledShard, Shard
from rebase_core.datastore import Datastore, PreparedShard, open_datastore
from rebase_core.datastore.writer import StoreWriter
from rebase_core.retrieval import RetrievalOptions, TaskVectors, retrieve_vectors, task_vectors
from rebase_core.settings import Settings

OUT = Path(__file__).resolve().parent / "out"
DIM = 384


class _Synthetic:
    """Stands in for an embedder in the store's metadata (vectors are written directly)."""

    name = "synthetic"
    dim = DIM

    def embed(self, texts):  # only descriptions pass through here
        raise AssertionError("synthetic stores are written directly")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def build_synthetic(n_cells: int, settings: Settings, seed: int = 0) -> Path:
    """A store of ~n_cells random cells with dataset/column structure (built once, cached)."""
    store = OUT / f"synthetic_{n_cells}"
    if (store / "DONE").exists():
        return store
    rng = np.random.default_rng(seed)
    cells_per_dataset = 2000
    n_datasets = max(1, n_cells // cells_per_dataset)
    store.mkdir(parents=True, exist_ok=True)
    writer = StoreWriter(store, settings, _Synthetic())
    started = time.perf_counter()
    done_cells = writer.n_cells
    for d in range(n_datasets):
        name = f"synth/{d:05d}"
        if writer.dataset_source(name) is not None and (name, "default") in writer.done_shards():
            continue
        centre = _unit(rng.standard_normal(DIM))
        n_cols = int(rng.integers(3, 6))
        columns = _unit(centre + 0.9 * _unit(rng.standard_normal((n_cols, DIM))))
        n_rows = cells_per_dataset // n_cols
        noise = _unit(rng.standard_normal((n_rows, n_cols, DIM)))
        vectors = _unit(columns[None, :, :] + 1.1 * noise).reshape(-1, DIM)
        rows = tuple(
            (str(r), {f"c{c}": f"{name} r{r} c{c}" for c in range(n_cols)}) for r in range(n_rows)
        )
        shard = Shard(name, "default", "synthetic", "files", "", description=f"synthetic {d}")
        sample = SampledShard(shard, rows, "train", n_rows)
        texts = tuple(t for _, cells in rows for t in cells.values())
        prepared = PreparedShard(
            sample,
            texts,
            tuple(f"c{c}" for _ in range(n_rows) for c in range(n_cols)),
            np.repeat(np.arange(n_rows), n_cols),
            vectors,
            0.0,
        )
        desc = _unit(centre + 0.8 * _unit(rng.standard_normal(DIM)))
        idx = _insert_dataset(writer, shard, desc)
        writer.write(prepared, idx, "{}")
        done_cells += len(texts)
        if d % 50 == 0:
            rate = (done_cells - 0) / (time.perf_counter() - started)
            print(
                f"  synthetic {n_cells:,}: {done_cells:,} cells ({rate:,.0f} cells/s)", flush=True
            )
    writer.close()
    (store / "DONE").write_text("ok")
    return store


def _insert_dataset(writer: StoreWriter, shard: Shard, vector: np.ndarray) -> int:
    cur = writer.conn.execute(
        "INSERT OR IGNORE INTO datasets(name, description, source, license, keywords, vector) "
        "VALUES (?, ?, ?, '', '[]', ?)",
        (shard.dataset, shard.description, shard.source, vector.tobytes()),
    )
    if cur.rowcount:
        writer.chroma.add_descriptions(
            [shard.dataset], vector[None, :], [shard.description], [{"dataset": shard.dataset}]
        )
    return int(
        writer.conn.execute("SELECT idx FROM datasets WHERE name = ?", (shard.dataset,)).fetchone()[
            0
        ]
    )


def synthetic_queries(store: Datastore, n: int, seed: int = 1) -> list[TaskVectors]:
    """Task-like queries: means of 3 noisy cells of one column (inputs) and of another (outputs)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        row = int(rng.integers(store.n_rows))
        cells = np.asarray(store.vectors[store.row_start[row] : store.row_end[row]])
        pick_in, pick_out = rng.choice(len(cells), 2, replace=False)
        m_in = _unit(cells[pick_in] + 0.7 * _unit(rng.standard_normal((3, DIM)))).mean(axis=0)
        m_out = _unit(cells[pick_out] + 0.7 * _unit(rng.standard_normal((3, DIM)))).mean(axis=0)
        d = int(store.row_dataset[row])
        instr = _unit(store.dataset_vectors[d] + 0.9 * _unit(rng.standard_normal(DIM)))
        out.append(TaskVectors(m_in.astype(np.float32), m_out.astype(np.float32), instr))
    return out


def bundled_queries(store: Datastore, settings: Settings) -> list[TaskVectors]:
    """The preset tasks (held-out sets) plus a few hand-written ones, embedded with MiniLM."""
    from rebase_core.embed import get_embedder
    from rebase_core.task import task_from_dict

    tasks = []
    presets = Path(__file__).resolve().parents[1] / "assets" / "presets"
    for path in sorted(presets.glob("*.json")):
        tasks.append(task_from_dict(json.loads(path.read_text()), source=path.name))
    for path in sorted((Path(__file__).resolve().parent / "tasks").glob("*.json")):
        tasks.append(task_from_dict(json.loads(path.read_text()), source=path.name))
    embedder = get_embedder(store.embedder_name, 1)
    return [task_vectors(t, embedder) for t in tasks]


def measure(store: Datastore, queries: list[TaskVectors], top_k: int) -> dict[str, float]:
    exact_t, index_t, recalls, errors, scanned = [], [], [], [], []
    for q in queries:  # warm-up: page in the vectors, load HNSW
        retrieve_vectors(store, q, RetrievalOptions(top_k=top_k, method="exact"))
        retrieve_vectors(store, q, RetrievalOptions(top_k=top_k, method="index"))
        break
    for q in queries:
        t0 = time.perf_counter()
        ex = retrieve_vectors(store, q, RetrievalOptions(top_k=top_k, method="exact"))
        t1 = time.perf_counter()
        ix = retrieve_vectors(store, q, RetrievalOptions(top_k=top_k, method="index"))
        t2 = time.perf_counter()
        exact_t.append(t1 - t0)
        index_t.append(t2 - t1)
        truth = dict(zip(ex.row_idxs, (r.score for r in ex.rows), strict=True))
        got = dict(zip(ix.row_idxs, (r.score for r in ix.rows), strict=True))
        # A row counts as found when it is in the exhaustive top-K or ties with its last score
        # (rows of repeated label cells tie; which of them fill the last places is arbitrary).
        kth = min(truth.values(), default=0.0)
        found = sum(1 for k, v in got.items() if k in truth or v >= kth - 1e-6)
        recalls.append(found / max(1, len(truth)))
        common = truth.keys() & got.keys()
        errors.append(max((abs(truth[k] - got[k]) for k in common), default=0.0))
        scanned.append(ix.datasets_scanned)

    def pct(xs: list[float], p: float) -> float:
        return float(np.percentile(xs, p))

    return {
        "queries": len(queries),
        "exact_p50_s": pct(exact_t, 50),
        "exact_p95_s": pct(exact_t, 95),
        "index_p50_s": pct(index_t, 50),
        "index_p95_s": pct(index_t, 95),
        "index_over_exact_p50": pct(index_t, 50) / pct(exact_t, 50),
        "recall_min": min(recalls),
        "recall_mean": statistics.fmean(recalls),
        "max_score_error": max(errors),
        "datasets_scanned_p50": pct(scanned, 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["bundled", "1000000"])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    OUT.mkdir(parents=True, exist_ok=True)
    print(
        f"retrieval benchmark: top-{args.top_k}, {args.queries} queries, 1 thread, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for size in args.sizes:
        if size == "bundled":
            path = settings.default_store
            if not (path / "store.sqlite").exists():
                print(f"bundled: no store at {path}; build it first (make setup, then the app)")
                continue
            store = open_datastore(path, settings)
            queries = bundled_queries(store, settings)
        else:
            path = build_synthetic(int(size), settings)
            store = open_datastore(path, settings)
            queries = synthetic_queries(store, args.queries)
        result = measure(store, queries, args.top_k)
        print(
            f"{size:>9}: {store.n_rows:,} rows, {store.n_cells:,} cells, "
            f"{len(store.dataset_names)} datasets"
        )
        print("           " + json.dumps({k: round(v, 4) for k, v in result.items()}))
        store.close()


if __name__ == "__main__":
    main()
