"""The Compare page's panels on the sets it compares: their diversity (headline cards, the metrics
table, why baseline pairs were dropped), the shared map of every set with its selection to
curate, and the length and label charts. What they show is computed by
`rebase_core.diversity.comparison`; this module only draws and caches the embeddings, so that
the page stays its widgets, its comparison call and the order of these panels. (The baseline
runs, launched and followed, are `baseline_ui`.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

import ui
from rebase_core.diversity import (
    METRIC_NOTES,
    BackgroundProjection,
    DiversityMetrics,
    distribution_figures,
    embed_texts,
    headline_cards,
    measure_diversity,
    project,
    projection_figure,
    start_projection,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from rebase_core.diversity import Comparison, DistributionFigures, MetricsTable, Projection
    from rebase_core.settings import Settings


@st.cache_data(show_spinner=False, max_entries=64)
def cached_vectors(texts: tuple[str, ...], embedder_name: str, threads: int) -> np.ndarray:
    return embed_texts(ui.get_embedder(embedder_name, threads), list(texts))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_metrics(
    pairs: tuple[tuple[str, str], ...], embedder_name: str, threads: int
) -> DiversityMetrics:
    vectors = cached_vectors(tuple(p[0] for p in pairs), embedder_name, threads)
    return measure_diversity([a for a, _ in pairs], [b for _, b in pairs], vectors=vectors)


def measured(
    comparison: Comparison, settings: Settings, *, curated: bool
) -> dict[str, DiversityMetrics | None]:
    """Every set's metrics (None for an empty set), the curated parts too when `curated`; the
    embeddings are cached, so a rerun measures nothing again."""
    metrics: dict[str, DiversityMetrics | None] = {}
    with st.spinner("Embedding and measuring…"), ui.shown_errors():
        for s in comparison.sets(curated=curated):
            metrics[s.name] = (
                cached_metrics(s.items, settings.embedder, settings.threads) if s.items else None
            )
    return metrics


def diversity(
    comparison: Comparison, metrics: dict[str, DiversityMetrics | None], table: MetricsTable
) -> None:
    """A headline card per origin, the table of every set's metrics, and why the chosen baseline
    runs dropped pairs."""
    if cards := headline_cards(metrics):
        for col, card in zip(st.columns(len(cards)), cards, strict=True):
            col.metric(card.label, card.value, delta=card.delta, help=card.help)
    st.dataframe(
        pd.DataFrame(
            list(table.rows), index=pd.Index(table.sets, name="set"), columns=table.columns
        ),
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


@st.fragment(run_every="2s")
def _umap_poller(run: BackgroundProjection) -> None:
    """Reruns the page once the background UMAP fit is done."""
    if run.done:
        st.rerun()
    st.caption(":material/hourglass_top: UMAP is computing; PCA shown meanwhile.")


def _projection(comparison: Comparison, settings: Settings) -> Projection:
    """The map's projection: PCA at once; UMAP when chosen, fitted once per data in the
    background (PCA is shown until it is done, or when it fails)."""
    groups = comparison.map_groups()
    vectors = {
        k: cached_vectors(texts, settings.embedder, settings.threads)
        for k, texts in groups.texts.items()
    }
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
    if map_method != "umap":
        return projection
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
        return umap_run.result
    if umap_run.error is not None:
        st.error(f"UMAP failed: {umap_run.error}. Showing PCA.")
    else:
        _umap_poller(umap_run)
    return projection


def map_panel(comparison: Comparison, settings: Settings) -> go.Figure:
    """The examples, retrieved rows and every set on one 2-D map; a box or lasso lists the
    points inside it and hands their pairs to the Transform page to curate. The figure, for the
    export."""
    projection = _projection(comparison, settings)
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
    return figure


def distributions(
    comparison: Comparison, metrics: dict[str, DiversityMetrics | None]
) -> DistributionFigures:
    """Input and output lengths per origin, and the label shares when the outputs are labels.
    The figures, for the export."""
    charts = distribution_figures(comparison, metrics)
    tabs = st.tabs(["Input length", "Output length", "Labels"])
    if charts.input_lengths is not None and charts.output_lengths is not None:
        tabs[0].plotly_chart(charts.input_lengths, key="cmp_len_in")
        tabs[1].plotly_chart(charts.output_lengths, key="cmp_len_out")
    if charts.labels is not None:
        tabs[2].plotly_chart(charts.labels, key="cmp_labels")
    else:
        tabs[2].caption(
            "The outputs do not look like a small label set, so there is no label chart."
        )
    return charts
