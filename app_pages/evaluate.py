"""Evaluate: score the untrained student and the trained runs on a held-out set, compare them."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from rebase_core import jobs
from rebase_core.bundled import heldout_sets
from rebase_core.evaluate import (
    ORIGIN_LABELS,
    compare_results,
    generate_answer,
    load_test_set,
    paired_difference,
    stored_reports,
)
from rebase_core.finetune import DEFAULT_STUDENT, list_runs, load_student
from rebase_core.jsonl import read_jsonl

settings = ui.get_settings()
st.title("Evaluate")
record = ui.need_task()
task = record.task

# Fixed colours per data origin, the same in every chart of the app's comparison.
COLOURS = {
    "untrained": "#9aa0a6",
    "SELF-GUIDE": "#e8a33d",
    "direct synthesis": "#5b8def",
    "ReBase": "#2a9d8f",
    "mixed": "#8e6bbf",
    "manual": "#b5651d",
}

runs = [r for r in list_runs(settings) if r.task_name == task.name]
done_runs = [r for r in runs if r.status == "done"]

# ----------------------------------------------------------------------------- test set
st.subheader("Held-out test set")
sets = {f"heldout:{h.name}": h for h in heldout_sets(settings)}
choices = [*sets, "upload", "path"]
labels = {k: f"{h.name} · {h.n_test:,} rows · {h.metric}" for k, h in sets.items()}
labels.update(upload="Upload a JSONL file…", path="A JSONL file on this machine…")
default = f"heldout:{task.name}" if f"heldout:{task.name}" in sets else "upload"
if not sets:
    st.caption(
        "No held-out sets in this workspace (`python -m rebase_core corpus prepare` writes "
        'them); use a file of your own with one `{"input", "output"}` object per line.'
    )
source = st.selectbox(
    "Test set",
    choices,
    index=choices.index(default),
    format_func=labels.get,
    key="ev_test",
    bind="query-params",
)
test_path: Path | None = None
if source in sets:
    test_path = sets[source].test_path
    if sets[source].name != task.name:
        st.warning(
            f"This set belongs to the task **{sets[source].name}**, your task is **{task.name}**: "
            "scores mean something only when the test set fits the task."
        )
elif source == "upload":
    upload = st.file_uploader("Test set (JSONL: input and output)", type=["jsonl"], key="ev_up")
    if upload is not None:
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:8]
        test_path = settings.home / "test_sets" / f"{Path(upload.name).stem}-{digest}.jsonl"
        if not test_path.exists():
            test_path.parent.mkdir(parents=True, exist_ok=True)
            test_path.write_bytes(data)
else:
    typed = st.text_input("Path of a JSONL file", key="ev_path", placeholder="/data/test.jsonl")
    test_path = Path(typed).expanduser() if typed.strip() else None

n_rows = 0
if test_path is not None:
    with ui.shown_errors(stop=False):
        n_rows = len(load_test_set(test_path))
    if not n_rows:
        test_path = None  # the error above says what is wrong with the file

# ----------------------------------------------------------------------------- what to evaluate
st.subheader("Models")
latest_student = str(runs[0].config.get("student", DEFAULT_STUDENT)) if runs else DEFAULT_STUDENT
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
        [r.name for r in done_runs],
        default=[r.name for r in done_runs],
        format_func=lambda n: next(
            f"{r.name} · {ORIGIN_LABELS.get(r.origin, r.origin)} · {r.n_train:,} pairs"
            for r in done_runs
            if r.name == n
        ),
        key="ev_runs",
        placeholder="No finished run yet" if not done_runs else "Choose runs",
    )
    go_eval = st.form_submit_button(
        "Evaluate", type="primary", icon=":material/leaderboard:", disabled=test_path is None
    )
if not done_runs:
    st.caption("No finished run for this task yet: the untrained student can be scored already.")
    st.page_link(
        "app_pages/finetune.py", label="Go to the Fine-tune page", icon=":material/model_training:"
    )

if go_eval and test_path is not None:
    targets: list[tuple[str, bool | None]] = []
    if zero:
        targets.append((student.strip(), False))
    if few:
        targets.append((student.strip(), True))
    targets += [(str(settings.runs_dir / name), None) for name in picked]
    if not targets:
        st.warning("Choose at least one model to evaluate.")
    started = st.session_state.setdefault("ev_jobs", [])
    with ui.shown_errors():
        for model, shots in targets:
            params = {
                "task": task.to_dict(),
                "model": model,
                "test": str(test_path),
                "limit": int(limit),
                "few_shot": shots,
            }
            key = f"evaluate:{model}:{test_path}:{int(limit)}:{shots}"
            job = jobs.start_job(settings, "evaluate", params, key=key)
            if job.id not in started:
                started.append(job.id)


def _job_label(job) -> str:
    model = str(job.params.get("model", ""))
    name = Path(model).name or model
    shots = job.params.get("few_shot")
    how = "" if shots is None else " few-shot" if shots else " zero-shot"
    return f"Evaluating {name}{how}"


@st.fragment(run_every="2s")
def job_monitor() -> None:
    """Evaluation jobs of this task: the active ones and those started in this session."""
    mine = set(st.session_state.get("ev_jobs", []))
    shown = [
        j
        for j in jobs.list_jobs(settings, kind="evaluate")
        if (j.is_active or j.id in mine) and j.params.get("task", {}).get("name") == task.name
    ]
    for job in shown:
        ui.job_panel(job, label=_job_label(job))
    active = any(j.is_active for j in shown)
    was = st.session_state.get("ev_active")
    st.session_state["ev_active"] = active
    if was and not active:
        st.rerun(scope="app")  # new reports: refresh the table and chart


job_monitor()

# ----------------------------------------------------------------------------- results
st.subheader("Results")
reports = stored_reports(settings, task_name=task.name)
if not reports:
    st.info("No evaluation of this task yet: choose the models above and press **Evaluate**.")
else:
    tests = sorted({Path(str(r.extra.get("test", ""))).stem for r in reports})
    current = test_path.stem if test_path is not None and test_path.stem in tests else tests[0]
    r1, r2 = st.columns(2)
    shown_test = r1.selectbox("Results on", tests, index=tests.index(current), key="ev_shown")
    on_test = [r for r in reports if Path(str(r.extra.get("test", ""))).stem == shown_test]
    metrics = sorted({m for r in on_test for m in (r.extra.get("metrics") or {r.metric: 0})})
    metric = r2.selectbox("Metric", metrics, key="ev_metric") if len(metrics) > 1 else metrics[0]
    rows = compare_results(on_test, metric=metric)
    frame = pd.DataFrame(
        {
            "model": [r.label for r in rows],
            "data": [ORIGIN_LABELS.get(r.origin, r.origin) for r in rows],
            "prompt": ["few-shot" if r.few_shot else "zero-shot" for r in rows],
            "pairs": [r.n_train for r in rows],
            metric: [r.score for r in rows],
            "95% CI": [f"{r.ci_low:.3f}–{r.ci_high:.3f}" for r in rows],
            "rows": [r.n for r in rows],
        }
    )
    st.dataframe(
        frame,
        hide_index=True,
        key="ev_table",
        column_config={metric: st.column_config.NumberColumn(format="%.3f")},
    )
    fig = go.Figure()
    for data_name in dict.fromkeys(frame["data"]):
        part = [r for r in rows if ORIGIN_LABELS.get(r.origin, r.origin) == data_name]
        fig.add_bar(
            name=data_name,
            x=[r.label for r in part],
            y=[r.score for r in part],
            marker_color=COLOURS.get(data_name),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r.ci_high - r.score for r in part],
                "arrayminus": [r.score - r.ci_low for r in part],
            },
            customdata=[[r.n_train, r.n] for r in part],
            hovertemplate="%{x}<br>score %{y:.3f}<br>%{customdata[0]} pairs, "
            "%{customdata[1]} test rows<extra></extra>",
        )
    fig.update_layout(
        yaxis={"title": metric, "range": [0, 1]},
        height=360,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title=f"{shown_test}: {metric} with 95% bootstrap intervals",
    )
    st.plotly_chart(fig, key="ev_chart")
    st.caption(
        "Bars: the mean score; whiskers: 95% bootstrap confidence interval over the test rows. "
        "Compare runs trained on the same number of pairs (the paper's setting)."
    )

    names = {  # each evaluation on this test set, as the pickers below name it
        i: f"{r.extra.get('label', r.extra.get('model'))} · "
        f"{'few' if r.extra.get('few_shot') else 'zero'}-shot"
        for i, r in enumerate(on_test)
    }
    if len(on_test) > 1:
        with st.expander("Is one model really better than another? (paired comparison)"):
            q1, q2 = st.columns(2)
            first = q1.selectbox("Model A", list(names), format_func=names.get, key="ev_pair_a")
            second = q2.selectbox(
                "Model B", list(names), index=1, format_func=names.get, key="ev_pair_b"
            )
            with ui.shown_errors(stop=False):
                gap = paired_difference(on_test[first], on_test[second], metric=metric)
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
        which = st.selectbox("Evaluation", list(names), format_func=names.get, key="ev_which")
        wrong_only = st.toggle("Only the wrong answers", key="ev_wrong")
        path = Path(on_test[which].per_example)
        if not path.exists():
            st.caption(f"The predictions file {path} is gone.")
        else:
            examples = pd.DataFrame(read_jsonl(path))
            if "correct" in examples and wrong_only:
                examples = examples[~examples["correct"].astype(bool)]
            columns = [
                c
                for c in ("input", "gold", "prediction", "extracted", "correct", "score")
                if c in examples
            ]
            st.dataframe(examples[columns], hide_index=True, key="ev_examples")

# ----------------------------------------------------------------------------- try it
st.subheader("Try it")


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def _student(spec: str, home: str, threads: int):
    """A loaded model, kept for the server's life (loading takes seconds)."""
    return load_student(spec, settings=ui.get_settings(), threads=threads)


