"""Making and browsing a retrieval run: recorded in the workspace, filtered, tabled, detailed."""

import doctest

import pytest
from store_fixtures import build_topic_store

import rebase_core.retrieval_runs as rr
from rebase_core.datastore import open_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import InputError
from rebase_core.retrieval import RetrievalOptions
from rebase_core.types import Example, ScoredRow, Task
from rebase_core.workspace import RetrievedRow, Workspace

TOPICS = {
    "animals": ["The cat sat on the mat", "A dog chased the ball", "The cat chased a bird"],
    "finance": ["Stocks fell sharply today", "The bank raised interest rates"],
}


@pytest.fixture
def made(tmp_path, settings):
    """A small store, a task and one retrieval run of it, recorded in a workspace."""
    build_topic_store(settings, tmp_path / "src", TOPICS)
    store = open_datastore(settings.default_store, settings)
    ws = Workspace(tmp_path / "ws.sqlite")
    record = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    options = RetrievalOptions(top_k=10, exclude_datasets=("finance",))
    run = rr.run_retrieval(ws, record, store, HashingEmbedder(), options)
    yield ws, record, store, run
    store.close()


def _row(dataset, score, cells, row_id="1"):
    return ScoredRow(
        dataset, "default", row_id, score, score, score, 0.5, "text", "label", "", cells
    )


ROWS = [
    RetrievedRow(0, _row("animals", 0.9, {"text": "The Cat sat", "label": "cat"}, "a"), True),
    RetrievedRow(1, _row("animals", 0.6, {"text": "A dog ran", "label": "dog"}, "b"), False),
    RetrievedRow(2, _row("finance", 0.3, {"text": "The bank", "label": "money"}, "c"), True),
]


def test_a_run_is_recorded_with_its_options_and_every_row_kept(made):
    ws, record, store, run = made
    assert [r.id for r in ws.retrieval_runs(record.id)] == [run.id]
    assert run.n_rows == run.n_selected == 3  # finance excluded by the options
    assert run.options["exclude_datasets"] == ["finance"]
    assert run.store == str(store.path)
    assert rr.excluded_datasets(run, store.dataset_names) == ["finance"]
    assert rr.run_label(run).startswith(f"#{run.id} · ") and "3 rows, 3 selected" in rr.run_label(
        run
    )
    assert rr.version_note(run, record.version) is None
    assert "task version 1" in rr.version_note(run, record.version + 1)
    # The options come back as they were given (tuples too), to make the run again.
    assert rr.run_options(run) == RetrievalOptions(top_k=10, exclude_datasets=("finance",))
    # Not made on a partial store: nothing to offer again.
    assert rr.partial_store_note(run, str(store.path), store_partial=False) is None


def test_a_run_on_a_partial_store_is_offered_again_once_the_store_is_complete(made):
    ws, record, store, _ = made
    note = "the starter datastore (5 rows of each bundled config), while the full one is building"
    run = rr.run_retrieval(
        ws, record, store, HashingEmbedder(), RetrievalOptions(), store_note=note
    )
    assert run.options["store_note"] == note
    assert rr.partial_store_note(run, str(store.path), store_partial=True) is None  # not yet
    offer = rr.partial_store_note(run, "/elsewhere/default", store_partial=False)
    assert offer is not None and note in offer and "the full datastore" in offer


def test_rows_like_a_row_come_from_the_store_and_are_marked_when_in_the_run(made):
    ws, _, store, run = made
    rows = ws.retrieved_rows(run.id)
    similar = rr.rows_like(store, rows[0].row, top_k=4)
    assert similar and rows[0].row.key not in {r.key for r in similar}
    table = rr.similar_table(similar, rows)
    assert list(table) == ["dataset", "similarity", "best cell", "in this run"]
    assert table["in this run"] == [r.dataset == "animals" for r in similar]
    gone = _row("animals", 0.1, {"text": "x"}, row_id="nope")
    with pytest.raises(InputError, match="not in the datastore any more"):
        rr.rows_like(store, gone)


def test_filters_combine_datasets_scores_words_and_kept_state():
    assert rr.filter_rows(ROWS, rr.RowFilter()) == ROWS
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(datasets=("finance",)))] == [2]
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(min_score=0.6))] == [0, 1]
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(query="the CAT"))] == [0]
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(query="cat dog"))] == []
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(show="kept"))] == [0, 2]
    assert [r.rank for r in rr.filter_rows(ROWS, rr.RowFilter(show="dropped"))] == [1]
    with pytest.raises(InputError, match="show must be one of"):
        rr.filter_rows(ROWS, rr.RowFilter(show="some"))


def test_facets_bounds_and_table_columns():
    assert rr.dataset_counts(ROWS) == [("animals", 2), ("finance", 1)]
    assert rr.score_bounds(ROWS) == (0.3, 0.9)
    assert rr.score_bounds([]) == (0.0, 1.0)
    table = rr.row_table(ROWS)
    assert table["rank"] == [1, 2, 3] and table["keep"] == [True, False, True]
    assert table["best input cell"][0] == "The Cat sat" and table["row"][2] == "default/c"
    assert list(rr.row_table([])) == list(table)  # the columns stay when nothing is shown
    assert rr.row_label(ROWS[0]) == "#1 · animals · 0.9000"  # ranks count from 1 on screen
    assert [name for name, _ in rr.score_terms(ROWS[0].row)] == [
        "Score",
        "Input",
        "Output",
        "Dataset",
    ]
    figure = rr.sources_chart(rr.dataset_counts(ROWS))
    assert list(figure.data[0].y) == ["animals", "finance"]


