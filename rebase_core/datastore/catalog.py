"""What the Datastore page lists about a built store: its headline figures, its datasets (filtered
by name or ranked by meaning) and its configs with their build notes.

Plain records in, columns out (column name -> values), so a page turns them into a table as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rebase_core.datastore.read import StoreStats
from rebase_core.types import DatasetInfo


def store_figures(stats: StoreStats) -> list[tuple[str, str, str | None]]:
    """(label, value, help) of the store's headline figures: datasets, configs, rows, cells and
    size on disk."""
    return [
        ("Datasets", f"{stats.datasets:,}", None),
        ("Configs", f"{stats.configs:,}", f"{stats.skipped_configs} skipped"),
        ("Rows", f"{stats.rows:,}", None),
        ("Cells", f"{stats.cells:,}", None),
        ("On disk", f"{stats.bytes / 1e6:,.0f} MB", None),
    ]


def dataset_table(
    infos: Sequence[DatasetInfo],
    *,
    query: str = "",
    hits: Sequence[tuple[str, float]] | None = None,
) -> dict[str, list[Any]]:
    """The datasets table. With `hits` ((name, similarity) from a search by meaning): those
    datasets, most similar first, with a `similarity` column. Else the datasets whose name or
    description holds `query` (any case; all of them when it is blank)."""
    if hits is not None:
        similarity = dict(hits)
        chosen = sorted(
            (d for d in infos if d.name in similarity), key=lambda d: -similarity[d.name]
        )
    else:
        needle = query.strip().lower()
        chosen = [d for d in infos if needle in d.name.lower() or needle in d.description.lower()]
    table: dict[str, list[Any]] = {"dataset": [d.name for d in chosen]}
    if hits is not None:  # next to the name, where a ranked list shows its score
        table["similarity"] = [round(similarity[d.name], 3) for d in chosen]
    table |= {
        "description": [d.description for d in chosen],
        "rows": [d.n_rows for d in chosen],
        "cells": [d.n_cells for d in chosen],
        "configs": [len(d.configs) for d in chosen],
        "source": [d.source for d in chosen],
        "license": [d.license for d in chosen],
        "keywords": [", ".join(d.keywords) for d in chosen],
    }
    return table


def source_table(stats: StoreStats) -> dict[str, list[Any]]:
    """Datasets, rows and cells per source of the store."""
    return {
        "source": [s for s, _, _, _ in stats.sources],
        "datasets": [d for _, d, _, _ in stats.sources],
        "rows": [r for _, _, r, _ in stats.sources],
        "cells": [c for _, _, _, c in stats.sources],
    }


def shard_table(
    shards: Sequence[Mapping[str, Any]], *, only_skipped: bool = False
) -> dict[str, list[Any]]:
    """The per-config build records (as `Datastore.shards` gives them), notes joined into one
    text; only the skipped configs with `only_skipped`."""
    columns = list(shards[0]) if shards else []
    kept = [s for s in shards if s.get("skipped") or not only_skipped]
    return {c: ["; ".join(s[c]) if c == "notes" else s[c] for s in kept] for c in columns}
