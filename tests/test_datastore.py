"""Datastore builds: idempotence, resume after a crash, extension, Chroma vs exact, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rebase_core.datastore import BuildParams, build_datastore, open_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import DatasetError, InputError, StoreError
from rebase_core.settings import PROJECT_ROOT

TOPICS = {
    "animals": ["The cat sat on the mat", "A dog chased the ball", "Birds fly south in winter"],
    "finance": ["Stocks fell sharply today", "The bank raised interest rates", "Bonds rallied"],
    "sport": ["The team won the final", "She ran a marathon", "The striker scored twice"],
}


def _write_corpus(root):
    """Three small datasets as a folder of jsonl files each, with descriptions."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic, sentences in TOPICS.items():
        folder = root / topic
        folder.mkdir(exist_ok=True)
        rows = [{"text": s, "label": topic, "meta": {"n": i}} for i, s in enumerate(sentences)]
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "description.txt").write_text(f"Sentences about {topic}.")
        paths.append(str(folder))
    return paths


@pytest.fixture
def corpus(tmp_path):
    return _write_corpus(tmp_path / "corpus")


def test_build_stores_cells_rows_and_descriptions(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    report = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder())
    assert (report.shards_built, report.rows_added, report.cells_added) == (3, 9, 27)
    store = open_datastore(store_dir, settings)
    assert (store.n_rows, store.n_cells) == (9, 27)
    assert store.vectors.shape == (27, 256)
    assert np.allclose(np.linalg.norm(store.vectors, axis=1), 1.0, atol=1e-5)
    info = {d.name: d for d in store.datasets()}
    assert info["finance"].description == "Sentences about finance."
    assert (info["finance"].n_rows, info["finance"].n_cells) == (3, 9)
    row = store.rows([store.find_row("sport", "default", "2")])[0]
    assert row.cells == {"text": "The striker scored twice", "label": "sport", "meta.n": "2"}
    # One Chroma record per distinct cell text (labels and small numbers repeat).
    texts = {t for r in store.rows(range(store.n_rows)) for t in r.cells.values()}
    assert store.chroma.count() == len(texts) == 15 and store.chroma.descriptions.count() == 3
    stats = store.stats().to_json_dict()
    assert {k: stats[k] for k in ("datasets", "configs", "rows", "cells")} == {
        "datasets": 3,
        "configs": 3,
        "rows": 9,
        "cells": 27,
    }
    assert stats["bytes"] > 0


def test_building_twice_adds_nothing_and_new_sources_extend(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus[:2], settings, embedder=HashingEmbedder())
    again = build_datastore(store_dir, corpus[:2], settings, embedder=HashingEmbedder())
    assert (again.shards_built, again.shards_already_done, again.cells_added) == (0, 2, 0)
    more = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder())
    assert (more.shards_built, more.shards_already_done) == (1, 2)
    store = open_datastore(store_dir, settings)
    assert store.n_cells == 27 and store.chroma.count() == 15


