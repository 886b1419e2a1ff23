"""AppTest of the curation flow: transform with the fake LLM, edit, accept, bulk reject, undo."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core import jobs
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.types import Example, ScoredRow, Task
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")
TASK = Task(
    "nli", "Decide the relation.", (Example("a sentence / another sentence", "entailment"),)
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    monkeypatch.setenv("REBASE_LLM", "fake")
    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(TASK)
    rows = [
        ScoredRow(
            "ds",
            "default",
            str(i),
            0.5 - i / 100,
            0.5,
            0.4,
            0.6,
            "text",
            "label",
            "desc",
            {"text": f"sentence number {i}", "label": "x"},
        )
        for i in range(6)
    ]
    ws.save_retrieval(rec, "store", {}, "exact", 0.0, rows, list(range(6)))
    ws.set_value("current_task", rec.id)
    return home


def _click(at, label):
    """Click the button with this label, or else the one whose label starts with it."""
    exact = [b for b in at.button if b.label == label]
    (exact or [b for b in at.button if b.label.startswith(label)])[0].click().run()
    assert not at.exception, at.exception


def _wait_for_job(home):
    settings = Settings(home=home)
    deadline = time.time() + 60
    while time.time() < deadline:
        active = [j for j in jobs.list_jobs(settings) if j.is_active]
        if not active and jobs.list_jobs(settings):
            return jobs.list_jobs(settings)[0]
        time.sleep(0.1)
    raise AssertionError("transform job did not finish")


def test_curation_flow(home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    at.switch_page("app_pages/transform.py").run()
    assert not at.exception, at.exception
    at.number_input(key="tf_grounding").set_value(0.0).run()  # the fake's replies ignore the row
    _click(at, "Transform 6 rows")
    job = _wait_for_job(home)
    assert job.state == "done", job.error
    at.run()
    ws = Workspace(home / "workspace.sqlite")
    pairs = ws.pairs(task_id=1)
    assert len(pairs) == 6 and {p.status for p in pairs} == {"pending"}

    # Edit the first pair in the focus view, accepting it.
    first = pairs[0]
    at.text_area(key=f"tf_out_{first.id}").input("contradiction")
    _click(at, "Accept")
    assert ws.get_pair(first.id).status == "edited"
    assert ws.get_pair(first.id).output == "contradiction"

    # Accept the next one as it is.
    _click(at, "Accept")
    assert ws.status_counts(task_id=1)["accepted"] == 1

    # Bulk-reject the remaining pending pairs, through the confirmation dialog.
    _click(at, "Reject all 4")
    _click(at, "Mark 4 as rejected")
    assert ws.status_counts(task_id=1) == {"pending": 0, "accepted": 1, "rejected": 4, "edited": 1}

    # Undo brings the four back; a second undo reverts the accept.
    _click(at, "Undo rejected")
    assert ws.status_counts(task_id=1)["pending"] == 4
    _click(at, "Undo accepted")
    assert ws.status_counts(task_id=1)["pending"] == 5
    history = [e.action for e in ws.history(first.id)]
    assert history == ["edit"]


def test_a_typed_edit_survives_a_refresh_until_accepted(home):
    from rebase_core.types import Pair

    ws = Workspace(home / "workspace.sqlite")
    run = ws.create_pair_run(1, "transform", llm="fake")
    ws.add_pairs(run, 1, [Pair("p1", "a sentence / b", "neutral", "rebase")])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/transform.py").run()
    at.text_area(key="tf_out_p1").input("entailment").run()
    assert ws.get_pair("p1").output == "neutral"  # a draft, not an edit yet
    fresh = AppTest.from_file(APP, default_timeout=60)  # the refresh
    fresh.run()
    fresh.switch_page("app_pages/transform.py").run()
    assert fresh.text_area(key="tf_out_p1").value == "entailment"
    _click(fresh, "Accept")
    assert (ws.get_pair("p1").output, ws.get_pair("p1").status) == ("entailment", "edited")
    assert ws.get_value("pair_draft:p1") is None


def test_a_reload_returns_to_the_run_being_curated_and_undo_stays_in_it(home):
    from rebase_core.types import Pair

    ws = Workspace(home / "workspace.sqlite")
    older = ws.create_pair_run(1, "transform", llm="fake")
    ws.add_pairs(older, 1, [Pair("a1", "a sentence / b", "neutral", "rebase")])
    newer = ws.create_pair_run(1, "direct", llm="fake")
    ws.add_pairs(newer, 1, [Pair("n1", "c sentence / d", "neutral", "direct")])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/transform.py").run()
    assert at.selectbox(key="tf_pair_run").value == newer  # the newest run at first
    ws.set_status(["n1"], "rejected")  # an action on the newer run
    at.selectbox(key="tf_pair_run").set_value(older).run()
    _click(at, "Reject")
    assert ws.get_pair("a1").status == "rejected"
    fresh = AppTest.from_file(APP, default_timeout=60)  # the refresh
    fresh.run()
    fresh.switch_page("app_pages/transform.py").run()
    assert fresh.selectbox(key="tf_pair_run").value == older
    _click(fresh, "Undo rejected (1)")
    assert (ws.get_pair("a1").status, ws.get_pair("n1").status) == ("pending", "rejected")
