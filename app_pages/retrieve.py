"""Retrieve: score datastore rows against the task, browse and filter them, choose which to keep."""

from __future__ import annotations

import html
import re
from dataclasses import asdict

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from rebase_core.retrieval import FUSIONS, METHODS, RetrievalOptions, retrieve, similar_rows

settings = ui.get_settings()
st.title("Retrieve")
record = ui.need_task()
ws = ui.get_workspace()
store_path = str(settings.default_store)
if not ui.store_exists(store_path):
    st.info("There is no datastore yet: build or open one first.")
    st.page_link(
        "app_pages/datastore.py", label="Go to the Datastore page", icon=":material/database:"
    )
    st.stop()
store = ui.get_datastore(store_path)
task = record.task
st.caption(
    f"Task **{task.name}** (v{record.version}) against {store.n_rows:,} rows / "
    f"{store.n_cells:,} cells. Score = (best input-cell match + best output-cell match + "
    "instruction-to-description match) / 3, as in the ReBase paper."
)

# ----------------------------------------------------------------------------- run retrieval
with st.expander("Run retrieval", expanded=not ws.retrieval_runs(record.id)), st.form("rv_form"):
    c1, c2, c3, c4 = st.columns(4)
    top_k = c1.number_input("Rows to keep (top K)", 1, 50_000, 3000, step=500)
    w_in = c2.number_input("Weight: inputs", 0.0, 10.0, 1.0, 0.1)
    w_out = c3.number_input("Weight: outputs", 0.0, 10.0, 1.0, 0.1)
    w_ds = c4.number_input("Weight: dataset", 0.0, 10.0, 1.0, 0.1)
    c5, c6, c7, c8 = st.columns(4)
    cap = c5.number_input("Max rows per dataset (0 = no cap)", 0, 50_000, 0)
    dedup = c6.toggle("Drop duplicate rows", value=False)
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
    run = st.form_submit_button("Retrieve", type="primary", icon=":material/travel_explore:")

if run:
    options = RetrievalOptions(
        top_k=int(top_k),
        weights=(float(w_in), float(w_out), float(w_ds)),
        per_dataset_cap=int(cap) or None,
        dedup=dedup,
        exclude_datasets=tuple(exclude),
        include_keywords=tuple(x.strip() for x in include_kw.split(",") if x.strip()),
        exclude_keywords=tuple(x.strip() for x in exclude_kw.split(",") if x.strip()),
        fusion=None if fusion == "score" else fusion,
        method=method,
    )
    bar = st.progress(0.0, text="Retrieving…")
    with ui.shown_errors():
        embedder = ui.get_embedder(store.embedder_name, settings.threads)
        result = retrieve(store, task, embedder, options, on_progress=ui.progress_for(bar))
        run_id = ws.save_retrieval(
            record,
            store_path,
            asdict(options),
            result.method,
            result.seconds,
            result.rows,
            result.row_idxs,
        )
    bar.empty()
    st.session_state["rv_run"] = run_id
    st.toast(f"{len(result.rows):,} rows in {result.seconds:.2f} s ({result.method}).")
    st.rerun()

runs = ws.retrieval_runs(record.id)
if not runs:
    st.info("No retrieval yet for this task: set the options above and press **Retrieve**.")
    st.stop()

# ----------------------------------------------------------------------------- which run
run_labels = {
    str(r.id): f"#{r.id} · {r.created_at} · {r.n_rows:,} rows, {r.n_selected:,} selected "
    f"· {r.method} {r.seconds:.2f} s"
    for r in runs
}
if st.session_state.get("rv_run") not in run_labels:
    st.session_state["rv_run"] = str(runs[0].id)
run_id = int(
    st.selectbox(
        "Retrieval run",
        list(run_labels),
        format_func=run_labels.get,
        key="rv_run",
        bind="query-params",
    )
)
current = next(r for r in runs if r.id == run_id)
if current.task_version != record.version:
    st.warning(
        f"This run used task version {current.task_version}; the task is now at "
        f"version {record.version}. Retrieve again to use the changes."
    )
