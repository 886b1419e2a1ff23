"""Task: the instruction and a few examples — what the user wants a model for."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

import task_ui
import ui
from rebase_core.task import available_presets, task_from_dict, without_blank_examples

st.title("Task")
st.caption(
    "Describe the task in a sentence or two and give 1–20 examples of inputs and the outputs "
    "you want. ReBase retrieves rows like your examples from many datasets and rewrites them "
    "into training pairs in exactly this format."
)

ws = ui.get_workspace()
record = ui.current_task()
task_ui.start_editor(ws, record)
keep_draft = partial(task_ui.keep_draft, ws)  # every edit is kept as a draft at once

# ----------------------------------------------------------------------------- choose a task
tasks = ws.list_tasks()
presets = available_presets()
left, middle, right = st.columns([3, 3, 2], vertical_alignment="bottom")
with left:
    options = [t.id for t in tasks]
    if "task_pick_to" in st.session_state:  # a task made current below (preset, import)
        st.session_state["task_pick"] = st.session_state.pop("task_pick_to")
    labels = {t.id: f"{t.name} (v{t.version})" for t in tasks}
    chosen = st.selectbox(
        "Your tasks",
        options,
        index=options.index(record.id) if record and record.id in options else None,
        format_func=lambda i: labels[i],
        placeholder="No saved task yet" if not tasks else "Choose a task",
        key="task_pick",
    )
    if chosen is not None and (record is None or chosen != record.id):
        task_ui.open_task(ws, ws.get_task(int(chosen)), pick=False)
        st.rerun()
with middle:
    preset = st.selectbox(
        "Start from a preset (held-out evaluation tasks)",
        sorted(presets),
        index=None,
        placeholder="Choose a preset" if presets else "No presets: run `make setup`",
        key="task_preset",
    )
with right:
    load = st.button(
        "Load preset",
        disabled=preset is None,
        icon=":material/file_open:",
        help="Saves the preset as your task (a new version if you already have a task of that "
        "name and changed it) and makes it the current task.",
    )
    if load and preset is not None:
        # Loading a preset is choosing the task to work on, like importing a file: it is saved
        # at once and becomes the current task (the sidebar and the next pages follow).
        with ui.shown_errors():
            loaded = ws.save_task(presets[preset], note=f"loaded preset {preset}")
        task_ui.open_task(ws, loaded, pick=True)
        st.toast(
            f"Preset {preset} is your current task (version {loaded.version}).",
            icon=":material/check:",
        )
        st.rerun()
    if st.button("New blank task", icon=":material/add:"):
        task_ui.load_into_editor(ws, None, f"new-{len(tasks)}")
        st.rerun()

# ----------------------------------------------------------------------------- the editor
form_data = st.session_state["task_form"]
tag = st.session_state["task_form_tag"]
task_ui.draft_notice(ws, record)
with st.container(border=True):
    st.text_input(
        "Name",
        value=form_data["name"],
        placeholder="e.g. claim-check",
        key=f"task-name-{tag}",
        on_change=keep_draft,
    )
    st.text_area(
        "Instruction",
        value=form_data["instruction"],
        height=100,
        placeholder="Decide whether the evidence supports, refutes, or is neutral to the claim.",
        key=f"task-instruction-{tag}",
        on_change=keep_draft,
    )
    st.markdown(
        "**Examples** — add, edit or delete rows; outputs may reason step by step and "
        'end with "So the answer is X."'
    )
    st.data_editor(
        pd.DataFrame(form_data["examples"], columns=["input", "output"]),
        num_rows="dynamic",
        key=f"task-examples-{tag}",
        on_change=keep_draft,
        column_config={
            "input": st.column_config.TextColumn("Input", width="large", default=""),
            "output": st.column_config.TextColumn("Output", width="large", default=""),
        },
        placeholder="",  # an empty cell shows blank, not "None"
        hide_index=True,
    )
    st.caption(
        "To delete examples, tick the box at the left of their rows, then press the bin icon "
        "above the table (or the Delete key)."
    )
    c1, c2 = st.columns(2)
    c1.text_input(
        "Never retrieve from these datasets (comma-separated names)",
        value=", ".join(form_data.get("exclude_datasets") or []),
        help="Exact dataset names, a namespace such as `bigbench`, or a glob such as "
        "`bigbench/fact_*`. The held-out test sets are always excluded.",
        key=f"task-exclude-{tag}",
        on_change=keep_draft,
    )
    c2.selectbox(
        "Evaluation metric",
        task_ui.METRIC_OPTIONS,
        index=task_ui.METRIC_OPTIONS.index(form_data.get("metric") or task_ui.METRIC_OPTIONS[0]),
        key=f"task-metric-{tag}",
        on_change=keep_draft,
    )
    saved = st.button("Save task", type="primary", icon=":material/save:", key="task_save")
    st.caption("Changes are kept as a draft as you type; saving makes a new version.")

if saved:
    data = without_blank_examples(task_ui.current_form(tag))
    st.session_state["task_form"] = data
    saved_record = None
    with ui.shown_errors(stop=False):  # keep the rest of the page (paste, history) visible
        saved_record = ws.save_task(task_from_dict(data, source="Task"))
    if saved_record is not None:
        task_ui.saved(ws, saved_record)
        st.rerun()

# ------------------------------------------------------------------------ paste, import, export
task_ui.paste_examples(ws, tag)
task_ui.import_export(ws, record)

# ----------------------------------------------------------------------------- status and history
if record is not None:
    task_ui.status_and_history(ws, record)
    st.page_link(
        "app_pages/datastore.py", label="Next: the datastore", icon=":material/arrow_forward:"
    )
