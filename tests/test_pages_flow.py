"""AppTest through Task -> Datastore -> Retrieve on a small fixture store (hashing embedder)."""

import pytest
from store_fixtures import app_home
from streamlit.testing.v1 import AppTest

from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")

TOPICS = {
    "animals": [
        "The cat sat on the mat",
        "A dog chased the ball",
        "Birds fly south in winter",
        "The cat chased a bird",
    ],
    "finance": ["Stocks fell sharply today", "The bank raised interest rates", "Bonds rallied"],
    "sport": ["The team won the final", "She ran a marathon", "The striker scored twice"],
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    return app_home(tmp_path, monkeypatch, TOPICS)


def _app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    return at


def _fill_and_save(at, name, instruction):
    next(w for w in at.text_input if w.label == "Name").input(name)
    next(w for w in at.text_area if w.label == "Instruction").input(instruction)
    at.button(key="task_save").click().run()


def test_task_page_saves_a_validated_task(home):
    at = _app().run()
    at.switch_page("app_pages/task.py").run()
    _fill_and_save(at, "pets", "Say which animal the sentence is about.")
    # No example filled in: a clear validation message, nothing saved.
    assert at.error and "no examples" in at.error[0].value
    assert Workspace(home / "workspace.sqlite").list_tasks() == []
    at.text_area(key="task_paste").input("The cat purred\tcat\nA dog barked\tdog").run()
    next(b for b in at.button if b.label == "Add pasted examples").click().run()
    _fill_and_save(at, "pets", "Say which animal the sentence is about.")
    assert not at.exception
    tasks = Workspace(home / "workspace.sqlite").list_tasks()
    assert [t.name for t in tasks] == ["pets"]
    assert [e.output for e in tasks[0].task.examples] == ["cat", "dog"]


def test_task_edits_are_kept_as_a_draft_across_a_refresh(home):
    at = _app().run()
    at.switch_page("app_pages/task.py").run()
    next(w for w in at.text_input if w.label == "Name").input("half-typed").run()
    next(w for w in at.text_area if w.label == "Instruction").input("Not saved yet.").run()
    assert Workspace(home / "workspace.sqlite").list_tasks() == []
    fresh = _app().run()  # a page refresh starts a new session
    fresh.switch_page("app_pages/task.py").run()
    assert not fresh.exception
    assert next(w for w in fresh.text_input if w.label == "Name").value == "half-typed"
    assert next(w for w in fresh.text_area if w.label == "Instruction").value == "Not saved yet."
    assert "unsaved changes" in fresh.info[0].value
    next(b for b in fresh.button if b.label == "Discard the draft").click().run()
    assert next(w for w in fresh.text_input if w.label == "Name").value == ""


def test_retrieve_page_runs_filters_and_selects(home):
    from rebase_core.types import Example, Task

    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    ws.set_value("current_task", rec.id)
    at = _app().run()
    at.switch_page("app_pages/datastore.py").run()
    assert not at.exception
    assert [m.value for m in at.metric][:4] == ["3", "3", "10", "20"]
    at.switch_page("app_pages/retrieve.py").run()
    assert not at.exception
    next(b for b in at.get("form_submit_button") if b.label == "Retrieve").click().run()
    assert not at.exception, at.exception
    runs = ws.retrieval_runs(rec.id)
    assert len(runs) == 1 and runs[0].n_rows == 10
    rows = ws.retrieved_rows(runs[0].id)
    assert "cat" in rows[0].row.row["text"].lower()
    # Bulk-drop everything shown under a keyword filter, through the confirmation dialog.
    at.text_input(key="rv_q").input("bank").run()
    next(b for b in at.button if b.label.startswith("Drop all 1")).click().run()
    next(b for b in at.button if b.label == "Drop 1 rows").click().run()
    assert not at.exception
    assert ws.retrieval_runs(rec.id)[0].n_selected == 9


def _wait_for_build(home, timeout_s=90):
    import time

    from rebase_core import jobs

    settings = Settings(home=home)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        listed = jobs.list_jobs(settings, kind="datastore_build")
        if listed and not listed[0].is_active:
            return listed[0]
        time.sleep(0.2)
    raise AssertionError("the build job did not finish")


def test_datastore_page_adds_a_local_source_in_the_background(home, tmp_path):
    folder = tmp_path / "more" / "weather"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"text": "It rains in Bergen", "label": "rain"}\n')
    at = _app().run()
    at.switch_page("app_pages/datastore.py").run()
    at.segmented_control(key="ds_kind").set_value("Local path").run()
    at.text_input(key="ds_path").input(str(tmp_path / "missing")).run()
    next(b for b in at.button if b.label == "Add to the datastore").click().run()
    assert at.error and "does not exist" in at.error[0].value
    at.text_input(key="ds_path").input(str(folder)).run()
    next(b for b in at.button if b.label == "Add to the datastore").click().run()
    assert not at.exception
    job = _wait_for_build(home)
    assert job.state == "done", job.error
    from rebase_core.datastore import open_datastore

    store = open_datastore(Settings(home=home).default_store, Settings(home=home, embedder="hash"))
    assert "weather" in [d.name for d in store.datasets()] and store.n_rows == 11


