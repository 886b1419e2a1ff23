"""The results table and chart of the Evaluate page (the page only renders them), one fixed
colour per data origin. plotly is imported inside the function that draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rebase_core.evaluate.compare import ORIGIN_LABELS, ComparisonRow

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Fixed colours per data origin, the same in every chart of the comparison.
RESULT_COLORS: dict[str, str] = {
    "": "#9aa0a6",  # untrained
    "self-guide": "#e8a33d",
    "direct": "#5b8def",
    "rebase": "#2a9d8f",
    "mixed": "#8e6bbf",
    "manual": "#b5651d",
}


def origin_label(origin: str) -> str:
    return ORIGIN_LABELS.get(origin, origin)


def results_table(rows: Sequence[ComparisonRow], metric: str) -> dict[str, list[Any]]:
    """The results table's columns: model, data, prompt, pairs, the metric, its 95% CI, rows, and
    for a label task the answer each model gave most ("entailment (99%)"), for a QA task the
    mean length of its answers and of the gold ones ("6.2 (gold 3.0)")."""
    table: dict[str, list[Any]] = {
        "model": [r.label for r in rows],
        "data": [origin_label(r.origin) for r in rows],
        "prompt": ["few-shot" if r.few_shot else "zero-shot" for r in rows],
        "pairs": [r.n_train for r in rows],
        metric: [r.score for r in rows],
        "95% CI": [f"{r.ci_low:.3f}–{r.ci_high:.3f}" for r in rows],
        "rows": [r.n for r in rows],
    }
    if any(r.top_answer for r in rows):
        table["most given answer"] = [
            f"{r.top_answer or '(empty)'} ({r.top_share:.0%})" if r.top_share else "" for r in rows
        ]
    if any(r.gold_words for r in rows):
        table["answer words"] = [
            f"{r.answer_words:.1f} (gold {r.gold_words:.1f})" if r.gold_words else "" for r in rows
        ]
    return table


def results_figure(rows: Sequence[ComparisonRow], metric: str, *, title: str = "") -> go.Figure:
    """One bar per model (a trace per data origin, in its colour) with 95% bootstrap whiskers."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for origin in dict.fromkeys(r.origin for r in rows):
        part = [r for r in rows if r.origin == origin]
        fig.add_bar(
            name=origin_label(origin),
            x=[r.label for r in part],
            y=[r.score for r in part],
            marker_color=RESULT_COLORS.get(origin),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r.ci_high - r.score for r in part],
                "arrayminus": [r.score - r.ci_low for r in part],
            },
            customdata=[[r.n_train, r.n] for r in part],
            hovertemplate="%{x}<br>score %{y:.3f}<br>%{customdata[0]} pairs, "
            "%{customdata[1]} test rows<extra></extra>",
        )
    fig.update_layout(
        yaxis={"title": metric, "range": [0, 1]},
        height=360,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title=title,
    )
    return fig
