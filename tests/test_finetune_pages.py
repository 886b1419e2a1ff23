"""AppTest of the Fine-tune, Evaluate and Export pages, with a tiny random model made here."""

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from rebase_core import finetune as ft
from rebase_core import jobs
from rebase_core.export import read_pairs
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.types import Example, Pair, PairSource, Task
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")
TASK = Task(
    name="sentiment",
    instruction="Say whether the review is positive or negative.",
    examples=(Example("A delight.", "positive"), Example("Dull and long.", "negative")),
)
# 6 accepted + 1 edited ReBase pairs are the default training data; the rest must stay out.
PAIRS = [
    Pair(
        id=f"p{i}",
        input=f"review {i}: it was {'great' if i % 2 else 'boring'}",
        output="positive" if i % 2 else "negative",
        origin="rebase",
        status="edited" if i == 0 else "accepted",
        source=PairSource("imdb", "default", str(i), 0.5),
        llm="fake",
        prompt_version="v1",
    )
    for i in range(7)
] + [
    Pair(id="d0", input="review d: fine", output="positive", origin="direct", status="accepted"),
    Pair(id="x0", input="review x: meh", output="negative", origin="rebase", status="pending"),
    Pair(id="x1", input="review y: bad", output="negative", origin="rebase", status="rejected"),
]
TEST_ROWS = [("Great fun.", "positive"), ("So boring.", "negative")] * 2 + [
    ("Loved it.", "positive")
]


def _home(tmp_path, monkeypatch, *, task: bool = True, pairs: bool = True) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    ws = Workspace(home / "workspace.sqlite")
    if task:
        rec = ws.save_task(TASK)
        ws.set_value("current_task", rec.id)
        if pairs:
            ws.add_pairs(ws.create_pair_run(rec.id, "transform", llm="fake"), rec.id, PAIRS)
    ws.close()
    return home


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    return _home(tmp_path, monkeypatch)


