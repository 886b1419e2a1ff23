"""Plotly figures of the diversity view (the pages only render them), one fixed colour per origin.
plotly is imported inside each function."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rebase_core.diversity.metrics import DiversityMetrics, word_count
from rebase_core.diversity.projection import Projection

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Fixed colours, so every chart of the app shows an origin the same way (ux_anchors.md).
ORIGIN_COLORS: dict[str, str] = {
    "examples": "#111827",
    "retrieved": "#9ca3af",
    "rebase": "#2f5bea",  # the app's primary colour
    "direct": "#f59e0b",
    "self-guide": "#10b981",
    "manual": "#8b5cf6",
    "test": "#ef4444",
}
_FALLBACK_COLORS = ("#0ea5e9", "#d946ef", "#84cc16", "#f97316", "#14b8a6", "#a16207", "#64748b")


def origin_color(origin: str, order: Sequence[str] = ()) -> str:
    """The fixed colour of an origin; other names get fallback colours by their position."""
    if origin in ORIGIN_COLORS:
        return ORIGIN_COLORS[origin]
    others = [o for o in order if o not in ORIGIN_COLORS] or [origin]
    position = others.index(origin) if origin in others else 0
    return _FALLBACK_COLORS[position % len(_FALLBACK_COLORS)]


def _hover(text: str, max_chars: int) -> str:
    short = text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"
    return "<br>".join(textwrap.wrap(html.escape(short), 60)) or "(no text)"


def projection_figure(
    projection: Projection, *, max_hover_chars: int = 200, title: str = ""
) -> go.Figure:
    """A scatter of the projection, one trace (and legend entry) per origin in a fixed colour.

    Each point's customdata is `[point_id, index]`, so a lasso or box selection maps back to pairs.
    WebGL (Scattergl) above 2,000 points, where SVG gets slow.
    """
    import plotly.graph_objects as go

    order = projection.origins()
    scatter = go.Scattergl if len(projection) > 2000 else go.Scatter
    origin_arr = np.asarray(projection.origin)
    fig = go.Figure()
    for origin in order:
        idx = np.flatnonzero(origin_arr == origin)
        fig.add_trace(
            scatter(
                x=projection.x[idx],
                y=projection.y[idx],
                mode="markers",
                name=origin,
                marker={"color": origin_color(origin, order), "size": 6, "opacity": 0.75},
                text=[_hover(projection.text[i], max_hover_chars) for i in idx],
                customdata=[[projection.point_id[i], int(i)] for i in idx],
                hovertemplate="%{text}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        title=title or f"{projection.method.upper()} of {len(projection)} points",
        xaxis={"showticklabels": False, "title": ""},
        yaxis={"showticklabels": False, "title": ""},
        legend={"itemsizing": "constant"},
        dragmode="lasso",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def selected_indices(points: Sequence[Mapping[str, Any]], projection: Projection) -> list[int]:
    """Indices into the projection of the points a click, box or lasso selected on a
    `projection_figure` (the selection event's points carry its customdata [point id, index]).
    The id is checked, so a selection made on an older map of other points selects nothing."""
    out = set()
    for point in points:
        data = point.get("customdata")
        if not isinstance(data, Sequence) or isinstance(data, str) or len(data) < 2:
            continue
        try:
            index = int(data[1])
        except (TypeError, ValueError):
            continue
        if 0 <= index < len(projection) and projection.point_id[index] == str(data[0]):
            out.add(index)
    return sorted(out)


def length_figure(
    sets: Mapping[str, Sequence[str]], *, title: str = "Length in words"
) -> go.Figure:
    """Overlaid histograms of text lengths (words, as in the metrics), one per origin."""
    import plotly.graph_objects as go

    order = list(sets)
    fig = go.Figure()
    for origin, texts in sets.items():
        fig.add_trace(
            go.Histogram(
                x=[word_count(t) for t in texts],
                name=origin,
                marker_color=origin_color(origin, order),
                opacity=0.6,
            )
        )
    fig.update_layout(barmode="overlay", title=title, xaxis_title="words", yaxis_title="pairs")
    return fig


def label_figure(
    metrics: Mapping[str, DiversityMetrics], *, title: str = "Label distribution"
) -> go.Figure:
    """Grouped bars of label shares per set (sets without a label distribution are left out)."""
    import plotly.graph_objects as go

    order = list(metrics)
    fig = go.Figure()
    for origin, m in metrics.items():
        if not m.label_distribution:
            continue
        total = sum(m.label_distribution.values())
        fig.add_trace(
            go.Bar(
                x=list(m.label_distribution),
                y=[c / total for c in m.label_distribution.values()],
                name=origin,
                marker_color=origin_color(origin, order),
            )
        )
    fig.update_layout(barmode="group", title=title, yaxis_title="share", yaxis_tickformat=".0%")
    return fig
