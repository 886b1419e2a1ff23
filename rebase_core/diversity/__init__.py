"""Diversity of a set of pairs (paper's Table 3, plus ours) and a shared 2-D projection.

`measure_diversity` gives the contracts.md "Diversity report" fields for one set; `project` puts
several sets (examples, retrieved rows, ReBase pairs, baselines) on the same axes, fitted once on
their union; `projection_figure` draws it with a fixed colour per origin. umap, plotly and the
embedder's model are imported only inside the functions that use them.

Modules: `metrics` (one set's numbers), `projection` (the shared map, also computed in a
background thread: `start_projection`), `charts` (figures), `comparison` (what the Compare page
shows: the sets, the map's groups and selection, the metrics table, the export).

Tokens are counted by a regex that knows CJK and code (see `metrics`).
"""

from __future__ import annotations

from rebase_core.diversity.charts import (
    ORIGIN_COLORS,
    label_figure,
    length_figure,
    origin_color,
    projection_figure,
    selected_indices,
)
from rebase_core.diversity.comparison import (
    BASELINES,
    CURATED,
    METRIC_COLUMNS,
    METRIC_NOTES,
    PAIR_ORIGINS,
    BaselineRuns,
    Comparison,
    ComparisonSet,
    DistributionFigures,
    MapGroups,
    MapSelection,
    MetricCard,
    MetricsTable,
    PngExport,
    RunDrops,
    SelectedPoint,
    build_comparison,
    comparison_zip,
    distribution_figures,
    figure_png,
    headline_cards,
    list_baseline_runs,
    metrics_table,
    run_label,
)
from rebase_core.diversity.metrics import (
    TOKENIZER_NAME,
    DiversityMetrics,
    answer_label,
    dispersion,
    distinct_n,
    embed_texts,
    input_output,
    label_distribution,
    measure_diversity,
    near_duplicate_share,
    tokenize,
    word_count,
)
from rebase_core.diversity.numba_cache import use_numba_cache
from rebase_core.diversity.projection import (
    UMAP_MAX_POINTS,
    UMAP_MIN_POINTS,
    BackgroundProjection,
    Projection,
    project,
    start_projection,
    warm_up,
)

__all__ = [
    "BASELINES",
    "CURATED",
    "METRIC_COLUMNS",
    "METRIC_NOTES",
    "ORIGIN_COLORS",
    "PAIR_ORIGINS",
    "TOKENIZER_NAME",
    "UMAP_MAX_POINTS",
    "UMAP_MIN_POINTS",
    "BackgroundProjection",
    "BaselineRuns",
    "Comparison",
    "ComparisonSet",
    "DistributionFigures",
    "DiversityMetrics",
    "MapGroups",
    "MapSelection",
    "MetricCard",
    "MetricsTable",
    "PngExport",
    "Projection",
    "RunDrops",
    "SelectedPoint",
    "answer_label",
    "build_comparison",
    "comparison_zip",
    "dispersion",
    "distinct_n",
    "distribution_figures",
    "embed_texts",
    "figure_png",
    "headline_cards",
    "input_output",
    "label_distribution",
    "label_figure",
    "length_figure",
    "list_baseline_runs",
    "measure_diversity",
    "metrics_table",
    "near_duplicate_share",
    "origin_color",
    "project",
    "projection_figure",
    "run_label",
    "selected_indices",
    "start_projection",
    "tokenize",
    "use_numba_cache",
    "warm_up",
    "word_count",
]
