"""Transform & curate: rewrite the kept rows into training pairs, then review every pair."""

from __future__ import annotations

from typing import Any

import streamlit as st

import curate_ui
import plans_ui
import transform_ui
import ui
from rebase_core import runs
from rebase_core.errors import InputError
from rebase_core.llm import ResponseCache, cost_text
from rebase_core.transform import (
    TRANSFORM_MODES,
    TransformConfig,
    TransformRun,
    estimate_transform,
    row_key,
)

settings = ui.get_settings()
st.title("Transform & curate")
record = ui.need_task()
task = record.task
ws = ui.get_workspace()
choice = ui.llm_choice()

retrieval_runs = ws.retrieval_runs(record.id)
if not retrieval_runs:
    st.info("Retrieve rows for this task first: they are what the LLM rewrites.")
    st.page_link(
        "app_pages/retrieve.py", label="Go to the Retrieve page", icon=":material/travel_explore:"
    )
    st.stop()

template, note = transform_ui.prompt_section(ws)

# ----------------------------------------------------------------------------- source rows + config
run_labels = {
    r.id: f"#{r.id} · {r.n_selected:,} rows kept of {r.n_rows:,} · {r.created_at}"
    for r in retrieval_runs
}
retrieval_run = int(
    st.selectbox(
        "Rows from retrieval run",
        list(run_labels),
        format_func=lambda run_id: run_labels[run_id],
        key="tf_retrieval_run",
    )
    or retrieval_runs[0].id
)
kept = ws.kept_rows(retrieval_run)
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
speed = runs.call_speed(settings, choice.spec)
limit = c1.number_input(
    "Rows to transform",
    1,
    max(1, len(kept)),
    runs.default_row_count(len(kept), speed),
    help="The best-scored kept rows first. The default keeps a rewrite of every row under "
    "about 10 minutes at the LLM's measured speed (planned rows cost no call).",
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


llm = None  # shown as an error when the sidebar's LLM cannot be built (e.g. a missing key)
with ui.shown_errors(stop=False):
    llm = ui.get_llm(choice)
    usable = ws.applied_plans(record.id, task)
    estimate = _estimate(
        rows,
        tuple(row_key(r) for r in rows),
        repr(config),
        choice.spec,
        choice.base_url,
        usable,
        tuple(sorted(p.version for p in usable.values())),
    )
    cost = cost_text(estimate.cost_usd, estimate.max_cost_usd)
    paid = estimate.requests - estimate.cached
    eta = (
        f", about {ui.fmt_seconds(paid * speed.seconds)} ({speed.seconds:.1f} s a call, "
        f"from {speed.source})"
        if speed is not None
        else ", time unknown until a first run with this LLM"
    )
    st.caption(
        f"Estimate: {estimate.requests} calls ({estimate.cached} cached), "
        f"~{estimate.input_tokens:,} input tokens, {cost}{eta}."
    )

plans_ui.render(
    ws=ws,
    settings=settings,
    record=record,
    rows=rows,
    retrieval_run=retrieval_run,
    choice=choice,
    limit=int(limit),
)

transform_ui.preview_section(ws, settings, record, rows, llm, config)

# ----------------------------------------------------------------------------- run
if st.button(f"Transform {len(rows):,} rows", type="primary", icon=":material/auto_fix_high:"):
    with ui.shown_errors():
        llm_ref = runs.LLMRef(choice.spec, choice.base_url or None)
        spec = TransformRun(record.id, retrieval_run, llm_ref, config, limit=int(limit))
        st.session_state["tf_pair_run"] = runs.start_pair_run(settings, ws, spec).id
    st.rerun()

curate_ui.render(ws, settings, record, llm, config)
