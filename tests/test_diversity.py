"""Diversity metrics on hand-made sets, the shared projection, its cache, and the CLI."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
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


# --- the comparison (what the Compare page shows) -------------------------------------------


@pytest.fixture
def compared(settings):
    """A task with examples, a retrieval run of 4 rows (3 kept), 5 ReBase pairs (2 curated), two
    direct runs (the older with 4 pairs and two failure reasons), one SELF-GUIDE run and a manual
    pair."""
    from rebase_core.types import Failure, Task
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    task = Task("t", "Answer yes or no.", (Example("Is it?", "yes"), Example("Is it not?", "no")))
    rec = ws.save_task(task)
    rows = [
        ScoredRow(
            "ds", "default", str(i), 0.5, 0.5, 0.5, 0.5, "q", "a", "", {"q": f"row {i}", "a": "x"}
        )
        for i in range(4)
    ]
    retrieval = ws.save_retrieval(rec, "store", {}, "exact", 0.1, rows, range(4))
    ws.set_selected(retrieval, [2], False)  # the user drops the third row

    def add(kind, origin, count, curated=0):
        run = ws.create_pair_run(rec.id, kind, llm="fake")
        statuses = ["accepted", "edited"][:curated] + ["pending"] * (count - curated)
        pairs = [
            Pair(f"{origin}-{run}-{i}", f"{origin} input {i}", "yes" if i % 2 else "no", origin, s)
            for i, s in enumerate(statuses)
        ]
        ws.add_pairs(run, rec.id, pairs)
        return run

    add("transform", "rebase", 5, curated=2)
    old_direct = add("direct", "direct", 4, curated=1)
    for i, reason in enumerate(["duplicate", "parse", "duplicate"]):
        ws.add_failure(old_direct, f"k{i}", Failure(reason, "detail"))
    new_direct = add("direct", "direct", 2)
    guide = add("self-guide", "self-guide", 3)
    add("manual", "manual", 1)
    return ws, rec, {"old_direct": old_direct, "new_direct": new_direct, "guide": guide}


def test_baseline_runs_are_listed_per_kind_with_labels(compared):
    ws, rec, ids = compared
    listed = diversity.list_baseline_runs(ws, rec.id)
    assert bool(listed) and set(listed.by_kind) == {"direct", "self-guide"}
    assert [r.id for r in listed.by_kind["direct"]] == [ids["new_direct"], ids["old_direct"]]
    assert listed.newest is not None and listed.newest.id == ids["guide"]
    assert listed.labels[ids["old_direct"]].endswith("· 4 pairs, 1 curated")
    assert listed.labels[ids["old_direct"]].startswith(f"#{ids['old_direct']} · fake · ")
    other = ws.save_task(replace(rec.task, name="another"))
    empty = diversity.list_baseline_runs(ws, other.id)
    assert not empty and empty.newest is None


def test_comparison_sets_raw_and_curated(compared):
    ws, rec, ids = compared
    comparison = diversity.build_comparison(
        ws, rec, {"direct": ids["old_direct"], "self-guide": ids["guide"]}
    )
    assert list(comparison.pairs) == ["rebase", "direct", "self-guide", "manual"]
    assert comparison.has_rebase and not comparison.is_empty
    assert [len(comparison.pairs[o]) for o in comparison.pairs] == [5, 4, 3, 1]
    sets = {s.name: s.items for s in comparison.sets(curated=True)}
    assert list(sets) == [
        "retrieved",
        "rebase",
        "rebase · curated",
        "direct",
        "direct · curated",
        "self-guide",
        "self-guide · curated",
        "manual",
        "manual · curated",
    ]
    assert sets["retrieved"] == (("row 0", "x"), ("row 1", "x"), ("row 3", "x"))  # kept rows only
    assert len(sets["rebase · curated"]) == 2 and sets["self-guide · curated"] == ()
    assert sets["direct"][0] == ("direct input 0", "no")
    raw = [s.name for s in comparison.sets(curated=False)]
    assert raw == ["retrieved", "rebase", "direct", "self-guide", "manual"]
    # The newest direct run is another set; an unknown kind is the caller's mistake.
    newer = diversity.build_comparison(ws, rec, {"direct": ids["new_direct"]})
    assert len(newer.pairs["direct"]) == 2 and "self-guide" not in newer.pairs
    with pytest.raises(InputError, match="per kind"):
        diversity.build_comparison(ws, rec, {"rebase": 1})


def test_failure_reasons_per_chosen_run(compared):
    ws, rec, ids = compared
    comparison = diversity.build_comparison(
        ws, rec, {"direct": ids["old_direct"], "self-guide": ids["guide"]}
    )
    direct, guide = comparison.drops
    assert (direct.kind, direct.run_id) == ("direct", ids["old_direct"])
    assert direct.reasons == (("duplicate", 2), ("parse", 1))
    assert direct.text == "duplicate 2, parse 1"
    assert guide.text == "none"
    assert diversity.build_comparison(ws, rec, {}).drops == ()


def test_map_groups_and_the_selection_table(compared):
    ws, rec, ids = compared
    comparison = diversity.build_comparison(ws, rec, {"direct": ids["old_direct"]})
    groups = comparison.map_groups()
    assert list(groups.texts) == ["examples", "retrieved", "rebase", "direct", "manual"]
    assert groups.ids["examples"] == ("examples:0", "examples:1")
    assert groups.ids["retrieved"] == (
        "retrieved:ds/default/0",
        "retrieved:ds/default/1",
        "retrieved:ds/default/3",
    )
    assert groups.ids["direct"] == tuple(p.id for p in comparison.pairs["direct"])
    assert groups.outputs == {"examples:0": "yes", "examples:1": "no"} | {
        i: "x" for i in groups.ids["retrieved"]
    }
    rng = np.random.default_rng(0)
    vectors = {k: rng.normal(size=(len(t), 8)).astype(np.float32) for k, t in groups.texts.items()}
    proj = project(groups.texts, vectors=vectors, ids=groups.ids, method="pca")
    fig = projection_figure(proj)

    def point(trace: int, i: int) -> dict:
        return {"customdata": list(fig.data[trace].customdata[i])}

    # An example, a retrieved row and a curated direct pair; a stale point selects nothing.
    events = [point(0, 1), point(1, 2), point(3, 0), {"customdata": ["gone", 0]}]
    selection = comparison.selection(proj, events)
    assert len(selection) == 3
    table = selection.columns()
    assert list(table) == ["origin", "input", "output", "status", "id"]
    assert table["origin"] == ["examples", "retrieved", "direct"]
    assert table["input"] == ["Is it not?", "row 3", "direct input 0"]
    assert table["output"] == ["no", "x", "no"]
    assert table["status"] == ["", "", "accepted"]
    assert selection.pair_ids == (comparison.pairs["direct"][0].id,)
    assert not comparison.selection(proj, [])


def test_metrics_table_cards_and_the_zip_export(compared):
    import io
    import zipfile

    ws, rec, ids = compared
    comparison = diversity.build_comparison(ws, rec, {"direct": ids["old_direct"]})
    metrics = {
        s.name: measure_diversity([a for a, _ in s.items], [b for _, b in s.items])
        if s.items
        else None
        for s in comparison.sets()
    }
    metrics["empty · curated"] = None
    table = diversity.metrics_table(metrics)
    assert table.columns[:4] == ("pairs", "unique inputs", "distinct-1", "distinct-2")
    assert table.sets[-1] == "empty · curated" and table.rows[-1][0] == 0
    assert set(table.rows[-1][1:]) == {None}
    data = table.to_json_dict()
    assert data["rebase"]["pairs"] == 5 and data["direct · curated"]["pairs"] == 1
    assert data["rebase"]["dispersion"] is None  # measured without vectors
    assert (
        table.number_formats()["pairs"] == "%d" and table.number_formats()["distinct-2"] == "%.3f"
    )
    csv_lines = table.to_csv().splitlines()
    assert csv_lines[0].split(",")[:3] == ["set", "pairs", "unique inputs"]
    assert csv_lines[-1].startswith("empty · curated,0,,")

    cards = diversity.headline_cards(metrics)
    assert [c.label for c in cards] == [
        "rebase: distinct bigrams",
        "direct: distinct bigrams",
        "manual: distinct bigrams",
    ]
    assert cards[0].delta is None and cards[1].delta is not None
    assert cards[1].delta.endswith("vs ReBase") and cards[0].help.startswith("5 pairs")

    figures = diversity.distribution_figures(comparison, metrics)
    assert figures.input_lengths is not None and figures.labels is not None
    assert [t.name for t in figures.input_lengths.data] == ["rebase", "direct", "manual"]
    named = figures.named()
    assert list(named) == ["input_lengths", "output_lengths", "labels"]
    blob = diversity.comparison_zip(table, {"map": figures.input_lengths, **named})
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(
            ["metrics.csv", "metrics.json", "map.html", *(f"{n}.html" for n in named)]
        )
        assert json.loads(archive.read("metrics.json")) == data
        assert archive.read("metrics.csv").decode() == table.to_csv()
        assert "plotly" in archive.read("labels.html").decode().lower()


def test_png_export_says_why_it_is_missing(monkeypatch):
    import importlib.util

    from rebase_core.diversity import comparison as comparison_module

    class Figure:
        def to_image(self, format: str) -> bytes:
            assert format == "png"
            return b"\x89PNG"

    real = importlib.util.find_spec
    monkeypatch.setattr(
        comparison_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "kaleido" else real(name, *a),
    )
    missing = diversity.figure_png(Figure())
    assert missing.data is None and "kaleido" in missing.note
    monkeypatch.setattr(comparison_module.importlib.util, "find_spec", lambda name, *a: object())
    assert diversity.figure_png(Figure()).data == b"\x89PNG"


# --- the background projection --------------------------------------------------------------


def test_background_projection_runs_in_a_thread_and_writes_the_cache(tmp_path, monkeypatch):
    import threading

    release, fits = threading.Event(), []

    def slow_umap(vectors, **kwargs):
        fits.append(threading.current_thread().name)
        release.wait(10)
        return diversity.projection._pca_2d(vectors)

    monkeypatch.setattr(diversity.projection, "_umap_2d", slow_umap)
    groups = _two_clusters(8)
    running = diversity.start_projection(groups, cache_dir=tmp_path)
    assert not running.done and running.result is None and running.error is None
    release.set()
    assert running.wait(10) and running.error is None
    assert running.result is not None and running.result.method == "umap"
    assert fits == ["umap-projection"]  # in the daemon thread, not the caller's
    # Written to the disk cache as `project` does: the same data loads without fitting.
    again = project(groups, cache_dir=tmp_path, method="umap")
    assert again.from_cache and fits == ["umap-projection"]
    assert np.array_equal(again.x, running.result.x)


def test_background_projection_keeps_the_error(monkeypatch):
    def broken(vectors, **kwargs):
        raise RuntimeError("numba says no")

    monkeypatch.setattr(diversity.projection, "_umap_2d", broken)
    running = diversity.start_projection(_two_clusters(8))
    assert running.wait(10)
    assert running.result is None and isinstance(running.error, RuntimeError)
    with pytest.raises(InputError, match="'umap' or 'pca'"):
        diversity.start_projection(_two_clusters(8), method="tsne")


# --- umap's compiled code across processes --------------------------------------------------

_JITTED = """
import ctypes

