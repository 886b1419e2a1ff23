"""Diversity of a set of pairs (paper's Table 3, plus ours) and a shared 2-D projection.

`measure_diversity` gives the contracts.md "Diversity report" fields for one set; `project` puts
several sets (examples, retrieved rows, ReBase pairs, baselines) on the same axes, fitted once on
their union; `projection_figure` draws it with a fixed colour per origin. umap, plotly and the
embedder's model are imported only inside the functions that use them.

Modules: `metrics` (one set's numbers), `projection` (the shared map), `charts` (figures),
`numba_cache` (umap's compiled code kept across processes).

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
    Projection,
    project,
    warm_up,
)

__all__ = [
    "ORIGIN_COLORS",
    "TOKENIZER_NAME",
    "UMAP_MAX_POINTS",
    "UMAP_MIN_POINTS",
    "DiversityMetrics",
    "Projection",
    "answer_label",
    "dispersion",
    "distinct_n",
    "embed_texts",
    "input_output",
    "label_distribution",
    "label_figure",
    "length_figure",
    "measure_diversity",
    "near_duplicate_share",
    "origin_color",
    "project",
    "projection_figure",
    "selected_indices",
    "tokenize",
    "use_numba_cache",
    "warm_up",
    "word_count",
]
