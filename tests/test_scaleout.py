"""Scale-out: the Ray build engine, the shared store (Chroma server + Parquet tables), sharding.

Real Ray (local, 2 CPUs, started once) and a real `chroma run` server on loopback; no mocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from scaleout_fixtures import start_local_ray, write_corpus

from rebase_core.datastore import build_datastore, open_datastore
from rebase_core.datastore.ray_engine import RayEngine
from rebase_core.embed import HashingEmbedder
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.types import Example, Task

TASK = Task(
    name="t",
    instruction="Sentences about the weather and animals.",
    examples=(Example("A cat in the rain", "animals"), Example("Snow on the road", "weather")),
)


@pytest.fixture(scope="session")
def ray_local():
    start_local_ray(num_cpus=2)
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus", rows_per_topic=6)


def _top(store, method="index", k=10):
    result = retrieve(store, TASK, HashingEmbedder(), RetrievalOptions(top_k=k, method=method))
    return [(r.dataset, r.config, r.row_id, round(r.score, 5)) for r in result.rows]


def _stats(store):
    stats = store.stats().to_json_dict()
    return {k: stats[k] for k in ("datasets", "configs", "rows", "cells", "sources")}


def test_ray_build_writes_the_local_build_store(tmp_path, settings, corpus, ray_local):
    local = build_datastore(tmp_path / "local", corpus, settings, embedder=HashingEmbedder())
    ray = build_datastore(
        tmp_path / "ray", corpus, settings, embedder=HashingEmbedder(), engine=RayEngine()
    )
    assert (
        (ray.shards_built, ray.rows_added, ray.cells_added)
        == (
            local.shards_built,
            local.rows_added,
            local.cells_added,
        )
        == (4, 24, 48)
    )
    a, b = open_datastore(tmp_path / "local", settings), open_datastore(tmp_path / "ray", settings)
    assert _stats(a) == _stats(b)
    assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    assert a.rows(range(a.n_rows)) == b.rows(range(b.n_rows))
    assert a.chroma.count() == b.chroma.count()
    assert _top(a) == _top(b) == _top(a, method="exact")
    assert _top(b)[0][0] in {"weather", "animals"}


def test_a_second_ray_build_adds_only_new_shards(tmp_path, settings, corpus, ray_local):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus[:3], settings, embedder=HashingEmbedder(), engine="ray")
    again = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    assert (again.shards_built, again.shards_already_done, again.cells_added) == (1, 3, 12)
    same = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    assert (same.shards_built, same.shards_already_done, same.cells_added) == (0, 4, 0)
    store = open_datastore(store_dir, settings)
    assert (store.n_rows, store.n_cells) == (24, 48)


class _DiesOnRows:
    """A SQLite connection that dies when a shard's rows are about to be committed."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO rows"):
            raise KeyboardInterrupt  # the driver is killed mid-shard
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_ray_build_killed_half_way_resumes(tmp_path, settings, corpus, ray_local, monkeypatch):
    from rebase_core.datastore import build as datastore

    store_dir = tmp_path / "store"
    calls = {"n": 0}
    real_write = datastore._Writer.write

    def crashing_write(self, prepared, dataset_idx, params):
        calls["n"] += 1
        if calls["n"] == 3:
            self.conn = _DiesOnRows(self.conn)
        return real_write(self, prepared, dataset_idx, params)

    monkeypatch.setattr(datastore._Writer, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    monkeypatch.setattr(datastore._Writer, "write", real_write)
    assert open_datastore(store_dir, settings).n_cells == 24  # two shards committed
    report = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    assert (report.shards_built, report.shards_already_done) == (2, 2)
    build_datastore(tmp_path / "clean", corpus, settings, embedder=HashingEmbedder())
    a, b = open_datastore(tmp_path / "clean", settings), open_datastore(store_dir, settings)
    assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    assert a.chroma.count() == b.chroma.count()
    assert _top(a) == _top(b)