import numba

_labs = ctypes.CDLL(None).labs  # a ctypes pointer: numba cannot cache a function calling it
_labs.restype, _labs.argtypes = ctypes.c_long, [ctypes.c_long]


@numba.njit
def uncachable(x):
    return _labs(x)


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
values = [jitted.plain(3), jitted.asks_for_it(3), jitted.step(3), jitted.uncachable(-3)]
hits = {f: sum(getattr(jitted, f).stats.cache_hits.values()) for f in ("plain", "step")}
print(json.dumps({"folder": str(folder), "enabled": enabled, "values": values, "hits": hits}))
"""


def test_numba_cache_keeps_compiled_code_across_processes(tmp_path):
    """`use_numba_cache` + `enable_caching` make a function without `cache=True` load from the
    folder in the next process; a function with two dispatchers is left uncached, and one numba
    cannot cache still runs (without a warning in every process)."""
    from rebase_core.diversity.numba_cache import numba_cache_folder

    (tmp_path / "src" / "jitted").mkdir(parents=True)
    (tmp_path / "src" / "jitted" / "__init__.py").write_text(_JITTED)
    child = tmp_path / "child.py"
    child.write_text(_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def run(base: Path, extra: dict[str, str] | None = None) -> dict:
        cmd = [sys.executable, str(child), str(tmp_path / "src"), str(base)]
        done = subprocess.run(
            cmd, env=env | (extra or {}), capture_output=True, text=True, check=True
        )
        assert "Cannot cache" not in done.stderr  # numba's warning, silenced for the package
        return json.loads(done.stdout.strip().splitlines()[-1])

    base = tmp_path / "numba"
    first = run(base)
    folder = Path(first["folder"])
    assert folder == numba_cache_folder(base) and folder.name.startswith("umap-")
    assert first["enabled"] == 2 and first["values"] == [6, 4, 2, 3]  # plain and uncachable
    assert first["hits"] == {"plain": 0, "step": 0}
    cached = {p.name.split(".")[1].rsplit("-", 1)[0] for p in folder.rglob("*.nbi")}
    assert cached == {"plain", "asks_for_it"}
    second = run(base)
    assert second["hits"] == {"plain": 1, "step": 0}  # loaded, not compiled again
    # The user's own NUMBA_CACHE_DIR wins.
    own = tmp_path / "own"
    assert run(base, {"NUMBA_CACHE_DIR": str(own)})["folder"] == str(own)


def test_umap_warms_up_in_a_low_priority_background_thread(monkeypatch, tmp_path):
    import os
    import threading

    from rebase_core.diversity import projection as projection_module

    seen: dict[str, object] = {}

    def fake_warm_up(numba_cache_dir=None, **_):
        seen["niceness"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["cache"] = numba_cache_dir
        seen["thread"] = threading.current_thread().name
        return 0.0

    monkeypatch.setattr(projection_module, "warm_up", fake_warm_up)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    thread = projection_module.warm_up_in_background(numba_cache_dir=tmp_path, niceness=5)
    thread.join(timeout=10)
    assert thread.daemon and seen["thread"] == "umap-warm-up"
    assert seen["cache"] == tmp_path
    assert seen["niceness"] == min(19, base + 5)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the server's own threads keep theirs
