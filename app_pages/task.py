"""Task: the instruction and a few examples — what the user wants a model for."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

import ui
from rebase_core.task import (
    add_pasted_examples,
    available_presets,
    comma_list,
    describe_task,
    edited_examples,
    task_form,
    task_from_dict,
    task_from_json_bytes,
    task_to_json,
    without_blank_examples,
)
from rebase_core.types import METRICS, Task

st.title("Task")
st.caption(
    "Describe the task in a sentence or two and give 1–20 examples of inputs and the outputs "
    "you want. ReBase retrieves rows like your examples from many datasets and rewrites them "
    "into training pairs in exactly this format."
)

ws = ui.get_workspace()
record = ui.current_task()
DRAFT_KEY = "task_draft"
METRIC_OPTIONS = ["infer from the examples", *METRICS]


def _load_into_editor(task: Task | None, tag: str) -> None:
    """Put a task into the editor's widgets (a new tag gives the widgets fresh state)."""
    st.session_state["task_form_tag"] = tag
    st.session_state["task_form"] = task_form(task)
    ws.set_value(DRAFT_KEY, None)  # a task loaded on purpose replaces any unsaved draft
    st.session_state.pop("task_draft_note", None)


def _load_current() -> None:
    _load_into_editor(
        record.task if record else None, f"{record.id}-{record.version}" if record else "new"
    )


def _current_form(tag: str) -> dict[str, Any]:
    """The editor's content as typed so far (widget state, before any save)."""
    base = st.session_state["task_form"]
    metric = st.session_state.get(f"task-metric-{tag}", METRIC_OPTIONS[0])
    return {
        "name": st.session_state.get(f"task-name-{tag}", base["name"]),
        "instruction": st.session_state.get(f"task-instruction-{tag}", base["instruction"]),
        "examples": edited_examples(
            base["examples"], st.session_state.get(f"task-examples-{tag}") or {}
        ),
        "exclude_datasets": list(comma_list(st.session_state.get(f"task-exclude-{tag}", ""))),
        "metric": None if metric == METRIC_OPTIONS[0] else metric,
    }


def _keep_draft() -> None:
    """Every change is written to the workspace at once: a refresh or a crash loses nothing."""
    tag = st.session_state["task_form_tag"]
    ws.set_value(
        DRAFT_KEY, {"tag": tag, "data": _current_form(tag), "at": time.strftime("%H:%M:%S")}
    )


if "task_form" not in st.session_state:
    draft = ws.get_value(DRAFT_KEY)
    _load_current()
    if draft:  # an unsaved draft from before a refresh or restart comes back
        st.session_state["task_form"] = draft["data"]
        st.session_state["task_form_tag"] = f"draft-{draft['at']}"
        st.session_state["task_draft_note"] = draft["at"]
        ws.set_value(DRAFT_KEY, {**draft, "tag": st.session_state["task_form_tag"]})

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
        picked = ws.get_task(int(chosen))
        ui.set_current_task(picked)
        _load_into_editor(picked.task, f"{picked.id}-{picked.version}")
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
        ui.set_current_task(loaded)
        st.session_state["task_pick_to"] = loaded.id  # else the picker would switch back
        _load_into_editor(loaded.task, f"{loaded.id}-{loaded.version}")
        st.toast(
            f"Preset {preset} is your current task (version {loaded.version}).",
            icon=":material/check:",
        )
        st.rerun()
    if st.button("New blank task", icon=":material/add:"):
        _load_into_editor(None, f"new-{len(tasks)}")
        st.rerun()

# ----------------------------------------------------------------------------- the editor
form_data = st.session_state["task_form"]
tag = st.session_state["task_form_tag"]
if st.session_state.get("task_draft_note"):
    note_col, discard_col = st.columns([4, 1], vertical_alignment="center")
    note_col.info(
        f"Your unsaved changes from {st.session_state['task_draft_note']} are back. Save them as "
        "a new version, or discard them.",
        icon=":material/history:",
    )
    if discard_col.button("Discard the draft"):
        st.session_state.pop("task_draft_note")
        _load_current()
        st.rerun()
