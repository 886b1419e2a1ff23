"""Scale-out: the Ray build engine, the shared store (Chroma server + Parquet tables), sharding.

Real Ray (local, 2 CPUs, started once) and a real `chroma run` server on loopback; no mocks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scaleout_fixtures import TOPICS, chroma_server, free_port, start_local_ray, write_corpus

from rebase_core.datastore import build_datastore, open_datastore
from rebase_core.datastore.ray_engine import RayEngine
from rebase_core.datastore.shared import SharedDatastore, publish_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import InputError, StoreError
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.settings import PROJECT_ROOT
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


def test_an_embedding_actor_that_dies_is_restarted_and_its_shard_redone(
    tmp_path, settings, corpus, ray_local
):
    import ray.cloudpickle
    import scaleout_fixtures

    ray.cloudpickle.register_pickle_by_value(scaleout_fixtures)  # the workers lack tests/
    marker = tmp_path / "crashed"
    report = build_datastore(
        tmp_path / "store",
        corpus,
        settings,
        embedder=scaleout_fixtures.CrashOnceEmbedder(marker),
        engine="ray",
    )
    assert marker.exists() and report.shards_built == 4
    build_datastore(tmp_path / "ref", corpus, settings, embedder=HashingEmbedder())
    a, b = open_datastore(tmp_path / "ref", settings), open_datastore(tmp_path / "store", settings)
    assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))


def test_an_unreachable_ray_cluster_is_a_clear_error():
    from rebase_core.datastore.ray_engine import check_ray_address

    with pytest.raises(InputError, match="Could not reach the Ray cluster"):
        check_ray_address(f"127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(InputError, match="not host:port"):
        check_ray_address("head-node")
    check_ray_address("auto")  # left to ray.init


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
    from rebase_core.datastore.writer import StoreWriter

    store_dir = tmp_path / "store"
    calls = {"n": 0}
    real_write = StoreWriter.write

    def crashing_write(self, prepared, dataset_idx, params):
        calls["n"] += 1
        if calls["n"] == 3:
            self.conn = _DiesOnRows(self.conn)
        return real_write(self, prepared, dataset_idx, params)

    monkeypatch.setattr(StoreWriter, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    monkeypatch.setattr(StoreWriter, "write", real_write)
    assert open_datastore(store_dir, settings).n_cells == 24  # two shards committed
    report = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder(), engine="ray")
    assert (report.shards_built, report.shards_already_done) == (2, 2)
    build_datastore(tmp_path / "clean", corpus, settings, embedder=HashingEmbedder())
    a, b = open_datastore(tmp_path / "clean", settings), open_datastore(store_dir, settings)
    assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
    assert a.chroma.count() == b.chroma.count()
    assert _top(a) == _top(b)


# ----------------------------------------------------------------------------- shared store


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """Two `chroma run` servers on loopback ports (one shared store's index, or two shards)."""
    root = tmp_path_factory.mktemp("chroma")
    with chroma_server(root / "a") as first, chroma_server(root / "b") as second:
        yield first, second


def _task_file(tmp_path):
    path = tmp_path / "task.json"
    path.write_text(
        json.dumps(
            {
                "name": TASK.name,
                "instruction": TASK.instruction,
                "examples": [{"input": e.input, "output": e.output} for e in TASK.examples],
            }
        )
    )
    return path


def test_a_published_store_retrieves_like_the_embedded_one(tmp_path, settings, corpus, servers):
    local = tmp_path / f"emb-{tmp_path.name}"
    build_datastore(local, corpus, settings, embedder=HashingEmbedder())
    on_server = replace(settings, chroma_url=servers[0])
    report = publish_datastore(local, str(tmp_path / "share"), on_server)
    assert report.index_records_copied == open_datastore(local, settings).chroma.count() > 0
    again = publish_datastore(local, str(tmp_path / "share"), on_server)
    assert again.index_records_copied == 0  # already on the server
    a = open_datastore(local, settings)
    b = open_datastore(f"file://{tmp_path / 'share'}", on_server)
    assert isinstance(b, SharedDatastore)
    assert _stats(a) == _stats(b) and a.datasets() == b.datasets() and a.shards() == b.shards()
    assert a.rows(range(a.n_rows)) == b.rows(range(b.n_rows))
    assert b.find_row("sport", "default", "2") == a.find_row("sport", "default", "2")
    for words in ("cat", "the bank", "rain (1)", "nothing-like-it"):
        assert set(a.keyword_rows(words)) == set(b.keyword_rows(words))
    assert _top(a) == _top(b) == _top(b, method="exact")
    near_a = a.search_datasets("sport", HashingEmbedder())
    near_b = b.search_datasets("sport", HashingEmbedder())
    assert [n for n, _ in near_a] == [n for n, _ in near_b] and near_a[0][0] == "sport"
    assert np.allclose([s for _, s in near_a], [s for _, s in near_b], atol=1e-6)
    with pytest.raises(InputError, match="REBASE_CHROMA_URL"):
        _ = open_datastore(tmp_path / "share", settings).chroma
    # An object store (fsspec's in-memory filesystem stands in for s3:// or gs://): the tables
    # are read through Python file objects and the vectors into memory, with the same answers.
    bucket = f"memory://team/{tmp_path.name}"
    publish_datastore(local, bucket, on_server)
    remote = open_datastore(bucket, on_server)
    assert not isinstance(remote.vectors, np.memmap)
    assert remote.rows(range(remote.n_rows)) == a.rows(range(a.n_rows))
    assert _top(remote) == _top(a) and set(remote.keyword_rows("cat")) == set(a.keyword_rows("cat"))


def test_a_ray_build_writes_the_index_to_the_server(tmp_path, settings, corpus, servers, ray_local):
    on_server = replace(settings, chroma_url=servers[0])
    store = tmp_path / f"ray-{tmp_path.name}"
    build_datastore(store, corpus, on_server, embedder=HashingEmbedder(), engine="ray")
    assert not (store / "chroma").exists()  # no embedded index: it is on the server
    report = publish_datastore(store, str(tmp_path / "share"), on_server)
    assert report.index_records_copied == 0
    build_datastore(tmp_path / "ref", corpus, settings, embedder=HashingEmbedder())
    ref = open_datastore(tmp_path / "ref", settings)
    assert _top(open_datastore(tmp_path / "share", on_server)) == _top(ref)


def test_a_member_with_only_the_server_url_and_the_share_retrieves_rows(
    tmp_path, settings, corpus, servers, monkeypatch
):
    local = tmp_path / f"team-{tmp_path.name}"
    build_datastore(local, corpus, settings, embedder=HashingEmbedder())
    publish_datastore(local, str(tmp_path / "share"), replace(settings, chroma_url=servers[0]))
    shutil.rmtree(local)  # the member has no copy of the built store
    home = tmp_path / "member"
    env = {"REBASE_CHROMA_URL": servers[0], "REBASE_EMBEDDER": "hash"}
    linked = _cli("datastore", "link", "--to", str(tmp_path / "share"), home=home, env=env)
    assert linked.returncode == 0, linked.stderr
    out = tmp_path / "rows.jsonl"
    got = _cli(
        "retrieve",
        "--task",
        str(_task_file(tmp_path)),
        "--top-k",
        "5",
        "--method",
        "index",
        "--out",
        str(out),
        home=home,
        env=env,
    )
    assert got.returncode == 0, got.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and rows[0]["row"]["text"] and rows[0]["dataset"] in TOPICS
    stats = _cli("datastore", "stats", "--json", home=home, env=env)
    assert json.loads(stats.stdout)["rows"] == 24, stats.stderr
    _the_app_retrieves_from_the_linked_share(home, servers[0], monkeypatch)
    down = _cli(
        "retrieve",
        "--task",
        str(_task_file(tmp_path)),
        "--method",
        "index",
        "--out",
        str(out),
        home=home,
        env={**env, "REBASE_CHROMA_URL": f"http://127.0.0.1:{free_port()}"},
    )
    assert down.returncode == 2 and "chroma run" in down.stderr


def _the_app_retrieves_from_the_linked_share(home, server: str, monkeypatch) -> None:
    """The app on the member's workspace: the linked share is its datastore (the flow step is
    done, the Retrieve page retrieves and lists rows)."""
    from streamlit.testing.v1 import AppTest

    from rebase_core.workspace import Workspace

    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_CHROMA_URL", server)
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    ws = Workspace(home / "workspace.sqlite")
    ws.set_value("current_task", ws.save_task(TASK).id)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    at.switch_page("app_pages/retrieve.py").run()
    assert not at.exception, at.exception
    assert not any("no datastore yet" in i.value for i in at.info)
    next(b for b in at.get("form_submit_button") if b.label == "Retrieve").click().run()
    assert not at.exception, at.exception
    (run,) = ws.retrieval_runs(1)
    assert run.n_rows > 0 and ws.retrieved_rows(run.id)[0].row.dataset in TOPICS


def _cli(*args, home, env):
    return subprocess.run(
        [sys.executable, "-m", "rebase_core", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "REBASE_HOME": str(home), **env},
        timeout=120,
    )


def test_two_index_shards_merge_to_the_unsharded_answer(tmp_path, settings, corpus, servers):
    one = tmp_path / "one"
    two = tmp_path / "two"
    build_datastore(one, corpus, settings, embedder=HashingEmbedder())
    build_datastore(two, corpus, settings, embedder=HashingEmbedder(), chroma_shards=2)
    a, b = open_datastore(one, settings), open_datastore(two, settings)
    counts = [c.count() for c in b.chroma.cell_shards]
    assert sum(counts) == a.chroma.count() and min(counts) > 0  # split by text hash
    emb = HashingEmbedder()
    for text in ("a cat and a dog", "interest rates at the bank", "snow (1)"):
        q = emb.embed([text])[0]
        for n in (1, 5, 40):
            ids_a, sims_a = a.chroma.nearest_ids(q, n)
            ids_b, sims_b = b.chroma.nearest_ids(q, n)
            assert np.allclose(sims_a, sims_b, atol=1e-6)
            cut = sims_a[-1] + 1e-6  # ties at the cut-off may be broken either way
            assert set(np.asarray(ids_a)[sims_a > cut]) == set(np.asarray(ids_b)[sims_b > cut])
    assert _top(a) == _top(b)
    # Two servers, one shard each, from a publish.
    both = replace(settings, chroma_url=",".join(servers))
    publish_datastore(one, str(tmp_path / "share"), both, index_shards=2, prefix="two_servers_")
    shared = open_datastore(tmp_path / "share", both)
    assert shared.chroma.shards == 2 and [c.count() for c in shared.chroma.cell_shards] == [
        c.count() for c in b.chroma.cell_shards
    ]
    assert _top(shared) == _top(a)
    with pytest.raises(StoreError, match="index shard"):
        build_datastore(two, corpus, settings, embedder=HashingEmbedder(), chroma_shards=3)
