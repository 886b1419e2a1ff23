"""Retrieve: score datastore rows against the task, browse and filter them, choose which to keep."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import retriever_ui
import ui
from rebase_core import retrieval_runs as rr
from rebase_core.datastore.readiness import usable_store
from rebase_core.retrieval import (
    APP_PER_DATASET_CAP,
    FUSIONS,
    METHODS,
    PAPER_RETRIEVAL,
    RetrievalOptions,
)
from rebase_core.task import comma_list

settings = ui.get_settings()
st.title("Retrieve")
record = ui.need_task()
ws = ui.get_workspace()
choice = usable_store(settings)  # the starter store while the first full build runs
store_path = str(choice.path)
store = ui.need_datastore(store_path)
task = record.task
st.caption(
    f"Task **{task.name}** (v{record.version}) against {store.n_rows:,} rows / "
    f"{store.n_cells:,} cells. Score = (best input-cell match + best output-cell match + "
    "instruction-to-description match) / 3, as in the ReBase paper."
)
if choice.partial:
    st.info(
        f"Retrieval uses {choice.note}. A run made now is marked, and offered again here "
        "once the full datastore is ready.",
        icon=":material/hourglass_top:",
    )


def retrieve_and_show(options: RetrievalOptions, store_note: str = "") -> None:
    """Retrieve with a progress bar, save the run, and show it (the run picker takes it on the
    rerun, before it is drawn)."""
    bar = st.progress(0.0, text="Retrieving…")
    with ui.shown_errors():
        embedder = ui.get_embedder(store.embedder_name, settings.threads)
        made = rr.run_retrieval(
            ws,
            record,
            store,
            embedder,
            options,
            store_note=store_note,
            on_progress=ui.progress_for(bar),
        )
    bar.empty()
    st.session_state["rv_run_next"] = str(made.id)
    st.toast(f"{made.n_rows:,} rows in {made.seconds:.2f} s ({made.method}).")
    st.rerun()


# ----------------------------------------------------------------------------- run retrieval
with st.expander("Run retrieval", expanded=not ws.retrieval_runs(record.id)), st.form("rv_form"):
    c1, c2, c3, c4 = st.columns(4)
    top_k = c1.number_input("Rows to keep (top K)", 1, 50_000, 3000, step=500)
    w_in = c2.number_input("Weight: inputs", 0.0, 10.0, 1.0, 0.1)
    w_out = c3.number_input("Weight: outputs", 0.0, 10.0, 1.0, 0.1)
    w_ds = c4.number_input("Weight: dataset", 0.0, 10.0, 1.0, 0.1)
    c5, c6, c7, c8 = st.columns(4)
    cap = c5.number_input(
        "Max rows per dataset (0 = no cap)",
        0,
        50_000,
        APP_PER_DATASET_CAP,
        help="So that the first rows come from many datasets; the paper has no cap.",
    )
    dedup = c6.toggle(
        "Drop identical rows",
        value=True,
        help="A row whose cells repeat a better row's (another config of the same dataset, "
        "say) is skipped; the paper keeps them.",
    )
    fusion = c7.selectbox(
        "Ranking",
        ["score", *FUSIONS],
        help="Rank fusion of the input and "
        "output ranks (no dataset term), a variant from the paper's code.",
    )
    method = c8.selectbox(
        "Method",
        METHODS,
        help="auto: exhaustive on small stores, Chroma "
        "candidates + exact rescoring on big ones; both return the same rows.",
    )
    exclude = st.multiselect(
        "Exclude datasets (besides the task's list and the held-out sets)",
        [n for n in store.dataset_names if n],
    )
    k1, k2 = st.columns(2)
    include_kw = k1.text_input(
        "Only rows containing (comma-separated; words of one entry must all appear)"
    )
    exclude_kw = k2.text_input("Drop rows containing (comma-separated)")
    s1, s2 = st.columns(2)
    run = s1.form_submit_button("Retrieve", type="primary", icon=":material/travel_explore:")
    paper = s2.form_submit_button(
        "Retrieve with the paper's setting",
        help="No cap per dataset and identical rows kept, as in the ReBase paper; the other "
        "options as set above.",
    )

if run or paper:
    options = RetrievalOptions(
        top_k=int(top_k),
        weights=(float(w_in), float(w_out), float(w_ds)),
        per_dataset_cap=PAPER_RETRIEVAL.per_dataset_cap if paper else int(cap) or None,
        dedup=PAPER_RETRIEVAL.dedup if paper else dedup,
        exclude_datasets=tuple(exclude),
        include_keywords=comma_list(include_kw),
        exclude_keywords=comma_list(exclude_kw),
        fusion=None if fusion == "score" else fusion,
        method=method,
    )
    retrieve_and_show(options, choice.note if choice.partial else "")

retriever_ui.panel(ws, settings, record, store)
runs = ws.retrieval_runs(record.id)
if not runs:
    st.info("No retrieval yet for this task: set the options above and press **Retrieve**.")
    st.stop()

# ----------------------------------------------------------------------------- which run
run_labels = {str(r.id): rr.run_label(r) for r in runs}
if "rv_run_next" in st.session_state:
    st.session_state["rv_run"] = st.session_state.pop("rv_run_next")
if st.session_state.get("rv_run") not in run_labels:
    st.session_state["rv_run"] = str(runs[0].id)
run_id = int(
    st.selectbox(
        "Retrieval run",
        list(run_labels),
        format_func=lambda k: run_labels[k],
        key="rv_run",
        bind="query-params",
    )
)
current = next(r for r in runs if r.id == run_id)
if note := rr.version_note(current, record.version):
    st.warning(note)
if note := rr.partial_store_note(current, store_path, choice.partial):
    st.warning(note, icon=":material/database:")
    if st.button("Retrieve again on the full datastore", icon=":material/refresh:"):
        retrieve_and_show(rr.run_options(current))
st.caption(f"This run: {rr.run_options_note(current)}.")
rows = ws.retrieved_rows(run_id)
by_rank = {r.rank: r for r in rows}

# ----------------------------------------------------------------------------- facets
counts = dict(rr.dataset_counts(rows))


def _bar_clicked() -> None:
    event = st.session_state.get("rv_hist")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        st.session_state["rv_ds"] = sorted({p["y"] for p in points if "y" in p})


if "rv_ds" not in st.session_state and (linked := st.query_params.get_all("rv_ds")):
    # Older links carried the "name (count)" label; the URL now holds the name only.
    st.session_state["rv_ds"] = [d for v in linked if (d := rr.dataset_param(v, list(counts)))]
f1, f2, f3 = st.columns([3, 2, 2])
chosen_ds = f1.multiselect(
    "Datasets",
    list(counts),
    key="rv_ds",
    bind="query-params",
    placeholder="All datasets",
)
lo, hi = rr.score_bounds(rows)
score_range = f2.slider("Score range", lo, hi, (lo, hi), key="rv_score", format="%.3f")
search = f3.text_input(
    "Keyword search", key="rv_q", bind="query-params", placeholder="words in any cell"
)
only = st.segmented_control(
    "Show", list(rr.SHOW), default="all", key="rv_show", bind="query-params"
)
row_filter = rr.RowFilter(tuple(chosen_ds), *score_range, query=search, show=only or "all")
view = rr.filter_rows(rows, row_filter)

with st.expander(f"Sources: {len(counts)} datasets (click a bar to filter)", expanded=False):
    st.plotly_chart(
        rr.sources_chart(list(counts.items())),
        key="rv_hist",
        on_select=_bar_clicked,
        selection_mode=("points",),
    )
    excluded = rr.excluded_datasets(current, store.dataset_names)
    if excluded:
        st.caption(f"Excluded by your options: {', '.join(excluded)}")

# ------------------------------------------------------------------------- datasets in the top K
summary = rr.dataset_summary(rows)
# The editors' keys change after a bulk change, so that their old edits are not replayed over it.
edit_version = st.session_state.setdefault("rv_edit_v", 0)


def _datasets_changed() -> None:
    edits = st.session_state[f"rv_ds_editor_{edit_version}"].get("edited_rows", {})
    changed = rr.apply_dataset_edits(ws, run_id, summary, edits)
    st.session_state["rv_toast"] = f"{changed:,} row(s) changed."
    st.session_state["rv_edit_v"] = edit_version + 1


with st.expander(
    f"Datasets in your top {len(rows):,}: {len(summary)} (largest {summary[0].share:.0%})"
    if summary
    else "Datasets in your top K",
    expanded=True,
):
    st.caption("Untick a dataset to drop all its rows, tick it to keep them all.")
    st.data_editor(
        pd.DataFrame(rr.dataset_table(summary)),
        key=f"rv_ds_editor_{edit_version}",
        hide_index=True,
        disabled=["dataset", "rows", "share", "kept", "best rank"],
        on_change=_datasets_changed,
        column_config={
            "keep": st.column_config.CheckboxColumn("keep", help="Keep every row of it"),
            "share": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        },
        height=min(36 * (len(summary) + 1) + 4, 320),
    )

# ----------------------------------------------------------------------------- table + selection
st.caption(
    f"Showing {len(view):,} of {len(rows):,} rows · {current.n_selected:,} kept for transformation"
)


def _keep_changed() -> None:
    edits = st.session_state[f"rv_editor_{edit_version}"].get("edited_rows", {})
    shown = st.session_state["rv_view_ranks"]
    for keep in (True, False):
        ranks = [shown[i] for i, e in edits.items() if e.get("keep") is keep]
        if ranks:
            ws.set_selected(run_id, ranks, keep)


view_ranks = [r.rank for r in view]
st.session_state["rv_view_ranks"] = view_ranks
table = pd.DataFrame(rr.row_table(view))
st.data_editor(
    table,
    key=f"rv_editor_{edit_version}",
    hide_index=True,
    disabled=[c for c in table.columns if c != "keep"],
    on_change=_keep_changed,
    column_config={
        "keep": st.column_config.CheckboxColumn("keep", help="Keep this row for transformation"),
        "score": st.column_config.ProgressColumn(format="%.4f", min_value=0.0, max_value=1.0),
        "input": st.column_config.NumberColumn(format="%.3f"),
        "output": st.column_config.NumberColumn(format="%.3f"),
        "dataset term": st.column_config.NumberColumn(format="%.3f"),
        "best input cell": st.column_config.TextColumn(width="large"),
        "best output cell": st.column_config.TextColumn(width="medium"),
    },
    height=420,
)


def _forget_bulk() -> None:
    st.session_state.pop("rv_bulk", None)


@st.dialog("Change the selection", on_dismiss=_forget_bulk)
def confirm_bulk(ranks: list[int], keep: bool) -> None:
    verb = "Keep" if keep else "Drop"
    st.write(f"{verb} all **{len(ranks):,}** rows of the current filter?")
    if st.button(f"{verb} {len(ranks):,} rows", type="primary"):
        changed = ws.set_selected(run_id, ranks, keep)
        st.session_state["rv_toast"] = f"{changed:,} row(s) changed."
        st.session_state["rv_edit_v"] = edit_version + 1
        _forget_bulk()
        st.rerun()


b1, b2, _ = st.columns([2, 2, 4])
if b1.button(f"Keep all {len(view):,} shown", disabled=not view):
    st.session_state["rv_bulk"] = (view_ranks, True)
if b2.button(f"Drop all {len(view):,} shown", disabled=not view):
    st.session_state["rv_bulk"] = (view_ranks, False)
if "rv_bulk" in st.session_state:  # the dialog stays open across reruns until answered
    confirm_bulk(*st.session_state["rv_bulk"])
if "rv_toast" in st.session_state:
    st.toast(st.session_state.pop("rv_toast"))

# ----------------------------------------------------------------------------- row detail
st.subheader("Row detail")
if not view:
    st.caption("No row matches the filters.")
    st.stop()
detail_rank = int(
    st.selectbox("Row", view_ranks, key="rv_row", format_func=lambda k: rr.row_label(by_rank[k]))
)
shown = by_rank[detail_rank]
picked = shown.row
left, right = st.columns([3, 2])
with left:
    st.html(rr.cells_html(picked, row_filter.words))
with right:
    st.markdown(f"**{picked.dataset}** · config `{picked.config}` · row `{picked.row_id}`")
    st.markdown(rr.score_text(picked, current.options.get("weights", (1.0, 1.0, 1.0))))
    st.caption(picked.description[:600])
    keep_key = f"rv_keep_{run_id}_{detail_rank}"

    def _keep_toggled() -> None:
        ws.set_selected(run_id, [detail_rank], bool(st.session_state[keep_key]))

    st.toggle(
        "Keep for transformation", value=shown.selected, key=keep_key, on_change=_keep_toggled
    )
    if st.button("More like this row", icon=":material/manage_search:"):
        with ui.shown_errors():
            similar = rr.rows_like(store, picked)
        st.dataframe(pd.DataFrame(rr.similar_table(similar, rows)), hide_index=True)

st.page_link(
    "app_pages/transform.py",
    label="Next: transform the kept rows into training pairs",
    icon=":material/arrow_forward:",
)
