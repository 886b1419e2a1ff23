"""AppTest of the Compare page on a small workspace: a task, a retrieval run and pairs of every
origin made here; the hashing embedder and the fake LLM."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core import jobs, runs
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.types import Example, Pair, ScoredRow, Task
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")
TASK = Task(
    "sentiment",
    "Classify the sentiment of the movie review as positive or negative.",
    (
        Example("A moving, beautifully shot film with a superb cast.", "positive"),
        Example("Dull, overlong and badly acted; I left halfway through.", "negative"),
    ),
)
TOPICS = ["film", "song", "book", "play", "show", "game"]


def _pairs(origin: str, count: int, words: str) -> list[Pair]:
    return [
        Pair(
            id=f"{origin}-{i}",
            input=f"The {TOPICS[i % len(TOPICS)]} was {words} number {i}",
            output="positive" if i % 2 else "negative",
            origin=origin,
            status="accepted" if i < 3 else "pending",
            extra={"key": f"k{i}"},
        )
        for i in range(count)
    ]


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    monkeypatch.setenv("REBASE_LLM", "fake")
    ws = Workspace(Settings(home=home).workspace_db)
    rec = ws.save_task(TASK)
    ws.set_value("current_task", rec.id)
    rows = [
        ScoredRow(
            "reviews",
            "default",
            str(i),
            0.5,
            0.5,
            0.5,
            0.5,
            "text",
            "label",
            "Film reviews.",
            {"text": f"a retrieved review of a {TOPICS[i % 6]} {i}", "label": "pos"},
        )
        for i in range(6)
    ]
    ws.save_retrieval(rec, "store", {}, "exact", 0.1, rows, list(range(6)))
    for origin, words in [("rebase", "lovely and odd"), ("direct", "great"), ("self-guide", "ok")]:
        kind = "transform" if origin == "rebase" else origin
        run = ws.create_pair_run(rec.id, kind, llm="fake")
        ws.add_pairs(run, rec.id, _pairs(origin, 8, words))
    return home, ws, rec


def _app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    return at


def test_compare_page_shows_metrics_for_every_origin(home):
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert {"retrieved", "rebase", "direct", "self-guide"} <= set(frame.index)
    assert {"rebase · curated", "direct · curated"} <= set(frame.index)
    assert frame.loc["rebase", "pairs"] == 8 and frame.loc["direct · curated", "pairs"] == 3
    assert frame.loc["retrieved", "pairs"] == 6
    assert all(0 < frame.loc[s, "distinct-2"] <= 1 for s in ("rebase", "direct", "self-guide"))
    labels = [m.label for m in at.metric]
    assert {"direct: distinct bigrams", "self-guide: distinct bigrams"} <= set(labels)
    assert any("kaleido" in c.value for c in at.caption)  # PNG export says why it is missing


def test_compare_page_empty_states(tmp_path, monkeypatch):
    monkeypatch.setenv("REBASE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert any("No task yet" in i.value for i in at.info)
    ws = Workspace(Settings(home=tmp_path / "home").workspace_db)
    ws.set_value("current_task", ws.save_task(TASK).id)
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    texts = [i.value for i in at.info]
    assert any("No ReBase pairs yet" in t for t in texts)
    assert any("No baseline yet" in t for t in texts)


def test_launching_a_direct_run_creates_pairs(home):
    _, ws, rec = home
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    next(w for w in at.number_input if w.label == "Pairs to make").set_value(3).run()
    at.button(key="cmp_launch").click().run()
    assert not at.exception, at.exception
    made_runs = ws.pair_runs(rec.id, "direct")
    assert len(made_runs) == 2 and made_runs[0].params["n"] == 3 and made_runs[0].job_id
    job = runs.pair_run_job(Settings(home=home[0]), made_runs[0])
    assert job is not None and job.key == f"synthesize:{made_runs[0].id}"
    deadline = time.time() + 60
    while jobs.job_status(job.folder).is_active and time.time() < deadline:
        time.sleep(0.2)
    status = jobs.job_status(job.folder)
    assert status.state == "done", status.error
    made = ws.pairs(run_id=made_runs[0].id)
    assert len(made) == 3 and {p.origin for p in made} == {"direct"}
    at.run()
    assert not at.exception
    assert at.dataframe[0].value.loc["direct", "pairs"] == 3  # the newest run
    # The Transform page shows the same run's job (it looked under another key before).
    at.switch_page("app_pages/transform.py").run()
    at.selectbox(key="tf_pair_run").set_value(made_runs[0].id).run()
    assert not at.exception, at.exception
    assert any("Generating: done" in s.value for s in at.success)


def test_a_lasso_selection_maps_back_to_the_points():
    """The page lists what a box or lasso selected through `selected_indices` (AppTest cannot
    drive a Plotly selection): the points of an event, as the figure's customdata carries them."""
    import numpy as np

    from rebase_core.diversity import project, projection_figure, selected_indices

    vectors = {"rebase": np.eye(6, dtype=np.float32)[:3], "direct": np.eye(6, dtype=np.float32)[3:]}
    projection = project(
        {"rebase": ["a", "b", "c"], "direct": ["d", "e", "f"]},
        vectors=vectors,
        ids={"rebase": ["r0", "r1", "r2"], "direct": ["d0", "d1", "d2"]},
        method="pca",
    )
    figure = projection_figure(projection)
    points = [
        {"curve_number": 1, "point_index": 2, "customdata": list(figure.data[1].customdata[2])},
        {"curve_number": 0, "point_index": 0, "customdata": list(figure.data[0].customdata[0])},
        {"curve_number": 0, "point_index": 0, "customdata": ["r0", 0]},  # the same point twice
        {"curve_number": 0, "point_index": 1, "customdata": ["gone", 1]},  # from an older map
        {"curve_number": 0, "point_index": 1},  # no customdata
    ]
    chosen = selected_indices(points, projection)
    assert chosen == [0, 5]
    assert [projection.point_id[i] for i in chosen] == ["r0", "d2"]


def test_umap_is_computed_in_the_background_then_shown(home, monkeypatch):
    from rebase_core.diversity import projection as projection_module

    fits, numba_dirs = [], []

    def fake_umap(vectors, **kwargs):  # stands in for the fit (numba's JIT alone takes ~40 s)
        time.sleep(1.5)
        fits.append(len(vectors))
        numba_dirs.append(kwargs.get("numba_cache_dir"))
        return projection_module._pca_2d(vectors)[:, ::-1].copy()

    monkeypatch.setattr(projection_module, "_umap_2d", fake_umap)
    at = _app().run()
    at.switch_page("app_pages/compare.py").run()
    assert '"PCA of the inputs' in at.get("plotly_chart")[0].proto.spec
    at.segmented_control(key="cmp_map_method").set_value("umap").run()
    assert not at.exception, at.exception
    assert '"PCA of the inputs' in at.get("plotly_chart")[0].proto.spec  # PCA meanwhile
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.2)
        at.run()  # what the poller fragment triggers every 2 s
        if '"UMAP of the inputs' in at.get("plotly_chart")[0].proto.spec:
            break
    assert not at.exception
    assert '"UMAP of the inputs' in at.get("plotly_chart")[0].proto.spec
    assert fits == [2 + 6 + 3 * 8]  # examples, retrieved rows and the three sets, fitted once
    assert numba_dirs == [home[0] / "cache" / "numba"]  # umap's compiled code kept there
