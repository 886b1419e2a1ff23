"""The Task page's editor state and panels: what the editor holds (a saved task, a blank one or
an unsaved draft kept in the workspace as one types), the notice of a draft that came back, the
paste box, import and export, and the task's version history. Every save is one workspace or
`rebase_core.task` call; this module only draws and keeps the editor's state, so that the page
stays its widgets, its save call and the order of these panels."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import streamlit as st

import ui
from rebase_core.task import (
    add_pasted_examples,
    comma_list,
    describe_task,
    edited_examples,
    task_form,
    task_from_json_bytes,
    task_to_json,
)
from rebase_core.types import METRICS

if TYPE_CHECKING:
    from rebase_core.types import Task
    from rebase_core.workspace import TaskRecord, Workspace

DRAFT_KEY = "task_draft"  # the workspace value holding the unsaved draft
METRIC_OPTIONS = ["infer from the examples", *METRICS]


# ----------------------------------------------------------------------------- the editor's state


def load_into_editor(ws: Workspace, task: Task | None, tag: str) -> None:
    """Put a task into the editor's widgets (a new tag gives the widgets fresh state)."""
    st.session_state["task_form_tag"] = tag
    st.session_state["task_form"] = task_form(task)
    ws.set_value(DRAFT_KEY, None)  # a task loaded on purpose replaces any unsaved draft
    st.session_state.pop("task_draft_note", None)


def load_current(ws: Workspace, record: TaskRecord | None) -> None:
    """The current task in the editor, or a blank one when there is none."""
    load_into_editor(
        ws, record.task if record else None, f"{record.id}-{record.version}" if record else "new"
    )


def open_task(ws: Workspace, record: TaskRecord, *, pick: bool) -> None:
    """Make a saved task the current one (the sidebar and the next pages follow) and put it in
    the editor; `pick` also shows it in the task picker (else the picker would switch back)."""
    ui.set_current_task(record)
    if pick:
        st.session_state["task_pick_to"] = record.id
    load_into_editor(ws, record.task, f"{record.id}-{record.version}")


def start_editor(ws: Workspace, record: TaskRecord | None) -> None:
    """The editor's content on a session's first run: the current task, or the unsaved draft
    from before a refresh or restart, which comes back with a notice."""
    if "task_form" in st.session_state:
        return
    draft = ws.get_value(DRAFT_KEY)
    load_current(ws, record)
    if draft:
        st.session_state["task_form"] = draft["data"]
        st.session_state["task_form_tag"] = f"draft-{draft['at']}"
        st.session_state["task_draft_note"] = draft["at"]
        ws.set_value(DRAFT_KEY, {**draft, "tag": st.session_state["task_form_tag"]})


def current_form(tag: str) -> dict[str, Any]:
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


def keep_draft(ws: Workspace) -> None:
    """Every change is written to the workspace at once: a refresh or a crash loses nothing."""
    tag = st.session_state["task_form_tag"]
    ws.set_value(
        DRAFT_KEY, {"tag": tag, "data": current_form(tag), "at": time.strftime("%H:%M:%S")}
    )


def saved(ws: Workspace, record: TaskRecord) -> None:
    """After a save: the saved version is the current task, the draft is gone, and the editor
    holds what was saved under the version's tag."""
    ui.set_current_task(record)
    ws.set_value(DRAFT_KEY, None)
    st.session_state.pop("task_draft_note", None)
    st.session_state["task_form_tag"] = f"{record.id}-{record.version}"
    st.toast(f"Saved {record.name} (version {record.version}).", icon=":material/check:")


# ----------------------------------------------------------------------------- panels


def draft_notice(ws: Workspace, record: TaskRecord | None) -> None:
    """Says that unsaved changes came back, with a button to discard them."""
    if not st.session_state.get("task_draft_note"):
        return
    note_col, discard_col = st.columns([4, 1], vertical_alignment="center")
    note_col.info(
        f"Your unsaved changes from {st.session_state['task_draft_note']} are back. Save them as "
        "a new version, or discard them.",
        icon=":material/history:",
    )
    if discard_col.button("Discard the draft"):
        st.session_state.pop("task_draft_note")
        load_current(ws, record)
        st.rerun()


def paste_examples(ws: Workspace, tag: str) -> None:
    """A box to add many examples at once to the editor's table (not saved until Save). The
    expander keeps its state (key + on_change): it stays open across the reruns of using it."""
    with st.expander("Paste many examples at once", key="task_paste_open", on_change="rerun"):
        if st.session_state.pop("task_paste_clear", False):
            st.session_state["task_paste"] = ""  # added: a second click cannot add them twice
        st.caption("One example per line: `input<TAB>output`, or JSON lines with input and output.")
        pasted = st.text_area(
            "Examples to add", key="task_paste", height=140, label_visibility="collapsed"
        )
        if st.button("Add pasted examples", disabled=not pasted.strip()):
            with ui.shown_errors():  # keep what was typed in the editor
                form, added = add_pasted_examples(current_form(tag), pasted)
            st.session_state["task_form"] = form
            st.session_state["task_form_tag"] = f"{tag}-p{len(form['examples'])}"
            keep_draft(ws)
            st.session_state["task_paste_clear"] = True
            st.session_state["task_paste_added"] = added
            st.rerun()
        added_before = st.session_state.pop("task_paste_added", None)
        if added_before is not None:
            st.success(
                f"Added {added_before} example{'' if added_before == 1 else 's'} to the table "
                "above; press **Save task** to make a version.",
                icon=":material/check:",
            )


def import_export(ws: Workspace, record: TaskRecord | None) -> None:
    """Import a task file (saved at once, made the current task), export the saved task."""
    imp, exp = st.columns(2)
    with imp:
        upload = st.file_uploader("Import a task file (JSON)", type=["json"], key="task_import")
        if upload is not None and st.button("Import and save", icon=":material/upload:"):
            with ui.shown_errors():
                task = task_from_json_bytes(upload.getvalue(), source=upload.name)
                imported = ws.save_task(task, note=f"imported from {upload.name}")
            open_task(ws, imported, pick=True)
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


def status_and_history(ws: Workspace, record: TaskRecord) -> None:
    """The current task in a line, and its saved versions, each but the current restorable."""
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
                load_into_editor(ws, restored.task, f"{restored.id}-{restored.version}")
                st.rerun()
