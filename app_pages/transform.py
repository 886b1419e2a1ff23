"""Transform & curate: rewrite the kept rows into training pairs, then review every pair."""

from __future__ import annotations

import difflib
import html
from dataclasses import replace
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

import plans_ui
import ui
from rebase_core import jobs
from rebase_core.errors import InputError
from rebase_core.llm import ResponseCache
from rebase_core.transform import (
    DEFAULT_TEMPLATE,
    TRANSFORM_MODES,
    TransformConfig,
    balance_by_label,
    estimate_transform,
    prompt_version,
    quality_warnings,
    regenerate,
    row_key,
    transform,
)
from rebase_core.types import PAIR_STATUSES

settings = ui.get_settings()
st.title("Transform & curate")
record = ui.need_task()
task = record.task
ws = ui.get_workspace()
choice = ui.llm_choice()

runs = ws.retrieval_runs(record.id)
if not runs:
    st.info("Retrieve rows for this task first: they are what the LLM rewrites.")
    st.page_link(
        "app_pages/retrieve.py", label="Go to the Retrieve page", icon=":material/travel_explore:"
    )
    st.stop()

# ----------------------------------------------------------------------------- prompt
saved_prompts = ws.prompts()
if "tf_template" not in st.session_state:
    current = ws.get_value("transform_template")
    st.session_state["tf_template"] = current or DEFAULT_TEMPLATE
with st.expander(f"Prompt · version `{prompt_version(st.session_state['tf_template'])}`"):
    st.caption(
        "Placeholders: `{instruction}`, `{examples}`, `{row}` (required), `{cot_note}` (the "
        "step-by-step instruction when the examples reason) and `{task_note}` (your extra "
        "instruction below). Every pair records the version of the prompt that made it."
    )
    template = st.text_area("Template", key="tf_template", height=320)
    note = st.text_input(
        "Extra instruction for this task (optional)",
        key="tf_note",
        placeholder="e.g. Keep the premise in English; write a full sentence.",
    )
    p1, p2, p3 = st.columns(3)
    if p1.button("Save this version", icon=":material/save:"):
        with ui.shown_errors(stop=False):
            TransformConfig(template=template)
            ws.save_prompt(prompt_version(template), template)
            ws.set_value("transform_template", template)
            st.toast(f"Saved prompt {prompt_version(template)}.")
    if p2.button(
        "Reset to the default",
        on_click=lambda: st.session_state.update(tf_template=DEFAULT_TEMPLATE),
    ):
        pass
    if saved_prompts:
        versions = {v: t for v, t, _ in saved_prompts}
        chosen = p3.selectbox("Saved versions", list(versions), index=None, key="tf_version")
        if chosen and st.button(f"Load {chosen}"):
            st.session_state["tf_template"] = versions[chosen]
            st.rerun()

# ----------------------------------------------------------------------------- source rows + config
run_labels = {
    r.id: f"#{r.id} · {r.n_selected:,} rows kept of {r.n_rows:,} · {r.created_at}" for r in runs
}
retrieval_run = st.selectbox(
    "Rows from retrieval run", list(run_labels), format_func=run_labels.get, key="tf_retrieval_run"
)
kept = [r for _, r, _ in ws.retrieved_rows(retrieval_run, selected_only=True)]
transform_mode = (
    st.segmented_control(
        "Mode",
        TRANSFORM_MODES,
        default="auto",
        key="tf_plan_mode",
        help="**auto**: a plan per dataset where one is valid — no LLM call per row, the "
        "source's own human labels — and the LLM's rewrite of each row elsewhere. **plan**: "
        "planned rows only. **rewrite**: the LLM rewrites every row (no plans).",
    )
    or "auto"
)
c1, c2, c3, c4 = st.columns(4)
limit = c1.number_input(
    "Rows to transform",
    1,
    max(1, len(kept)),
    min(len(kept), 200) or 1,
    help="The best-scored kept rows first.",
)
llm_filter = c2.toggle("LLM yes/no filter (a second call per pair)", key="tf_filter")
dedup = c3.toggle("Drop duplicate inputs", value=True, key="tf_dedup")
min_grounding = c4.number_input(
    "Words from the row, at least",
    0.0,
    1.0,
    0.2,
    0.05,
    key="tf_grounding",
    help="A pair whose input shares a smaller share of its words with the source row was not "
    "built from the row (small LLMs often invent generic text instead): it is asked for once "
    "more, then set aside as 'ungrounded'. 0 turns the check off, e.g. for translation tasks.",
)
try:
    config = TransformConfig(
        template=template,
        temperature=choice.temperature,
        max_tokens=choice.max_tokens,
        llm_filter=llm_filter,
        dedup=dedup,
        min_grounding=float(min_grounding),
        concurrency=choice.concurrency,
        task_note=note,
        mode=transform_mode,
    )
