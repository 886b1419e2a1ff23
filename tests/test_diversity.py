"""Diversity metrics on hand-made sets, the shared projection, its cache, and the CLI."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rebase_core import diversity
from rebase_core.cli import main
from rebase_core.diversity import (
    ORIGIN_COLORS,
    answer_label,
    distinct_n,
    label_distribution,
    measure_diversity,
    near_duplicate_share,
    project,
    projection_figure,
    tokenize,
    word_count,
)
from rebase_core.errors import InputError
from rebase_core.types import Example, Pair, ScoredRow

VARIED = [
    "Is the capital of France Paris?",
    "How many legs does a spider have?",
    "Translate 'good morning' into German.",
    "Sort these words: pear, apple, fig.",
    "What is 17 times 3?",
    "Name a mammal that can fly.",
]
DUPLICATED = ["Is the capital of France Paris?"] * 4 + ["Is the capital of France Rome?"] * 2


# --- tokens and distinct-n ------------------------------------------------------------------


def test_tokenize_splits_cjk_characters_code_and_words():
    assert tokenize("猫が好き。") == ["猫", "が", "好", "き", "。"]
    assert tokenize("if x>=2: return f(x)") == [
        "if",
        "x",
        ">=",
        "2",
        ":",
        "return",
        "f",
        "(",
        "x",
        ")",
    ]
    assert tokenize("Don't stop, café!") == ["Don't", "stop", ",", "café", "!"]
    assert word_count("Don't stop, café!") == 3  # punctuation is not a word


def test_distinct_n_exact_values():
    tokens = [tokenize("a b a"), tokenize("b c")]
    # unigrams a b a b c: 3 distinct of 5; bigrams (a b) (b a) (b c): 3 of 3 (none across texts)
    assert distinct_n(tokens, 1) == pytest.approx(3 / 5)
    assert distinct_n(tokens, 2) == pytest.approx(3 / 3)
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == pytest.approx(1 / 2)
    assert distinct_n([["a"]], 2) == 0.0  # no bigram at all


def test_japanese_is_not_one_token_per_sentence():
    text = "猫が好きです。犬も好きです。"
    m = measure_diversity([text])
    # 14 tokens (12 characters + 2 full stops), 9 distinct: 猫 が 好 き で す 。 犬 も
    assert m.distinct_1 == pytest.approx(9 / 14)
    assert m.avg_input_len == 12  # words = characters here, the full stops excluded
    assert len(text.split()) == 1  # what whitespace splitting would have counted


# --- the metrics on hand-made sets ----------------------------------------------------------


def test_duplicates_score_lower_than_a_varied_set_on_every_metric(hash_embedder):
    varied = measure_diversity(VARIED, embedder=hash_embedder)
    dup = measure_diversity(DUPLICATED, embedder=hash_embedder)
    assert dup.n == varied.n == 6
    assert dup.unique_inputs == pytest.approx(2 / 6)
    assert varied.unique_inputs == 1.0
    assert dup.distinct_1 < varied.distinct_1
    assert dup.distinct_2 < varied.distinct_2
    assert dup.dispersion is not None and varied.dispersion is not None
    assert dup.dispersion < varied.dispersion
    assert dup.near_duplicate_share == 1.0  # every input has an identical twin
    assert varied.near_duplicate_share == 0.0


def test_unique_inputs_ignores_whitespace_differences_only():
    m = measure_diversity(["a  b", "a b ", "A b"])
    assert m.unique_inputs == pytest.approx(2 / 3)


def test_average_lengths_in_words():
    m = measure_diversity(["one two three", "four"], ["a b", "c d e f"])
    assert m.avg_input_len == 2.0
    assert m.avg_output_len == 3.0


def test_dispersion_is_the_mean_pairwise_cosine_distance(hash_embedder):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    brute = np.mean([1 - v[i] @ v[j] for i in range(40) for j in range(40) if i != j])
    assert diversity.dispersion(v) == pytest.approx(brute, abs=1e-6)
    assert diversity.dispersion(np.eye(5, dtype=np.float32)) == pytest.approx(1.0)
    assert diversity.dispersion(np.ones((3, 4), dtype=np.float32) / 2) == pytest.approx(0.0)


def test_near_duplicate_share_counts_points_with_a_close_neighbour():
    a = np.array([1.0, 0.0, 0.0, 0.0])
    close = np.array([0.99, math.sqrt(1 - 0.99**2), 0.0, 0.0])  # cos(a, close) = 0.99
    vectors = np.stack([a, close, [0, 0, 1.0, 0], [0, 0, 0, 1.0]]).astype(np.float32)
    assert near_duplicate_share(vectors, 0.95) == (0.5, 4)
    assert near_duplicate_share(vectors, 0.995) == (0.0, 4)
    # Past max_queries a seeded sample is checked against every point.
    twins = np.repeat(np.eye(4, dtype=np.float32), 30, axis=0)
    share, checked = near_duplicate_share(twins, 0.95, max_queries=50)
    assert (share, checked) == (1.0, 50)


def test_label_distribution_for_a_closed_label_set():
    outputs = ["yes", "No", "Yes.", "no", "yes"]
    assert label_distribution(outputs) == {"yes": 3, "no": 2}
    cot = [
        "The premise says so, so the answer is Entailment.",
        "Nothing links them; the answer is neutral",
        "It says the opposite. So the answer is: contradiction.",
        "Same facts, so the answer is entailment",
        "The answer is Entailment",
        "They disagree: the answer is contradiction",
    ]
    assert answer_label(cot[2]) == "contradiction"
    assert label_distribution(cot) == {"entailment": 3, "contradiction": 2, "neutral": 1}
    assert label_distribution(cot[:4]) is None  # 3 labels over 4 outputs: not a closed set yet


def test_free_text_outputs_have_no_label_distribution():
    free = ["Paris is the capital.", "Eight legs.", "Guten Morgen", "51", "The bat."]
    assert label_distribution(free) is None  # every output distinct: not a closed set
    long_repeats = ["a long answer with many words in it"] * 4
    assert label_distribution(long_repeats) is None  # repeated, but not label-like
    assert label_distribution(free, force=True) == {k.casefold().rstrip("."): 1 for k in free}


def test_label_switch_and_entropy():
    inputs = ["q1", "q2", "q3", "q4"]
    balanced = measure_diversity(inputs, ["a", "b", "a", "b"])
    assert balanced.label_distribution == {"a": 2, "b": 2}
    assert balanced.label_entropy == pytest.approx(1.0)
    skewed = measure_diversity(inputs, ["a", "a", "a", "b"])
    assert 0 < (skewed.label_entropy or 0) < 1
    assert measure_diversity(inputs, ["a", "b", "a", "b"], labels=False).label_distribution is None
    forced = measure_diversity(inputs, ["w x", "y z", "v u", "s t"], labels=True)
    assert forced.label_distribution is not None and len(forced.label_distribution) == 4


def test_pairs_examples_and_rows_are_accepted(hash_embedder):
    pairs = [Pair(id=str(i), input=t, output="yes", origin="rebase") for i, t in enumerate(VARIED)]
    examples = [Example(t, "yes") for t in VARIED]
    assert measure_diversity(pairs) == measure_diversity(examples)
    row = ScoredRow(
        dataset="d",
        config="c",
        row_id="1",
        score=0.4,
        input_score=0.5,
        output_score=0.3,
        dataset_score=0.4,
        input_column="q",
        output_column="a",
        description="",
        row={"q": "What is two plus two?", "a": "four", "other": "ignored"},
    )
    m = measure_diversity([row])
    assert (m.avg_input_len, m.avg_output_len) == (5.0, 1.0)


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="nothing to measure"):
        measure_diversity([])
    with pytest.raises(InputError, match="pair up"):
        measure_diversity(["a", "b"], ["x"])
    with pytest.raises(InputError, match="outputs only with plain"):
        measure_diversity([Example("a", "b")], ["x"])


def test_json_dict_has_the_contract_fields(hash_embedder):
    d = measure_diversity(VARIED, ["yes", "no"] * 3, embedder=hash_embedder).to_json_dict()
    contract = {"n", "unique_inputs", "distinct_1", "distinct_2", "avg_input_len"}
    assert contract | {"avg_output_len", "dispersion"} <= set(d)
    assert {"label_distribution", "near_duplicate_share"} <= set(d)
    assert json.loads(json.dumps(d)) == d


# --- the projection -------------------------------------------------------------------------


def _two_clusters(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    a = np.eye(16, dtype=np.float32)[0] + 0.05 * rng.normal(size=(n, 16)).astype(np.float32)
    b = np.eye(16, dtype=np.float32)[1] + 0.05 * rng.normal(size=(n, 16)).astype(np.float32)
    return {"rebase": a, "direct": b}


def test_pca_projection_puts_all_groups_on_shared_axes():
    groups = _two_clusters()
    proj = project(groups, method="pca")
    assert len(proj) == 24 and proj.x.shape == proj.y.shape == (24,)
    assert proj.method == "pca" and proj.origins() == ("rebase", "direct")
    assert proj.point_id[:2] == ("rebase:0", "rebase:1")
    # One fit on the union: centred there, and its first axis separates the two clusters.
    assert abs(proj.x.mean()) < 1e-4 and abs(proj.y.mean()) < 1e-4
    xa, xb = proj.x[:12], proj.x[12:]
    assert (xa.max() < xb.min()) or (xb.max() < xa.min())
    assert np.var(proj.x) > np.var(proj.y)


def test_projection_of_texts_with_ids(hash_embedder):
    proj = project(
        {"examples": VARIED[:2], "rebase": VARIED[2:]},
        embedder=hash_embedder,
        ids={"rebase": ["p1", "p2", "p3", "p4"]},
        method="pca",
    )
    assert proj.point_id == ("examples:0", "examples:1", "p1", "p2", "p3", "p4")
    assert proj.text == tuple(VARIED)
    with pytest.raises(InputError, match="needs vectors"):
        project({"rebase": VARIED}, method="pca")


def test_tiny_sets_fall_back_to_pca(hash_embedder):
    proj = project({"rebase": VARIED[:3]}, embedder=hash_embedder, method="umap")
    assert proj.method == "pca" and "at least" in proj.note


def test_cache_makes_the_second_call_skip_embedding_and_fitting(tmp_path, monkeypatch):
    calls = {"embed": 0, "fit": 0}

    class CountingEmbedder:
        name, dim = "counting", 8

        def embed(self, texts):
            calls["embed"] += 1
            return np.eye(8, dtype=np.float32)[[len(t) % 8 for t in texts]]

    def fake_umap(vectors, **kwargs):
        calls["fit"] += 1
        return diversity.projection._pca_2d(vectors)

    monkeypatch.setattr(diversity.projection, "_umap_2d", fake_umap)
    groups = {"rebase": VARIED, "direct": ["a", "bb", "ccc", "dddd", "eeeee"]}
    emb = CountingEmbedder()
    first = project(groups, embedder=emb, cache_dir=tmp_path, method="umap")
    assert (calls, first.from_cache) == ({"embed": 1, "fit": 1}, False)
    second = project(groups, embedder=emb, cache_dir=tmp_path, method="umap")
    assert (calls, second.from_cache) == ({"embed": 1, "fit": 1}, True)
    assert np.array_equal(first.x, second.x) and np.array_equal(first.y, second.y)
    # Another seed is another map; the embeddings are cached too, so only the fit runs again.
    third = project(groups, embedder=emb, cache_dir=tmp_path, method="umap", seed=7)
    assert (calls, third.from_cache) == ({"embed": 1, "fit": 2}, False)
    # A changed text is a new key.
    changed = {"rebase": [*VARIED[:-1], "something else"], "direct": groups["direct"]}
    project(changed, embedder=emb, cache_dir=tmp_path, method="umap")
    assert calls == {"embed": 2, "fit": 3}


def test_projection_figure_colours_hover_and_ids():
    groups = _two_clusters(3)
    proj = project(groups, method="pca")
    proj = diversity.Projection(
        origin=proj.origin,
        text=("<b>bold</b> " + "x" * 300, *proj.text[1:]),
        point_id=tuple(f"id{i}" for i in range(6)),
        x=proj.x,
        y=proj.y,
        method="pca",
        seed=0,
        cache_key="k",
    )
    fig = projection_figure(proj, max_hover_chars=50)
    assert [t.name for t in fig.data] == ["rebase", "direct"]
    assert fig.data[0].marker.color == ORIGIN_COLORS["rebase"]
    assert fig.data[1].marker.color == ORIGIN_COLORS["direct"]
    assert [list(c) for c in fig.data[1].customdata] == [["id3", 3], ["id4", 4], ["id5", 5]]
    hover = fig.data[0].text[0]
    assert "<b>" not in hover and "&lt;b&gt;" in hover and len(hover) < 80


@pytest.mark.slow
def test_umap_is_deterministic_for_a_seed():
    groups = _two_clusters(30)
    one = project(groups, seed=3)
    two = project(groups, seed=3)
    other = project(groups, seed=4)
    assert one.method == "umap" and not two.from_cache
    assert np.array_equal(one.x, two.x) and np.array_equal(one.y, two.y)
    assert not np.array_equal(one.x, other.x)


def test_module_import_stays_light():
    code = (
        "import sys, rebase_core.diversity, rebase_core.cli.diversity;"
        "print(sorted({'umap','plotly','sklearn','torch','numba'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the CLI --------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_writes_the_report_and_the_plot(tmp_path, capsys):
    pairs = _write_jsonl(
        tmp_path / "rebase.jsonl",
        [
            {"id": f"p{i}", "input": t, "output": "yes" if i % 2 else "no", "origin": "rebase"}
            for i, t in enumerate(VARIED)
        ],
    )
    rows = _write_jsonl(
        tmp_path / "retrieved.jsonl",
        [
            {
                "dataset": "ds",
                "config": "default",
                "row_id": str(i),
                "score": 0.4,
                "input_column": "q",
                "output_column": "a",
                "row": {"q": t, "a": "x"},
            }
            for i, t in enumerate(DUPLICATED)
        ],
    )
    out, plot = tmp_path / "report.json", tmp_path / "map.html"
    argv = ["diversity", str(pairs), str(rows), "--embedder", "hash", "--method", "pca"]
    assert main([*argv, "--out", str(out), "--plot", str(plot)]) == 0
    report = json.loads(out.read_text())
    assert list(report) == ["sets"] and list(report["sets"]) == ["rebase", "retrieved"]
    rebase, retrieved = report["sets"]["rebase"], report["sets"]["retrieved"]
    assert rebase["n"] == 6 and rebase["unique_inputs"] == 1.0
    assert rebase["label_distribution"] == {"no": 3, "yes": 3}
    assert retrieved["unique_inputs"] == pytest.approx(2 / 6)
    assert retrieved["dispersion"] < rebase["dispersion"]
    html = plot.read_text()
    assert "plotly" in html.lower() and "p3" in html  # pair ids travel in customdata


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "no records"),
        ('{"output": "x"}\n', "neither"),
        ("{\n", "JSON"),
    ],
)
def test_cli_bad_files_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "set.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["diversity", str(path), "--embedder", "hash"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


# --- umap's compiled code across processes --------------------------------------------------

_JITTED = """
import numba


