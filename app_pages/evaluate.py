"""Evaluate: score the untrained student and the trained runs on a held-out set, compare them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from rebase_core import evaluate as ev
from rebase_core.finetune import DEFAULT_STUDENT, Student, list_runs, load_student
from rebase_core.heldout_split import CURATED_STATUSES, curated_test_set, set_split, split_since

settings = ui.get_settings()
st.title("Evaluate")
record = ui.need_task()
task = record.task

task_runs = list_runs(settings, task_name=task.name)
done_runs = {r.name: r for r in task_runs if r.status == "done"}
run_labels = {
    name: f"{name} · {ev.ORIGIN_LABELS.get(r.origin, r.origin)} · {r.n_train:,} pairs"
    for name, r in done_runs.items()
}

# ----------------------------------------------------------------------------- test set
st.subheader("Held-out test set")
pairs = ui.get_workspace().pairs(task_id=record.id)
n_curated = sum(p.status in CURATED_STATUSES for p in pairs)
choices = ev.eval_set_choices(settings, task.name, n_curated)
if not choices.sets:
    st.caption(
        "No held-out sets in this workspace (`python -m rebase_core corpus prepare` writes "
        'them); use a file of your own with one `{"input", "output"}` object per line.'
    )
source = st.selectbox(
    "Test set",
    choices.keys,
    index=choices.keys.index(choices.default),
    format_func=choices.labels.__getitem__,
    key="ev_test",
    bind="query-params",
)
test_path: Path | None = None
if source in choices.sets:
    heldout = choices.sets[source]
    test_path = heldout.test_path
    if heldout.name != task.name:
        st.warning(
            f"This set belongs to the task **{heldout.name}**, your task is **{task.name}**: "
            "scores mean something only when the test set fits the task."
        )
elif source == ev.CURATED_CHOICE:
    since = split_since(settings, task.name)
    if since is None:
        st.info(
            f"Your task has {n_curated:,} curated pair(s) and no test set of its own. Hold out "
            "1 in 5 of the curated pairs as its test set: they are chosen by a hash of the pair "
            "(the same ones every time, new pairs join either side), and from now on Fine-tune "
            "leaves them out of training, so scores are measured on pairs no run learned from.",
            icon=":material/call_split:",
        )
        if st.button("Hold out 1 in 5 curated pairs", icon=":material/call_split:"):
            set_split(settings, task.name, True)
            st.rerun()
    else:
        with ui.shown_errors(stop=False):
            curated = curated_test_set(settings, task.name, pairs)
            test_path = curated.path
            st.caption(
                f"**{curated.n_test:,}** of your {curated.n_curated:,} curated pairs are held out "
                f"(since {curated.since}); Fine-tune leaves them out of training."
                + (" Curate more pairs to test on." if curated.n_test < 20 else "")
            )
            if test_path is not None:
                for name, n in ev.runs_trained_on(done_runs.values(), test_path).items():
                    st.warning(
                        f"Run **{name}** was trained on {n:,} of these test pairs (before the "
                        "split was on): its score here is partly measured on its own training "
                        "data. Train it again to compare fairly.",
                        icon=":material/warning:",
                    )
elif source == "upload":
    upload = st.file_uploader("Test set (JSONL: input and output)", type=["jsonl"], key="ev_up")
    if upload is not None:
        test_path = ev.store_test_set(settings, upload.name, upload.getvalue())
else:
    typed = st.text_input("Path of a JSONL file", key="ev_path", placeholder="/data/test.jsonl")
    test_path = Path(typed).expanduser() if typed.strip() else None

n_rows = 0
if test_path is not None:
    with ui.shown_errors(stop=False):
        n_rows = len(ev.load_test_set(test_path))
    if not n_rows:
        test_path = None  # the error above says what is wrong with the file

# ----------------------------------------------------------------------------- what to evaluate
st.subheader("Models")
latest_student = (task_runs[0].student if task_runs else "") or DEFAULT_STUDENT
with st.form("ev_form"):
    c1, c2 = st.columns([1, 2])
    limit = c1.number_input(
        "Rows to evaluate",
        1,
        max(1, n_rows),
        min(200, max(1, n_rows)),
        # One widget per test file: its bounds (and default) change with the file.
        key=f"ev_limit_{hashlib.sha256(str(test_path).encode()).hexdigest()[:8]}",
        help="The first rows of the set. 200 rows keep a CPU evaluation to minutes; use them all "
        "for the final numbers (the confidence interval narrows with more rows).",
    )
    student = c2.text_input(
        "Untrained student",
        value=latest_student,
        key="ev_student",
        help="The model before training: the packaged name or a local folder (default: the "
        "student of your latest run).",
    )
    z1, z2 = st.columns(2)
    zero = z1.checkbox("Untrained, zero-shot", value=True, key="ev_zero")
    few = z2.checkbox(
        "Untrained, few-shot (the task's examples in the prompt)", value=True, key="ev_few"
    )
    picked = st.multiselect(
        "Trained runs (evaluated with the prompt they were trained on)",
        list(done_runs),
        default=list(done_runs),
        format_func=run_labels.__getitem__,
        key="ev_runs",
        placeholder="No finished run yet" if not done_runs else "Choose runs",
    )
    go_eval = st.form_submit_button(
        "Evaluate", type="primary", icon=":material/leaderboard:", disabled=test_path is None
    )
if not done_runs:
    st.caption(
        "No finished run for this task yet: the untrained student can be scored already"
        + (" (choose a test set above first)." if test_path is None else ".")
    )
    st.page_link(
        "app_pages/finetune.py", label="Go to the Fine-tune page", icon=":material/model_training:"
    )

if go_eval and test_path is not None:
    specs = ev.evaluation_runs(
        task,
        test_path,
        limit=int(limit),
        untrained=student,
        zero_shot=zero,
        few_shot=few,
        run_dirs=[done_runs[name].path for name in picked],
    )
    if not specs:
        st.warning("Choose at least one model to evaluate.")
    started: list[str] = st.session_state.setdefault("ev_jobs", [])
    with ui.shown_errors():
        started += [j.id for j in ev.start_evaluations(settings, specs) if j.id not in started]


@st.fragment(run_every="2s")
def job_monitor() -> None:
    """Evaluation jobs of this task: the active ones and those started in this session."""
    shown = ev.evaluation_jobs(
        settings, task_name=task.name, started=st.session_state.get("ev_jobs", [])
    )
    for job in shown:
        ui.job_panel(job, label=ev.evaluation_label(job.params))
    active = any(j.is_active for j in shown)
    was = st.session_state.get("ev_active")
    st.session_state["ev_active"] = active
    if was and not active:
        st.rerun(scope="app")  # new reports: refresh the table and chart


job_monitor()

# ----------------------------------------------------------------------------- results
st.subheader("Results")
reports = ev.stored_reports(settings, task_name=task.name)
if not reports:
    st.info("No evaluation of this task yet: choose the models above and press **Evaluate**.")
else:
    tests = ev.tested_sets(reports)
    current = test_path.stem if test_path is not None and test_path.stem in tests else tests[0]
    r1, r2 = st.columns(2)
    shown_test = r1.selectbox("Results on", tests, index=tests.index(current), key="ev_shown")
    on_test = ev.reports_on(reports, shown_test)
    metrics = ev.report_metrics(on_test)
    metric = r2.selectbox("Metric", metrics, key="ev_metric") if len(metrics) > 1 else metrics[0]
    rows = ev.compare_results(on_test, metric=metric)
    st.dataframe(
        pd.DataFrame(ev.results_table(rows, metric)),
        hide_index=True,
        key="ev_table",
        column_config={metric: st.column_config.NumberColumn(format="%.3f")},
    )
    title = f"{shown_test}: {metric} with 95% bootstrap intervals"
    st.plotly_chart(ev.results_figure(rows, metric, title=title), key="ev_chart")
    st.caption(
        "Bars: the mean score; whiskers: 95% bootstrap confidence interval over the test rows. "
        "Compare runs trained on the same number of pairs (the paper's setting)."
    )

    names = {i: ev.report_name(r) for i, r in enumerate(on_test)}  # as the pickers name them
    if len(on_test) > 1:
        with st.expander("Is one model really better than another? (paired comparison)"):
            q1, q2 = st.columns(2)
            first = q1.selectbox(
                "Model A", list(names), format_func=names.__getitem__, key="ev_pair_a"
            )
            second = q2.selectbox(
                "Model B", list(names), index=1, format_func=names.__getitem__, key="ev_pair_b"
            )
            with ui.shown_errors(stop=False):
                gap = ev.paired_difference(on_test[first], on_test[second], metric=metric)
                st.metric(
                    f"A − B, {metric}",
                    f"{gap.difference:+.3f}",
                    help="Mean per-row difference on the rows both scored.",
                )
                st.caption(
                    f"95% paired bootstrap interval [{gap.ci_low:+.3f}, {gap.ci_high:+.3f}] on "
                    f"{gap.n:,} shared test rows: A is **{gap.verdict}**"
                    f"{'' if gap.verdict == 'no clear difference' else ' than B'}. Pairing the "
                    "rows cancels their shared difficulty, so this interval is tighter than "
                    "comparing the two bars' whiskers."
                )

    with st.expander("Predictions, one per test row"):
        which = st.selectbox(
            "Evaluation", list(names), format_func=names.__getitem__, key="ev_which"
        )
        wrong_only = st.toggle("Only the wrong answers", key="ev_wrong")
        with ui.shown_errors(stop=False):
            examples = ev.read_predictions(on_test[which], wrong_only=wrong_only)
            st.dataframe(pd.DataFrame(examples), hide_index=True, key="ev_examples")

# ----------------------------------------------------------------------------- try it
st.subheader("Try it")


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def _student(spec: str, home: str, threads: int) -> Student:
    """A loaded model, kept for the server's life (loading takes seconds)."""
    return load_student(spec, settings=ui.get_settings(), threads=threads)