class _DiesOnRows:
    """A SQLite connection that dies when a shard's rows are about to be committed."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO rows"):
            raise KeyboardInterrupt  # the process is killed mid-shard
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_build_killed_half_way_resumes(tmp_path, settings, corpus, monkeypatch):
    """A crash after the sidecars and Chroma of a shard were written, before its commit."""
    from rebase_core.datastore.writer import StoreWriter

    store_dir = tmp_path / "store"
    calls = {"n": 0}
    real_write = StoreWriter.write

    def crashing_write(self, prepared, dataset_idx, params):
        calls["n"] += 1
        if calls["n"] == 2:
            self.conn = _DiesOnRows(self.conn)
        return real_write(self, prepared, dataset_idx, params)

    monkeypatch.setattr(StoreWriter, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder())
    monkeypatch.setattr(StoreWriter, "write", real_write)
    half = open_datastore(store_dir, settings)
    assert half.n_cells == 9  # only the committed shard counts
    assert half.chroma.count() > 6  # the dead shard's new texts reached Chroma
    report = build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder())
    assert (report.shards_built, report.shards_already_done) == (2, 1)
    store = open_datastore(store_dir, settings)
    assert store.n_cells == 27 and store.chroma.count() == 15
    assert (store_dir / "vectors.f32").stat().st_size == 27 * 256 * 4
    clean = tmp_path / "clean"
    build_datastore(clean, corpus, settings, embedder=HashingEmbedder())
    assert np.array_equal(
        np.asarray(open_datastore(clean, settings).vectors), np.asarray(store.vectors)
    )


def test_chroma_and_exact_indexes_return_the_same_neighbours(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus, settings, embedder=HashingEmbedder())
    store = open_datastore(store_dir, settings)
    emb = HashingEmbedder()
    for text in ["a cat and a dog", "interest rates at the bank", "who scored in the final"]:
        q = emb.embed([text])[0]
        ann_ids, ann_sims = store.cell_index("chroma").nearest(q, 5)
        exact_ids, exact_sims = store.cell_index("exact").nearest(q, store.n_cells)
        # Every cell holding one of the 5 nearest texts, with its similarity (ties at the
        # cut-off aside, which either index may break differently).
        cut = ann_sims[-1] + 1e-5
        assert ann_sims[0] > cut
        assert set(exact_ids[exact_sims > cut]) == set(ann_ids[ann_sims > cut])
        exact_by_id = dict(zip(exact_ids.tolist(), exact_sims.tolist(), strict=True))
        assert all(abs(exact_by_id[i] - s) < 1e-5 for i, s in zip(ann_ids, ann_sims, strict=True))


def test_embedder_mismatch_and_name_clash_are_clear_errors(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus[:1], settings, embedder=HashingEmbedder())
    with pytest.raises(StoreError, match="built with the 'hash' embedder"):
        build_datastore(store_dir, corpus[:1], settings, embedder=_Other())
    clash = tmp_path / "elsewhere" / "animals"
    clash.mkdir(parents=True)
    (clash / "train.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(InputError, match="already used by source"):
        build_datastore(store_dir, [str(clash)], settings, embedder=HashingEmbedder())


class _Other(HashingEmbedder):
    def __init__(self):
        super().__init__(dim=64)
        self.name = "other"


def test_bad_single_sources_fail_without_touching_the_store(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus[:1], settings, embedder=HashingEmbedder())
    nums = tmp_path / "numbers.csv"
    nums.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="no text columns"):
        build_datastore(store_dir, [str(nums)], settings, embedder=HashingEmbedder())
    with pytest.raises(InputError, match="does not exist"):
        build_datastore(
            store_dir, [corpus[1], str(tmp_path / "nope")], settings, embedder=HashingEmbedder()
        )
    store = open_datastore(store_dir, settings)
    assert store.n_cells == 9 and [d.name for d in store.datasets()] == ["animals"]
    with pytest.raises(InputError, match="rows per config"):
        build_datastore(
            store_dir,
            corpus,
            settings,
            embedder=HashingEmbedder(),
            params=BuildParams(rows_per_config=0),
        )


def _cli(*args, env_home):
    import os

    env = dict(os.environ, REBASE_HOME=str(env_home))
    return subprocess.run(
        [sys.executable, "-m", "rebase_core", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=120,
    )


def test_cli_build_stats_and_exit_codes(tmp_path, corpus):
    store = tmp_path / "store"
    ok = _cli(
        "datastore",
        "build",
        "--store",
        str(store),
        "--source",
        corpus[0],
        "--embedder",
        "hash",
        env_home=tmp_path / "home",
    )
    assert ok.returncode == 0, ok.stderr
    stats = _cli("datastore", "stats", "--store", str(store), "--json", env_home=tmp_path / "home")
    data = json.loads(stats.stdout)
    assert {k: data[k] for k in ("datasets", "configs", "rows", "cells")} == {
        "datasets": 1,
        "configs": 1,
        "rows": 3,
        "cells": 9,
    }
    assert data["bytes"] > 0
    missing = _cli(
        "datastore",
        "build",
        "--store",
        str(store),
        "--source",
        str(tmp_path / "x.csv"),
        "--embedder",
        "hash",
        env_home=tmp_path / "home",
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: Source")
    nostore = _cli(
        "datastore", "stats", "--store", str(tmp_path / "none"), env_home=tmp_path / "home"
    )
    assert nostore.returncode == 2 and "No datastore" in nostore.stderr


def test_skipped_configs_are_tried_again_and_can_join_later(tmp_path, settings, corpus):
    store_dir = tmp_path / "store"
    build_datastore(store_dir, corpus[:1], settings, embedder=HashingEmbedder())
    multi = tmp_path / "multi"
    (multi / "one").mkdir(parents=True)
    (multi / "two").mkdir(parents=True)
    import shutil

    import datasets

    datasets.Dataset.from_dict({"n": [1, 2]}).save_to_disk(str(multi / "one"))
    datasets.Dataset.from_dict({"t": ["some text"]}).save_to_disk(str(multi / "two"))
    report = build_datastore(store_dir, [str(multi)], settings, embedder=HashingEmbedder())
    assert (report.shards_built, report.shards_skipped) == (1, 1)
    # The numeric config gets text later: the next build picks it up; the built one is not redone.
    datasets.Dataset.from_dict({"n": ["now words"]}).save_to_disk(str(multi / "one") + "_tmp")
    shutil.rmtree(multi / "one")
    (multi / "one_tmp").rename(multi / "one")
    again = build_datastore(store_dir, [str(multi)], settings, embedder=HashingEmbedder())
    assert (again.shards_built, again.shards_skipped, again.shards_already_done) == (1, 0, 1)


def test_a_description_shared_by_configs_is_embedded_once(tmp_path):
    """Every config of a dataset carries its description; a long one (past the cell cache's
    length limit) used to be embedded again for each config."""
    from rebase_core.corpus import list_shards
    from rebase_core.datastore.build import local_engine
    from rebase_core.settings import Settings

    seen: list[str] = []

    class Counting(HashingEmbedder):
        def embed(self, texts):
            seen.extend(texts)
            return super().embed(texts)

    from dataclasses import replace

    description = "Long description of the sentiment dataset. " * 20  # ~900 characters
    data = tmp_path / "sentiment.jsonl"
    data.write_text(
        "".join(json.dumps({"text": f"review {i}", "label": "pos"}) + "\n" for i in range(3))
    )
    (one,) = list_shards(str(data), Settings(home=tmp_path / "home", embedder="hash"))
    shards = [replace(one, config=c, description=description) for c in ("a", "b", "c")]
    works = list(local_engine(shards, BuildParams(3), Counting()))
    assert len(works) == 3
    assert seen.count(description.strip()) == 1  # not once per config
    assert all(np.array_equal(w.description_vector, works[0].description_vector) for w in works)
