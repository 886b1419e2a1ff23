"""Metrics on hand-made cases, and evaluate() end to end with a tiny model made here."""

import json
from pathlib import Path

import pytest

from rebase_core import evaluate as ev
from rebase_core import finetune as ft
from rebase_core.cli import main
from rebase_core.errors import InputError
from rebase_core.settings import Settings
from rebase_core.types import EvalReport, Example, Pair, Task

TASK = Task(
    name="sentiment",
    instruction="Say whether the review is positive or negative.",
    examples=(Example("A delight.", "positive"), Example("Dull and long.", "negative")),
)
TEST_ROWS = [
    ("what a joy", "positive"),
    ("so boring", "negative"),
    ("loved every minute", "positive"),
    ("a waste of time", "negative"),
    ("great cast", "positive"),
]


@pytest.fixture
def test_file(tmp_path) -> Path:
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in TEST_ROWS))
    return path


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(A)", "a"),
        ("A", "a"),
        ("A.", "a"),
        ("Yes.", "yes"),
        ("  'No' ", "no"),
        ("not_entailment", "not entailment"),
        ("Entailment!", "entailment"),
    ],
)
def test_label_normalisation(text, expected):
    assert ev.normalize_label(text) == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Positive.", "positive"),
        ("negative, because the plot is thin", "negative"),
        ("I think this review is negative overall", "negative"),
        ("The reviewer liked it. So the answer is positive.", "positive"),
        ("Answer: Negative", "negative"),
        ("no idea", "no idea"),
    ],
)
def test_predictions_map_onto_the_label_set(prediction, expected):
    assert ev.match_label(prediction, ["positive", "negative"]) == expected


def test_longest_label_wins_and_option_letters_match():
    labels = ["entailment", "not_entailment"]
    assert ev.match_label("It is not entailment.", labels) == "not entailment"
    assert ev.match_label("entailment", labels) == "entailment"
    assert ev.match_label("(B) the second one", ["(A)", "(B)", "(C)"]) == "b"


def test_chain_of_thought_answers_are_extracted_before_scoring():
    pred = "Two apples and three apples make five. So the answer is (C)."
    assert ev.extract_answer(pred) == "(C)"
    scored = ev.score_example("accuracy", pred, "Count them. The answer is (C).", ["(A)", "(C)"])
    assert scored == {"extracted": "c", "score": 1.0, "correct": True}
    qa = ev.score_example("exact_match", "It flows north, so the answer is the Nile.", "Nile", [])
    assert qa["extracted"] == "the Nile" and qa["exact_match"] == 1.0 and qa["f1"] == 1.0