def _open(page: str, secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _click(at: AppTest, label: str) -> None:
    exact = [b for b in at.button if b.label == label]
    (exact or [b for b in at.button if b.label.startswith(label)])[0].click().run()
    assert not at.exception, at.exception


def _wait_for_jobs(home: Path, timeout_s: float = 90.0) -> list[jobs.JobStatus]:
    settings = Settings(home=home)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        listed = jobs.list_jobs(settings)
        if listed and not any(j.is_active for j in listed):
            return listed
        time.sleep(0.2)
    logs = [(j.folder / "log.txt").read_text()[-1500:] for j in jobs.list_jobs(settings)]
    raise AssertionError(f"jobs did not finish: {logs}")


def _frame_with(at: AppTest, column: str):
    """The first table on the page that has this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "error")
        for e in at.get(kind)
    ]
    return "\n".join(str(p) for p in parts)


# ----------------------------------------------------------------------------- empty states


@pytest.mark.parametrize("page", ["finetune", "evaluate", "export"])
def test_without_a_task_each_page_points_to_the_task_page(tmp_path, monkeypatch, page):
    _home(tmp_path, monkeypatch, task=False)
    at = _open(page)
    assert "No task yet" in at.info[0].value
    assert not at.main.button  # nothing to launch (the sidebar has its own buttons)


def test_without_pairs_finetune_and_export_point_to_curation(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch, pairs=False)
    at = _open("finetune")
    assert "No pairs for this task yet" in at.info[0].value
    assert not at.get("form")
    at = _open("export")
    assert "No pairs for this task yet" in at.info[0].value
    assert "No finished training run yet." in _texts(at)
    assert not at.get("download_button")
    at = _open("evaluate")  # no held-out sets here, no runs, no reports: the page still works
    assert "No evaluation of this task yet" in _texts(at)
    assert at.selectbox(key="ev_test").value == "upload"


# ----------------------------------------------------------------------------- finetune


def test_finetune_page_counts_the_chosen_origin_only_and_reviews_the_launch(home):
    at = _open("finetune")
    # 7 curated ReBase pairs; the direct one is accepted too, but its origin is not chosen.
    assert at.multiselect(key="ft_origins").value == ["rebase"]
    statuses = at.multiselect(key="ft_statuses").options
    assert "accepted (6)" in statuses and "edited (1)" in statuses and "pending (1)" in statuses
    assert "ReBase (7)" in at.multiselect(key="ft_origins").options
    assert "**7** pairs chosen" in _texts(at)
    assert "7 pairs → **1 optimizer step**" in _texts(at)  # 4 batches of 2, 4 per step
    _click(at, "Review and launch")
    assert "**7 pairs** (ReBase 7) for **1 step**" in _texts(at)
    assert not jobs.list_jobs(Settings(home=home))  # nothing starts before the dialog's button

    at.multiselect(key="ft_origins").select("direct").run()
    assert "**8** pairs chosen" in _texts(at)
    assert "accepted (7)" in at.multiselect(key="ft_statuses").options


def test_finetune_page_warns_when_the_chosen_pairs_are_mostly_one_label(tmp_path, monkeypatch):
    home = _home(tmp_path, monkeypatch, pairs=False)
    ws = Workspace(home / "workspace.sqlite")
    (rec,) = ws.list_tasks()
    collapsed = [
        Pair(
            id=f"c{i}",
            input=f"review {i}",
            output="negative" if i < 9 else "positive",
            origin="direct",
            status="accepted",
        )
        for i in range(10)
    ]
    ws.add_pairs(ws.create_pair_run(rec.id, "direct", llm="fake"), rec.id, collapsed)
    ws.close()
    at = _open("finetune")
    assert "**10** pairs chosen" in _texts(at)
    (warning,) = [w.value for w in at.warning if "chosen for training" in w.value]
    assert warning.startswith("In the pairs chosen for training: Label collapse: 90% of the pairs")
    at.multiselect(key="ft_statuses").set_value(["pending"]).run()  # no pair: no warning
    assert not [w for w in at.warning if "chosen for training" in w.value]


def test_finetune_page_counts_without_the_pairs_held_out_for_evaluate(home):
    from rebase_core.heldout_split import is_held_out, set_split

    curated = [p for p in PAIRS if p.origin == "rebase" and p.status in ("accepted", "edited")]
    held = sum(is_held_out(p.id) for p in curated)
    set_split(Settings(home=home), TASK.name, True)
    at = _open("finetune")
    if held:
        assert f"**{7 - held}** pairs chosen for training ({held} held out" in _texts(at)
    else:  # no curated pair falls in the split: the count is unchanged and says nothing more
        assert "**7** pairs chosen for training." in _texts(at)


@pytest.mark.slow
def test_finetune_page_launches_a_real_training_job_and_lists_the_run(home, tiny_lm):
    at = _open("finetune")
    assert "**7** pairs chosen" in _texts(at)  # rebase, accepted + edited
    at.text_input(key="ft_student").input(str(tiny_lm))
    at.number_input(key="ft_epochs").set_value(3.0)
    at.number_input(key="ft_max_seq_len").set_value(96)
    _click(at, "Review and launch")
    assert "3 steps" in _texts(at)  # the dialog: 7 pairs, batch 2 x 4, 3 epochs
    _click(at, "Start training")

    (job,) = _wait_for_jobs(home)
    assert job.state == "done", job.error
    settings = Settings(home=home)
    (run,) = ft.list_runs(settings)
    assert run.status == "done" and run.n_train == 7 and run.origins == {"rebase": 7}
    assert run.global_step == 3 and run.config["student"] == str(tiny_lm)
    rows = ft.read_progress(run.path)
    assert [r["step"] for r in rows] == [1, 2, 3]

    at.run()
    assert not at.exception, at.exception
    table = _frame_with(at, "last loss")
    assert list(table["run"]) == [run.name] and list(table["status"]) == ["done"]
    assert table["last loss"].iloc[0] == pytest.approx(rows[-1]["loss"])
    assert at.selectbox(key="ft_run").value == run.name
    assert any(m.label == "Loss" and m.value == f"{rows[-1]['loss']:.4f}" for m in at.metric)

    assert "measured on earlier runs" in _texts(at)  # the time estimate now has a speed

    # Launching the same data and config again finds the finished run instead of training anew.
    _click(at, "Review and launch")
    assert "already trained on exactly this data and config" in _texts(at)


def _wait_for_step(home: Path, step: int, timeout_s: float = 60.0) -> jobs.JobStatus:
    settings = Settings(home=home)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        job = jobs.list_jobs(settings)[0]
        if job.progress.done >= step or not job.is_active:
            return job
        time.sleep(0.1)
    raise AssertionError("the training job made no progress")


@pytest.mark.slow
def test_finetune_page_cancels_and_resumes_a_run(home, tiny_lm):
    at = _open("finetune")
    at.text_input(key="ft_student").input(str(tiny_lm))
    at.number_input(key="ft_epochs").set_value(100.0)
    at.number_input(key="ft_max_steps").set_value(30)
    at.number_input(key="ft_max_seq_len").set_value(96)
    _click(at, "Review and launch")
    assert "30 steps" in _texts(at)
    _click(at, "Start training")
    job = _wait_for_step(home, 1)
    assert job.is_active, "the run ended before it could be cancelled"
    at.run()
    at.button(key="ft_cancel").click().run()
    assert not at.exception, at.exception

    (job,) = _wait_for_jobs(home)
    assert job.state == "cancelled", job.error
    settings = Settings(home=home)
    (run,) = ft.list_runs(settings)
    stopped_at = run.global_step
    assert run.status == "cancelled" and 1 <= stopped_at < 30
    assert (run.path / "checkpoints" / f"checkpoint-{stopped_at}").is_dir()

    at.run()
    assert "cancelled" in _texts(at)
    _click(at, "Resume from the last checkpoint")
    listed = _wait_for_jobs(home)
    assert [j.state for j in listed] == ["done", "cancelled"], listed[0].error
    (run,) = ft.list_runs(settings)
    assert run.status == "done" and run.global_step == 30
    assert [r["step"] for r in ft.read_progress(run.path)] == list(range(1, 31))


# ----------------------------------------------------------------------------- evaluate


def _trained_run(home: Path, tiny_lm: Path) -> Path:
    """A finished run trained in this process (faster than a job)."""
    config = ft.TrainConfig(student=str(tiny_lm), max_steps=2, max_seq_len=96, warmup=0)
    settings = Settings(home=home)
    result = ft.finetune(TASK, PAIRS[:7], settings.runs_dir / "sentiment-run", config)
    assert result.status == "done"
    return result.run_dir


def test_evaluate_page_says_a_path_under_an_unknown_users_home_does_not_exist(home):
    at = _open("evaluate")
    at.selectbox(key="ev_test").set_value("path").run()
    # `~name` is the home of user `name`; Path.expanduser raises when there is no such user.
    at.text_input(key="ev_path").input("~no-such-user-rebase/test.jsonl").run()
    assert not at.exception, at.exception
    assert "~no-such-user-rebase/test.jsonl does not exist" in at.error[0].value
    assert next(b for b in at.button if b.label == "Evaluate").disabled


def _stored_report(home: Path, name: str, test: str, rows: list[dict], **fields) -> None:
    """A report as evaluate() stores it for a model named `name` (label and model) on the test
    set `test` of the page's task, with its per-row file."""
    out = home / "evals" / name / f"{test}.json"
    out.parent.mkdir(parents=True)
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = {
        "per_example": str(out.with_suffix(".jsonl")),
        "label": name,
        "model": name,
        "task": TASK.name,
        "test": f"/sets/{test}.jsonl",
        **fields,
    }
    out.write_text(json.dumps(report))


def test_evaluate_page_flags_a_model_that_gives_one_label_and_offers_balanced_accuracy(home):
    """Reports as evaluate() writes them (two models on one label test set): the model that
    answers "positive" everywhere gets a warning, the table says what each answered most, and
    balanced accuracy is a metric to pick."""
    from rebase_core import evaluate as ev

    golds = ["positive"] * 7 + ["negative"] * 3
    answers = {"always": ["positive"] * 10, "mixed": ["positive"] * 5 + ["negative"] * 5}
    for name, given in answers.items():
        rows = [
            {"input": f"r{i}", "gold": g, "prediction": a, "extracted": a, "score": float(a == g)}
            for i, (g, a) in enumerate(zip(golds, given, strict=True))
        ]
        metrics = ev.summarize_scores("accuracy", rows)
        _stored_report(
            home,
            name,
            "test",
            rows,
            metric="accuracy",
            **metrics["accuracy"],
            n=10,
            metrics=metrics,
            answers=ev.answer_counts(given),
            trained=True,
        )

    at = _open("evaluate")
    table = _frame_with(at, "accuracy")
    assert dict(zip(table["model"], table["most given answer"], strict=True)) == {
        "always": "positive (100%)",
        "mixed": "positive (50%)",
    }
    (warning,) = [w.value for w in at.warning if "of the rows" in w.value]
    assert warning.startswith("**always** (zero-shot) answers **positive** on 100% of the rows")
    at.selectbox(key="ev_metric").set_value("balanced_accuracy").run()
    assert not at.exception, at.exception
    table = _frame_with(at, "balanced_accuracy")
    scores = dict(zip(table["model"], table["balanced_accuracy"], strict=True))
    assert scores == {"always": pytest.approx(0.5), "mixed": pytest.approx((5 / 7 + 1) / 2)}
    (gap,) = [m for m in at.metric if m.label.startswith("A − B")]
    assert gap.label == "A − B, balanced_accuracy"


def test_evaluate_page_says_when_a_qa_models_answers_run_long(home):
    for name, words in {"wordy": 6.2, "terse": 2.4}.items():
        em, f1 = {"score": 0.3, "ci95": [0.2, 0.4]}, {"score": 0.4, "ci95": [0.3, 0.5]}
        _stored_report(
            home,
            name,
            "qa",
            [],
            metric="exact_match",
            **em,
            n=100,
            metrics={"exact_match": em, "f1": f1},
            answer_words=words,
            gold_words=3.0,
        )
    at = _open("evaluate")
    table = _frame_with(at, "exact_match")
    assert dict(zip(table["model"], table["answer words"], strict=True)) == {
        "wordy": "6.2 (gold 3.0)",
        "terse": "2.4 (gold 3.0)",
    }
    (note,) = [i.value for i in at.info if "words on average" in i.value]
    assert note.startswith("**wordy** (zero-shot) answers in 6.2 words on average")


@pytest.mark.slow
def test_evaluate_page_runs_jobs_shows_results_predictions_and_try_it(home, tiny_lm, tmp_path):
    run_dir = _trained_run(home, tiny_lm)
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(
        "".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in TEST_ROWS)
    )

    at = _open("evaluate")
    at.selectbox(key="ev_test").set_value("path").run()
    at.text_input(key="ev_path").input(str(test_file)).run()
    assert not at.exception, at.exception
    (limit,) = [n for n in at.number_input if n.label == "Rows to evaluate"]
    assert limit.value == 5 and limit.max == 5  # min(200, the rows in the file)
    at.text_input(key="ev_student").input(str(tiny_lm))
    at.checkbox(key="ev_few").uncheck()
    assert at.multiselect(key="ev_runs").value == [run_dir.name]
    _click(at, "Evaluate")

    listed = _wait_for_jobs(home)
    assert len(listed) == 2 and all(j.state == "done" for j in listed), [j.error for j in listed]
    at.run()
    assert not at.exception, at.exception
    table = _frame_with(at, "accuracy")
    assert sorted(table["model"]) == sorted(["untrained (zero-shot)", run_dir.name])
    assert list(table["rows"]) == [5, 5]
    assert table["accuracy"].between(0, 1).all()
    # The paired comparison: on the same 5 rows, the mean per-row gap is the gap of the scores.
    (gap,) = [m for m in at.metric if m.label.startswith("A − B")]
    a_minus_b = abs(table["accuracy"].iloc[0] - table["accuracy"].iloc[1])
    assert abs(float(gap.value)) == pytest.approx(a_minus_b, abs=1e-3)
    assert "on 5 shared test rows" in _texts(at)
    examples = _frame_with(at, "prediction")
    assert len(examples) == 5 and set(examples["gold"]) == {"positive", "negative"}
    assert {"prediction", "extracted", "correct"} <= set(examples.columns)

    at.text_area(key="ev_try_input").input("What a film.")
    _click(at, "Ask both")
    shown = _texts(at)
    assert f"**{run_dir.name}** (trained)" in shown and "(untrained)" in shown
    assert len(at.text) >= 2


