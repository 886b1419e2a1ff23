"""AppTest of the Retrieve page's readability parts: the app's defaults (identical rows dropped,
a per-dataset cap) with the paper's setting one click away, the datasets in the top K, the
row detail's full scores, and dataset filter links that hold the name only."""

import json

import pytest
from store_fixtures import app_home
from streamlit.testing.v1 import AppTest

from rebase_core.datastore import BuildParams, build_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.retrieval import APP_PER_DATASET_CAP
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.types import Example, Task
from rebase_core.workspace import Workspace

TOPICS = {
    "animals": ["The cat sat on the mat", "A dog chased the ball", "The cat sat on the mat"],
    "finance": ["Stocks fell sharply today", "The bank raised interest rates"],
    "sport": ["The team won the final", "She ran a marathon"],
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = app_home(tmp_path, monkeypatch, TOPICS)
    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(Task("pets", "Which animal?", (Example("The cat sat", "cat"),)))
    ws.set_value("current_task", rec.id)
    return home


def _retrieve_page():
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    at.switch_page("app_pages/retrieve.py").run()
    assert not at.exception, at.exception
    return at


def _submit(at, label):
    next(b for b in at.get("form_submit_button") if b.label == label).click().run()
    assert not at.exception, at.exception


def test_retrieve_drops_identical_rows_and_caps_by_default_and_the_paper_is_one_click(home):
    ws = Workspace(home / "workspace.sqlite")
    at = _retrieve_page()
    _submit(at, "Retrieve")
    (run,) = ws.retrieval_runs(1)
    assert run.options["dedup"] is True and run.options["per_dataset_cap"] == APP_PER_DATASET_CAP
    assert run.n_rows == 6  # the repeated cat sentence appears once
    assert any(
        c.value.startswith(f"This run: at most {APP_PER_DATASET_CAP} rows per dataset")
        and "1 identical row skipped" in c.value
        for c in at.caption
    )
    _submit(at, "Retrieve with the paper's setting")
    paper = ws.retrieval_runs(1)[0]
    assert paper.options["dedup"] is False and paper.options["per_dataset_cap"] is None
    assert paper.n_rows == 7
    assert any("(the paper's setting)" in c.value for c in at.caption)


def test_the_datasets_in_the_top_k_and_the_detail_in_full(home):
    at = _retrieve_page()
    _submit(at, "Retrieve")
    assert any(e.label.startswith("Datasets in your top 6: 3") for e in at.expander)
    table = next(d for d in at.dataframe if "best rank" in d.value.columns).value
    assert sorted(table["dataset"]) == ["animals", "finance", "sport"]
    assert table["rows"].sum() == 6 and table["keep"].all()
    assert not at.metric  # the scores are a line of text, not metrics cut to "0.2…"
    assert any(m.value.startswith("**Score 0.") and " / 3" in m.value for m in at.markdown)


def test_the_dataset_filter_link_holds_the_name_and_older_labels_still_work(home):
    at = _retrieve_page()
    _submit(at, "Retrieve")
    at.multiselect(key="rv_ds").set_value(["finance"]).run()
    assert sorted(at.multiselect(key="rv_ds").options) == ["animals", "finance", "sport"]
    assert any(c.value.startswith("Showing 2 of 6 rows") for c in at.caption)
    old = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    old.secrets["ANTHROPIC_API_KEY"] = ""
    old.query_params["rv_ds"] = "finance (2)"
    old.run()
    old.switch_page("app_pages/retrieve.py").run()
    assert not old.exception, old.exception
    assert old.multiselect(key="rv_ds").value == ["finance"]


def test_a_filter_or_a_run_with_no_rows_shows_an_empty_table_not_an_error(home):
    at = _retrieve_page()
    _submit(at, "Retrieve")
    at.segmented_control(key="rv_show").set_value("dropped").run()  # nothing dropped yet
    assert not at.exception, at.exception
    assert any(c.value.startswith("Showing 0 of 6 rows") for c in at.caption)
    assert any(c.value == "No row matches the filters." for c in at.caption)
    at.segmented_control(key="rv_show").set_value("all").run()
    next(w for w in at.text_input if w.label.startswith("Only rows containing")).input("zzz")
    _submit(at, "Retrieve")  # a run whose keywords match no row
    assert Workspace(home / "workspace.sqlite").retrieval_runs(1)[0].n_rows == 0
    assert any(e.label == "Datasets in your top K" for e in at.expander)


def _fake_build_job(settings: Settings, store, kind: str, state: str) -> None:
    """A build job's folder as `jobs.start_job` writes it, owned by this (live) process."""
    import os
    import time

    from rebase_core.datastore import build_job_key

    folder = settings.jobs_dir / f"{time.time_ns()}-{kind}"
    folder.mkdir(parents=True)
    now = time.time()
    spec = {"kind": kind, "key": build_job_key(store), "params": {}, "created_at": now}
    (folder / "spec.json").write_text(json.dumps(spec))
    status = {"state": state, "pid": os.getpid(), "started_at": now, "updated_at": now}
    status["progress"] = {"done": 2, "total": 9, "message": "full store: x"}
    (folder / "status.json").write_text(json.dumps(status))


def test_a_run_on_the_starter_store_is_marked_and_offered_again_on_the_full_one(home, tmp_path):
    """While the first full build runs, retrieval uses the starter store and says so; once the
    full store is complete, the run made on the starter offers a rerun there."""
    settings = Settings(home=home, embedder="hash")
    full = settings.default_store
    starter = settings.starter_store
    # The starter store is built (2 rows a config); the full one is being built.
    sources = [str(tmp_path / "src" / t) for t in TOPICS]
    build_datastore(starter, sources, settings, params=BuildParams(2), embedder=HashingEmbedder())
    _fake_build_job(settings, starter, "datastore_default", "done")
    _fake_build_job(settings, full, "datastore_default", "running")
    ws = Workspace(home / "workspace.sqlite")
    at = _retrieve_page()
    assert any("the starter datastore" in i.value for i in at.info)
    _submit(at, "Retrieve")
    (run,) = ws.retrieval_runs(1)
    assert run.store == str(starter)
    assert "building (2 of 9)" in run.options["store_note"]
    assert not any("The full datastore is ready" in w.value for w in at.warning)

    # The full build finishes.
    for status in settings.jobs_dir.glob("*/status.json"):
        data = json.loads(status.read_text())
        status.write_text(json.dumps({**data, "state": "done"}))
    at = _retrieve_page()
    assert not any("the starter datastore" in i.value for i in at.info)
    assert any("The full datastore is ready" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Retrieve again on the full datastore").click().run()
    assert not at.exception, at.exception
    newest = ws.retrieval_runs(1)[0]
    assert newest.id != run.id and newest.store == str(full)
    assert newest.options["store_note"] == ""
    assert newest.options["dedup"] == run.options["dedup"]
    assert newest.options["per_dataset_cap"] == run.options["per_dataset_cap"]
    assert not any("The full datastore is ready" in w.value for w in at.warning)