excluded = [
    n
    for n in store.dataset_names
    if n and any(n == x for x in current.options.get("exclude_datasets", []))
]
rows = ws.retrieved_rows(run_id)
frame = pd.DataFrame(
    {
        "keep": [sel for _, _, sel in rows],
        "rank": [rank for rank, _, _ in rows],
        "dataset": [r.dataset for _, r, _ in rows],
        "score": [r.score for _, r, _ in rows],
        "input": [r.input_score for _, r, _ in rows],
        "output": [r.output_score for _, r, _ in rows],
        "dataset term": [r.dataset_score for _, r, _ in rows],
        "best input cell": [r.row.get(r.input_column, "") for _, r, _ in rows],
        "best output cell": [r.row.get(r.output_column, "") for _, r, _ in rows],
        "row": [f"{r.config}/{r.row_id}" for _, r, _ in rows],
    }
)

# ----------------------------------------------------------------------------- facets
counts = frame["dataset"].value_counts()


def _bar_clicked() -> None:
    event = st.session_state.get("rv_hist")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        st.session_state["rv_ds"] = sorted({p["y"] for p in points if "y" in p})


f1, f2, f3 = st.columns([3, 2, 2])
chosen_ds = f1.multiselect(
    "Datasets",
    list(counts.index),
    format_func=lambda d: f"{d} ({counts[d]})",
    key="rv_ds",
    bind="query-params",
    placeholder="All datasets",
)
lo, hi = float(frame["score"].min()), float(frame["score"].max())
score_range = f2.slider(
    "Score range", lo, max(hi, lo + 1e-6), (lo, max(hi, lo + 1e-6)), key="rv_score", format="%.3f"
)
search = f3.text_input(
    "Keyword search", key="rv_q", bind="query-params", placeholder="words in any cell"
)
only = st.segmented_control(
    "Show", ["all", "kept", "dropped"], default="all", key="rv_show", bind="query-params"
)

mask = frame["score"].between(score_range[0] - 1e-9, score_range[1] + 1e-9)
if chosen_ds:
    mask &= frame["dataset"].isin(chosen_ds)
if search.strip():
    words = [w.lower() for w in search.split()]
    texts = [" ".join(r.row.values()).lower() for _, r, _ in rows]
    mask &= pd.Series([all(w in t for w in words) for t in texts])
if only == "kept":
    mask &= frame["keep"]
elif only == "dropped":
    mask &= ~frame["keep"]
view = frame[mask]

top = counts.head(30)
hist = px.bar(
    x=top.values,
    y=top.index,
    orientation="h",
    labels={"x": "rows", "y": ""},
    height=max(220, 22 * len(top)),
)
hist.update_layout(yaxis={"autorange": "reversed"}, margin={"l": 0, "r": 0, "t": 10, "b": 0})
with st.expander(f"Sources: {len(counts)} datasets (click a bar to filter)", expanded=False):
    st.plotly_chart(hist, key="rv_hist", on_select=_bar_clicked, selection_mode=("points",))
    if excluded:
        st.caption(f"Excluded by your options: {', '.join(excluded)}")

# ----------------------------------------------------------------------------- table + selection
st.caption(
    f"Showing {len(view):,} of {len(frame):,} rows · {int(frame['keep'].sum()):,} kept "
    "for transformation"
)


def _keep_changed() -> None:
    edits = st.session_state["rv_editor"].get("edited_rows", {})
    shown = st.session_state["rv_view_ranks"]
    on = [shown[i] for i, e in edits.items() if e.get("keep") is True]
    off = [shown[i] for i, e in edits.items() if e.get("keep") is False]
    if on:
        ws.set_selected(run_id, on, True)
    if off:
        ws.set_selected(run_id, off, False)


