"""The ReBase score: the formula by hand, exact vs index, exclusions and options, the CLI."""

import json
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from rebase_core.datastore import build_datastore, open_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import InputError
from rebase_core.retrieval import (
    APP_PER_DATASET_CAP,
    PAPER_RETRIEVAL,
    RetrievalOptions,
    app_retrieval_options,
    dataset_matches,
    retrieve,
    similar_rows,
    task_vectors,
)
from rebase_core.settings import PROJECT_ROOT
from rebase_core.types import Example, ScoredRow, Task


class TableEmbedder:
    """Maps known texts to given 2-d vectors (normalised), for hand-computed scores."""

    name = "table"
    dim = 2

    def __init__(self, table):
        self.table = {
            k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for k, v in table.items()
        }

    def embed(self, texts):
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, 2), np.float32)


def _dataset(root, name, rows, description):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "description.txt").write_text(description)
    return str(folder)


def test_score_matches_the_hand_computed_two_row_example(tmp_path, settings):
    """The module docstring's example: score(A) = (1 + 0.8 + 0.5) / 3, score(B) = 0.5."""
    emb = TableEmbedder(
        {
            "a1": (0.6, 0.8),
            "a2": (1, 0),
            "b1": (0, 1),
            "about letters": (1, 0),
            "x": (1, 0),
            "y": (0, 1),
            "Do it.": (0.5, 0.75**0.5),
        }
    )
    src = _dataset(tmp_path, "letters", [{"c1": "a1", "c2": "a2"}, {"c1": "b1"}], "about letters")
    build_datastore(tmp_path / "store", [src], settings, embedder=emb)
    store = open_datastore(tmp_path / "store", settings)
    task = Task("t", "Do it.", (Example("x", "y"),))
    for method in ("exact", "index"):
        result = retrieve(store, task, emb, RetrievalOptions(top_k=2, method=method))
        a, b = result.rows
        assert a.row_id == "0" and b.row_id == "1"
        assert a.score == pytest.approx((1 + 0.8 + 0.5) / 3, abs=1e-6)
        assert (a.input_score, a.output_score, a.dataset_score) == pytest.approx(
            (1, 0.8, 0.5), abs=1e-6
        )
        assert (a.input_column, a.output_column) == ("c2", "c1")
        assert b.score == pytest.approx((0 + 1 + 0.5) / 3, abs=1e-6)
        assert a.row == {"c1": "a1", "c2": "a2"} and a.description == "about letters"


def test_mean_over_examples_comes_before_max_over_cells(tmp_path, settings):
    """Two examples pulling two ways: max-then-mean would give 1.0; mean-then-max gives 0.5."""
    emb = TableEmbedder(
        {
            "e1": (1, 0),
            "e2": (0, 1),
            "o": (1, 1),
            "c1": (1, 0),
            "c2": (0, 1),
            "d": (1, 0),
            "I": (1, 0),
        }
    )
    src = _dataset(tmp_path, "ds", [{"p": "c1", "q": "c2"}], "d")
    build_datastore(tmp_path / "store", [src], settings, embedder=emb)
    store = open_datastore(tmp_path / "store", settings)
    task = Task("t", "I", (Example("e1", "o"), Example("e2", "o")))
    (row,) = retrieve(store, task, emb, RetrievalOptions(top_k=1)).rows
    assert row.input_score == pytest.approx(0.5, abs=1e-6)


def test_chain_of_thought_outputs_use_the_final_answer(hash_embedder):
    cot = Task("t", "i", (Example("q", "Two plus one is three. So the answer is 3."),))
    plain = Task("t", "i", (Example("q", "3"),))
    assert np.allclose(
        task_vectors(cot, hash_embedder).m_out, task_vectors(plain, hash_embedder).m_out
    )


_WORD_TEXT = (
    "cat dog bird fish horse market stock bond bank rate goal team match score race "
    "river lake rain snow wind code bug test loop data"
)
WORDS = _WORD_TEXT.split()