if not done_runs:
    st.caption("Train a run to compare its answers with the untrained student's.")
else:
    with st.form("ev_try"):
        run_name = st.selectbox("Trained run", list(done_runs), key="ev_try_run")
        text = st.text_area(
            "Input",
            key="ev_try_input",
            placeholder=task.examples[0].input if task.examples else "",
        )
        base_few = st.toggle(
            "The untrained student sees the task's examples (few-shot)", True, key="ev_try_few"
        )
        ask = st.form_submit_button("Ask both", icon=":material/send:")
    if ask and text.strip():
        with ui.shown_errors():
            trained = _student(str(done_runs[run_name].path), str(settings.home), 1)
            untrained = _student(student.strip(), str(settings.home), 1)
            st.session_state["ev_try_answers"] = ev.answer_side_by_side(
                trained, untrained, task, text, untrained_few_shot=base_few
            )
    answers: ev.SideBySide | None = st.session_state.get("ev_try_answers")
    if answers:
        a, b = st.columns(2)
        with a.container(border=True):
            st.markdown(f"**{answers.run}** (trained)")
            st.text(answers.trained_answer or "(empty answer)")
        with b.container(border=True):
            st.markdown(f"**{answers.untrained}** (untrained)")
            st.text(answers.untrained_answer or "(empty answer)")
        st.caption(f"Both answers in {answers.seconds:.1f} s (greedy decoding).")

st.page_link(
    "app_pages/export.py",
    label="Next: export the data and the model",
    icon=":material/arrow_forward:",
)
