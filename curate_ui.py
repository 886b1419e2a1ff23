"""The curation half of the Transform & curate page: pick a pair run, follow its job, review its
pairs (focus or table view), bulk actions with undo, and the label balance. Every click is one
`rebase_core.curation` call; this module only draws."""

from __future__ import annotations

import difflib
import html
from typing import TYPE_CHECKING

import pandas as pd
import plotly.express as px
import streamlit as st

import plans_ui
import ui
from rebase_core import curation, runs
from rebase_core.llm import ResponseCache
from rebase_core.transform import quality_warnings
from rebase_core.types import PAIR_STATUSES, Pair, ScoredRow

if TYPE_CHECKING:
    from rebase_core.llm import LLM
    from rebase_core.settings import Settings
    from rebase_core.transform import TransformConfig
    from rebase_core.workspace import PairRun, RunFailure, TaskRecord, Workspace

KIND_NAMES = {
    "transform": "ReBase",
    "direct": "direct synthesis",
    "self-guide": "SELF-GUIDE",
    "manual": "manual",
}


def render(
    ws: Workspace,
    settings: Settings,
    record: TaskRecord,
    llm: LLM | None,
    config: TransformConfig,
) -> None:
    """The run picker, its job's progress, the review queue and the label balance (`llm`, for
    regenerating a pair: None when the sidebar's LLM cannot be built)."""
    pair_runs = ws.pair_runs(record.id)
    if not pair_runs:
        st.info("No pairs yet: preview the prompt, then press **Transform**.")
        return
    labels = {
        r.id: f"#{r.id} · {KIND_NAMES.get(r.kind, r.kind)} · {r.llm} · {r.created_at}"
        for r in pair_runs
    }
    if st.session_state.get("tf_pair_run") not in labels:  # a reload: the run curated last
        saved = curation.curated_run(ws, record.id)
        st.session_state["tf_pair_run"] = saved if saved in labels else pair_runs[0].id
    run_id = int(
        st.selectbox(
            "Pairs of run", list(labels), format_func=lambda i: labels[i], key="tf_pair_run"
        )
        or pair_runs[0].id
    )
    if run_id != curation.curated_run(ws, record.id):
        curation.set_curated_run(ws, record.id, run_id)
    run = ws.get_pair_run(run_id)
    _job_monitor(ws, settings, run)
    _queue(ws, settings, record, run, llm, config)
    _balance(ws, record, run)
    st.page_link(
        "app_pages/compare.py",
        label="Next: compare with synthetic baselines",
        icon=":material/arrow_forward:",
    )


@st.fragment(run_every="2s")
def _job_monitor(ws: Workspace, settings: Settings, run: PairRun) -> None:
    job = runs.pair_run_job(settings, run)
    if job is None:
        return
    ui.job_panel(job, label="Transforming rows" if run.kind == "transform" else "Generating")
    if job.state == "done":
        for warning in job.result.get("warnings", []):
            st.warning(warning, icon=":material/warning:")
        if cost := job.result.get("cost_usd"):
            st.caption(
                f"Cost of this run: ${cost:.4f} ({job.result.get('input_tokens', 0):,} in, "
                f"{job.result.get('output_tokens', 0):,} out)."
            )
    if job.state in ("failed", "cancelled") and st.button(
        "Resume the run (cached calls are free)", icon=":material/play_arrow:"
    ):
        with ui.shown_errors():
            runs.resume_pair_run(settings, ws, run)
        st.rerun(scope="app")
    was = st.session_state.get("tf_job_active")
    st.session_state["tf_job_active"] = job.is_active
    if job.is_active or was:
        counts = ws.status_counts(run_id=run.id)
        st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()))
    if was and not job.is_active:
        st.rerun(scope="app")


def _queue(
    ws: Workspace,
    settings: Settings,
    record: TaskRecord,
    run: PairRun,
    llm: LLM | None,
    config: TransformConfig,
) -> None:
    counts = ws.status_counts(run_id=run.id)
    failures = ws.failures(run.id)
    n_of = {**counts, "failed": len(failures)}
    queue = (
        st.segmented_control(
            "Queue",
            [*PAIR_STATUSES, "failed"],
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
        _failures(failures)
        return
    pairs = ws.pairs(run_id=run.id, statuses=[queue])
    if focus := st.session_state.get("curate_ids"):
        st.info(f"Showing the pairs selected on the Compare page ({len(focus)} selected).")
        if st.button("Show all pairs", icon=":material/filter_alt_off:"):
            st.session_state.pop("curate_ids")
            st.rerun()
    f1, f2 = st.columns([3, 2])
    search = f1.text_input(
        "Search pairs", key="tf_search", placeholder="words in the input or output"
    )
    datasets = f2.multiselect(
        "Source datasets", curation.source_datasets(pairs), key="tf_ds", placeholder="All"
    )
    view = curation.PairFilter(search, tuple(datasets), frozenset(focus) if focus else None)
    pairs = view.apply(pairs)
    mode = (
        st.segmented_control(
            "View", ["focus", "table"], default="focus", key="tf_mode", bind="query-params"
        )
        or "focus"
    )
    _bulk(ws, record, run, queue, [p.id for p in pairs])
    if not pairs:
        st.caption("No pair in this queue." + (" Try another queue." if total else ""))
        return
    if mode == "table":
        _table(ws, pairs)
    else:
        _focus(ws, settings, record, run, pairs, llm, config)


def _failures(failures: list[RunFailure]) -> None:
    if not failures:
        st.success("No failed rows in this run.")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "reason": [f.failure.reason for f in failures],
                "detail": [f.failure.detail for f in failures],
                "dataset": [f.failure.source.dataset if f.failure.source else "" for f in failures],
                "row": [f.failure.source.row_id if f.failure.source else "" for f in failures],
            }
        ),
        hide_index=True,
    )
    st.caption("Failed rows are tried again when the run is resumed or started again.")