# ----------------------------------------------------------------------------- export


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """The bytes every st.download_button hands to the browser, by file name."""
    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes):
            seen[str(filename)] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    def spy_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        seen[f"deferred:{file_name}"] = data_callable  # what runs when the button is pressed
        return original_deferred(self, data_callable, mimetype, coordinates, file_name, **kw)

    original_deferred = MediaFileManager.add_deferred
    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    monkeypatch.setattr(MediaFileManager, "add_deferred", spy_deferred)
    return seen


def test_export_page_downloads_round_trip_and_push_fails_clearly_offline(home, downloads, tmp_path):
    run_dir = Settings(home=home).runs_dir / "sentiment-done"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "adapter_config.json").write_text("{}")
    card = {"status": "done", "task": {"name": "sentiment"}, "data": {"n_pairs": 7}}
    (run_dir / "run.json").write_text(json.dumps(card))

    at = _open("export", secrets={"HF_TOKEN": "hf_test_token"})
    shown = _texts(at)
    assert "**8** pairs" in shown and "Pairs by origin" in shown and "imdb" in shown
    expected = [
        p.to_json_dict()
        for p in Workspace(home / "workspace.sqlite").pairs(
            task_id=1, statuses=["accepted", "edited"]
        )
    ]
    assert len(expected) == 8  # both origins by default

    saved = tmp_path / "sentiment.jsonl"
    saved.write_bytes(downloads["sentiment.jsonl"])
    assert [p.to_json_dict() for p in read_pairs(saved)] == expected
    assert downloads["README.md"].decode().startswith("---\nlicense:")

    at.segmented_control(key="ex_fmt").set_value("csv").run()
    assert not at.exception, at.exception
    saved = tmp_path / "sentiment.csv"
    saved.write_bytes(downloads["sentiment.csv"])
    assert [p.to_json_dict() for p in read_pairs(saved)] == expected

    with zipfile.ZipFile(io.BytesIO(downloads["deferred:sentiment-done.zip"]())) as zf:
        names = set(zf.namelist())
    assert names == {f"sentiment-done/{n}" for n in ("adapter_config.json", "run.json")}

    at.text_input(key="ex_repo").input("someone/sentiment")
    _click(at, "Push to the Hub")
    assert "Hub" in at.error[0].value and "HF_HUB_OFFLINE" in at.error[0].value


