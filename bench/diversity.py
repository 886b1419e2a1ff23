"""Benchmark: the shared 2-D projection (2k / 10k / 50k points) and the metrics on 50k pairs.

The points are synthetic: clustered random unit vectors in 384-d (MiniLM's width; 40 clusters
with noise, so UMAP has structure to find), given to `project` as precomputed vectors with short
synthetic texts, so the figures measure the projection and the metrics, not an embedder. Each size
runs in a fresh process so "first call" includes umap's numba JIT as a user would pay it:

  first   first `project` in the process, fresh data (JIT + fit)
  second  fresh data again, no cache (fit only)
  cached  the second call's data again with the cache folder (hashing + load)

Then the numba cache (`project(..., numba_cache_dir=...)`, see rebase_core/diversity/numba_cache):
the first UMAP of a fresh process (import + first `project`) without it, with an empty cache
folder (cold: compiles and writes) and again with the folder the cold run filled (warm: loads);
"fit" is a second `project` in that process on other data (nothing left to compile).

Run: .venv/bin/python bench/diversity.py [--sizes 2000 10000 50000] [--metrics-n 50000]
                                         [--numba-sizes 2000 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebase_core import diversity
from rebase_core.embed import HashingEmbedder

DIM = 384
_VOCAB = (
    "the a of to in is was for on that with as by at from cat dog river bank claim evidence "
    "supports refutes neutral answer question number list sort count date year city person "
    "compute value function return string python 日本 東京 データ 検索 x y z if else while"
)
WORDS = _VOCAB.split()


def clustered_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM))
    v = centres[rng.integers(0, 40, size=n)] + 0.8 * rng.normal(size=(n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 40, size=n)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(WORDS[i] for i in picks[at : at + length]))
        at += length
    return out


def groups_for(n: int, seed: int) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Four origins, as on the Compare page: a few examples, then three big sets."""
    v, texts = clustered_vectors(n, seed), synthetic_texts(n, seed)
    cuts = [0, 3, 3 + (n - 3) // 3, 3 + 2 * (n - 3) // 3, n]
    names = ["examples", "retrieved", "rebase", "direct"]
    spans = list(zip(names, cuts, cuts[1:], strict=False))
    groups = {k: texts[a:b] for k, a, b in spans}
    vectors = {k: v[a:b] for k, a, b in spans}
    return groups, vectors


def one_size(n: int) -> dict[str, float | str]:
    """Runs in a fresh process (see main)."""
    out: dict[str, float | str] = {"n": n}
    with tempfile.TemporaryDirectory() as cache:
        groups, vectors = groups_for(n, seed=1)
        t = time.perf_counter()
        first = diversity.project(groups, vectors=vectors)
        out["first_s"] = time.perf_counter() - t
        out["method"] = first.method
        groups, vectors = groups_for(n, seed=2)
        t = time.perf_counter()
        diversity.project(groups, vectors=vectors, cache_dir=Path(cache))
        out["second_s"] = time.perf_counter() - t
        t = time.perf_counter()
        cached = diversity.project(groups, vectors=vectors, cache_dir=Path(cache))
        out["cached_s"] = time.perf_counter() - t
        assert cached.from_cache
        t = time.perf_counter()
        diversity.project(groups, vectors=vectors, method="pca")
        out["pca_s"] = time.perf_counter() - t
    return out


def first_umap(n: int, numba_cache: str) -> dict[str, float]:
    """Runs in a fresh process: umap's import, the first `project` on fresh data, then a second
    one on other fresh data (what a fit costs without compiling)."""
    from rebase_core.diversity.numba_cache import import_umap

    folder = Path(numba_cache) if numba_cache else None
    t = time.perf_counter()
    import_umap(folder)
    imported = time.perf_counter() - t
    out = {"import_s": imported}
    for name, seed in (("first_s", 1), ("fit_s", 2)):  # the second: fresh data, nothing to compile
        groups, vectors = groups_for(n, seed=seed)
        t = time.perf_counter()
        diversity.project(groups, vectors=vectors, numba_cache_dir=folder)
        out[name] = time.perf_counter() - t
    return out


def warm_up_cost() -> dict[str, float]:
    t = time.perf_counter()
    import umap  # noqa: F401

    imported = time.perf_counter() - t
    return {"import_umap_s": imported, "warm_up_s": diversity.warm_up()}


def metrics(n: int) -> dict[str, float]:
    texts = synthetic_texts(n, seed=3)
    outputs = [["supports", "refutes", "neutral"][i % 3] for i in range(n)]
    out: dict[str, float] = {"n": n}
    t = time.perf_counter()
    vectors = diversity.embed_texts(HashingEmbedder(dim=DIM), texts)
    out["embed_hash_fake_s"] = time.perf_counter() - t
    t = time.perf_counter()
    m = diversity.measure_diversity(texts, outputs)
    out["text_metrics_s"] = time.perf_counter() - t
    t = time.perf_counter()
    diversity.dispersion(vectors)
    out["dispersion_s"] = time.perf_counter() - t
    t = time.perf_counter()
    diversity.near_duplicate_share(vectors)
    out["near_duplicates_s"] = time.perf_counter() - t
    t = time.perf_counter()
    diversity.measure_diversity(texts, outputs, vectors=vectors)
    out["all_metrics_given_vectors_s"] = time.perf_counter() - t
    out["distinct_2"] = m.distinct_2
    return out


def _child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, *args]
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # the child chooses
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 10000, 50000])
    parser.add_argument("--metrics-n", type=int, default=50000)
    parser.add_argument("--numba-sizes", type=int, nargs="*", default=[2000, 5000])
    parser.add_argument("--child", choices=("size", "warm", "metrics", "first"))
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--numba-cache", default="")
    args = parser.parse_args()
    if args.child == "first":
        print(json.dumps(first_umap(args.n, args.numba_cache)))
        return
    if args.child == "size":
        print(json.dumps(one_size(args.n)))
        return
    if args.child == "warm":
        print(json.dumps(warm_up_cost()))
        return
    if args.child == "metrics":
        print(json.dumps(metrics(args.n)))
        return

    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    if args.sizes:
        warm = _child(["--child", "warm"])
        print(
            f"fresh process: import umap {warm['import_umap_s']:.1f} s, "
            f"warm_up() {warm['warm_up_s']:.1f} s"
        )
        print(
            f"{'points':>7} {'method':>6} {'first(JIT)':>11} {'second':>8} {'cached':>8} {'pca':>7}"
        )
    for n in args.sizes:
        r = _child(["--child", "size", "--n", str(n)])
        print(
            f"{n:>7} {r['method']:>6} {r['first_s']:>10.1f}s {r['second_s']:>7.1f}s "
            f"{r['cached_s']:>7.3f}s {r['pca_s']:>6.3f}s"
        )
    if args.numba_sizes:
        print("first UMAP in a fresh process (import umap + first project), by numba cache:")
        print(f"{'points':>7} {'cache':>6} {'import':>8} {'first':>8} {'total':>8} {'fit':>8}")
    for n in args.numba_sizes:
        with tempfile.TemporaryDirectory() as folder:
            for label, cache in (("none", ""), ("cold", folder), ("warm", folder)):
                r = _child(["--child", "first", "--n", str(n), "--numba-cache", cache])
                total = r["import_s"] + r["first_s"]
                print(
                    f"{n:>7} {label:>6} {r['import_s']:>7.1f}s {r['first_s']:>7.1f}s "
                    f"{total:>7.1f}s {r['fit_s']:>7.1f}s   (load {os.getloadavg()[0]:.1f})"
                )
    m = _child(["--child", "metrics", "--n", str(args.metrics_n)])
    print(
        f"metrics on {m['n']} pairs: text metrics {m['text_metrics_s']:.2f} s, "
        f"dispersion {m['dispersion_s']:.3f} s, near-duplicates {m['near_duplicates_s']:.2f} s, "
        f"all given vectors {m['all_metrics_given_vectors_s']:.2f} s "
        f"(hashing-fake embedding {m['embed_hash_fake_s']:.1f} s, not included)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