def test_squad_exact_match_and_f1_values():
    assert ev.exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert ev.exact_match("Eiffel Tower in Paris", "the Eiffel Tower") == 0.0
    # pred tokens [eiffel, tower, in, paris], gold [eiffel, tower]: P 2/4, R 1, F1 2/3
    assert ev.f1_score("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 / 3)
    # pred [1852], gold [in, 1852, or, 1853]: P 1, R 1/4, F1 0.4
    assert ev.f1_score("1852", "in 1852 or 1853") == pytest.approx(0.4)
    assert ev.f1_score("Paris", "London") == 0.0
    assert ev.f1_score("the", "a") == 1.0  # both normalise to nothing


def test_chrf_identical_disjoint_and_a_hand_checked_case():
    assert ev.chrf("x = sorted(items)", "x = sorted(items)") == pytest.approx(1.0)
    assert ev.chrf("abc", "xyz") == 0.0
    # "ab" vs "abc": 1-grams P 2/2 R 2/3; 2-grams P 1/1 R 1/2; 3-grams absent in the hypothesis.
    # avg P 1, avg R 7/12; F2 = 5 * 1 * 7/12 / (4 + 7/12) = 7/11.
    assert ev.chrf("ab", "abc") == pytest.approx(7 / 11)
    assert ev.chrf("a b", "abc") == pytest.approx(7 / 11)  # whitespace is ignored
    # beta 2: missing half the reference costs more than adding as much again.
    short, long = "return sorted", "return sorted(items, key=len)"
    assert ev.chrf(short, long) < ev.chrf(long, short)


def test_bootstrap_interval_is_deterministic_and_contains_the_mean():
    scores = [1.0] * 13 + [0.0] * 7
    low, high = ev.bootstrap_ci(scores)
    assert (low, high) == ev.bootstrap_ci(scores)
    # Close to the normal approximation 0.65 +- 1.96 * sqrt(0.65 * 0.35 / 20) = [0.44, 0.86].
    assert low == pytest.approx(0.44, abs=0.03) and high == pytest.approx(0.86, abs=0.03)
    graded = [((i * 7) % 11) / 10 for i in range(40)]  # F1-like values, not only 0/1
    mean = sum(graded) / len(graded)
    g_low, g_high = ev.bootstrap_ci(graded)
    assert g_low < mean < g_high
    assert ev.bootstrap_ci(graded, seed=1) != (g_low, g_high)
    assert ev.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert ev.bootstrap_ci([]) == (0.0, 0.0)


def test_metric_is_inferred_from_the_outputs():
    golds = ["positive", "negative"] * 5
    assert ev.infer_metric(TASK, golds) == "accuracy"
    yes_no = Task("yn", "Answer yes or no.", (Example("Is it?", "Yes."), Example("Not?", "no")))
    assert ev.infer_metric(yes_no) == "accuracy"
    # Two distinct one-word answers and no test set: could be QA too, so the safe choice.
    assert ev.infer_metric(TASK) == "exact_match"
    qa = Task("qa", "Answer from the passage.", (Example("Where?", "in Paris"),))
    assert ev.infer_metric(qa, ["in 1852", "Marie Curie", "the Nile", "42 km"]) == "exact_match"
    code = Task("code", "Write Python.", (Example("sort x", "sorted(x)"),))
    assert ev.infer_metric(code, ["x.append(1)", "import os", "len(s) == 0"]) == "chrf"
    fixed = Task("f", "x", (Example("a", "b"),), metric="f1")
    assert ev.infer_metric(fixed, golds) == "f1"


def test_unknown_metric_is_an_input_error():
    with pytest.raises(InputError, match="Unknown metric"):
        ev.score_example("bleu", "a", "a", [])


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_untrained_model_end_to_end(tiny_lm, test_file, tmp_path, settings):
    out = tmp_path / "report.json"
    report = ev.evaluate(TASK, str(tiny_lm), test_file, settings=settings, out=out, few_shot=True)
    assert report.metric == "accuracy" and report.n == 5
    assert 0.0 <= report.score <= 1.0
    assert report.ci95[0] <= report.score <= report.ci95[1]
    assert report.per_example == str(tmp_path / "report.jsonl")
    rows = [json.loads(line) for line in Path(report.per_example).read_text().splitlines()]
    assert [r["input"] for r in rows] == [i for i, _ in TEST_ROWS]
    assert [r["gold"] for r in rows] == [o for _, o in TEST_ROWS]
    assert set(rows[0]) == {"input", "gold", "prediction", "extracted", "score", "correct"}
    for r in rows:  # each row is scored as score_example says, and the score is their mean
        again = ev.score_example("accuracy", r["prediction"], r["gold"], ["positive", "negative"])
        assert again["score"] == r["score"]
    assert report.score == pytest.approx(sum(r["score"] for r in rows) / 5)
    saved = json.loads(out.read_text())
    assert saved == report.to_json_dict()
    assert saved["few_shot"] is True and saved["label"] == "untrained (few-shot)"
    assert saved["trained"] is False and saved["n_train"] == 0


def test_trained_run_is_scored_on_what_it_learned(tiny_lm, test_file, tmp_path, settings):
    """A tiny model trained to always answer "positive" scores 3/5 on a 3-positive test set."""
    pairs = [
        Pair(id=str(i), input=f"review {i}", output="positive", origin="rebase", status="accepted")
        for i in range(8)
    ]
    config = ft.TrainConfig(
        student=str(tiny_lm),
        method="full",
        max_steps=12,
        learning_rate=1e-2,
        warmup=0,
        max_seq_len=128,
        per_device_batch=4,
        grad_accum=1,
        completion_only_loss=True,
    )
    run = ft.finetune(TASK, pairs, settings.runs_dir / "always-positive", config, settings=settings)
    report = ev.evaluate(TASK, run.run_dir, test_file, settings=settings)
    rows = [json.loads(line) for line in Path(report.per_example).read_text().splitlines()]
    assert all(r["prediction"].startswith("positive") for r in rows)  # it has learned that much
    assert [r["extracted"] for r in rows] == ["positive"] * 5
    assert report.score == pytest.approx(0.6)
    # One label everywhere: the majority rate in accuracy, chance in balanced accuracy.
    assert report.extra["answers"] == {"positive": 5}
    assert report.extra["metrics"]["balanced_accuracy"]["score"] == pytest.approx(0.5)
    assert report.extra["trained"] is True and report.extra["origin"] == "rebase"
    assert report.extra["few_shot"] is True  # as the run was trained
    # The report is kept in the run folder, so the run list shows it.
    stored = ft.list_runs(settings)[0].metrics
    assert [v["score"] for v in stored.values()] == [pytest.approx(0.6)]


def test_evaluate_limit_stop_and_bad_test_files(tiny_lm, test_file, tmp_path, settings):
    student = ft.load_student(tiny_lm)
    limited = ev.evaluate(TASK, student, test_file, settings=settings, limit=2, batch_size=1)
    assert limited.n == 2
    calls = []

    def stop_after_one_batch():
        calls.append(1)
        return len(calls) > 1

    stopped = ev.evaluate(
        TASK, student, test_file, settings=settings, batch_size=2, should_stop=stop_after_one_batch
    )
    assert stopped.n == 2 and stopped.extra["stopped_after"] == 2
    done = [json.loads(line) for line in Path(stopped.per_example).read_text().splitlines()]
    assert len(done) == 2
    # Prompts run shortest first, so the first batch held the two shortest inputs; each row
    # keeps its own prediction.
    assert {r["input"] for r in done} == {"so boring", "great cast"}
    assert all(dict(TEST_ROWS)[r["input"]] == r["gold"] for r in done)
    prompts = [ft.format_prompt(TASK, r["input"], with_examples=False) for r in done]
    again = ev.generate(student, prompts, max_new_tokens=stopped.extra["max_new_tokens"])
    assert again == [r["prediction"] for r in done]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="is empty"):
        ev.evaluate(TASK, student, empty, settings=settings)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x"}\n')
    with pytest.raises(InputError, match="row 1 needs string 'input' and 'output'"):
        ev.evaluate(TASK, student, bad, settings=settings)