def _forget_bulk() -> None:
    st.session_state.pop("tf_bulk", None)


@st.dialog("Change many pairs", on_dismiss=_forget_bulk)
def _confirm_bulk(ws: Workspace, ids: list[str], status: str) -> None:
    st.write(f"Mark all **{len(ids):,}** pairs of the current filter as **{status}**?")
    st.caption("You can undo this with one click.")
    if st.button(f"Mark {len(ids):,} as {status}", type="primary"):
        curation.set_many(ws, ids, status)
        st.session_state["tf_toast"] = f"{len(ids):,} pair(s) marked {status}."
        _forget_bulk()
        st.rerun()


def _bulk(ws: Workspace, record: TaskRecord, run: PairRun, queue: str, ids: list[str]) -> None:
    u1, u2, u3, u4 = st.columns(4)
    if u1.button(f"Accept all {len(ids):,}", disabled=not ids or queue == "accepted"):
        st.session_state["tf_bulk"] = (ids, "accepted")
    if u2.button(f"Reject all {len(ids):,}", disabled=not ids or queue == "rejected"):
        st.session_state["tf_bulk"] = (ids, "rejected")
    if u3.button(f"Back to pending ({len(ids):,})", disabled=not ids or queue == "pending"):
        st.session_state["tf_bulk"] = (ids, "pending")
    last = ws.last_action(record.id, run.id)
    if u4.button(
        f"Undo {last.action} ({last.pairs})" if last else "Undo",
        disabled=last is None,
        shortcut="U",
        icon=":material/undo:",
    ):
        if undone := curation.undo(ws, record.id, run.id):
            st.session_state["tf_toast"] = f"Undid {undone.action} of {undone.pairs} pair(s)."
        st.rerun()
    if "tf_bulk" in st.session_state:
        _confirm_bulk(ws, *st.session_state["tf_bulk"])
    if "tf_toast" in st.session_state:
        st.toast(st.session_state.pop("tf_toast"))


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


def _table(ws: Workspace, pairs: list[Pair]) -> None:
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
    st.session_state["tf_table_ids"] = [p.id for p in pairs]

    def changed() -> None:
        for index, change in st.session_state["tf_table"].get("edited_rows", {}).items():
            pair_id = st.session_state["tf_table_ids"][int(index)]
            if "input" in change or "output" in change:
                ws.edit_pair(pair_id, input=change.get("input"), output=change.get("output"))
            if "status" in change:
                curation.set_many(ws, [pair_id], change["status"])

    st.data_editor(
        table,
        key="tf_table",
        hide_index=True,
        on_change=changed,
        disabled=["made by", "source", "score"],
        height=480,
        column_config={
            "status": st.column_config.SelectboxColumn(options=list(PAIR_STATUSES)),
            "input": st.column_config.TextColumn(width="large"),
            "output": st.column_config.TextColumn(width="medium"),
            "score": st.column_config.NumberColumn(format="%.3f"),
        },
    )


