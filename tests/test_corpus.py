"""Sources: specs, sampling, flattening, class labels, skips and bad input."""

import json

import pytest

from rebase_core.corpus import (
    cell_text,
    flatten_row,
    list_shards,
    sample_shard,
    stride_indices,
)
from rebase_core.errors import DatasetError, InputError, OfflineError
from rebase_core.settings import Settings


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_stride_sampling_keeps_every_mth_row_up_to_r():
    assert stride_indices(10, 4) == [0, 2, 4, 6]
    assert stride_indices(3, 10) == [0, 1, 2]
    assert stride_indices(1000, 1000) == list(range(1000))
    assert len(stride_indices(50_001, 1000)) == 1000


def test_flatten_and_cell_text():
    flat = flatten_row({"q": "x", "answers": {"text": ["Paris"], "start": [3, 9]}, "meta": {}})
    assert flat == {"q": "x", "answers.text": ["Paris"], "answers.start": [3, 9], "meta": {}}
    assert cell_text(["Paris"]) == "Paris"
    assert cell_text([3, 9]) == "[3, 9]"
    assert cell_text({}) == "{}"
    assert cell_text(None) == "" and cell_text(float("nan")) == ""
    assert cell_text(False) == "False"


def test_local_file_spec_and_sampling(tmp_path, settings):
    path = _jsonl(tmp_path / "trivia.jsonl", [{"q": f"question {i}", "a": i} for i in range(100)])
    (shard,) = list_shards(str(path), settings)
    assert (shard.dataset, shard.config) == ("trivia", "default")
    sample = sample_shard(shard, rows_per_config=10)
    assert [rid for rid, _ in sample.rows] == [str(i) for i in range(0, 100, 10)]
    assert sample.rows[1][1] == {"q": "question 10", "a": "10"}
    assert sample.n_source_rows == 100 and sample.split == "train"


def test_folder_of_split_files_prefers_train_and_reads_description(tmp_path, settings):
    folder = tmp_path / "reviews"
    folder.mkdir()
    _jsonl(folder / "test.jsonl", [{"text": "t"}])
    _jsonl(folder / "train.jsonl", [{"text": "good"}, {"text": "bad"}])
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Reviews\nMovie reviews.\n")
    (shard,) = list_shards(str(folder), settings)
    assert shard.description == "# Reviews Movie reviews."
    sample = sample_shard(shard)
    assert sample.split == "train" and len(sample.rows) == 2


def test_no_train_split_uses_largest_and_says_so(tmp_path, settings):
    folder = tmp_path / "d"
    folder.mkdir()
    _jsonl(folder / "dev.jsonl", [{"text": "a"}])
    _jsonl(folder / "test.jsonl", [{"text": "b"}, {"text": "c"}])
    sample = sample_shard(list_shards(str(folder), settings)[0])
    assert sample.split == "test"
    assert any("no train split" in n for n in sample.notes)


def test_saved_dataset_maps_class_labels_and_skips_images(tmp_path, settings):
    import datasets

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
            "id": datasets.Value("int64"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"text": ["awful", "great"], "label": [0, 1], "id": [1, 0]}, features=features
    )
    ds.save_to_disk(str(tmp_path / "sentiment"))
    sample = sample_shard(list_shards(str(tmp_path / "sentiment"), settings)[0])
    # The label column gets names; the integer id column is left alone (not a ClassLabel).
    assert [c for _, c in sample.rows] == [
        {"text": "awful", "label": "neg", "id": "1"},
        {"text": "great", "label": "pos", "id": "0"},
    ]

    img = datasets.Dataset.from_dict(
        {"image": [{"bytes": b"x", "path": None}], "caption": ["a cat"]},
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Value("string")}
        ),
    )
    img.save_to_disk(str(tmp_path / "pictures"))
    skipped = sample_shard(list_shards(str(tmp_path / "pictures"), settings)[0])
    assert skipped.skipped.startswith("skipped (image/audio/datetime")
    assert skipped.rows == ()


def test_size_cap_skips_big_configs(tmp_path, settings):
    path = _jsonl(tmp_path / "big.jsonl", [{"t": f"row {i}"} for i in range(30)])
    sample = sample_shard(list_shards(str(path), settings)[0], max_config_rows=20)
    assert "30 rows > the cap of 20" in sample.skipped


def test_huge_cell_is_cut_and_reported(tmp_path, settings):
    big = "word " * (20 * 1024 * 1024)  # a 100 MB cell
    path = _jsonl(
        tmp_path / "huge.jsonl", [{"text": big, "label": "x"}, {"text": "small", "label": "y"}]
    )
    sample = sample_shard(list_shards(str(path), settings)[0], max_cell_chars=1000)
    assert len(sample.rows[0][1]["text"]) == 1000
    assert sample.rows[1][1]["text"] == "small"
    assert any("1 cell(s) cut to 1,000 characters" in n for n in sample.notes)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bad bytes", "not UTF-8"),
        (b'{"a": 1}\n{broken', "could not be parsed"),
    ],
)
def test_unreadable_files_give_one_line_errors(tmp_path, settings, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        sample_shard(list_shards(str(path), settings)[0])


def test_no_text_columns_and_empty_files_are_skipped_with_reasons(tmp_path, settings):
    nums = tmp_path / "numbers.csv"
    nums.write_text("a,b\n1,2\n3,4\n")
    assert "no text columns" in sample_shard(list_shards(str(nums), settings)[0]).skipped
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "empty" in sample_shard(list_shards(str(empty), settings)[0]).skipped


def test_bad_specs(tmp_path, settings):
    with pytest.raises(InputError, match="does not exist"):
        list_shards(str(tmp_path / "missing.csv"), settings)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="unsupported file type"):
        list_shards(str(tmp_path / "notes.txt"), settings)
    with pytest.raises(InputError, match="not prepared"):
        list_shards("bundled", settings)
    offline = Settings(home=tmp_path, hf_offline=True)
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        list_shards("hf:squad", offline)


def test_hub_path_streams_a_local_dataset_repo(tmp_path, settings):
    """The `hf:` code path (builder info, streaming, stride) against a local repo folder."""
    repo = tmp_path / "tiny_repo"
    (repo / "data").mkdir(parents=True)
    _jsonl(repo / "data" / "train.jsonl", [{"q": f"q{i}", "a": {"t": [f"a{i}"]}} for i in range(9)])
    shards = list_shards(f"hf:{repo}", settings)
    assert [s.kind for s in shards] == ["hub"]
    sample = sample_shard(shards[0], rows_per_config=3)
    assert len(sample.rows) == 3
    assert sample.rows[0][1] == {"q": "q0", "a.t": "a0"}


def test_lists_of_numbers_are_text_but_plain_numbers_are_not(tmp_path, settings):
    lists = _jsonl(
        tmp_path / "list_functions.jsonl", [{"input": "[3, 1, 2]", "target": "[1, 2, 3]"}]
    )
    assert not sample_shard(list_shards(str(lists), settings)[0]).skipped
    plain = _jsonl(tmp_path / "readings.jsonl", [{"a": 1.5, "b": "-2,000"}, {"a": 3, "b": "1e3"}])
    assert "no text columns" in sample_shard(list_shards(str(plain), settings)[0]).skipped
