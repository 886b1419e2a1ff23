"""Compare: ReBase pairs against baselines written without retrieval (direct, SELF-GUIDE).

Side-by-side diversity metrics (raw and curated), the shared 2-D map of examples, retrieved rows
and every set of pairs (lasso a region to list its points and curate them), length and label
charts, a baseline launcher running as a background job, and a one-click export. What is shown is
computed by `rebase_core.diversity.comparison`; this page reads the widgets and renders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import baseline_ui
import ui
from rebase_core import runs
from rebase_core.diversity import (
    BASELINES,
    METRIC_NOTES,
    BackgroundProjection,
    DiversityMetrics,
    build_comparison,
    comparison_zip,
    distribution_figures,
    embed_texts,
    figure_png,
    headline_cards,
    list_baseline_runs,
    measure_diversity,
    metrics_table,
    project,
    projection_figure,
    start_projection,
)
from rebase_core.workspace import PairRun

settings = ui.get_settings()
st.title("Compare")
record = ui.need_task()
ws = ui.get_workspace()
task = record.task
st.caption(
    f"Task **{task.name}**: are the ReBase pairs more varied than pairs an LLM writes from the "
    "instruction alone (*direct*, prompt2model) or that the student writes itself "
    "(*SELF-GUIDE*)? Metrics as in the paper's Table 3, plus embedding dispersion."
)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_vectors(texts: tuple[str, ...], embedder_name: str, threads: int) -> np.ndarray:
    return embed_texts(ui.get_embedder(embedder_name, threads), list(texts))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_metrics(
    pairs: tuple[tuple[str, str], ...], embedder_name: str, threads: int
) -> DiversityMetrics:
    vectors = cached_vectors(tuple(p[0] for p in pairs), embedder_name, threads)
    return measure_diversity([a for a, _ in pairs], [b for _, b in pairs], vectors=vectors)


# ----------------------------------------------------------------------------- baseline runs
baseline_runs = list_baseline_runs(ws, record.id)
newest = baseline_runs.newest
latest_job = runs.pair_run_job(settings, newest) if newest is not None else None


@st.fragment(run_every="2s")
def job_monitor(run: PairRun) -> None:
    """Live progress of the baseline job; reruns the page when it finishes."""
    job = runs.pair_run_job(settings, run)
    if job is None:
        return
    ui.job_panel(job, label=f"Baseline run ({run.kind})")
    if not job.is_active:
        st.rerun()


if newest is not None and latest_job is not None and latest_job.is_active:
    job_monitor(newest)
elif newest is not None and latest_job is not None:
    ui.job_panel(latest_job, label=f"Last baseline run ({newest.kind})")
    if latest_job.state in ("failed", "cancelled") and st.button(
        "Resume it", key="cmp_resume", icon=":material/replay:"
    ):
        with ui.shown_errors():
            runs.resume_pair_run(settings, ws, newest)
        st.rerun()

baseline_ui.launcher(
    ws, settings, record, baseline_runs, busy=latest_job is not None and latest_job.is_active
)
if "cmp_toast" in st.session_state:
    st.toast(st.session_state.pop("cmp_toast"))

# ----------------------------------------------------------------------------- the sets
no_rebase = st.container()  # above the run pickers, filled once the sets are loaded
chosen_runs: dict[str, int] = {}
if baseline_runs:
    for col, kind in zip(st.columns(len(BASELINES)), BASELINES, strict=True):
        if baseline_runs.by_kind[kind]:
            options = [r.id for r in baseline_runs.by_kind[kind]]
            picked = col.selectbox(
                f"{kind} run",
                options,
                format_func=baseline_runs.labels.__getitem__,
                key=f"cmp_run_{kind}",
            )
            chosen_runs[kind] = options[0] if picked is None else picked
        else:
            col.caption(f"No {kind} run yet.")
with ui.shown_errors():
    comparison = build_comparison(ws, record, chosen_runs)
if not comparison.has_rebase:
    no_rebase.info(
        "No ReBase pairs yet: transform the retrieved rows into pairs first, then come back to "
        "compare them with the baselines."
    )
    no_rebase.page_link(
        "app_pages/transform.py", label="Go to Transform & curate", icon=":material/auto_fix_high:"
    )
if comparison.is_empty:
    st.stop()

# ----------------------------------------------------------------------------- metrics
embedder_name, threads = settings.embedder, settings.threads
show_curated = st.toggle(
    "Also curated sets (accepted + edited pairs only)",
    value=True,
    key="cmp_curated",
    bind="query-params",
)
metrics: dict[str, DiversityMetrics | None] = {}
with st.spinner("Embedding and measuring…"), ui.shown_errors():
    for s in comparison.sets(curated=show_curated):
        metrics[s.name] = cached_metrics(s.items, embedder_name, threads) if s.items else None
table = metrics_table(metrics)

st.subheader("Diversity")
if cards := headline_cards(metrics):
    for col, card in zip(st.columns(len(cards)), cards, strict=True):
        col.metric(card.label, card.value, delta=card.delta, help=card.help)
st.dataframe(
    pd.DataFrame(list(table.rows), index=pd.Index(table.sets, name="set"), columns=table.columns),
    key="cmp_metrics",
    column_config={
        c: st.column_config.NumberColumn(format=f) for c, f in table.number_formats().items()
    },
)
st.caption(METRIC_NOTES)
with st.expander("Why pairs were dropped", icon=":material/filter_alt:"):
    for drops in comparison.drops:
        st.markdown(f"**{drops.kind}** run #{drops.run_id}: {drops.text}")
    if not comparison.drops:
        st.caption("No baseline run yet.")

# ----------------------------------------------------------------------------- the map
st.subheader("Map")
groups = comparison.map_groups()
vectors = {k: cached_vectors(texts, embedder_name, threads) for k, texts in groups.texts.items()}
cache_dir = settings.home / "cache" / "projections"
map_method = (
    st.segmented_control(
        "Projection",
        ["pca", "umap"],
        default="pca",
        key="cmp_map_method",
        bind="query-params",
        format_func=str.upper,
        help="PCA is instant. UMAP shows neighbourhoods better; it is computed in the "
        "background and cached (the first time in a workspace it also compiles UMAP, ~40 s; "
        "later server processes reuse the compiled code).",
    )
    or "pca"
)
with ui.shown_errors():
    projection = project(
        groups.texts, vectors=vectors, ids=groups.ids, method="pca", cache_dir=cache_dir
    )
if map_method == "umap":
    umap_runs: dict[str, BackgroundProjection] = st.session_state.setdefault("cmp_umap", {})
    if projection.cache_key not in umap_runs:  # one fit per data, kept across reruns
        umap_runs[projection.cache_key] = start_projection(
            groups.texts,
            vectors=vectors,
            ids=groups.ids,
            cache_dir=cache_dir,
            numba_cache_dir=settings.home / "cache" / "numba",
        )
    umap_run = umap_runs[projection.cache_key]
    if umap_run.result is not None:
        projection = umap_run.result
    elif umap_run.error is not None:
        st.error(f"UMAP failed: {umap_run.error}. Showing PCA.")
    else:

        @st.fragment(run_every="2s")
        def umap_poller(run: BackgroundProjection = umap_run) -> None:
            if run.done:
                st.rerun()
            st.caption(":material/hourglass_top: UMAP is computing; PCA shown meanwhile.")

        umap_poller()
if projection.note:
    st.caption(projection.note)
figure = projection_figure(
    projection, title=f"{projection.method.upper()} of the inputs ({len(projection):,} points)"
)
event: Any = st.plotly_chart(
    figure, key="cmp_map", on_select="rerun", selection_mode=("points", "box", "lasso")
)
points = event.selection.points if event is not None and hasattr(event, "selection") else []
selection = comparison.selection(projection, points)
if selection:
    st.session_state["curate_ids"] = list(selection.pair_ids)
    st.caption(f"{len(selection):,} points selected")
    st.dataframe(pd.DataFrame(selection.columns()), hide_index=True, key="cmp_selected")
    if selection.pair_ids:
        st.page_link(
            "app_pages/transform.py",
            label=f"Curate these {len(selection.pair_ids):,} pairs",
            icon=":material/rule:",
        )
else:
    st.caption("Drag a box or a lasso on the map to list the points inside it.")

# ----------------------------------------------------------------------------- distributions
st.subheader("Lengths and labels")
charts = distribution_figures(comparison, metrics)
tabs = st.tabs(["Input length", "Output length", "Labels"])
if charts.input_lengths is not None and charts.output_lengths is not None:
    tabs[0].plotly_chart(charts.input_lengths, key="cmp_len_in")
    tabs[1].plotly_chart(charts.output_lengths, key="cmp_len_out")
if charts.labels is not None:
    tabs[2].plotly_chart(charts.labels, key="cmp_labels")
else:
    tabs[2].caption("The outputs do not look like a small label set, so there is no label chart.")

# ----------------------------------------------------------------------------- export
st.subheader("Export")
st.download_button(
    "Download the comparison (.zip: metrics CSV/JSON, charts as HTML)",
    data=lambda: comparison_zip(table, {"map": figure, **charts.named()}),
    file_name=f"{task.name}-comparison.zip",
    mime="application/zip",
    icon=":material/download:",
    on_click="ignore",
    key="cmp_export",
)
png = figure_png(figure)
if png.data is None:
    st.caption(png.note)
else:
    st.download_button(
        "Download the map (.png)", png.data, file_name=f"{task.name}-map.png", mime="image/png"
    )