def test_compare_results_orders_untrained_first_then_by_origin():
    def report(label, origin, trained, few_shot, score, metrics=None):
        extra = {
            "label": label,
            "origin": origin,
            "trained": trained,
            "few_shot": few_shot,
            "model": label,
            "test": "/x/nli.jsonl",
            "n_train": 200 if trained else 0,
        }
        if metrics:
            extra["metrics"] = metrics
        return EvalReport("accuracy", score, 300, (score - 0.05, score + 0.05), "", extra)

    rows = ev.compare_results(
        [
            report("run-r", "rebase", True, True, 0.6),
            report("run-d", "direct", True, True, 0.5),
            report("untrained (few-shot)", "", False, True, 0.4),
            report("untrained (zero-shot)", "", False, False, 0.3),
            report("run-s", "self-guide", True, True, 0.45),
            report("run-r", "rebase", True, True, 0.62),  # a newer report of the same run wins
        ]
    )
    labels = [r.label for r in rows]
    assert labels == ["untrained (zero-shot)", "untrained (few-shot)", "run-s", "run-d", "run-r"]
    assert rows[-1].score == 0.62 and rows[-1].ci_low == pytest.approx(0.57)
    assert {r.test for r in rows} == {"nli"}
    qa = report(
        "qa-run",
        "rebase",
        True,
        True,
        0.2,
        {
            "exact_match": {"score": 0.2, "ci95": [0.1, 0.3]},
            "f1": {"score": 0.5, "ci95": [0.4, 0.6]},
        },
    )
    (f1_row,) = ev.compare_results([qa], metric="f1")
    assert (f1_row.score, f1_row.ci_low, f1_row.ci_high) == (0.5, 0.4, 0.6)


