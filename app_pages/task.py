"""Task: the instruction and a few examples — what the user wants a model for."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from rebase_core.errors import InputError
from rebase_core.task import is_chain_of_thought, parse_examples_text, task_from_dict
from rebase_core.types import METRICS, Task

st.title("Task")
st.caption(
    "Describe the task in a sentence or two and give 1–20 examples of inputs and the outputs "
    "you want. ReBase retrieves rows like your examples from many datasets and rewrites them "
    "into training pairs in exactly this format."
)

ws = ui.get_workspace()
record = ui.current_task()


def _presets() -> dict[str, Task]:
    try:
        from rebase_core.bundled import load_presets
    except ImportError:
        return {}
    try:
        return load_presets()
    except InputError:
        return {}


def _load_into_editor(task: Task | None, tag: str) -> None:
    """Put a task into the editor's widgets (a new tag gives the widgets fresh state)."""
    st.session_state["task_form_tag"] = tag
    st.session_state["task_form"] = (
        task.to_dict()
        if task
        else {
            "name": "",
            "instruction": "",
            "examples": [{"input": "", "output": ""}],
            "exclude_datasets": [],
        }
    )


if "task_form" not in st.session_state:
    _load_into_editor(
        record.task if record else None, f"{record.id}-{record.version}" if record else "new"
    )

# ----------------------------------------------------------------------------- choose a task
tasks = ws.list_tasks()
presets = _presets()
left, middle, right = st.columns([3, 3, 2], vertical_alignment="bottom")
with left:
    options = [t.id for t in tasks]
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
    if st.button("Load preset", disabled=preset is None, icon=":material/file_open:"):
        _load_into_editor(presets[preset], f"preset-{preset}")
        st.rerun()
    if st.button("New blank task", icon=":material/add:"):
        _load_into_editor(None, f"new-{len(tasks)}")
        st.rerun()

# ----------------------------------------------------------------------------- the editor
form_data = st.session_state["task_form"]
tag = st.session_state["task_form_tag"]
with st.form(f"task-form-{tag}", border=True):
    name = st.text_input("Name", value=form_data["name"], placeholder="e.g. claim-check")
    instruction = st.text_area(
        "Instruction",
        value=form_data["instruction"],
        height=100,
        placeholder="Decide whether the evidence supports, refutes, or is neutral to the claim.",
    )
    st.markdown(
        "**Examples** — add, edit or delete rows; outputs may reason step by step and "
        'end with "So the answer is X."'
    )
    examples = st.data_editor(
        pd.DataFrame(form_data["examples"], columns=["input", "output"]),
        num_rows="dynamic",
        key=f"task-examples-{tag}",
        column_config={
            "input": st.column_config.TextColumn("Input", width="large"),
            "output": st.column_config.TextColumn("Output", width="large"),
        },
        hide_index=True,
    )
    c1, c2 = st.columns(2)
    exclude = c1.text_input(
        "Never retrieve from these datasets (comma-separated names)",
        value=", ".join(form_data.get("exclude_datasets") or []),
        help="Exact dataset names, a namespace such as `bigbench`, or a glob such as "
        "`bigbench/fact_*`. The held-out test sets are always excluded.",
    )
    metric_options = ["infer from the examples", *METRICS]
    metric = c2.selectbox(
        "Evaluation metric",
        metric_options,
        index=metric_options.index(form_data.get("metric") or "infer from the examples"),
    )
    saved = st.form_submit_button("Save task", type="primary", icon=":material/save:")

if saved:
    rows = examples.fillna("").to_dict("records")
    data = {
        "name": name,
        "instruction": instruction,
        "examples": [
            r for r in rows if str(r.get("input", "")).strip() or str(r.get("output", "")).strip()
        ],
        "exclude_datasets": [x.strip() for x in exclude.split(",") if x.strip()],
        "metric": None if metric == metric_options[0] else metric,
    }
    st.session_state["task_form"] = data
    saved_record = None
    with ui.shown_errors(stop=False):  # keep the rest of the page (paste, history) visible
        saved_record = ws.save_task(task_from_dict(data, source="Task"))
    if saved_record is not None:
        ui.set_current_task(saved_record)
        st.session_state["task_form_tag"] = f"{saved_record.id}-{saved_record.version}"
        st.toast(
            f"Saved {saved_record.name} (version {saved_record.version}).", icon=":material/check:"
        )
        st.rerun()

# ------------------------------------------------------------------------ paste, import, export
with st.expander("Paste many examples at once"):
    st.caption("One example per line: `input<TAB>output`, or JSON lines with input and output.")
    pasted = st.text_area(
        "Examples to add", key="task_paste", height=140, label_visibility="collapsed"
    )
    if st.button("Add pasted examples", disabled=not pasted.strip()):
        with ui.shown_errors():
            new = parse_examples_text(pasted)
        current = [
            e for e in st.session_state["task_form"]["examples"] if e["input"] or e["output"]
        ]
        st.session_state["task_form"] = {
            **st.session_state["task_form"],
            "examples": current + [{"input": e.input, "output": e.output} for e in new],
        }
        st.session_state["task_form_tag"] = f"{tag}-p{len(current) + len(new)}"
        st.toast(f"Added {len(new)} example(s); save the task to keep them.")
        st.rerun()

imp, exp = st.columns(2)
with imp:
    upload = st.file_uploader("Import a task file (JSON)", type=["json"], key="task_import")
    if upload is not None and st.button("Import and save", icon=":material/upload:"):
        with ui.shown_errors():
            try:
                data = json.loads(upload.getvalue().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{upload.name} is not a UTF-8 JSON file ({exc}).") from exc
            task = task_from_dict(data, source=upload.name)
            imported = ws.save_task(task, note=f"imported from {upload.name}")
        ui.set_current_task(imported)
        _load_into_editor(imported.task, f"{imported.id}-{imported.version}")
        st.rerun()
with exp:
    if record is not None:
        st.download_button(
            "Export the saved task (JSON)",
            json.dumps(record.task.to_dict(), ensure_ascii=False, indent=2),
            file_name=f"{record.name}.json",
            mime="application/json",
            icon=":material/download:",
            on_click="ignore",
        )

# ----------------------------------------------------------------------------- status and history
if record is not None:
    task = record.task
    cot = is_chain_of_thought(task.examples)
    st.success(
        f"Current task: **{task.name}** (version {record.version}) — {len(task.examples)} "
        f"example(s){', chain-of-thought outputs' if cot else ''}.",
        icon=":material/task_alt:",
    )
    with st.expander("Version history"):
        for version, saved_at, note, old in ws.task_history(record.id):
            cols = st.columns([1, 3, 4, 2], vertical_alignment="center")
            cols[0].markdown(f"**v{version}**")
            cols[1].caption(saved_at)
            cols[2].caption(note or old.instruction[:80])
            if version != record.version and cols[3].button("Restore", key=f"restore-{version}"):
                restored = ws.save_task(old, note=f"restored version {version}")
                _load_into_editor(restored.task, f"{restored.id}-{restored.version}")
                st.rerun()
    st.page_link(
        "app_pages/datastore.py", label="Next: the datastore", icon=":material/arrow_forward:"
    )
