"""Evaluate: score the untrained student and the trained runs on a held-out set, compare them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st

import evaluate_ui
import ui
from rebase_core import evaluate as ev
from rebase_core.heldout_split import CURATED_STATUSES

settings = ui.get_settings()
st.title("Evaluate")
record = ui.need_task()
task = record.task

models = ev.model_choices(settings, task.name)
done_runs = models.runs

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
    test_path = evaluate_ui.curated_split(settings, task, pairs, n_curated, done_runs.values())
elif source == "upload":
    upload = st.file_uploader("Test set (JSONL: input and output)", type=["jsonl"], key="ev_up")
    if upload is not None:
        test_path = ev.store_test_set(settings, upload.name, upload.getvalue())
else:
    typed = st.text_input("Path of a JSONL file", key="ev_path", placeholder="/data/test.jsonl")
    # os.path.expanduser leaves "~unknown-user/..." as it is (Path.expanduser raises on it), so
    # the loading below says the file does not exist.
    test_path = Path(os.path.expanduser(typed)) if typed.strip() else None

n_rows = 0
if test_path is not None:
    with ui.shown_errors(stop=False):
        n_rows = len(ev.load_test_set(test_path))
    if not n_rows:
        test_path = None  # the error above says what is wrong with the file

# ----------------------------------------------------------------------------- what to evaluate
st.subheader("Models")
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
        value=models.untrained,
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
        format_func=models.labels.__getitem__,
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


evaluate_ui.job_monitor(settings, task.name)

# ----------------------------------------------------------------------------- results
st.subheader("Results")
evaluate_ui.results(settings, task.name, test_path)

# ----------------------------------------------------------------------------- try it
st.subheader("Try it")
evaluate_ui.try_it(settings, task, done_runs, student)

st.page_link(
    "app_pages/export.py",
    label="Next: export the data and the model",
    icon=":material/arrow_forward:",
)
