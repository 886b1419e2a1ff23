"""AppTest of the Transform page's plans panel: list, choose, edit (form and JSON), plan job."""

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core import jobs
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.transform import Plan, check_given
from rebase_core.types import Example, Pair, PairSource, ScoredRow, Task
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")
TASK = Task(
    "nli",
    "Decide whether the hypothesis follows from the premise.",
    (
        Example("Premise: It rains.\nHypothesis: The street is wet.", "entailment"),
        Example("Premise: A cat sleeps.\nHypothesis: The cat runs.", "contradiction"),
        Example("Premise: A man waits.\nHypothesis: He waits for a bus.", "neutral"),
    ),
)
SOURCE_LABELS = ["0", "1", "2"]  # entailment, neutral, contradiction in the source


def _row(dataset, i, label):
    return ScoredRow(
        dataset,
        "default",
        str(i),
        0.5 - i / 100,
        0.5,
        0.4,
        0.6,
        "input",
        "label",
        "An NLI dataset.",
        {
            "input": f"Premise: Sentence number {i} is here.\nHypothesis: Claim {i} holds.",
            "label": label,
        },
    )


def _make_home(tmp_path, monkeypatch, task, rows):
    """A workspace whose current task is `task`, with `rows` retrieved and kept."""
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    monkeypatch.setenv("REBASE_LLM", "fake")
    ws = Workspace(home / "workspace.sqlite")
    rec = ws.save_task(task)
    ws.save_retrieval(rec, "store", {}, "exact", 0.0, rows, list(range(len(rows))))
    ws.set_value("current_task", rec.id)
    return home


@pytest.fixture
def home(tmp_path, monkeypatch):
    rows = [_row("nli_ds", i, SOURCE_LABELS[i % 3]) for i in range(6)]
    rows += [_row("other_ds", 10 + i, "entailment") for i in range(2)]
    return _make_home(tmp_path, monkeypatch, TASK, rows)


def _ws(home):
    return Workspace(home / "workspace.sqlite")


def _rows(ws, dataset):
    return [r for r in ws.kept_rows(1) if r.dataset == dataset]


PLAN = Plan(
    "nli_ds",
    "default",
    "Premise: {input[Premise]}\nHypothesis: {input[Hypothesis]}",
    "label",
    {"0": "entailment", "1": "neutral", "2": "contradiction"},
    author="llm",
)


def _seed_plan(home, plan=PLAN):
    ws = _ws(home)
    ws.save_plan(1, TASK, check_given(TASK, plan, _rows(ws, plan.dataset)))
    return ws


def _page():
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    at.switch_page("app_pages/transform.py").run()
    assert not at.exception, at.exception
    return at


def _click(at, label):
    exact = [b for b in at.button if b.label == label]
    (exact or [b for b in at.button if b.label.startswith(label)])[0].click().run()
    assert not at.exception, at.exception


def _wait(settings, key):
    deadline = time.time() + 90
    while time.time() < deadline:
        found = jobs.list_jobs(settings, key=key)
        if found and not found[0].is_active:
            break
        time.sleep(0.2)
    (job,) = jobs.list_jobs(settings, key=key)
    assert job.state == "done", job.error
    return job


def test_no_plans_yet_says_what_to_do(home):
    at = _page()
    assert any("No plans yet" in i.value for i in at.info)
    assert "2 dataset(s)" in at.button(key="pl_start").help
    assert at.segmented_control(key="tf_plan_mode").value == "auto"


def test_a_saved_plan_is_listed_and_its_choice_persists(home):
    ws = _seed_plan(home)
    # A plan for a dataset the kept rows do not hold is not listed.
    elsewhere = Plan("gone_ds", "default", "Premise: {a}\nHypothesis: {b}", "c", author="llm")
    ws.save_plan(1, TASK, check_given(TASK, elsewhere, _rows(ws, "nli_ds")))
    at = _page()
    assert not any("No plans yet" in i.value for i in at.info)
    use = at.selectbox(key="pl_use:nli_ds:default")
    assert use.value == "plan"  # valid, no choice made: the plan
    assert [s for s in at.selectbox if s.key and s.key.startswith("pl_use:")] == [use]
    assert any("Not planned yet: other_ds" in c.value for c in at.caption)
    # The plan's output on the sample rows, beside them.
    assert any(t.value.startswith("Premise: Sentence number 0") for t in at.text)
    use.set_value("skip").run()
    assert not at.exception, at.exception
    (saved,) = [r for r in ws.plans(1, TASK) if r.dataset == "nli_ds"]
    assert (saved.use, saved.chosen) == ("skip", "skip")
    fresh = _page()  # a refresh shows the saved choice
    assert fresh.selectbox(key="pl_use:nli_ds:default").value == "skip"


def test_editing_the_label_map_saves_a_user_plan(home):
    ws = _seed_plan(home)
    at = _page()
    suffix = f"nli_ds:default:{PLAN.version}"
    at.selectbox(key=f"pl_map:{suffix}:label:2").set_value("drop").run()
    _click(at, "Save plan")
    (saved,) = [r for r in ws.plans(1, TASK) if r.dataset == "nli_ds"]
    assert saved.plan.author == "user"
    assert saved.plan.label_map["2"] == "drop"
    assert saved.plan.label_map["0"] == "entailment"
    assert saved.status == "valid"
    assert any("Saved your plan" in s.value for s in at.success)