@numba.njit
def plain(x):
    return x * 2


@numba.njit(cache=True)
def asks_for_it(x):
    return x + 1


def _step(x):
    return x - 1


step = numba.njit(_step)
step_parallel = numba.njit(_step, parallel=True)  # one function, two dispatchers
"""

_CHILD = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from rebase_core.diversity import numba_cache
folder = numba_cache.use_numba_cache(Path(sys.argv[2]))
import jitted
enabled = numba_cache.enable_caching(("jitted",))
values = [jitted.plain(3), jitted.asks_for_it(3), jitted.step(3)]
hits = {f: sum(getattr(jitted, f).stats.cache_hits.values()) for f in ("plain", "step")}
print(json.dumps({"folder": str(folder), "enabled": enabled, "values": values, "hits": hits}))
"""


def test_numba_cache_keeps_compiled_code_across_processes(tmp_path):
    """`use_numba_cache` + `enable_caching` make a function without `cache=True` load from the
    folder in the next process; a function with two dispatchers is left uncached."""
    from rebase_core.diversity.numba_cache import numba_cache_folder

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "jitted.py").write_text(_JITTED)
    child = tmp_path / "child.py"
    child.write_text(_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def run(base: Path, extra: dict[str, str] | None = None) -> dict:
        cmd = [sys.executable, str(child), str(tmp_path / "src"), str(base)]
        done = subprocess.run(
            cmd, env=env | (extra or {}), capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    base = tmp_path / "numba"
    first = run(base)
    folder = Path(first["folder"])
    assert folder == numba_cache_folder(base) and folder.name.startswith("umap-")
    assert first["enabled"] == 1 and first["values"] == [6, 4, 2]
    assert first["hits"] == {"plain": 0, "step": 0}
    cached = {p.name.split(".")[1].rsplit("-", 1)[0] for p in folder.rglob("*.nbi")}
    assert cached == {"plain", "asks_for_it"}
    second = run(base)
    assert second["hits"] == {"plain": 1, "step": 0}  # loaded, not compiled again
    # The user's own NUMBA_CACHE_DIR wins.
    own = tmp_path / "own"
    assert run(base, {"NUMBA_CACHE_DIR": str(own)})["folder"] == str(own)