if not done_runs:
    st.caption("Train a run to compare its answers with the untrained student's.")
else:
    with st.form("ev_try"):
        run_name = st.selectbox("Trained run", [r.name for r in done_runs], key="ev_try_run")
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
            started_at = time.monotonic()
            trained = _student(str(settings.runs_dir / run_name), str(settings.home), 1)
            untrained = _student(student.strip(), str(settings.home), 1)
            answers = {
                "trained": generate_answer(trained, task, text),
                "untrained": generate_answer(untrained, task, text, few_shot=base_few),
            }
            st.session_state["ev_try_answers"] = {
                **answers,
                "run": run_name,
                "seconds": time.monotonic() - started_at,
            }
    answers = st.session_state.get("ev_try_answers")
    if answers:
        a, b = st.columns(2)
        with a.container(border=True):
            st.markdown(f"**{answers['run']}** (trained)")
            st.text(answers["trained"] or "(empty answer)")
        with b.container(border=True):
            st.markdown(f"**{Path(student.strip()).name}** (untrained)")
            st.text(answers["untrained"] or "(empty answer)")
        st.caption(f"Both answers in {answers['seconds']:.1f} s (greedy decoding).")

st.page_link(
    "app_pages/export.py",
    label="Next: export the data and the model",
    icon=":material/arrow_forward:",
)
