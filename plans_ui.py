"""The Transform page's plans panel: per dataset, the plan that makes its rows into pairs without
an LLM call per row, the plan's output on sample rows beside them, the plan editable (form or
JSON), and the user's choice for the dataset's rows (plan, rewrite or skip).

Thin like the pages: widgets in, one library call per action (start the plan job, save a choice,
check and save a plan), render out. Every choice is saved the moment it is made; a plan edit is
saved with its button, checked on the dataset's sample rows first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import streamlit as st

import ui
from rebase_core import runs
from rebase_core.errors import InputError
from rebase_core.transform import (
    DROP,
    PLAN_USES,
    Plan,
    PlannedRow,
    PlanRun,
    check_given,
    choice_format,
    distractor_pool,
    group_rows,
    input_markers,
    row_fields,
    task_labels,
    without_options,
)
from rebase_core.transform.plan import answer_text, observed_values
from rebase_core.transform.planner import MAX_LABEL_VALUES, SAMPLE_ROWS

USE_NAMES = {
    "plan": "plan (no LLM per row)",
    "rewrite": "rewrite (LLM per row)",
    "skip": "skip the rows",
}
STATUS_SHOWN = {"valid": ":green[valid]", "invalid": ":orange[invalid]", "none": ":gray[none]"}
SHOWN_CHARS = 600  # of a source cell beside the planned pair


def render(
    *,
    ws: Any,
    settings: Any,
    record: Any,
    rows: Sequence[Any],
    retrieval_run: int,
    choice: Any,
    limit: int,
) -> None:
    """The "Plans per dataset" expander for these rows (the ones a transform would take)."""
    task = record.task
    groups = group_rows(rows)
    records = [r for r in ws.plans(record.id, task) if r.key in groups]
    n_valid = sum(r.status == "valid" for r in records)
    with st.expander(
        f"Plans per dataset · {n_valid} valid of {len(groups)} dataset(s)",
        icon=":material/schema:",
    ):
        st.caption(
            "A plan maps a dataset's fields and human labels onto the task once; its rows then "
            "become pairs without an LLM call per row, labelled by the source's own annotators. "
            "In **auto** mode a transform plans the datasets first; plan them here to look at "
            "the plans, fix them and choose per dataset what its rows get."
        )
        llm_ref = runs.LLMRef(choice.spec, choice.base_url or None)
        spec = PlanRun(record.id, int(retrieval_run), llm_ref, int(limit))
        b1, b2 = st.columns([2, 3], vertical_alignment="center")
        replan = b2.toggle(
            "Re-plan",
            key="pl_replan",
            help="Plan again every dataset whose plan you did not write or edit (your plans "
            "and choices stay).",
        )
        if b1.button(
            "Plan datasets",
            icon=":material/schema:",
            key="pl_start",
            help=f"Plan the {len(groups)} dataset(s) of the {len(rows):,} rows to transform "
            "(in the background; saved plans are reused).",
        ):
            with ui.shown_errors(stop=False):
                runs.start_run(settings, replace(spec, replan=bool(replan)))
                st.rerun()
        _plan_monitor(settings, spec)
        if not records:
            st.info(
                "No plans yet for these rows' datasets: press **Plan datasets**, or just "
                "transform in **auto** mode (it plans first)."
            )
            return
        _table(ws, record.id, records, groups)
        _dataset_view(ws, record, records, groups)


@st.fragment(run_every="2s")
def _plan_monitor(settings: Any, spec: PlanRun) -> None:
    job = runs.latest_job(settings, spec)
    if job is None:
        return
    ui.job_panel(job, label="Planning datasets")
    was = st.session_state.get("pl_job_active")
    st.session_state["pl_job_active"] = job.is_active
    if was and not job.is_active:
        st.rerun(scope="app")


def _save_use(ws: Any, task_id: int, key: tuple[str, str], widget: str) -> None:
    with ui.shown_errors(stop=False):
        ws.set_plan_use(task_id, key[0], key[1], st.session_state[widget])


def _table(
    ws: Any, task_id: int, records: Sequence[Any], groups: Mapping[tuple[str, str], list[Any]]
) -> None:
    widths = [3, 1, 1, 1, 4, 2]
    names = ["dataset · config", "rows", "status", "author", "notes", "use"]
    for col, name in zip(st.columns(widths), names, strict=True):
        col.caption(f"**{name}**")
    for r in records:
        cols = st.columns(widths, vertical_alignment="center")
        cols[0].markdown(f"`{r.dataset}` · {r.config}")
        cols[1].markdown(f"{len(groups[r.key]):,}")
        cols[2].markdown(STATUS_SHOWN.get(r.status, r.status))
        cols[3].markdown(r.plan.author if r.plan else "—")
        notes = [r.reason] if r.reason else []
        notes += list(r.warnings)
        if r.chosen == "plan" and r.status != "valid":
            notes.insert(0, ":orange[not valid, so its rows are rewritten]")
        cols[4].caption(" · ".join(notes) or "—")
        widget = f"pl_use:{r.dataset}:{r.config}"
        st.session_state[widget] = r.chosen  # the saved choice (a job may have changed it)
        cols[5].selectbox(
            "Use",
            PLAN_USES,
            key=widget,
            format_func=lambda use: USE_NAMES.get(use, use),
            label_visibility="collapsed",
            on_change=_save_use,
            args=(ws, task_id, r.key, widget),
        )
    unplanned = [f"{k[0]} · {k[1]}" for k in groups if k not in {r.key for r in records}]
    if unplanned:
        st.caption(
            f"Not planned yet: {', '.join(unplanned)} (their rows are rewritten; press **Plan "
            "datasets** to plan them)."
        )


def _dataset_view(
    ws: Any, record: Any, records: Sequence[Any], groups: Mapping[tuple[str, str], list[Any]]
) -> None:
    st.divider()
    names = {f"{r.dataset} · {r.config}": r for r in records}
    name = st.selectbox("Look at and edit the plan of", list(names), key="pl_dataset")
    rec = names[name or next(iter(names))]
    task = record.task
    group = groups[rec.key]
    flash = st.session_state.pop("pl_flash", None)
    if flash:
        (st.success if flash[0] == "valid" else st.warning)(flash[1])
    plan: Plan | None = rec.plan
    samples = group[:SAMPLE_ROWS]
    if plan is None:
        st.info(
            f"No plan for this dataset ({rec.reason or 'nothing fits'}): its rows are rewritten "
            "by the LLM. Write a plan below if its fields do fit the task."
        )
        planned: list[PlannedRow | None] = [None] * len(samples)
    else:
        check = check_given(task, plan, group).check
        assert check is not None  # check_given always checks
        for problem in check.problems:
            st.error(f"Problem: {problem}", icon=":material/block:")
        for warning in check.warnings:
            st.warning(warning, icon=":material/warning:")
        planned = list(check.samples)
        st.caption(f"Plan `{plan.version}` by {plan.author} on {len(samples)} sample row(s):")
    for source, out in zip(samples, planned, strict=False):
        with st.container(border=True):
            left, right = st.columns(2)
            for column, text in source.row.items():
                left.markdown(f"`{column}`")
                left.text(str(text)[:SHOWN_CHARS])
            if out is None:
                right.caption("No plan: the LLM rewrites this row.")
            elif out.skipped:
                right.caption(f":orange[No pair]: {out.skipped}")
            else:
                right.markdown("**Input**")
                right.text(out.input)
                shown = out.source_value and out.source_value != out.output
                right.markdown("**Output**" + (f" (source: `{out.source_value}`)" if shown else ""))
                right.text(out.output)
    fields = list(dict.fromkeys(f for r in samples for f in row_fields(r.row, input_markers(task))))
    if not fields:
        st.caption("The rows have no text fields to plan with.")
        return
    suffix = f"{rec.dataset}:{rec.config}:{plan.version if plan else 'new'}"
    form, raw = st.tabs(["Edit", "JSON"])
    with form:
        new = _plan_form(task, rec, plan, group, fields, suffix)
        if st.button("Save plan", type="primary", key=f"pl_save:{suffix}", icon=":material/save:"):
            with ui.shown_errors(stop=False):
                _save(ws, record, group, new())
    with raw:
        text = st.text_area(
            "The plan as JSON",
            json.dumps(_editable(rec, plan, fields), indent=2, ensure_ascii=False),
            height=300,
            key=f"pl_json:{suffix}",
        )
        if st.button("Save the JSON", key=f"pl_save_json:{suffix}", icon=":material/save:"):
            with ui.shown_errors(stop=False):
                _save(ws, record, group, _from_json(text, rec.key))


def _plan_form(
    task: Any,
    rec: Any,
    plan: Plan | None,
    group: Sequence[Any],
    fields: list[str],
    suffix: str,
) -> Any:
    """The form's widgets; returns a function that builds the user's plan (it may raise)."""
    fmt = choice_format(task)
    markers = input_markers(without_options(task))
    default = (
        plan.input_template
        if plan
        else "\n".join(f"{m} {{{fields[0]}}}" for m in markers) or f"{{{fields[0]}}}"
    )
    template = st.text_area(
        "Input template",
        default,
        key=f"pl_tpl:{suffix}",
        help="The task's input, with {field} slots filled from each row.",
    )
    st.caption("Fields of the rows: " + ", ".join(f"`{{{f}}}`" for f in fields))
    out_index = fields.index(plan.output_field) if plan and plan.output_field in fields else 0
    output_field = st.selectbox(
        "Answer field (the one each pair's answer comes from)",
        fields,
        index=out_index,
        key=f"pl_out:{suffix}",
    )
    labels = task_labels(task)
    same_field = plan is not None and output_field == plan.output_field
    n_options = 0
    distractors: tuple[str, ...] = ()
    if fmt is not None:
        n_options = int(
            st.number_input(
                "Options per input (made from each row's answer; 0: the rows list their own)",
                min_value=0,
                max_value=26,
                value=plan.choices if plan else fmt.count,
                key=f"pl_choices:{suffix}",
            )
        )
        distractors = (
            plan.distractors
            if plan is not None and same_field and plan.distractors
            else distractor_pool(
                [answer_text(row_fields(r.row, markers).get(output_field, "")) for r in group]
            )
        )
        st.caption(
            "Each input lists the row's answer among near misses (a day, a month, a year off; "
            f"a number off by one) and other answers of this dataset ({len(distractors)} kept); "
            "the pair's answer is its letter."
        )
    old_map = dict(plan.label_map) if plan and same_field else {}
    label_map: dict[str, str] = {} if labels else old_map
    if labels:
        counts = observed_values((r.row for r in group), output_field, task)
        values = [v for v, _ in counts.most_common() if v] + [v for v in old_map if v not in counts]
        if len(values) > MAX_LABEL_VALUES:
            st.warning(
                f"`{output_field}` has {len(values)} different values in these rows: a label "
                "task needs a field of labels."
            )
        else:
            st.markdown("**Label map** — each source value becomes a task label, or is dropped:")
            choices = [*labels.values(), DROP]
            cols = st.columns(3)
            for i, value in enumerate(values):
                current = old_map.get(value) or labels.get(value) or DROP
                label_map[value] = cols[i % 3].selectbox(
                    f"`{value}` ({counts.get(value, 0)} rows) →",
                    choices,
                    index=choices.index(current) if current in choices else len(choices) - 1,
                    key=f"pl_map:{suffix}:{output_field}:{value}",
                )

    def build() -> Plan:
        return Plan(
            dataset=rec.dataset,
            config=rec.config,
            input_template=template,
            output_field=output_field or fields[0],
            label_map=label_map,
            row_filter=dict(plan.row_filter) if plan else {},
            note=plan.note if plan else "",
            author="user",
            choices=n_options,
            distractors=distractors if n_options else (),
        )

    return build


def _editable(rec: Any, plan: Plan | None, fields: list[str]) -> dict[str, Any]:
    """What the JSON editor shows: the plan without its computed parts (version, author)."""
    if plan is None:
        return {
            "dataset": rec.dataset,
            "config": rec.config,
            "input_template": f"{{{fields[0]}}}",
            "output_field": fields[-1],
            "label_map": {},
        }
    data = plan.to_json_dict()
    data.pop("version", None)
    data.pop("author", None)
    return data


def _from_json(text: str, key: tuple[str, str]) -> Plan:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(
            f"The plan's JSON is not valid JSON ({exc}); fix it, or edit the plan in the form."
        ) from exc
    plan = Plan.from_json_dict(data, where="The plan's JSON")
    if plan.key != key:
        raise InputError(
            f"The plan's JSON names {plan.dataset}/{plan.config}, but this is the plan of "
            f"{key[0]}/{key[1]}; keep its 'dataset' and 'config'."
        )
    return replace(plan, author="user")


def _save(ws: Any, record: Any, group: Sequence[Any], plan: Plan) -> None:
    """Check the user's plan on the dataset's sample rows and save it (valid or not)."""
    outcome = check_given(record.task, plan, group)
    ws.save_plan(record.id, record.task, outcome)
    if outcome.status == "valid":
        message = f"Saved your plan for {plan.dataset}/{plan.config}: it checks out."
    else:
        message = (
            f"Saved your plan for {plan.dataset}/{plan.config}, but it is not valid, so its "
            f"rows are rewritten until it is fixed: {outcome.reason}"
        )
    st.session_state["pl_flash"] = (outcome.status, message)
    st.rerun()


METHOD_BADGES = {"plan": "blue", "rationale": "violet", "rewrite": "gray"}


def made_by(pair: Any) -> str:
    """A badge saying how a pair was made: by a plan (with its version), a rationale for the
    row's known answer, or the LLM's rewrite of the row; its origin for the other pairs."""
    method = pair.method or pair.origin
    version = pair.source.plan if pair.source is not None else ""
    text = f"{method} {version}".strip()
    return f":{METHOD_BADGES.get(pair.method, 'gray')}-badge[{text}]"