def test_evaluate_job_and_stored_reports(tiny_lm, test_file, settings):
    class Ctx:
        def progress(self, p):
            self.last = p

        def should_stop(self):
            return False

    ctx = Ctx()
    params = {"task": TASK.to_dict(), "model": str(tiny_lm), "test": str(test_file), "limit": 3}
    result = ev.run_evaluate_job(params, settings, ctx)
    assert result["n"] == 3 and ctx.last.done == 3 and ctx.last.total == 3
    assert Path(result["per_example"]).parent.parent == settings.home / "evals"
    (stored,) = ev.stored_reports(settings, task_name="sentiment")
    assert stored.to_json_dict() == result
    assert ev.stored_reports(settings, task_name="other") == []
    with pytest.raises(InputError, match="needs 'test'"):
        ev.run_evaluate_job({"task": TASK.to_dict(), "model": "x"}, settings, ctx)
    with pytest.raises(InputError, match="needs 'model'"):
        ev.run_evaluate_job({"task": TASK.to_dict(), "test": str(test_file)}, settings, ctx)


# ----------------------------------------------------------------------------- the job spec


def test_evaluate_run_round_trips_its_params_and_keeps_the_pages_job_key(tmp_path):
    spec = ev.EvaluateRun(TASK, "/runs/r1", tmp_path / "test.jsonl", limit=200, few_shot=None)
    params = json.loads(json.dumps(spec.to_params()))  # what the job folder keeps
    assert ev.EvaluateRun.from_params(params) == spec
    # The key the Evaluate page always built: one active job per model, file, rows and prompt.
    assert spec.job_key() == f"evaluate:/runs/r1:{tmp_path / 'test.jsonl'}:200:None"
    few = ev.EvaluateRun(TASK, "tiny", tmp_path / "t.jsonl", 5, True, max_new_tokens=9)
    assert few.job_key().endswith(":5:True") and few.label == "Evaluating tiny few-shot"
    assert ev.EvaluateRun.from_params(few.to_params()) == few
    assert spec.label == "Evaluating r1"  # a run: the prompt it was trained with
    # Params of jobs from before the spec: no max_new_tokens or out keys.
    old = {
        "task": TASK.to_dict(),
        "model": "tiny",
        "test": "/t.jsonl",
        "limit": 3,
        "few_shot": False,
    }
    parsed = ev.EvaluateRun.from_params(old)
    assert (parsed.limit, parsed.few_shot, parsed.out, parsed.max_new_tokens) == (
        3,
        False,
        None,
        None,
    )
    with pytest.raises(InputError, match="needs 'model'"):
        ev.EvaluateRun(TASK, " ", Path("/t.jsonl"))


def test_one_press_of_evaluate_makes_the_untrained_then_the_runs_evaluations(tmp_path):
    test = tmp_path / "t.jsonl"
    runs = [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]
    specs = ev.evaluation_runs(
        TASK, test, limit=50, untrained=" tiny ", zero_shot=True, few_shot=True, run_dirs=runs
    )
    assert [(s.model, s.few_shot) for s in specs] == [
        ("tiny", False),
        ("tiny", True),
        (str(runs[0]), None),
        (str(runs[1]), None),
    ]
    assert {s.limit for s in specs} == {50} and {s.test for s in specs} == {test}
    assert len({s.job_key() for s in specs}) == 4
    none = ev.evaluation_runs(TASK, test, limit=5, untrained="x", zero_shot=False, few_shot=False)
    assert none == [] and ev.start_evaluations(Settings(home=tmp_path), none) == []


def test_evaluation_jobs_are_the_tasks_running_and_started_ones(settings):
    def job(name, task_name, state):
        folder = settings.jobs_dir / name
        folder.mkdir(parents=True)
        params = {"task": {"name": task_name}, "model": f"m-{name}", "few_shot": False}
        spec = {"kind": "evaluate", "key": name, "params": params, "created_at": len(name)}
        (folder / "spec.json").write_text(json.dumps(spec))
        (folder / "status.json").write_text(json.dumps({"state": state}))

    job("run", "sentiment", "running")
    job("done", "sentiment", "done")
    job("mine!", "sentiment", "done")
    job("other", "other", "running")
    shown = ev.evaluation_jobs(settings, task_name="sentiment", started=["mine!"])
    assert [j.id for j in shown] == ["mine!", "run"]  # newest first
    assert ev.evaluation_label(shown[0].params) == "Evaluating m-mine! zero-shot"


# ----------------------------------------------------------------------------- the page's pieces