def test_bad_json_shows_an_error_and_saves_nothing(home):
    ws = _seed_plan(home)
    at = _page()
    suffix = f"nli_ds:default:{PLAN.version}"
    at.text_area(key=f"pl_json:{suffix}").input('{"dataset": "nli_ds", ').run()
    _click(at, "Save the JSON")
    assert any("not valid JSON" in e.value for e in at.error)
    (saved,) = [r for r in ws.plans(1, TASK) if r.dataset == "nli_ds"]
    assert saved.plan == PLAN
    # A plan with a problem (the answer field in the input) is saved, marked invalid.
    leaky = PLAN.to_json_dict() | {"input_template": "Premise: {input[Premise]} {label}"}
    at.text_area(key=f"pl_json:{suffix}").input(json.dumps(leaky)).run()
    _click(at, "Save the JSON")
    (saved,) = [r for r in ws.plans(1, TASK) if r.dataset == "nli_ds"]
    assert (saved.status, saved.plan.author) == ("invalid", "user")
    assert any("not valid" in w.value for w in at.warning)


def test_the_plan_job_plans_the_kept_datasets(home):
    at = _page()
    _click(at, "Plan datasets")
    _wait(Settings(home=home), "plan:1:1")
    at.run()
    assert not at.exception, at.exception
    records = {r.dataset: r for r in _ws(home).plans(1, TASK)}
    assert set(records) == {"nli_ds", "other_ds"}
    assert at.selectbox(key="pl_use:nli_ds:default") is not None


def test_each_pair_card_says_how_it_was_made(home):
    ws = _ws(home)
    run = ws.create_pair_run(1, "transform", llm="fake", params={"retrieval_run": 1})
    source = PairSource("nli_ds", "default", "0", 0.5, plan=PLAN.version)
    ws.add_pairs(
        run,
        1,
        [
            Pair(
                "p1",
                "Premise: a\nHypothesis: b",
                "entailment",
                "rebase",
                source=source,
                method="plan",
            ),
            Pair("p2", "Premise: c\nHypothesis: d", "neutral", "rebase", method="rewrite"),
        ],
    )
    at = _page()
    assert any(f"blue-badge[plan {PLAN.version}]" in m.value for m in at.markdown)
    _click(at, "Next")
    assert any("gray-badge[rewrite]" in m.value for m in at.markdown)


def test_the_mode_reaches_the_transform_job(home):
    at = _page()
    at.segmented_control(key="tf_plan_mode").set_value("rewrite").run()
    at.number_input(key="tf_grounding").set_value(0.0).run()  # the fake's replies ignore the row
    _click(at, "Transform 8 rows")
    settings = Settings(home=home)
    job = _wait(settings, "transform:1")
    assert job.result["planned"] == 0
    assert _ws(home).plans(1, TASK) == []  # rewrite mode plans nothing
    # (The fake's rewrites lack the task's "Premise:" marker, so they fail as "format".)
    reasons = {f.failure.reason for f in _ws(home).failures(1)}
    assert reasons == {"format"}  # every row went to the LLM's rewrite


DATES = Task(
    "dates",
    "Infer the date from context.",
    tuple(
        Example(
            f"Today is 0{i}/01/2000. What is the date tomorrow?\nOptions:\n"
            + "\n".join(f"({chr(65 + k)}) 0{i}/0{k + 2}/2000" for k in range(5)),
            f"Let's think step by step. Tomorrow is 0{i}/02/2000. So the answer is (A).",
        )
        for i in (1, 2, 3)
    ),
)


def test_a_multiple_choice_plan_is_edited_with_its_number_of_options(tmp_path, monkeypatch):
    rows = [
        ScoredRow(
            "calc",
            "default",
            str(i),
            0.5,
            0.5,
            0.4,
            0.6,
            "input",
            "ideal",
            "",
            {"input": f"What is 3 days after 01/0{i + 1}/2001?", "ideal": f"01/0{i + 4}/2001"},
        )
        for i in range(4)
    ]
    ws = _ws(_make_home(tmp_path, monkeypatch, DATES, rows))
    plan = Plan("calc", "default", "{input}", "ideal", choices=5, distractors=("01/09/2001",))
    ws.save_plan(1, DATES, check_given(DATES, plan, rows))
    at = _page()
    suffix = f"calc:default:{plan.version}"
    assert at.number_input(key=f"pl_choices:{suffix}").value == 5
    # The plan's output on the sample rows: the row's question, then the options code made.
    assert any(
        t.value.startswith("What is 3 days after 01/01/2001?\nOptions:\n(A)") for t in at.text
    )
    at.number_input(key=f"pl_choices:{suffix}").set_value(3).run()
    _click(at, "Save plan")
    (saved,) = [r for r in ws.plans(1, DATES) if r.dataset == "calc"]
    assert (saved.plan.choices, saved.plan.distractors) == (3, ("01/09/2001",))
    assert saved.status == "valid" and saved.plan.author == "user"
