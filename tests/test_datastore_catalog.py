"""What the Datastore page lists (figures, datasets, sources, configs) and how a source is added."""

import doctest
import json

import pytest

from rebase_core.datastore import BuildParams, build_datastore, open_datastore
from rebase_core.datastore import sources as sources_module
from rebase_core.datastore.catalog import dataset_table, shard_table, source_table, store_figures
from rebase_core.datastore.sources import (
    add_source,
    corpus_prepared,
    save_upload,
    source_spec,
)
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import InputError
from rebase_core.types import DatasetInfo

INFOS = [
    DatasetInfo("bigbench/sentiment", "Positive or negative reviews.", "bundled", n_rows=5),
    DatasetInfo("squad", "Questions about Wikipedia articles.", "hf", keywords=("qa", "wiki")),
    DatasetInfo("mine", "My SENTIMENT labels.", "local"),
]


@pytest.fixture
def store(tmp_path, settings):
    folder = tmp_path / "src" / "weather"
    folder.mkdir(parents=True)
    rows = [{"text": "It rains in Bergen", "label": "rain"}, {"text": "Sun", "label": "sun"}]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_datastore(settings.default_store, [str(folder)], settings, embedder=HashingEmbedder())
    opened = open_datastore(settings.default_store, settings)
    yield opened
    opened.close()


def test_datasets_filter_by_name_or_description_in_any_case():
    assert dataset_table(INFOS, query=" Sentiment ")["dataset"] == ["bigbench/sentiment", "mine"]
    everything = dataset_table(INFOS)
    assert everything["dataset"] == [d.name for d in INFOS] and "similarity" not in everything
    assert everything["keywords"][1] == "qa, wiki"
    assert dataset_table(INFOS, query="nothing like it")["dataset"] == []


def test_a_search_by_meaning_ranks_its_hits_with_their_similarity():
    table = dataset_table(INFOS, query="ignored", hits=[("mine", 0.4), ("squad", 0.7)])
    assert table["dataset"] == ["squad", "mine"] and table["similarity"] == [0.7, 0.4]
    assert list(table)[:2] == ["dataset", "similarity"]  # the score beside the name


def test_figures_sources_and_configs_of_a_built_store(store):
    figures = store_figures(store.stats())
    assert [label for label, _, _ in figures] == ["Datasets", "Configs", "Rows", "Cells", "On disk"]
    assert figures[2][1] == "2" and figures[1][2] == "0 skipped"
    assert source_table(store.stats())["rows"] == [2]
    shards = store.shards()
    table = shard_table(shards)
    assert table["dataset"] == ["weather"] and all(isinstance(n, str) for n in table["notes"])
    assert shard_table(shards, only_skipped=True) == {c: [] for c in table}
    assert shard_table([]) == {}


def test_a_source_spec_says_what_is_missing(tmp_path):
    assert source_spec("bundled") == "bundled"
    assert source_spec("path", " /data/x.jsonl ") == "/data/x.jsonl"
    with pytest.raises(InputError, match="Give the path"):
        source_spec("path", " ")
    with pytest.raises(InputError, match="Choose a file to upload"):
        source_spec("upload")
    saved = save_upload("../evil/up.jsonl", b'{"text": "a"}\n', tmp_path / "uploads")
    assert saved == tmp_path / "uploads" / "up.jsonl" and saved.read_bytes() == b'{"text": "a"}\n'
    assert source_spec("upload", upload=saved) == str(saved)
    with pytest.raises(InputError, match="Give a Hub dataset id"):
        source_spec("hub")
    with pytest.raises(InputError, match="must be one of bundled, path, upload, hub"):
        source_spec("ftp", "x")


def test_adding_a_source_that_cannot_be_read_fails_before_any_job(settings, tmp_path):
    from rebase_core import jobs

    with pytest.raises(InputError, match="does not exist"):
        add_source(settings, settings.default_store, str(tmp_path / "missing"), BuildParams(10))
    assert jobs.list_jobs(settings) == []
    assert corpus_prepared(settings) is (settings.corpus_dir / "MANIFEST.json").exists()


def test_docstring_examples():
    result = doctest.testmod(sources_module)
    assert result.attempted > 0 and result.failed == 0