def _report(tmp_path, name, test, few_shot, rows, metrics=None, **extra):
    path = tmp_path / f"{name}-{few_shot}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = {
        "label": name,
        "model": name,
        "test": f"/sets/{test}.jsonl",
        "few_shot": few_shot,
        **extra,
    }
    if metrics:
        extra["metrics"] = metrics
    metric = "exact_match" if metrics else "accuracy"
    return EvalReport(metric, 0.5, len(rows), (0.4, 0.6), str(path), extra)


def test_reports_are_grouped_by_test_set_metric_and_named_for_the_pickers(tmp_path):
    rows = [
        {
            "input": "a",
            "gold": "x",
            "prediction": "x",
            "extracted": "x",
            "correct": True,
            "score": 1.0,
            "note": 1,
        },
        {
            "input": "b",
            "gold": "y",
            "prediction": "x",
            "extracted": "x",
            "correct": False,
            "score": 0.0,
        },
    ]
    qa = {"exact_match": {"score": 0.5, "ci95": [0, 1]}, "f1": {"score": 0.7, "ci95": [0, 1]}}
    reports = [
        _report(tmp_path, "untrained (zero-shot)", "nli", False, rows),
        _report(tmp_path, "run-a", "nli", True, rows),
        _report(tmp_path, "run-a", "squad", True, rows, qa),
    ]
    assert ev.tested_sets(reports) == ["nli", "squad"]
    assert [ev.report_name(r) for r in ev.reports_on(reports, "nli")] == [
        "untrained (zero-shot) · zero-shot",
        "run-a · few-shot",
    ]
    assert ev.report_metrics(ev.reports_on(reports, "nli")) == ["accuracy"]
    assert ev.report_metrics(ev.reports_on(reports, "squad")) == ["exact_match", "f1"]

    predictions = ev.read_predictions(reports[0])
    assert [list(p) for p in predictions] == [list(ev.PREDICTION_COLUMNS)] * 2  # no extra keys
    assert [p["input"] for p in ev.read_predictions(reports[0], wrong_only=True)] == ["b"]
    Path(reports[0].per_example).unlink()
    with pytest.raises(InputError, match="is gone; evaluate the model again"):
        ev.read_predictions(reports[0])


def test_results_table_and_chart_follow_the_comparison_rows(tmp_path):
    untrained = _report(tmp_path, "untrained (zero-shot)", "nli", False, [])
    run = _report(tmp_path, "run-r", "nli", True, [], origin="rebase", trained=True, n_train=7)
    rows = ev.compare_results([run, untrained])
    table = ev.results_table(rows, "accuracy")
    assert table["model"] == ["untrained (zero-shot)", "run-r"]
    assert table["data"] == ["untrained", "ReBase"] and table["prompt"] == ["zero-shot", "few-shot"]
    assert table["95% CI"] == ["0.400–0.600"] * 2 and table["pairs"] == [0, 7]
    fig = ev.results_figure(rows, "accuracy", title="nli")
    assert [t.name for t in fig.data] == ["untrained", "ReBase"]
    assert [t.marker.color for t in fig.data] == [ev.RESULT_COLORS[""], ev.RESULT_COLORS["rebase"]]
    assert list(fig.data[1].error_y.array) == [pytest.approx(0.1)]


def test_uploaded_test_sets_are_kept_once_and_the_choices_default_to_an_upload(settings):
    data = b'{"input": "a", "output": "b"}\n'
    path = ev.store_test_set(settings, "my set.jsonl", data)
    assert path.parent == settings.home / "test_sets" and path.name.startswith("my set-")
    assert path.read_bytes() == data and ev.store_test_set(settings, "my set.jsonl", data) == path
    assert ev.store_test_set(settings, "my set.jsonl", data + data) != path
    choices = ev.eval_set_choices(settings, "sentiment")  # no held-out sets in this workspace
    assert choices.keys == ["curated", "upload", "path"] and choices.default == "upload"
    assert choices.labels["path"] == "A JSONL file on this machine…"

    heldout = settings.heldout_dir / "sentiment"
    heldout.mkdir(parents=True)
    (heldout / "task.json").write_text(json.dumps(TASK.to_dict()))
    (heldout / "test.jsonl").write_text(data.decode() * 3)
    choices = ev.eval_set_choices(settings, "sentiment")
    assert choices.keys == ["heldout:sentiment", "curated", "upload", "path"]
    assert choices.default == "heldout:sentiment"
    assert choices.sets["heldout:sentiment"].test_path == heldout / "test.jsonl"
    assert choices.labels["heldout:sentiment"].startswith("sentiment · 3 rows")
    assert ev.eval_set_choices(settings, "other").default == "upload"