with st.container(border=True):
    st.text_input(
        "Name",
        value=form_data["name"],
        placeholder="e.g. claim-check",
        key=f"task-name-{tag}",
        on_change=_keep_draft,
    )
    st.text_area(
        "Instruction",
        value=form_data["instruction"],
        height=100,
        placeholder="Decide whether the evidence supports, refutes, or is neutral to the claim.",
        key=f"task-instruction-{tag}",
        on_change=_keep_draft,
    )
    st.markdown(
        "**Examples** — add, edit or delete rows; outputs may reason step by step and "
        'end with "So the answer is X."'
    )
    st.data_editor(
        pd.DataFrame(form_data["examples"], columns=["input", "output"]),
        num_rows="dynamic",
        key=f"task-examples-{tag}",
        on_change=_keep_draft,
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
        on_change=_keep_draft,
    )
    c2.selectbox(
        "Evaluation metric",
        METRIC_OPTIONS,
        index=METRIC_OPTIONS.index(form_data.get("metric") or METRIC_OPTIONS[0]),
        key=f"task-metric-{tag}",
        on_change=_keep_draft,
    )
    saved = st.button("Save task", type="primary", icon=":material/save:", key="task_save")
    st.caption("Changes are kept as a draft as you type; saving makes a new version.")

if saved:
    data = without_blank_examples(_current_form(tag))
    st.session_state["task_form"] = data
    saved_record = None
    with ui.shown_errors(stop=False):  # keep the rest of the page (paste, history) visible
        saved_record = ws.save_task(task_from_dict(data, source="Task"))
    if saved_record is not None:
        ui.set_current_task(saved_record)
        ws.set_value(DRAFT_KEY, None)
        st.session_state.pop("task_draft_note", None)
        st.session_state["task_form_tag"] = f"{saved_record.id}-{saved_record.version}"
        st.toast(
            f"Saved {saved_record.name} (version {saved_record.version}).", icon=":material/check:"
        )
        st.rerun()

# ------------------------------------------------------------------------ paste, import, export
# The expander keeps its state (key + on_change): it stays open across the reruns of using it.
with st.expander("Paste many examples at once", key="task_paste_open", on_change="rerun"):
    if st.session_state.pop("task_paste_clear", False):
        st.session_state["task_paste"] = ""  # added: a second click cannot add them twice
    st.caption("One example per line: `input<TAB>output`, or JSON lines with input and output.")
    pasted = st.text_area(
        "Examples to add", key="task_paste", height=140, label_visibility="collapsed"
    )
    if st.button("Add pasted examples", disabled=not pasted.strip()):
        with ui.shown_errors():  # keep what was typed in the editor
            form, added = add_pasted_examples(_current_form(tag), pasted)
        st.session_state["task_form"] = form
        st.session_state["task_form_tag"] = f"{tag}-p{len(form['examples'])}"
        _keep_draft()
        st.session_state["task_paste_clear"] = True
        st.session_state["task_paste_added"] = added
        st.rerun()
    added_before = st.session_state.pop("task_paste_added", None)
    if added_before is not None:
        st.success(
            f"Added {added_before} example{'' if added_before == 1 else 's'} to the table above; "
            "press **Save task** to make a version.",
            icon=":material/check:",
        )

imp, exp = st.columns(2)
with imp:
    upload = st.file_uploader("Import a task file (JSON)", type=["json"], key="task_import")
    if upload is not None and st.button("Import and save", icon=":material/upload:"):
        with ui.shown_errors():
            task = task_from_json_bytes(upload.getvalue(), source=upload.name)
            imported = ws.save_task(task, note=f"imported from {upload.name}")
        ui.set_current_task(imported)
        st.session_state["task_pick_to"] = imported.id
        _load_into_editor(imported.task, f"{imported.id}-{imported.version}")
        st.rerun()
with exp:
    if record is not None:
        st.download_button(
            "Export the saved task (JSON)",
            task_to_json(record.task),
            file_name=f"{record.name}.json",
            mime="application/json",
            icon=":material/download:",
            on_click="ignore",
        )

# ----------------------------------------------------------------------------- status and history
if record is not None:
    st.success(
        f"Current task: **{record.name}** (version {record.version}) — "
        f"{describe_task(record.task)}.",
        icon=":material/task_alt:",
    )
    with st.expander("Version history"):
        for old in ws.task_history(record.id):
            cols = st.columns([1, 3, 4, 2], vertical_alignment="center")
            cols[0].markdown(f"**v{old.version}**")
            cols[1].caption(old.saved_at)
            cols[2].caption(old.note or old.task.instruction[:80])
            v = old.version
            if v != record.version and cols[3].button("Restore", key=f"restore-{v}"):
                restored = ws.save_task(old.task, note=f"restored version {v}")
                _load_into_editor(restored.task, f"{restored.id}-{restored.version}")
                st.rerun()
    st.page_link(
        "app_pages/datastore.py", label="Next: the datastore", icon=":material/arrow_forward:"
    )