except InputError as exc:
    st.error(str(exc))
    st.stop()
rows = kept[: int(limit)]
st.caption(
    f"LLM: `{choice.spec}` (change it in the sidebar) · temperature {choice.temperature} · "
    f"max {choice.max_tokens} tokens · {choice.concurrency} in parallel"
)
if not rows:
    st.warning("No row of this run is kept; keep some on the Retrieve page.")
    st.stop()


# Cost before the run (cached calls are free).
@st.cache_data(ttl=20, show_spinner=False, max_entries=8)
def _estimate(
    _rows: list,
    rows_key: tuple,
    config_key: str,
    spec: str,
    base_url: str,
    _plans: dict,
    plans_key: tuple,
) -> Any:
    """Cached for a few seconds: every curation click reruns this page."""
    return estimate_transform(
        task,
        _rows,
        ui.get_llm(choice),
        config,
        cache=ResponseCache(settings.llm_cache_db),
        plans=_plans,
    )


with ui.shown_errors(stop=False):
    llm = ui.get_llm(choice)
    usable = plans_ui.usable_plans(ws, record.id, task)
    estimate = _estimate(
        rows,
        tuple(row_key(r) for r in rows),
        repr(config),
        choice.spec,
        choice.base_url,
        usable,
        tuple(sorted(p.version for p in usable.values())),
    )
    cost = (
        "free (local model)"
        if estimate.cost_usd == 0
        else "unknown price"
        if estimate.cost_usd is None
        else f"about ${estimate.cost_usd:.2f} (at most ${estimate.max_cost_usd:.2f})"
    )
    st.caption(
        f"Estimate: {estimate.requests} calls ({estimate.cached} cached), "
        f"~{estimate.input_tokens:,} input tokens, {cost}."
    )

plans_ui.render(
    ws=ws,
    settings=settings,
    record=record,
    rows=rows,
    retrieval_run=int(retrieval_run),
    choice=choice,
    limit=int(limit),
)

# ----------------------------------------------------------------------------- preview
with st.expander("Preview on a few rows (nothing is saved)"):
    n_preview = st.slider("Rows", 1, 5, 3, key="tf_preview_n")
    if st.button("Run the preview", icon=":material/visibility:"):
        bar = st.progress(0.0, text="Asking the LLM…")
        with ui.shown_errors(stop=False):
            preview = transform(
                task,
                rows[:n_preview],
                llm,
                config,
                cache=ResponseCache(settings.llm_cache_db),
                on_progress=ui.progress_for(bar),
                plans=plans_ui.usable_plans(ws, record.id, task),
            )
            st.session_state["tf_preview"] = preview
        bar.empty()
    preview = st.session_state.get("tf_preview")
    if preview is not None:
        by_key = {row_key(r): r for r in rows}
        for pair in preview.pairs:
            src = by_key.get(str(pair.extra.get("key")))
            a, b = st.columns(2)
            a.json(dict(src.row) if src else {}, expanded=False)
            b.markdown(
                f"{plans_ui.made_by(pair)}\n\n**Input**\n\n{pair.input}\n\n"
                f"**Output**\n\n{pair.output}"
            )
            st.divider()
        for key, failure in preview.failures:
            st.warning(f"{key.replace(chr(31), ' / ')}: {failure.reason} — {failure.detail}")

# ----------------------------------------------------------------------------- run
pair_runs = ws.pair_runs(record.id)