# ----------------------------------------------------------------------------- library helpers


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "datasets"])
def test_export_download_gives_a_file_that_reads_back_the_same_pairs(tmp_path, fmt):
    from rebase_core.export import export_download

    name, data = export_download(PAIRS, fmt, task=TASK, title="My Set")
    saved = tmp_path / name
    saved.write_bytes(data)
    if fmt == "datasets":
        assert name == "my-set.zip"
        with zipfile.ZipFile(saved) as zf:
            zf.extractall(tmp_path / "unzipped")
        saved = tmp_path / "unzipped" / "my-set"
        assert (saved / "README.md").read_text().startswith("---\nlicense:")
    else:
        assert name == f"my-set.{fmt}"
    assert [p.to_json_dict() for p in read_pairs(saved)] == [p.to_json_dict() for p in PAIRS]


def test_time_estimate_comes_from_earlier_runs_of_the_same_student(settings):
    def fake_run(name, student, step, elapsed_s):
        run_dir = settings.runs_dir / name
        run_dir.mkdir(parents=True)
        config = {"student": student, "method": "lora", "per_device_batch": 2, "grad_accum": 4}
        card = {"status": "done", "task": {"name": "t"}, "config": config, "started_at": name}
        (run_dir / "run.json").write_text(json.dumps(card))
        row = {"step": step, "loss": 1.0, "elapsed_s": elapsed_s}
        (run_dir / "progress.jsonl").write_text(json.dumps(row) + "\n")

    config = ft.TrainConfig(student="s")
    assert ft.estimate_seconds(settings, config, 80) is None
    fake_run("a", "s", 10, 40.0)  # 80 pairs seen in 40 s: 0.5 s a pair
    fake_run("b", "s", 10, 80.0)  # 1.0 s a pair
    fake_run("c", "s", 10, 8.0)  # 0.1 s a pair
    fake_run("d", "other", 10, 1000.0)
    # The median rate (0.5 s) x 10 steps of 8 pairs.
    assert ft.estimate_seconds(settings, config, 80) == pytest.approx(40.0)
    assert ft.estimate_seconds(settings, ft.TrainConfig(student="s", method="full"), 80) is None
