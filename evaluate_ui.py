"""The Evaluate page's panels: the curated held-out split as a test set, the evaluation jobs, the
results (table, chart, paired comparison, predictions) and "Try it", a trained run beside the
untrained student on one input. Each action is one `rebase_core.evaluate` call; this module only
draws, so that the page stays its widgets, its launch call and the order of these panels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

import ui
from rebase_core import evaluate as ev
from rebase_core.finetune import Student, load_student
from rebase_core.heldout_split import curated_test_set, set_split, split_since

if TYPE_CHECKING:
    from pathlib import Path

    from rebase_core.finetune import RunInfo
    from rebase_core.settings import Settings
    from rebase_core.types import EvalReport, Pair, Task


def curated_split(
    settings: Settings, task: Task, pairs: Sequence[Pair], n_curated: int, runs: Iterable[RunInfo]
) -> Path | None:
    """The task's curated pairs as its test set: the offer to hold 1 in 5 out while the split is
    off, else how many are held out and a warning per run that trained on some of them. The test
    file, or None (split off, no pair held out yet, or the file not written: the error shown)."""
    if split_since(settings, task.name) is None:
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
        return None
    path: Path | None = None
    with ui.shown_errors(stop=False):
        curated = curated_test_set(settings, task.name, pairs)
        path = curated.path
        st.caption(
            f"**{curated.n_test:,}** of your {curated.n_curated:,} curated pairs are held out "
            f"(since {curated.since}); Fine-tune leaves them out of training."
            + (" Curate more pairs to test on." if curated.n_test < 20 else "")
        )
        if path is not None:
            for name, n in ev.runs_trained_on(runs, path).items():
                st.warning(
                    f"Run **{name}** was trained on {n:,} of these test pairs (before the "
                    "split was on): its score here is partly measured on its own training "
                    "data. Train it again to compare fairly.",
                    icon=":material/warning:",
                )
    return path  # kept when only the check of the runs failed


@st.fragment(run_every="2s")
def job_monitor(settings: Settings, task_name: str) -> None:
    """Evaluation jobs of this task: the active ones and those started in this session."""
    shown = ev.evaluation_jobs(
        settings, task_name=task_name, started=st.session_state.get("ev_jobs", [])
    )
    for job in shown:
        ui.job_panel(job, label=ev.evaluation_label(job.params))
    active = any(j.is_active for j in shown)
    was = st.session_state.get("ev_active")
    st.session_state["ev_active"] = active
    if was and not active:
        st.rerun(scope="app")  # new reports: refresh the table and chart


def results(settings: Settings, task_name: str, test_path: Path | None) -> None:
    """The task's stored reports on one test set (the one chosen above when it has reports): a
    table and a chart of one metric, a paired comparison of two models, and the predictions."""
    reports = ev.stored_reports(settings, task_name=task_name)
    if not reports:
        st.info("No evaluation of this task yet: choose the models above and press **Evaluate**.")
        return
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
    for row in ev.one_answer_rows(rows):
        st.warning(
            f"**{row.label}** ({'few' if row.few_shot else 'zero'}-shot) answers "
            f"**{row.top_answer or '(empty)'}** on {row.top_share:.0%} of the rows: its accuracy "
            "is mostly that label's share of the test set, not skill at the task. Its "
            "**balanced_accuracy** (the mean recall per label; one answer everywhere scores "
            "1 ÷ the number of labels) says whether it learned more than the label.",
            icon=":material/balance:",
        )
    for row in ev.long_answer_rows(rows):
        st.info(
            f"**{row.label}** ({'few' if row.few_shot else 'zero'}-shot) answers in "
            f"{row.answer_words:.1f} words on average, the gold answers in "
            f"{row.gold_words:.1f}: exact match counts none of its longer answers, F1 gives them "
            "partial credit, so compare it with the others on both.",
            icon=":material/short_text:",
        )
    title = f"{shown_test}: {metric} with 95% bootstrap intervals"
    st.plotly_chart(ev.results_figure(rows, metric, title=title), key="ev_chart")
    st.caption(
        "Bars: the mean score; whiskers: 95% bootstrap confidence interval over the test rows. "
        "Compare runs trained on the same number of pairs (the paper's setting)."
    )
    names = {i: ev.report_name(r) for i, r in enumerate(on_test)}  # as the pickers name them
    if len(on_test) > 1:
        _paired_comparison(on_test, names, metric)
    _predictions(on_test, names)


def _paired_comparison(
    on_test: Sequence[EvalReport], names: Mapping[int, str], metric: str
) -> None:
    """Two models' per-row difference on the rows both scored, with its paired interval."""
    with st.expander("Is one model really better than another? (paired comparison)"):
        q1, q2 = st.columns(2)
        first = q1.selectbox("Model A", list(names), format_func=names.__getitem__, key="ev_pair_a")
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


def _predictions(on_test: Sequence[EvalReport], names: Mapping[int, str]) -> None:
    """One evaluation's prediction per test row (the wrong ones only, on demand)."""
    with st.expander("Predictions, one per test row"):
        which = st.selectbox(
            "Evaluation", list(names), format_func=names.__getitem__, key="ev_which"
        )
        wrong_only = st.toggle("Only the wrong answers", key="ev_wrong")
        with ui.shown_errors(stop=False):
            examples = ev.read_predictions(on_test[which], wrong_only=wrong_only)
            st.dataframe(pd.DataFrame(examples), hide_index=True, key="ev_examples")


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def _student(spec: str, home: str, threads: int) -> Student:
    """A loaded model, kept for the server's life (loading takes seconds)."""
    return load_student(spec, settings=ui.get_settings(), threads=threads)


def try_it(
    settings: Settings, task: Task, done_runs: Mapping[str, RunInfo], untrained_spec: str
) -> None:
    """One input answered by a trained run and by the untrained student, side by side; the
    answers stay in the session until the next question."""
    if not done_runs:
        st.caption("Train a run to compare its answers with the untrained student's.")
        return
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
            untrained = _student(untrained_spec.strip(), str(settings.home), 1)
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