def _start(run_id: int) -> None:
    params = {
        "pair_run": run_id,
        "retrieval_run": int(retrieval_run),
        "task_id": record.id,
        "llm": choice.spec,
        "base_url": choice.base_url or None,
        "limit": int(limit),
        "config": {
            "template": template,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "llm_filter": llm_filter,
            "dedup": dedup,
            "min_grounding": config.min_grounding,
            "concurrency": config.concurrency,
            "task_note": note,
            "mode": config.mode,
        },
    }
    job = jobs.start_job(settings, "transform", params, key=f"transform:{run_id}")
    ws.set_pair_run_job(run_id, job.id)


b1, b2 = st.columns([2, 3])
if b1.button(f"Transform {len(rows):,} rows", type="primary", icon=":material/auto_fix_high:"):
    with ui.shown_errors():
        run_id = ws.create_pair_run(
            record.id,
            "transform",
            llm=choice.spec,
            prompt_version=prompt_version(template),
            params={"retrieval_run": int(retrieval_run), "limit": int(limit)},
        )
        _start(run_id)
    st.session_state["tf_pair_run"] = run_id
    st.rerun()

if not pair_runs:
    st.info("No pairs yet: preview the prompt, then press **Transform**.")
    st.stop()

# ----------------------------------------------------------------------------- curation
kind_names = {
    "transform": "ReBase",
    "direct": "direct synthesis",
    "self-guide": "SELF-GUIDE",
    "manual": "manual",
}
labels = {
    r.id: f"#{r.id} · {kind_names.get(r.kind, r.kind)} · {r.llm} · {r.created_at}"
    for r in pair_runs
}
if st.session_state.get("tf_pair_run") not in labels:
    st.session_state["tf_pair_run"] = pair_runs[0].id
pair_run_id = st.selectbox("Pairs of run", list(labels), format_func=labels.get, key="tf_pair_run")
pair_run = ws.get_pair_run(pair_run_id)


@st.fragment(run_every="2s")
def job_monitor() -> None:
    job_list = jobs.list_jobs(settings, key=f"transform:{pair_run_id}") or jobs.list_jobs(
        settings, key=f"synthesize:{pair_run_id}"
    )
    job = next(iter(job_list), None)
    if job is None:
        return
    ui.job_panel(job, label="Transforming rows" if pair_run.kind == "transform" else "Generating")
    if job.state == "done":
        for warning in job.result.get("warnings", []):
            st.warning(warning, icon=":material/warning:")
        cost = job.result.get("cost_usd")
        if cost:
            st.caption(
                f"Cost of this run: ${cost:.4f} ({job.result.get('input_tokens', 0):,} in, "
                f"{job.result.get('output_tokens', 0):,} out)."
            )
    resumable = pair_run.kind == "transform" and job.state in ("failed", "cancelled")
    if resumable and st.button(
        "Resume the run (cached calls are free)", icon=":material/play_arrow:"
    ):
        _start(pair_run_id)
        st.rerun(scope="app")
    was = st.session_state.get("tf_job_active")
    st.session_state["tf_job_active"] = job.is_active
    if job.is_active or was:
        counts = ws.status_counts(run_id=pair_run_id)
        st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()))
    if was and not job.is_active:
        st.rerun(scope="app")


job_monitor()

counts = ws.status_counts(run_id=pair_run_id)
failures = ws.failures(pair_run_id)
queues = [*PAIR_STATUSES, "failed"]
n_of = {**counts, "failed": len(failures)}
queue = (
    st.segmented_control(
        "Queue",
        queues,
        default="pending",
        key="tf_queue",
        bind="query-params",
        format_func=lambda q: f"{q} ({n_of.get(q, 0)})",
    )
    or "pending"
)
done = counts["accepted"] + counts["edited"] + counts["rejected"]
total = sum(counts.values())
st.progress(done / total if total else 0.0, text=f"Reviewed {done:,} of {total:,} pairs")

if queue == "failed":
    if not failures:
        st.success("No failed rows in this run.")
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "reason": [f.reason for _, f in failures],
                    "detail": [f.detail for _, f in failures],
                    "dataset": [f.source.dataset if f.source else "" for _, f in failures],
                    "row": [f.source.row_id if f.source else "" for _, f in failures],
                }
            ),
            hide_index=True,
        )
        st.caption("Failed rows are tried again when the run is resumed or started again.")
    st.stop()

