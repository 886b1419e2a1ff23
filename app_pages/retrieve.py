"""Retrieve: score datastore rows against the task, browse and filter them, choose which to keep."""

from __future__ import annotations

import streamlit as st

import retrieve_ui
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
retrieve_ui.partial_store_notice(choice)


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
if retrieve_ui.full_store_offer(current, store_path, choice.partial):
    retrieve_and_show(rr.run_options(current))
st.caption(f"This run: {rr.run_options_note(current)}.")
rows = ws.retrieved_rows(run_id)

# ----------------------------------------------------------------------------- filters
counts = dict(rr.dataset_counts(rows))
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

# ----------------------------------------------------------------------------- the run's rows
retrieve_ui.sources(current, counts, store)
# The editors' keys change after a bulk change, so that their old edits are not replayed over it.
edit_version = st.session_state.setdefault("rv_edit_v", 0)
retrieve_ui.datasets_in_top_k(ws, run_id, rows, edit_version)
st.caption(
    f"Showing {len(view):,} of {len(rows):,} rows · {current.n_selected:,} kept for transformation"
)
retrieve_ui.row_table(ws, run_id, view, edit_version)
retrieve_ui.bulk_actions(ws, run_id, view, edit_version)

# ----------------------------------------------------------------------------- row detail
st.subheader("Row detail")
if not view:
    st.caption("No row matches the filters.")
    st.stop()
retrieve_ui.row_detail(ws, store, current, rows, view, row_filter.words)

st.page_link(
    "app_pages/transform.py",
    label="Next: transform the kept rows into training pairs",
    icon=":material/arrow_forward:",
)