def test_the_models_to_evaluate_are_the_tasks_finished_runs_and_the_latest_student(settings):
    assert ev.model_choices(settings, "sentiment") == ev.ModelChoices({}, {}, ft.DEFAULT_STUDENT)

    def run(name, status, started_at, task="sentiment", student="", origins=None):
        run_dir = settings.runs_dir / name
        run_dir.mkdir(parents=True)
        card = {
            "status": status,
            "task": {"name": task},
            "config": {"student": student} if student else {},
            "data": {"n_pairs": 1200, "by_origin": origins or {"rebase": 1200}},
            "started_at": started_at,
        }
        (run_dir / "run.json").write_text(json.dumps(card))

    run("old", "done", "2026-01-01", student="tiny-a")
    run("mixed", "done", "2026-01-02", student="tiny-b", origins={"rebase": 600, "direct": 600})
    run("failed", "failed", "2026-01-03", student="tiny-c")
    run("other-task", "done", "2026-01-04", task="other", student="tiny-d")
    models = ev.model_choices(settings, "sentiment")
    assert list(models.runs) == ["mixed", "old"]  # finished ones only, newest first
    assert models.labels == {
        "mixed": "mixed · mixed · 1,200 pairs",
        "old": "old · ReBase · 1,200 pairs",
    }
    assert models.untrained == "tiny-c"  # the latest run's student, finished or not
    run("newest", "running", "2026-01-05")  # a run card without a student: the default
    assert ev.model_choices(settings, "sentiment").untrained == ft.DEFAULT_STUDENT


def test_try_it_answers_with_both_students(tiny_lm, tmp_path, settings):
    pairs = [Pair(str(i), f"review {i}", "positive", "rebase", "accepted") for i in range(4)]
    config = ft.TrainConfig(student=str(tiny_lm), max_steps=1, max_seq_len=96, warmup=0)
    run = ft.finetune(TASK, pairs, settings.runs_dir / "r", config, settings=settings)
    trained, untrained = ft.load_student(run.run_dir), ft.load_student(tiny_lm)
    both = ev.answer_side_by_side(trained, untrained, TASK, "Loved it.", untrained_few_shot=False)
    assert (both.run, both.untrained) == ("r", tiny_lm.name) and both.seconds > 0
    assert both.trained_answer == ev.generate_answer(trained, TASK, "Loved it.")
    assert both.untrained_answer == ev.generate_answer(untrained, TASK, "Loved it.", few_shot=False)


def test_cli_evaluate_writes_the_contract_report(tiny_lm, test_file, tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK.to_dict()))
    out = tmp_path / "report.json"
    args = ["evaluate", "--task", str(task), "--model", str(tiny_lm), "--test", str(test_file)]
    assert main([*args, "--out", str(out), "--limit", "4", "--few-shot"]) == 0
    report = json.loads(out.read_text())
    assert {"metric", "score", "n", "ci95", "per_example"} <= set(report)
    assert report["metric"] == "accuracy" and report["n"] == 4
    assert isinstance(report["ci95"], list) and len(report["ci95"]) == 2
    assert report["per_example"] == str(tmp_path / "report.jsonl")
    assert len((tmp_path / "report.jsonl").read_text().splitlines()) == 4

    missing = main([*args[:-1], str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert missing == 2
    assert main(["evaluate", "--task", str(tmp_path / "nope.json"), *args[3:]]) == 2
    assert main([*args, "--model", str(tmp_path)]) == 2  # not a model folder
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err_lines if line.startswith("error: ")] == err_lines[-3:]


def test_paired_difference_matches_rows_and_says_whether_the_gap_is_real(tmp_path):
    def report(name, f1s, order=None):
        path = tmp_path / f"{name}.jsonl"
        rows = [
            {"input": f"q{i}", "gold": "a", "score": 0.0, "exact_match": 0.0, "f1": f}
            for i, f in enumerate(f1s)
        ]
        rows.append({"input": "q0", "gold": "a", "score": 0.0, "exact_match": 0.0, "f1": 1.0})
        for row in [rows[i] for i in order] if order else rows:
            path.open("a").write(json.dumps(row) + "\n")
        return EvalReport("exact_match", 0.0, len(rows), (0.0, 0.0), str(path), {})

    # Per-row scores share their difficulty: b is a minus a small, steady margin.
    a_scores = [0.2 + 0.6 * (i % 5) / 4 for i in range(40)]
    a = report("a", a_scores)
    b = report("b", [s - 0.05 for s in a_scores], order=[*reversed(range(40)), 40])
    gap = ev.paired_difference(a, b, metric="f1")
    # Rows are matched by input, not position; a repeated row pairs with its twin in turn.
    assert gap.n == 41 and gap.difference == pytest.approx(0.05 * 40 / 41)
    assert 0 < gap.ci_low <= gap.difference <= gap.ci_high and gap.verdict == "better"
    assert ev.paired_difference(b, a, metric="f1").verdict == "worse"
    assert ev.paired_difference(a, a, metric="f1").verdict == "no clear difference"
    exact = ev.paired_difference(a, b)  # the report's own metric by default
    assert exact.metric == "exact_match" and exact.difference == 0.0
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"input": "zzz", "gold": "a", "score": 1.0}) + "\n")
    elsewhere = EvalReport("exact_match", 1.0, 1, (1.0, 1.0), str(other), {})
    with pytest.raises(InputError, match="share no test row"):
        ev.paired_difference(a, elsewhere)
    with pytest.raises(InputError, match="no 'chrf' scores"):
        ev.paired_difference(a, b, metric="chrf")