def test_retrieve_page_row_detail_keeps_and_finds_rows_like_it(home):
    from rebase_core.types import Example, Task

    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    ws.set_value("current_task", rec.id)
    at = _app().run()
    at.switch_page("app_pages/retrieve.py").run()
    next(b for b in at.get("form_submit_button") if b.label == "Retrieve").click().run()
    run = ws.retrieval_runs(rec.id)[0]
    assert "best input match" in at.get("html")[0].proto.body
    # Dropping the shown row from its detail, then showing only the dropped rows.
    next(t for t in at.toggle if t.label == "Keep for transformation").set_value(False).run()
    assert ws.retrieval_runs(rec.id)[0].n_selected == run.n_rows - 1
    at.segmented_control(key="rv_show").set_value("dropped").run()
    assert not at.exception
    assert any(c.value.startswith("Showing 1 of 10 rows") for c in at.caption)
    next(b for b in at.button if b.label == "More like this row").click().run()
    assert not at.exception, at.exception
    similar = at.dataframe[-1].value
    assert list(similar.columns) == ["dataset", "similarity", "best cell", "in this run"]
    assert similar["in this run"].all()  # a 10-row store: every row is in the run


def test_datastore_page_filters_datasets_by_name_and_lists_configs(home):
    at = _app().run()
    at.switch_page("app_pages/datastore.py").run()
    at.text_input(key="ds_query").input("finance").run()
    assert not at.exception
    assert list(at.dataframe[0].value["dataset"]) == ["finance"]
    at.toggle(key="ds_semantic").set_value(True).run()
    assert not at.exception
    assert "similarity" in at.dataframe[0].value.columns
    at.toggle(key="ds_only_skipped").set_value(True).run()
    assert not at.exception


def test_export_page_offers_the_chosen_pairs_and_their_card(home):
    from rebase_core.types import Example, Pair, Task

    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    ws.set_value("current_task", rec.id)
    run = ws.create_pair_run(rec.id, "direct", llm="fake")
    pairs = [
        Pair(id="p1", input="A cow", output="cow", origin="direct", status="accepted"),
        Pair(id="p2", input="A hen", output="hen", origin="direct", status="pending"),
    ]
    ws.add_pairs(run, rec.id, pairs)
    at = _app().run()
    at.switch_page("app_pages/export.py").run()
    assert not at.exception, at.exception
    labels = [b.label for b in at.get("download_button")]
    assert "Download 1 pairs (JSONL)" in labels  # accepted and edited by default
    assert "license:" in at.code[0].value
    at.multiselect(key="ex_statuses").select("pending").run()
    assert "Download 2 pairs (JSONL)" in [b.label for b in at.get("download_button")]
    assert next(s for s in at.selectbox if s.label == "What").value == "pairs"


def test_home_page_points_at_the_first_step_not_done(home):
    at = _app().run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert "done" in captions  # the datastore of the fixture is built
    assert captions.count("to do") == 7


def test_a_task_retrieves_with_the_retriever_chosen_in_the_panel(home):
    import numpy as np

    from rebase_core.retriever import QueryMap, RetrieverInfo, task_retriever
    from rebase_core.retriever.versions import retrievers_dir, save_retriever
    from rebase_core.types import Example, Task

    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    ws.set_value("current_task", rec.id)
    folder = retrievers_dir(Settings(home=home)) / "r1"
    folder.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    matrix = (np.eye(256) + 0.5 * rng.standard_normal((256, 256))).astype(np.float32)
    save_retriever(
        RetrieverInfo(
            folder, "hash", 256, "store", ("s.jsonl",), {"teacher": 3}, 3, 0, {"total": 1.0}, 1, "t"
        ),
        QueryMap(matrix, np.zeros(256, np.float32)),
        None,
    )
    at = _app().run()
    at.switch_page("app_pages/retrieve.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ri_use").value.startswith("base")
    at.selectbox(key="ri_use").set_value(str(folder)).run()
    assert task_retriever(ws, rec.id) == folder
    next(b for b in at.get("form_submit_button") if b.label == "Retrieve").click().run()
    assert not at.exception, at.exception
    (run,) = ws.retrieval_runs(rec.id)
    assert run.options["retriever"] == str(folder)
    at.selectbox(key="ri_use").set_value(at.selectbox(key="ri_use").options[0]).run()
    assert task_retriever(ws, rec.id) is None  # back to the base in one click