st.session_state["rv_view_ranks"] = view["rank"].tolist()
st.data_editor(
    view,
    key="rv_editor",
    hide_index=True,
    disabled=[c for c in view.columns if c != "keep"],
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
        _forget_bulk()
        st.rerun()


b1, b2, _ = st.columns([2, 2, 4])
if b1.button(f"Keep all {len(view):,} shown", disabled=view.empty):
    st.session_state["rv_bulk"] = (view["rank"].tolist(), True)
if b2.button(f"Drop all {len(view):,} shown", disabled=view.empty):
    st.session_state["rv_bulk"] = (view["rank"].tolist(), False)
if "rv_bulk" in st.session_state:  # the dialog stays open across reruns until answered
    confirm_bulk(*st.session_state["rv_bulk"])
if "rv_toast" in st.session_state:
    st.toast(st.session_state.pop("rv_toast"))

# ----------------------------------------------------------------------------- row detail


def _highlight(text: str, words: list[str]) -> str:
    escaped = html.escape(text)
    for word in words:
        escaped = re.sub(
            f"({re.escape(html.escape(word))})", r"<mark>\1</mark>", escaped, flags=re.IGNORECASE
        )
    return escaped


st.subheader("Row detail")
if view.empty:
    st.caption("No row matches the filters.")
    st.stop()
ranks = view["rank"].tolist()
detail_rank = st.selectbox(
    "Row",
    ranks,
    key="rv_row",
    format_func=lambda k: f"#{k} · {frame.at[k, 'dataset']} · {frame.at[k, 'score']:.4f}",
)
_, picked, kept = rows[int(detail_rank)]
words = search.split() if search.strip() else []
cells_html = []
for column, text in picked.row.items():
    tags = []
    if column == picked.input_column:
        tags.append("<span style='color:#2f5bea'>best input match</span>")
    if column == picked.output_column:
        tags.append("<span style='color:#1a7f37'>best output match</span>")
    border = (
        "#2f5bea"
        if column == picked.input_column
        else ("#1a7f37" if column == picked.output_column else "#ddd")
    )
    cells_html.append(
        f"<div style='border-left:4px solid {border};padding:4px 10px;margin:6px 0'>"
        f"<b>{html.escape(column)}</b> {' · '.join(tags)}<br>"
        f"<span style='white-space:pre-wrap'>{_highlight(text, words)}</span></div>"
    )
left, right = st.columns([3, 2])
with left:
    st.html("".join(cells_html))
with right:
    st.markdown(f"**{picked.dataset}** · config `{picked.config}` · row `{picked.row_id}`")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Score", f"{picked.score:.3f}")
    m2.metric("Input", f"{picked.input_score:.3f}")
    m3.metric("Output", f"{picked.output_score:.3f}")
    m4.metric("Dataset", f"{picked.dataset_score:.3f}")
    st.caption(picked.description[:600])
    st.toggle(
        "Keep for transformation",
        value=kept,
        key=f"rv_keep_{run_id}_{detail_rank}",
        on_change=lambda: ws.set_selected(
            run_id, [int(detail_rank)], bool(st.session_state[f"rv_keep_{run_id}_{detail_rank}"])
        ),
    )
    if st.button("More like this row", icon=":material/manage_search:"):
        row_idx = store.find_row(picked.dataset, picked.config, picked.row_id)
        with ui.shown_errors():
            similar = similar_rows(store, int(row_idx), RetrievalOptions(top_k=10))
        st.dataframe(
            pd.DataFrame(
                {
                    "dataset": [r.dataset for r in similar.rows],
                    "similarity": [r.input_score for r in similar.rows],
                    "best cell": [r.row.get(r.input_column, "") for r in similar.rows],
                    "in this run": [
                        bool(
                            (
                                (frame["dataset"] == r.dataset)
                                & (frame["row"] == f"{r.config}/{r.row_id}")
                            ).any()
                        )
                        for r in similar.rows
                    ],
                }
            ),
            hide_index=True,
        )

st.page_link(
    "app_pages/transform.py",
    label="Next: transform the kept rows into training pairs",
    icon=":material/arrow_forward:",
)
