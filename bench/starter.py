"""Benchmark: the starter datastore (a few rows of every bundled config, built first on a fresh
install) against the full default store, on the 27 presets.

    .venv/bin/python bench/starter.py [--starter DIR] [--full DIR] [--top 100]

Prints, per preset and in total: how many of the datasets in the full store's top-K are also in
the starter's top-K (the starter has every config, but 8 rows of each instead of 100, so what a
user loses is rows, not datasets), and the starter's best row score as a share of the full
store's. Then the starter store's size and build time (from its shards' embedding seconds and
the build report, if `--report` gives the JSON that `datastore build` printed).
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

from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.settings import Settings
from rebase_core.task import task_from_dict

PRESETS = Path(__file__).resolve().parents[1] / "assets" / "presets"


def main() -> None:
    settings = Settings.from_mapping(os.environ)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starter", type=Path, default=settings.starter_store)
    parser.add_argument("--full", type=Path, default=settings.default_store)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--report", type=Path, help="the starter build's JSON report")
    args = parser.parse_args()
    starter = open_datastore(args.starter, settings)
    full = open_datastore(args.full, settings)
    embedder = get_embedder(full.embedder_name, settings.threads)
    options = RetrievalOptions(top_k=args.top)
    recalls, best, times = [], [], {"starter": 0.0, "full": 0.0}
    print(f"{'preset':44s} datasets of full top-{args.top} in starter's   best score ratio")
    for path in sorted(PRESETS.glob("*.json")):
        task = task_from_dict(json.loads(path.read_text()), source=path.name)
        got = {}
        for name, store in (("starter", starter), ("full", full)):
            start = time.perf_counter()
            got[name] = retrieve(store, task, embedder, options).rows
            times[name] += time.perf_counter() - start
        full_sets = {r.dataset for r in got["full"]}
        starter_sets = {r.dataset for r in got["starter"]}
        recall = len(full_sets & starter_sets) / max(1, len(full_sets))
        ratio = got["starter"][0].score / got["full"][0].score if got["full"] else float("nan")
        recalls.append(recall)
        best.append(ratio)
        print(
            f"{path.stem:44s} {len(full_sets & starter_sets):3d} of {len(full_sets):3d} "
            f"({recall:.2f})            {ratio:.3f}"
        )
    n = len(recalls)
    print(
        f"\nmean over {n} presets: dataset recall {statistics.mean(recalls):.3f} "
        f"(min {min(recalls):.2f}), best-score ratio {statistics.mean(best):.3f} "
        f"(min {min(best):.3f})"
    )
    print(
        f"retrieval time, all presets: starter {times['starter']:.1f} s, full {times['full']:.1f} s"
    )
    for name, store in (("starter", starter), ("full", full)):
        stats = store.stats()
        seconds = sum(float(s.get("seconds") or 0) for s in _shard_seconds(store))
        print(
            f"{name}: {stats.rows:,} rows, {stats.cells:,} cells, {stats.configs:,} configs, "
            f"{stats.bytes / 1e6:,.0f} MB; embedding {seconds:,.0f} s in all shards"
        )
    if args.report and args.report.exists():
        report = json.loads(args.report.read_text())
        print(f"starter build report: {json.dumps(report)[:400]}")


def _shard_seconds(store) -> list[dict]:
    rows = store.conn.execute("SELECT seconds FROM shards").fetchall()
    return [{"seconds": r[0]} for r in rows]


if __name__ == "__main__":
    main()