def _focus(
    ws: Workspace,
    settings: Settings,
    record: TaskRecord,
    run: PairRun,
    pairs: list[Pair],
    llm: LLM | None,
    config: TransformConfig,
) -> None:
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
    source = curation.source_row(ws, run, pair)
    left, right = st.columns(2)
    with left:
        _source(source, run)
    with right:
        new_input, new_output = _editor(ws, pair)
    a1, a2, a3, a4 = st.columns(4)
    decision = None
    if a1.button("Accept", type="primary", shortcut="A", icon=":material/check:"):
        decision = "accept"
    if a2.button("Reject", shortcut="X", icon=":material/close:"):
        decision = "reject"
    # Always enabled: Ctrl+Enter pressed while typing reaches the button before the text box
    # has sent its new value, so a button disabled "until edited" would swallow it; `decide`
    # says "nothing to save" when the text really is unchanged.
    if a3.button("Save edit", shortcut="Ctrl+Enter", icon=":material/save:"):
        decision = "save"
    if decision is not None:
        with ui.shown_errors():
            curation.decide(ws, pair, decision, new_input, new_output)
        if decision != "save":  # the next pair of the queue takes this one's place
            st.session_state["tf_index"] = min(index, max(0, len(pairs) - 2))
        st.rerun()
    if (
        a4.button(
            "Regenerate",
            shortcut="G",
            disabled=source is None or llm is None,
            icon=":material/refresh:",
            help="A new sample for the same row",
        )
        and llm is not None
    ):
        with st.spinner("Asking the LLM for a new pair…"), ui.shown_errors():
            cache = ResponseCache(settings.llm_cache_db)
            curation.regenerate_pair(ws, record.task, run, pair, llm, config, cache=cache)
            for key in (f"tf_in_{pair.id}", f"tf_out_{pair.id}"):
                st.session_state.pop(key, None)
        st.rerun()
    st.caption(
        "Shortcuts: A accept · X reject · Ctrl+Enter save · G regenerate · N/P next/"
        "previous · U undo"
    )
    _history(ws, pair.id)


def _source(source: ScoredRow | None, run: PairRun) -> None:
    st.markdown("**Source row**")
    if source is None:
        st.caption(
            f"No source row: this pair was made by {KIND_NAMES.get(run.kind)} "
            "from the instruction and examples alone."
        )
        return
    for column, text in source.row.items():
        mark = (
            " ← best input match"
            if column == source.input_column
            else (" ← best output match" if column == source.output_column else "")
        )
        st.markdown(f"`{column}`{mark}")
        st.text(text[:1500])
    st.caption(
        f"{source.dataset} · {source.config} · row {source.row_id} · score {source.score:.3f}"
    )


def _editor(ws: Workspace, pair: Pair) -> tuple[str, str]:
    """The pair's text boxes; typed text is kept as a draft at once (a refresh loses nothing)."""
    st.markdown(
        f"**Pair** · status `{pair.status}` · {plans_ui.made_by(pair)} · {pair.llm} · "
        f"prompt `{pair.prompt_version or '-'}`"
    )
    draft = curation.draft(ws, pair.id)

    def keep() -> None:
        curation.keep_draft(
            ws, pair.id, st.session_state[f"tf_in_{pair.id}"], st.session_state[f"tf_out_{pair.id}"]
        )

    new_input = st.text_area(
        "Input",
        draft.input if draft else pair.input,
        key=f"tf_in_{pair.id}",
        height=180,
        on_change=keep,
    )
    new_output = st.text_area(
        "Output",
        draft.output if draft else pair.output,
        key=f"tf_out_{pair.id}",
        height=140,
        on_change=keep,
    )
    if draft and (draft.input, draft.output) != (pair.input, pair.output):
        st.caption(":orange[Unsaved edit kept from before] — Accept or Save edit to keep it.")
    original = ws.original(pair.id)
    if (original.input, original.output) != (pair.input, pair.output):
        st.markdown("Changes from the generated pair:")
        st.html(
            f"<div style='font-size:0.9em'><b>input:</b> "
            f"{_diff_html(original.input, pair.input)}<br><b>output:</b> "
            f"{_diff_html(original.output, pair.output)}</div>"
        )
    return new_input, new_output


def _history(ws: Workspace, pair_id: str) -> None:
    with st.expander("History of this pair"):
        events = ws.history(pair_id)
        if not events:
            st.caption("Not changed since it was generated.")
        for event in events:
            before, after = event.before, event.after
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


def _balance(ws: Workspace, record: TaskRecord, run: PairRun) -> None:
    live = [p for p in ws.pairs(run_id=run.id) if p.status != "rejected"]
    warnings, label_counts = quality_warnings(record.task, live)
    if not (label_counts or warnings):
        return
    with st.expander("Label balance and warnings", expanded=bool(warnings)):
        for warning in warnings:
            st.warning(warning, icon=":material/warning:")
        if not label_counts:
            return
        top = dict(list(label_counts.items())[:20])
        st.plotly_chart(
            px.bar(
                x=list(top), y=list(top.values()), labels={"x": "label", "y": "pairs"}, height=260
            )
        )
        cap = int(
            st.number_input(
                "Keep at most this many pairs per label",
                1,
                max(label_counts.values()),
                min(label_counts.values()),
                key="tf_cap",
            )
        )
        excess = curation.over_label_cap(record.task, live, cap)
        if st.button(
            f"Reject the {len(excess)} pair(s) above {cap} per label",
            disabled=not excess,
            help="The best-scored pairs of each label stay; one click undoes it.",
        ):
            curation.set_many(ws, excess, "rejected")
            st.session_state["tf_toast"] = f"Rejected {len(excess)} pair(s) to balance labels."
            st.rerun()