pairs = ws.pairs(run_id=pair_run_id, statuses=[queue])
focus_ids = st.session_state.get("curate_ids")
if focus_ids:
    pairs = [p for p in pairs if p.id in set(focus_ids)]
    st.info(f"Showing the {len(pairs)} pair(s) selected on the Compare page.")
    if st.button("Show all pairs"):
        st.session_state.pop("curate_ids")
        st.rerun()
f1, f2 = st.columns([3, 2])
search = f1.text_input("Search pairs", key="tf_search", placeholder="words in the input or output")
datasets = sorted({p.source.dataset for p in pairs if p.source})
ds_filter = f2.multiselect("Source datasets", datasets, key="tf_ds", placeholder="All")
if search.strip():
    words = search.lower().split()
    pairs = [p for p in pairs if all(w in (p.input + " " + p.output).lower() for w in words)]
if ds_filter:
    pairs = [p for p in pairs if p.source and p.source.dataset in ds_filter]

mode = (
    st.segmented_control(
        "View", ["focus", "table"], default="focus", key="tf_mode", bind="query-params"
    )
    or "focus"
)


def _forget_bulk() -> None:
    st.session_state.pop("tf_bulk", None)


@st.dialog("Change many pairs", on_dismiss=_forget_bulk)
def confirm_bulk(ids: list[str], status: str) -> None:
    st.write(f"Mark all **{len(ids):,}** pairs of the current filter as **{status}**?")
    st.caption("You can undo this with one click.")
    if st.button(f"Mark {len(ids):,} as {status}", type="primary"):
        ws.set_status(ids, status)
        st.session_state["tf_toast"] = f"{len(ids):,} pair(s) marked {status}."
        _forget_bulk()
        st.rerun()


u1, u2, u3, u4 = st.columns(4)
ids = [p.id for p in pairs]
if u1.button(f"Accept all {len(ids):,}", disabled=not ids or queue == "accepted"):
    st.session_state["tf_bulk"] = (ids, "accepted")
if u2.button(f"Reject all {len(ids):,}", disabled=not ids or queue == "rejected"):
    st.session_state["tf_bulk"] = (ids, "rejected")
if u3.button(f"Back to pending ({len(ids):,})", disabled=not ids or queue == "pending"):
    st.session_state["tf_bulk"] = (ids, "pending")
last = ws.last_action(record.id)
if u4.button(
    f"Undo {last[1]} ({last[2]})" if last else "Undo",
    disabled=last is None,
    shortcut="U",
    icon=":material/undo:",
):
    undone = ws.undo(record.id)
    if undone:
        st.session_state["tf_toast"] = f"Undid {undone[0]} of {undone[1]} pair(s)."
    st.rerun()
if "tf_bulk" in st.session_state:
    confirm_bulk(*st.session_state["tf_bulk"])
if "tf_toast" in st.session_state:
    st.toast(st.session_state.pop("tf_toast"))

if not pairs:
    st.caption("No pair in this queue." + (" Try another queue." if total else ""))
    st.stop()