def test_row_detail_marks_best_cells_and_highlights_words_escaped():
    row = _row("d", 0.5, {"text": "a <cat>", "label": "cat"})
    shown = rr.cells_html(row, ["cat"])
    assert "best input match" in shown and "best output match" in shown
    assert "a &lt;<mark>cat</mark>&gt;" in shown and "<cat>" not in shown


def test_docstring_examples():
    result = doctest.testmod(rr)
    assert result.attempted > 0 and result.failed == 0


def test_datasets_in_the_top_k_are_summarised_and_kept_or_dropped_whole(tmp_path, settings):
    """Two runs of a task; dropping a dataset in one changes that dataset's rows of that run
    only, and ticking it again keeps them all."""
    topics = {**TOPICS, "pets": ["The cat purred", "A cat slept"]}
    build_topic_store(settings, tmp_path / "src", topics, descriptions=False)
    store = open_datastore(settings.default_store, settings)
    ws = Workspace(tmp_path / "ws.sqlite")
    record = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    first = rr.run_retrieval(ws, record, store, HashingEmbedder(), RetrievalOptions(top_k=10))
    other = rr.run_retrieval(ws, record, store, HashingEmbedder(), RetrievalOptions(top_k=10))
    rows = ws.retrieved_rows(first.id)
    summary = rr.dataset_summary(rows)
    assert [(s.dataset, s.rows) for s in summary] == [
        ("animals", 3),
        *sorted([("finance", 2), ("pets", 2)], key=lambda d: _best(rows, d[0])),
    ]
    assert sum(s.share for s in summary) == pytest.approx(1.0)
    assert all(s.all_kept for s in summary)
    assert [s.best_rank for s in summary] == [_best(rows, s.dataset) + 1 for s in summary]
    table = rr.dataset_table(summary)
    assert list(table) == ["keep", "dataset", "rows", "share", "kept", "best rank"]

    position = [s.dataset for s in summary].index("finance")
    changed = rr.apply_dataset_edits(ws, first.id, summary, {str(position): {"keep": False}})
    assert changed == 2
    after = ws.retrieved_rows(first.id)
    assert {r.row.dataset for r in after if not r.selected} == {"finance"}
    assert all(r.selected for r in ws.retrieved_rows(other.id))  # the other run is untouched
    again = rr.dataset_summary(after)
    finance = next(s for s in again if s.dataset == "finance")
    assert (finance.kept, finance.all_kept) == (0, False)
    assert rr.dataset_table(again)["keep"][position] is False
    assert ws.set_dataset_selected(first.id, ["finance"], False) == 0  # nothing left to change
    assert ws.set_dataset_selected(first.id, ["finance", "pets"], True) == 2
    assert all(r.selected for r in ws.retrieved_rows(first.id))
    assert rr.apply_dataset_edits(ws, first.id, summary, {0: {"other": 1}}) == 0
    store.close()


def _best(rows, dataset):
    return min(r.rank for r in rows if r.row.dataset == dataset)


def test_a_run_says_its_cap_and_dedup_and_what_they_skipped(made):
    ws, record, store, _ = made
    paper = ws.retrieval_runs(record.id)[0]
    assert rr.run_options_note(paper) == (
        "no cap per dataset; identical rows kept (the paper's setting)"
    )
    capped = rr.run_retrieval(
        ws, record, store, HashingEmbedder(), RetrievalOptions(top_k=2, per_dataset_cap=1)
    )
    skipped = capped.options["outcome"]["capped"]
    assert skipped >= 1 and capped.options["outcome"]["duplicates_dropped"] == 0
    assert len({r.row.dataset for r in ws.retrieved_rows(capped.id)}) == 2
    assert rr.run_options_note(capped) == (
        f"at most 1 row per dataset; identical rows kept; "
        f"{skipped} row{'' if skipped == 1 else 's'} over the cap skipped"
    )


def test_tables_show_blank_not_none_and_the_detail_shows_scores_in_full():
    odd = RetrievedRow(
        0,
        ScoredRow("d", "c", "0", 0.23456, 0.2, 0.3, 0.1, "text", "", "", {"text": "x"}),
        True,
    )
    table = rr.row_table([odd])
    assert table["best input cell"] == ["x"] and table["best output cell"] == [""]
    text = rr.score_text(odd.row)
    assert text == "**Score 0.2346** = (input 0.2000 + output 0.3000 + dataset 0.1000) / 3"
    assert "…" not in text


def test_an_older_links_dataset_label_still_names_the_dataset():
    names = ["animals", "bigbench/x (y)"]
    assert rr.dataset_param("animals", names) == "animals"
    assert rr.dataset_param("animals (100)", names) == "animals"
    assert rr.dataset_param("bigbench/x (y)", names) == "bigbench/x (y)"
    assert rr.dataset_param("finance (3)", names) is None