# ----------------------------------------------------------------------------- label spread


def test_balanced_accuracy_is_the_mean_recall_per_label_whatever_label_is_given_everywhere():
    golds = ["entailment"] * 6 + ["neutral"] * 3 + ["contradiction"]  # majority 0.6
    for label in ("entailment", "neutral", "contradiction"):
        always = [float(g == label) for g in golds]  # the score of answering `label` everywhere
        assert ev.balanced_accuracy(golds, always) == pytest.approx(1 / 3)
    assert sum(float(g == "entailment") for g in golds) / len(golds) == 0.6  # what accuracy says
    # By hand: entailment 3/6, neutral 2/3, contradiction 1/1 -> (0.5 + 0.667 + 1) / 3.
    scores = [1, 1, 1, 0, 0, 0, 1, 1, 0, 1]
    assert ev.balanced_accuracy(golds, scores) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    # Labels are compared as accuracy compares them: "(A)" and "A." are one label.
    assert ev.balanced_accuracy(["(A)", "A.", "B"], [1, 0, 1]) == pytest.approx(0.75)
    low, high = ev.balanced_accuracy_ci(golds, scores)
    assert low <= ev.balanced_accuracy(golds, scores) <= high and low < high
    assert ev.balanced_accuracy_ci(golds, scores) == (low, high)  # seeded
    assert ev.balanced_accuracy([], []) == 0.0 and ev.balanced_accuracy_ci([], []) == (0.0, 0.0)
    with pytest.raises(ValueError, match="2 gold answers but 1 scores"):
        ev.balanced_accuracy(["a", "b"], [1.0])


def test_label_task_summaries_carry_balanced_accuracy_and_qa_summaries_do_not():
    scored = [
        {"gold": g, "extracted": "yes", "score": float(g == "yes")}
        for g in ["yes"] * 8 + ["no"] * 2
    ]
    summary = ev.summarize_scores("accuracy", scored)
    assert summary["accuracy"]["score"] == pytest.approx(0.8)
    assert summary["balanced_accuracy"]["score"] == pytest.approx(0.5)
    assert ev.answer_counts(s["extracted"] for s in scored) == {"yes": 10}
    qa = [{"gold": "a", "score": 1.0, "exact_match": 1.0, "f1": 1.0}]
    assert set(ev.summarize_scores("exact_match", qa)) == {"exact_match", "f1"}
    assert set(ev.summarize_scores("accuracy", [{"score": 1.0}])) == {"accuracy"}  # no gold