@pytest.fixture
def random_store(tmp_path, settings):
    """Eight datasets of 60 random rows (2-4 columns each), hashing embedder."""
    rng = random.Random(7)
    sources = []
    for d in range(8):
        rows = []
        for _ in range(60):
            rows.append(
                {
                    f"col{c}": " ".join(rng.choices(WORDS, k=rng.randint(2, 7)))
                    for c in range(rng.randint(2, 4))
                }
            )
        sources.append(
            _dataset(tmp_path / "src", f"set{d}", rows, " ".join(rng.choices(WORDS, k=6)))
        )
    build_datastore(tmp_path / "store", sources, settings, embedder=HashingEmbedder())
    return open_datastore(tmp_path / "store", settings)


TASKS = [
    Task("a", "cat dog market", (Example("cat dog bird", "fish"), Example("horse cat", "dog"))),
    Task("b", "code bug loop", (Example("code test", "bug"), Example("data loop code", "test"))),
    Task("c", "rain snow river", (Example("river lake", "rain"),)),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("candidates", [None, 5])
def test_index_method_equals_exhaustive(random_store, task, candidates):
    """Chroma candidates + exact rescoring + the bound check give the exhaustive answer, even
    when the ANN depth is tiny and most of the work falls to the bound check."""
    emb = HashingEmbedder()
    exact = retrieve(random_store, task, emb, RetrievalOptions(top_k=40, method="exact"))
    index = retrieve(
        random_store, task, emb, RetrievalOptions(top_k=40, method="index", candidates=candidates)
    )
    assert [r.key for r in index.rows] == [r.key for r in exact.rows]
    assert np.allclose([r.score for r in index.rows], [r.score for r in exact.rows], atol=1e-6)
    assert exact.rows[0].score >= exact.rows[-1].score


def test_exclusions_match_names_not_substrings(random_store):
    assert dataset_matches("bigbench/vitaminc", "vitaminc")
    assert dataset_matches("bigbench/vitaminc", "bigbench")
    assert dataset_matches("bigbench/fact_checker", "bigbench/fact_*")
    assert not dataset_matches("multi_nli", "mnli")
    assert not dataset_matches("set10", "set1")
    emb = HashingEmbedder()
    task = Task("a", "cat", (Example("cat dog", "fish"),), exclude_datasets=("set1",))
    result = retrieve(
        random_store, task, emb, RetrievalOptions(top_k=500, exclude_datasets=("set2", "set3*"))
    )
    assert set(result.excluded) == {"set1", "set2", "set3"}
    assert {r.dataset for r in result.rows} == {"set0", "set4", "set5", "set6", "set7"}


def test_cap_dedup_keywords_and_fusion(random_store):
    emb = HashingEmbedder()
    task = TASKS[0]
    capped = retrieve(random_store, task, emb, RetrievalOptions(top_k=30, per_dataset_cap=4))
    counts = {}
    for r in capped.rows:
        counts[r.dataset] = counts.get(r.dataset, 0) + 1
    assert max(counts.values()) == 4 and len(capped.rows) == 30

    deduped = retrieve(random_store, task, emb, RetrievalOptions(top_k=480, dedup=True))
    texts = [" ".join(r.row.values()) for r in deduped.rows]
    assert len(texts) == len(set(texts))

    with_cat = retrieve(
        random_store,
        task,
        emb,
        RetrievalOptions(top_k=50, include_keywords=("cat",), exclude_keywords=("dog",)),
    )
    assert with_cat.rows
    for r in with_cat.rows:
        words = " ".join(r.row.values()).split()
        assert "cat" in words and "dog" not in words

    fused = retrieve(random_store, task, emb, RetrievalOptions(top_k=10, fusion="mean_rank"))
    assert len(fused.rows) == 10 and fused.method == "exact"
    with pytest.raises(InputError, match="exact method"):
        retrieve(random_store, task, emb, RetrievalOptions(fusion="max_rank", method="index"))


DATE = "What day of the week was 2020-01-01?"


@pytest.fixture
def dup_store(tmp_path, settings):
    """Identical rows within a dataset and across two datasets (other column names), plus rows
    that differ only in case or punctuation."""
    a = [
        {"q": DATE, "a": "Wednesday"},
        {"q": DATE, "a": "Wednesday"},
        {"q": DATE.upper(), "a": "Wednesday"},
        {"q": "( ] )", "a": "Invalid"},
        {"q": "[ ) ]", "a": "Invalid"},
        {"q": "What day was 2021-01-01?", "a": "Friday"},
    ]
    b = [{"question": DATE, "answer": "Wednesday"}, {"question": "Is ( ] valid?", "answer": "no"}]
    sources = [
        _dataset(tmp_path / "src", "dates_a", a, "Dates and the days of the week."),
        _dataset(tmp_path / "src", "dates_b", b, "Calendar questions."),
    ]
    build_datastore(tmp_path / "store", sources, settings, embedder=HashingEmbedder())
    return open_datastore(tmp_path / "store", settings)


DATE_TASK = Task(
    "days", "Say the day of the week.", (Example("What day was 2019-05-01?", "Wednesday"),)
)


@pytest.mark.parametrize("method", ["exact", "index"])
def test_dedup_drops_identical_rows_keeping_the_best_scored_and_nothing_else(dup_store, method):
    emb = HashingEmbedder()
    paper = retrieve(dup_store, DATE_TASK, emb, RetrievalOptions(top_k=20, method=method))
    assert len(paper.rows) == 8 and paper.duplicates_dropped == 0
    deduped = retrieve(
        dup_store, DATE_TASK, emb, RetrievalOptions(top_k=20, dedup=True, method=method)
    )
    # The three copies of the date row (two in dates_a, one in dates_b named differently) are
    # one row now; case and punctuation make different rows, which stay.
    assert len(deduped.rows) == 6 and deduped.duplicates_dropped == 2
    copies = [r for r in paper.rows if list(r.row.values()) == [DATE, "Wednesday"]]
    assert len(copies) == 3 and {r.dataset for r in copies} == {"dates_a", "dates_b"}
    kept = [r for r in deduped.rows if list(r.row.values()) == [DATE, "Wednesday"]]
    assert [r.key for r in kept] == [copies[0].key]  # the best-scored copy, its score unchanged
    assert kept[0].score == copies[0].score
    assert copies[0].score > min(c.score for c in copies)  # the datasets' terms differ
    cells = {tuple(r.row.values()) for r in deduped.rows}
    assert {(DATE.upper(), "Wednesday"), ("( ] )", "Invalid"), ("[ ) ]", "Invalid")} <= cells
    # Every row the dedup keeps is scored and ordered as in the paper's run.
    paper_scores = {r.key: r.score for r in paper.rows}
    assert [paper_scores[r.key] for r in deduped.rows] == [r.score for r in deduped.rows]
    assert [r.key for r in deduped.rows] == [
        r.key for r in paper.rows if r.key in {k.key for k in deduped.rows}
    ]


def test_app_defaults_are_dedup_and_a_cap_and_the_paper_is_neither():
    app = app_retrieval_options(500)
    assert (app.top_k, app.dedup, app.per_dataset_cap) == (500, True, APP_PER_DATASET_CAP)
    assert (PAPER_RETRIEVAL.dedup, PAPER_RETRIEVAL.per_dataset_cap) == (False, None)
    assert RetrievalOptions() == PAPER_RETRIEVAL  # the library default stays the paper's
    assert app_retrieval_options().top_k == PAPER_RETRIEVAL.top_k == 3000


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_cap_and_dedup_give_the_same_rows_by_index_and_exhaustively(random_store, task):
    emb = HashingEmbedder()
    options = RetrievalOptions(top_k=40, per_dataset_cap=6, dedup=True)
    exact = retrieve(random_store, task, emb, replace(options, method="exact"))
    index = retrieve(random_store, task, emb, replace(options, method="index", candidates=5))
    assert [r.key for r in index.rows] == [r.key for r in exact.rows]
    assert exact.capped > 0 and index.capped == exact.capped


def test_cap_and_dedup_skip_rows_without_reordering_so_a_longer_run_starts_the_same(random_store):
    emb = HashingEmbedder()
    options = RetrievalOptions(per_dataset_cap=3, dedup=True)
    short = retrieve(random_store, TASKS[1], emb, replace(options, top_k=10))
    long = retrieve(random_store, TASKS[1], emb, replace(options, top_k=24))
    assert [r.key for r in long.rows[:10]] == [r.key for r in short.rows]
    assert len(long.rows) == 24 and max(Counter(r.dataset for r in long.rows).values()) == 3


def test_more_like_this_row(random_store):
    result = similar_rows(random_store, 5, RetrievalOptions(top_k=5))
    assert len(result.rows) == 5 and 5 not in result.row_idxs
    assert result.rows[0].input_score >= result.rows[-1].input_score


def _cli(tmp_path, *args):
    env = dict(os.environ, REBASE_HOME=str(tmp_path / "home"))
    return subprocess.run(
        [sys.executable, "-m", "rebase_core", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=120,
    )


def test_cli_retrieve_writes_the_contract_and_rejects_bad_tasks(tmp_path, random_store):
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps(
            {
                "name": "a",
                "instruction": "cat dog",
                "examples": [{"input": "cat dog", "output": "fish"}],
            }
        )
    )
    (tmp_path / "ok.json").write_text(task.read_text())
    out = tmp_path / "rows.jsonl"
    ok = _cli(
        tmp_path,
        "retrieve",
        "--store",
        str(random_store.path),
        "--task",
        str(task),
        "--top-k",
        "7",
        "--out",
        str(out),
    )
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 7
    first = lines[0]
    assert set(first) >= {
        "dataset",
        "config",
        "row_id",
        "score",
        "input_score",
        "output_score",
        "dataset_score",
        "input_column",
        "output_column",
        "description",
        "row",
    }
    assert first["score"] == pytest.approx(
        (first["input_score"] + first["output_score"] + first["dataset_score"]) / 3, abs=1e-6
    )
    assert first["input_column"] in first["row"]
    for bad in (
        {"name": "a", "instruction": "", "examples": [{"input": "x", "output": "y"}]},
        {"name": "a", "instruction": "i", "examples": []},
        {"name": "a", "instruction": "i", "examples": [{"input": "x", "output": ""}]},
    ):
        task.write_text(json.dumps(bad))
        res = _cli(tmp_path, "retrieve", "--store", str(random_store.path), "--task", str(task))
        assert res.returncode == 2
        assert res.stderr.strip().splitlines()[-1].startswith("error:")
    capped = _cli(
        tmp_path,
        "retrieve",
        "--store",
        str(random_store.path),
        "--task",
        str(tmp_path / "ok.json"),
        "--top-k",
        "9",
        "--out",
        str(out),
        "--app-defaults",
        "--per-dataset-cap",
        "2",
    )
    assert capped.returncode == 0, capped.stderr
    datasets = Counter(json.loads(x)["dataset"] for x in out.read_text().splitlines())
    assert sum(datasets.values()) == 9 and max(datasets.values()) == 2
    assert "over the cap" in capped.stderr.splitlines()[-1]
    task.write_text("{not json")
    assert _cli(tmp_path, "retrieve", "--task", str(task)).returncode == 2


def test_readability_figures_of_a_top():
    import doctest

    import rebase_core.readability as readability

    assert doctest.testmod(readability).failed == 0
    rows = [
        ScoredRow(d, "c", str(i), s, s, s, s, "x", "x", "", {"x": text})
        for i, (d, s, text) in enumerate(
            [("a", 0.9, "one"), ("a", 0.8, "one"), ("b", 0.7, "two"), ("a", 0.5, "three")]
        )
    ]
    top = readability.top_readability(rows, 3)
    assert (top.n, top.datasets, top.largest_dataset, top.duplicates) == (3, 2, "a", 1)
    assert top.largest_share == pytest.approx(2 / 3) and top.mean_score == pytest.approx(0.8)
    assert readability.top_readability([]).n == 0