def _diff_html(before: str, after: str) -> str:
    """Word-level diff: deletions struck through in red, insertions in green."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
        if op in ("delete", "replace"):
            out.append(f"<del style='color:#b42318'>{html.escape(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins style='color:#1a7f37'>{html.escape(' '.join(b[j1:j2]))}</ins>")
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
    return " ".join(out)


def _source_row(pair):
    retrieval = pair_run.params.get("retrieval_run")
    if pair.source is None or retrieval is None:
        return None
    return ws.retrieved_row(
        int(retrieval), pair.source.dataset, pair.source.config, pair.source.row_id
    )


if mode == "table":
    table = pd.DataFrame(
        {
            "status": [p.status for p in pairs],
            "input": [p.input for p in pairs],
            "output": [p.output for p in pairs],
            "made by": [p.method or p.origin for p in pairs],
            "source": [p.source.dataset if p.source else p.origin for p in pairs],
            "score": [p.source.score if p.source else None for p in pairs],
        }
    )
    st.session_state["tf_table_ids"] = ids

    def _table_changed() -> None:
        edits = st.session_state["tf_table"].get("edited_rows", {})
        for index, change in edits.items():
            pair_id = st.session_state["tf_table_ids"][int(index)]
            if "input" in change or "output" in change:
                ws.edit_pair(pair_id, input=change.get("input"), output=change.get("output"))
            if "status" in change:
                ws.set_status([pair_id], change["status"])

    st.data_editor(
        table,
        key="tf_table",
        hide_index=True,
        on_change=_table_changed,
        disabled=["made by", "source", "score"],
        height=480,
        column_config={
            "status": st.column_config.SelectboxColumn(options=list(PAIR_STATUSES)),
            "input": st.column_config.TextColumn(width="large"),
            "output": st.column_config.TextColumn(width="medium"),
            "score": st.column_config.NumberColumn(format="%.3f"),
        },
    )
else:
    if st.session_state.get("tf_index", 0) >= len(pairs):
        st.session_state["tf_index"] = len(pairs) - 1
    index = st.session_state.setdefault("tf_index", 0)
    pair = pairs[index]
    nav1, nav2, nav3 = st.columns([1, 4, 1], vertical_alignment="center")
    if nav1.button("Previous", shortcut="P", disabled=index == 0, icon=":material/chevron_left:"):
        st.session_state["tf_index"] = index - 1
        st.rerun()
    nav2.markdown(
        f"<div style='text-align:center'>Pair {index + 1} of {len(pairs)} · "
        f"<code>{pair.id}</code></div>",
        unsafe_allow_html=True,
    )
    if nav3.button(
        "Next", shortcut="N", disabled=index + 1 >= len(pairs), icon=":material/chevron_right:"
    ):
        st.session_state["tf_index"] = index + 1
        st.rerun()

    left, right = st.columns(2)
    with left:
        st.markdown("**Source row**")
        source = _source_row(pair)
        if source is not None:
            for column, text in source.row.items():
                mark = (
                    " ← best input match"
                    if column == source.input_column
                    else (" ← best output match" if column == source.output_column else "")
                )
                st.markdown(f"`{column}`{mark}")
                st.text(text[:1500])
            st.caption(
                f"{source.dataset} · {source.config} · row {source.row_id} · score "
                f"{source.score:.3f}"
            )
        else:
            st.caption(
                f"No source row: this pair was made by {kind_names.get(pair_run.kind)} "
                "from the instruction and examples alone."
            )
    with right:
        st.markdown(
            f"**Pair** · status `{pair.status}` · {plans_ui.made_by(pair)} · {pair.llm} · "
            f"prompt `{pair.prompt_version or '-'}`"
        )
        # Typed text is kept as a draft in the workspace at once (a refresh loses nothing);
        # Accept / Save edit turn it into an edit, Reject and Regenerate drop it.
        draft_key = f"pair_draft:{pair.id}"
        draft = ws.get_value(draft_key) or {}

        def _keep_draft() -> None:
            ws.set_value(
                draft_key,
                {
                    "input": st.session_state[f"tf_in_{pair.id}"],
                    "output": st.session_state[f"tf_out_{pair.id}"],
                },
            )

        new_input = st.text_area(
            "Input",
            draft.get("input", pair.input),
            key=f"tf_in_{pair.id}",
            height=180,
            on_change=_keep_draft,
        )
        new_output = st.text_area(
            "Output",
            draft.get("output", pair.output),
            key=f"tf_out_{pair.id}",
            height=140,
            on_change=_keep_draft,
        )
        if draft and (draft.get("input"), draft.get("output")) != (pair.input, pair.output):
            st.caption(":orange[Unsaved edit kept from before] — Accept or Save edit to keep it.")
        original = ws.original(pair.id)
        if (original.input, original.output) != (pair.input, pair.output):
            st.markdown("Changes from the generated pair:")
            st.html(
                f"<div style='font-size:0.9em'><b>input:</b> "
                f"{_diff_html(original.input, pair.input)}<br><b>output:</b> "
                f"{_diff_html(original.output, pair.output)}</div>"
            )

    def _advance() -> None:
        st.session_state["tf_index"] = min(index, max(0, len(pairs) - 2))

    a1, a2, a3, a4 = st.columns(4)
    edited = (new_input, new_output) != (pair.input, pair.output)
    if a1.button("Accept", type="primary", shortcut="A", icon=":material/check:"):
        with ui.shown_errors():
            if edited:
                ws.edit_pair(pair.id, input=new_input, output=new_output)
            else:
                ws.set_status([pair.id], "accepted")
            ws.delete_value(draft_key)
        _advance()
        st.rerun()
    if a2.button("Reject", shortcut="X", icon=":material/close:"):
        ws.set_status([pair.id], "rejected")
        ws.delete_value(draft_key)
        _advance()
        st.rerun()
    if a3.button("Save edit", shortcut="Ctrl+Enter", disabled=not edited, icon=":material/save:"):
        with ui.shown_errors():
            ws.edit_pair(pair.id, input=new_input, output=new_output)
            ws.delete_value(draft_key)
        st.rerun()
    source = _source_row(pair)
    if a4.button(
        "Regenerate",
        shortcut="G",
        disabled=source is None,
        icon=":material/refresh:",
        help="A new sample for the same row",
    ):
        with st.spinner("Asking the LLM for a new pair…"), ui.shown_errors():
            sample = ws.count_actions(pair.id, "regenerate") + 2
            inp, out = regenerate(
                task,
                source,
                llm,
                replace(config, llm_filter=False),
                sample=sample,
                cache=ResponseCache(settings.llm_cache_db),
            )
            ws.replace_pair_text(pair.id, inp, out, "regenerate")
            ws.delete_value(draft_key)
            for key in (f"tf_in_{pair.id}", f"tf_out_{pair.id}"):
                st.session_state.pop(key, None)
        st.rerun()
    st.caption(
        "Shortcuts: A accept · X reject · Ctrl+Enter save · G regenerate · N/P next/"
        "previous · U undo"
    )
    with st.expander("History of this pair"):
        events = ws.history(pair.id)
        if not events:
            st.caption("Not changed since it was generated.")
        for event in events:
            before = event.before
            after = event.after
            st.markdown(
                f"`{event.at}` **{event.action}**"
                + (" (undone)" if event.undone and event.action != "undo" else "")
            )
            if before and after and (before.input, before.output) != (after.input, after.output):
                st.html(
                    f"<div style='font-size:0.85em'>{_diff_html(before.output, after.output)}</div>"
                )
            elif before and after and before.status != after.status:
                st.caption(f"{before.status} → {after.status}")

# ----------------------------------------------------------------------------- balance
live = [p for p in ws.pairs(run_id=pair_run_id) if p.status != "rejected"]
warnings, label_counts = quality_warnings(task, live)
if label_counts or warnings:
    with st.expander("Label balance and warnings", expanded=bool(warnings)):
        for warning in warnings:
            st.warning(warning, icon=":material/warning:")
        if label_counts:
            top = dict(list(label_counts.items())[:20])
            st.plotly_chart(
                px.bar(
                    x=list(top),
                    y=list(top.values()),
                    labels={"x": "label", "y": "pairs"},
                    height=260,
                )
            )
            rarest = min(label_counts.values())
            cap = int(
                st.number_input(
                    "Keep at most this many pairs per label",
                    1,
                    max(label_counts.values()),
                    rarest,
                    key="tf_cap",
                )
            )
            kept_ids = {p.id for p in balance_by_label(task, live, per_label=cap)}
            excess = [p.id for p in live if p.id not in kept_ids]
            if st.button(
                f"Reject the {len(excess)} pair(s) above {cap} per label",
                disabled=not excess,
                help="The best-scored pairs of each label stay; one click undoes it.",
            ):
                ws.set_status(excess, "rejected")
                st.session_state["tf_toast"] = f"Rejected {len(excess)} pair(s) to balance labels."
                st.rerun()

st.page_link(
    "app_pages/compare.py",
    label="Next: compare with synthetic baselines",
    icon=":material/arrow_forward:",
)