def test_a_model_that_answers_one_label_is_flagged_and_balanced_accuracy_compares_it(tmp_path):
    golds = ["entailment"] * 12 + ["neutral"] * 5 + ["contradiction"] * 3

    def report(name, answers):
        rows = [
            {"input": f"q{i}", "gold": g, "extracted": a, "score": float(a == g)}
            for i, (g, a) in enumerate(zip(golds, answers, strict=True))
        ]
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        extra = {
            "label": name,
            "model": name,
            "test": "/sets/nli.jsonl",
            "metrics": ev.summarize_scores("accuracy", rows),
            "answers": ev.answer_counts(answers),
        }
        score = sum(r["score"] for r in rows) / len(rows)
        return EvalReport("accuracy", score, len(rows), (0.0, 1.0), str(path), extra)

    # A falls back on the majority label; B knows the two rarer labels and misses some of the
    # majority: lower accuracy, higher balanced accuracy.
    majority = report("majority", ["entailment"] * 20)
    skilled = report("skilled", ["entailment"] * 7 + ["neutral"] * 5 * 2 + ["contradiction"] * 3)
    acc = ev.compare_results([majority, skilled], metric="accuracy")
    assert [(r.label, r.score) for r in acc] == [("majority", 0.6), ("skilled", 0.75)]
    assert [(r.top_answer, r.top_share) for r in acc] == [("entailment", 1.0), ("neutral", 0.5)]
    assert [r.label for r in ev.one_answer_rows(acc)] == ["majority"]
    table = ev.results_table(acc, "accuracy")
    assert table["most given answer"] == ["entailment (100%)", "neutral (50%)"]
    assert ev.report_metrics([majority, skilled]) == ["accuracy", "balanced_accuracy"]
    balanced = ev.compare_results([majority, skilled], metric="balanced_accuracy")
    assert [round(r.score, 3) for r in balanced] == [0.333, round((7 / 12 + 1 + 1) / 3, 3)]

    gap = ev.paired_difference(skilled, majority, metric="balanced_accuracy")
    assert gap.n == 20 and gap.difference == pytest.approx((7 / 12 + 1 + 1) / 3 - 1 / 3)
    assert gap.ci_low <= gap.difference <= gap.ci_high
    plain = ev.paired_difference(skilled, majority, metric="accuracy")
    assert plain.difference == pytest.approx(0.15)
    # The answers kept are the most given ones (at most MAX_LABELS): a share is of all rows.
    wide = EvalReport("accuracy", 0.1, 100, (0.0, 0.2), "", {"answers": {"a": 50, "b": 2}})
    assert ev.compare_results([wide])[0].top_share == 0.5
    # A report without answers (older, or not a label task) has no column and no flag.
    old = _report(tmp_path, "old", "nli", False, [])
    assert "most given answer" not in ev.results_table(ev.compare_results([old]), "accuracy")


def test_qa_reports_say_how_long_the_answers_run_against_the_gold_ones(tiny_lm, tmp_path, settings):
    qa = Task(
        name="qa",
        instruction="Answer from the passage.",
        examples=(Example("Who wrote it? Passage: written by Ann Lee in 1990.", "Ann Lee"),),
    )
    test = tmp_path / "qa.jsonl"
    rows = [("Where? Passage: it is in the old town hall.", "the old town hall")] + [
        (f"When was it? Passage: in spring of year {i}.", f"year {i}") for i in range(4)
    ]
    test.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
    report = ev.evaluate(qa, str(tiny_lm), test, settings=settings, out=tmp_path / "qa.json")
    assert report.metric == "exact_match"
    scored = [json.loads(line) for line in Path(report.per_example).read_text().splitlines()]
    words = sum(len(r["extracted"].split()) for r in scored) / len(scored)
    assert report.extra["answer_words"] == round(words, 2)
    assert report.extra["gold_words"] == (4 + 2 * 4) / 5
    assert "answers" not in report.extra  # no label set to count

    def qa_report(name, answer_words):
        extra = {"label": name, "model": name, "test": "/sets/qa.jsonl"}
        extra |= {"answer_words": answer_words, "gold_words": 3.0}
        return EvalReport("exact_match", 0.3, 100, (0.2, 0.4), "", extra)

    rows_ = ev.compare_results([qa_report("long", 6.2), qa_report("short", 2.4)])
    assert [r.label for r in ev.long_answer_rows(rows_)] == ["long"]
    table = ev.results_table(rows_, "exact_match")
    assert table["answer words"] == ["6.2 (gold 3.0)", "2.4 (gold 3.0)"]
    assert "most given answer" not in table
