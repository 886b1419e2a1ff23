"""A task's retrieval runs as the Retrieve page works with them: make one (retrieve, then record
it in the workspace) and browse it (its label, dataset facets, filters, the table of its rows, the
detail of one row and the rows like it).

Plain records in, plain records out: the page turns `row_table` into a table widget.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rebase_core.errors import InputError
from rebase_core.retrieval import RetrievalOptions, retrieve, similar_rows
from rebase_core.types import ProgressFn, ScoredRow, no_progress

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from rebase_core.datastore import Datastore
    from rebase_core.embed import Embedder
    from rebase_core.workspace import RetrievalRun, RetrievedRow, TaskRecord, Workspace

SHOW = ("all", "kept", "dropped")
_TOLERANCE = 1e-9  # the score slider's ends are rounded; a row on an end stays in


def run_retrieval(
    ws: Workspace,
    record: TaskRecord,
    store: Datastore,
    embedder: Embedder,
    options: RetrievalOptions,
    *,
    store_note: str = "",
    on_progress: ProgressFn = no_progress,
) -> RetrievalRun:
    """Retrieve rows for the task and save them as a new run (every row kept at first). The
    task's trained retriever, when it has one, embeds its query side (`retriever.use_retriever`);
    the run's options name it, and their `outcome` says how many rows dedup and the cap
    skipped. `store_note` (kept with the run) says the store was partial and how: the starter
    store, or one still being built (`datastore.readiness.usable_store`)."""
    from rebase_core.retriever.versions import task_embedder, task_retriever

    trained = task_retriever(ws, record.id)
    query_embedder = task_embedder(ws, record.id, embedder)
    result = retrieve(store, record.task, query_embedder, options, on_progress=on_progress)
    outcome = {"duplicates_dropped": result.duplicates_dropped, "capped": result.capped}
    run_id = ws.save_retrieval(
        record,
        str(store.path),
        {
            **asdict(options),
            "retriever": str(trained) if trained else "",
            "outcome": outcome,
            "store_note": store_note,
        },
        result.method,
        result.seconds,
        result.rows,
        result.row_idxs,
    )
    return next(r for r in ws.retrieval_runs(record.id) if r.id == run_id)


def run_label(run: RetrievalRun) -> str:
    """How a run is named in a picker: id, time, sizes, method and duration."""
    return (
        f"#{run.id} · {run.created_at} · {run.n_rows:,} rows, {run.n_selected:,} selected "
        f"· {run.method} {run.seconds:.2f} s"
    )


def version_note(run: RetrievalRun, task_version: int) -> str | None:
    """A warning when the run used another version of the task than the current one."""
    if run.task_version == task_version:
        return None
    return (
        f"This run used task version {run.task_version}; the task is now at "
        f"version {task_version}. Retrieve again to use the changes."
    )


def run_options(run: RetrievalRun) -> RetrievalOptions:
    """The options a run was made with (to make it again, e.g. on the full store)."""
    known = set(RetrievalOptions.__dataclass_fields__)
    values = {k: v for k, v in run.options.items() if k in known}
    for name in ("weights", "exclude_datasets", "include_keywords", "exclude_keywords"):
        if name in values and values[name] is not None:
            values[name] = tuple(values[name])
    return RetrievalOptions(**values)


def partial_store_note(run: RetrievalRun, store_path: str, store_partial: bool) -> str | None:
    """When the run was made on a partial store (the starter store, or a store still being
    built) and the store the app uses now is complete: a sentence offering to retrieve again."""
    used = str(run.options.get("store_note") or "")
    if not used or store_partial:
        return None
    where = "the same store, now complete" if run.store == store_path else "the full datastore"
    return (
        f"This run was retrieved from {used}. The full datastore is ready now: retrieve again "
        f"with the same options to search {where}."
    )


def excluded_datasets(run: RetrievalRun, dataset_names: Sequence[str]) -> list[str]:
    """The store's datasets that the run's own options excluded, in the store's order."""
    named = set(run.options.get("exclude_datasets", []))
    return [n for n in dataset_names if n and n in named]


def dataset_counts(rows: Sequence[RetrievedRow]) -> list[tuple[str, int]]:
    """(dataset, rows) for every dataset among the rows, most rows first."""
    return Counter(r.row.dataset for r in rows).most_common()


@dataclass(frozen=True, slots=True)
class DatasetShare:
    """One dataset of a run's top K: how many rows, which share, how many kept, its best rank."""

    dataset: str
    rows: int
    kept: int
    share: float  # of the run's rows, 0..1
    best_rank: int  # 1-based

    @property
    def all_kept(self) -> bool:
        return self.kept == self.rows


def dataset_summary(rows: Sequence[RetrievedRow]) -> list[DatasetShare]:
    """The datasets in a run's top K, most rows first (then the best-ranked first)."""
    total = len(rows) or 1
    n: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    best: dict[str, int] = {}
    for r in rows:
        d = r.row.dataset
        n[d] += 1
        kept[d] += r.selected
        best[d] = min(best.get(d, r.rank), r.rank)
    return sorted(
        (DatasetShare(d, n[d], kept[d], n[d] / total, best[d] + 1) for d in n),
        key=lambda s: (-s.rows, s.best_rank),
    )


def dataset_table(summary: Sequence[DatasetShare]) -> dict[str, list[Any]]:
    """The "datasets in your top K" table: `keep` is ticked when every row of the dataset is
    kept; ticking or clearing it keeps or drops them all (`Workspace.set_dataset_selected`)."""
    return {
        "keep": [s.all_kept for s in summary],
        "dataset": [s.dataset for s in summary],
        "rows": [s.rows for s in summary],
        "share": [s.share for s in summary],
        "kept": [s.kept for s in summary],
        "best rank": [s.best_rank for s in summary],
    }


def apply_dataset_edits(
    ws: Workspace,
    run_id: int,
    summary: Sequence[DatasetShare],
    edited_rows: Mapping[Any, Mapping[str, Any]],
) -> int:
    """Keep or drop whole datasets as the `dataset_table` editor's ticks say (row position ->
    changed cells); returns how many rows changed."""
    changed = 0
    for position, edit in edited_rows.items():
        if "keep" in edit:
            dataset = summary[int(position)].dataset
            changed += ws.set_dataset_selected(run_id, [dataset], bool(edit["keep"]))
    return changed


def dataset_param(value: str, datasets: Sequence[str]) -> str | None:
    """A dataset named by a URL's `rv_ds` value: the name itself, or an older link's
    "name (count)" label; None when it names none of `datasets`.

    >>> dataset_param("bigbench/color (12)", ["bigbench/color"]), dataset_param("x", [])
    ('bigbench/color', None)
    """
    names = set(datasets)
    if value in names:
        return value
    stripped = re.sub(r" \(\d+\)$", "", value)
    return stripped if stripped in names else None


def _rows(n: int, noun: str = "row") -> str:
    """A count of rows, singular for one.

    >>> _rows(1), _rows(1200, "identical row")
    ('1 row', '1,200 identical rows')
    """
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def run_options_note(run: RetrievalRun) -> str:
    """What the run's dedup and cap were, as the page says it."""
    cap = run.options.get("per_dataset_cap")
    dedup = bool(run.options.get("dedup"))
    parts = [
        f"at most {_rows(int(cap))} per dataset" if cap else "no cap per dataset",
        "identical rows dropped" if dedup else "identical rows kept",
    ]
    outcome = run.options.get("outcome") or {}
    if dedup and outcome.get("duplicates_dropped"):
        parts.append(f"{_rows(int(outcome['duplicates_dropped']), 'identical row')} skipped")
    if cap and outcome.get("capped"):
        parts.append(f"{_rows(int(outcome['capped']))} over the cap skipped")
    paper = not cap and not dedup
    return "; ".join(parts) + (" (the paper's setting)" if paper else "")


def sources_chart(counts: Sequence[tuple[str, int]], limit: int = 30) -> go.Figure:
    """A horizontal bar per dataset (the `limit` largest, largest on top); a click on a bar
    selects a point whose `y` is the dataset's name."""
    import plotly.express as px

    top = list(counts)[:limit]
    figure = px.bar(
        x=[n for _, n in top],
        y=[d for d, _ in top],
        orientation="h",
        labels={"x": "rows", "y": ""},
        height=max(220, 22 * len(top)),
    )
    figure.update_layout(yaxis={"autorange": "reversed"}, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure


def score_bounds(rows: Sequence[RetrievedRow]) -> tuple[float, float]:
    """The lowest and highest score, as a range a slider can take (never empty)."""
    if not rows:
        return (0.0, 1.0)
    scores = [r.row.score for r in rows]
    lo = min(scores)
    return (lo, max(max(scores), lo + 1e-6))


@dataclass(frozen=True, slots=True)
class RowFilter:
    """What the user filters a run's rows by; the defaults keep every row."""

    datasets: tuple[str, ...] = ()  # empty: every dataset
    min_score: float = float("-inf")
    max_score: float = float("inf")
    query: str = ""  # words that must all appear in the row's cells (any case)
    show: str = "all"  # all | kept | dropped

    @property
    def words(self) -> list[str]:
        return self.query.split()


def filter_rows(rows: Sequence[RetrievedRow], row_filter: RowFilter) -> list[RetrievedRow]:
    """The rows that pass the filter, in their rank order."""
    if row_filter.show not in SHOW:
        raise InputError(f"show must be one of {', '.join(SHOW)}, got {row_filter.show!r}.")
    datasets = set(row_filter.datasets)
    words = [w.lower() for w in row_filter.words]
    lo, hi = row_filter.min_score - _TOLERANCE, row_filter.max_score + _TOLERANCE
    out = []
    for r in rows:
        if not lo <= r.row.score <= hi or (datasets and r.row.dataset not in datasets):
            continue
        if row_filter.show == "kept" and not r.selected:
            continue
        if row_filter.show == "dropped" and r.selected:
            continue
        if words:
            text = " ".join(r.row.row.values()).lower()
            if not all(w in text for w in words):
                continue
        out.append(r)
    return out


def _cell(row: ScoredRow, column: str) -> str:
    """A cell's text for a table: blank, never "None", when the row lacks the column."""
    value = row.row.get(column) if column else None
    return "" if value is None else str(value)


def row_table(rows: Sequence[RetrievedRow]) -> dict[str, list[Any]]:
    """The run's table: column name -> values, in the order shown (columns even when empty)."""
    return {
        "keep": [r.selected for r in rows],
        "rank": [r.rank + 1 for r in rows],  # 1 = the best row, as a reader counts
        "dataset": [r.row.dataset for r in rows],
        "score": [r.row.score for r in rows],
        "input": [r.row.input_score for r in rows],
        "output": [r.row.output_score for r in rows],
        "dataset term": [r.row.dataset_score for r in rows],
        "best input cell": [_cell(r.row, r.row.input_column) for r in rows],
        "best output cell": [_cell(r.row, r.row.output_column) for r in rows],
        "row": [f"{r.row.config}/{r.row.row_id}" for r in rows],
    }


def row_label(row: RetrievedRow) -> str:
    """How a row is named in a picker: rank, dataset and score."""
    return f"#{row.rank + 1} · {row.row.dataset} · {row.row.score:.4f}"


def score_terms(row: ScoredRow) -> list[tuple[str, float]]:
    """(name, value) of the row's score and of its three terms, as the detail shows them."""
    return [
        ("Score", row.score),
        ("Input", row.input_score),
        ("Output", row.output_score),
        ("Dataset", row.dataset_score),
    ]


def score_text(row: ScoredRow, weights: Sequence[float] = (1.0, 1.0, 1.0)) -> str:
    """The row's score and its three terms in full (four decimals), as one line of Markdown:
    "**Score 0.4123** = (input 0.5100 + output 0.3300 + dataset 0.4000) / 3".

    >>> r = ScoredRow("d", "c", "0", 0.41234, 0.51, 0.33, 0.4, "x", "y", "", {})
    >>> score_text(r, (1, 0.5, 1))
    '**Score 0.4123** = (input 0.5100 + 0.5 × output 0.3300 + dataset 0.4000) / 2.5'
    """
    terms = zip(
        ("input", "output", "dataset"),
        (row.input_score, row.output_score, row.dataset_score),
        weights,
        strict=True,
    )
    shown = [
        f"{name} {value:.4f}" if w == 1 else f"{w:g} × {name} {value:.4f}"
        for name, value, w in terms
    ]
    return f"**Score {row.score:.4f}** = ({' + '.join(shown)}) / {sum(weights):g}"


def highlight(text: str, words: Sequence[str]) -> str:
    """`text` as HTML (escaped), every occurrence of each word wrapped in <mark> (any case).

    >>> highlight("A <b> cat; the Cat", ["cat"])
    'A &lt;b&gt; <mark>cat</mark>; the <mark>Cat</mark>'
    """
    escaped = html.escape(text)
    for word in words:
        escaped = re.sub(
            f"({re.escape(html.escape(word))})", r"<mark>\1</mark>", escaped, flags=re.IGNORECASE
        )
    return escaped


_INPUT_COLOUR, _OUTPUT_COLOUR, _PLAIN_COLOUR = "#2f5bea", "#1a7f37", "#ddd"


def cells_html(row: ScoredRow, words: Sequence[str] = ()) -> str:
    """The row's cells as HTML blocks: the best input and output matches marked and coloured,
    the search words highlighted."""
    blocks = []
    for column, text in row.row.items():
        tags = []
        if column == row.input_column:
            tags.append(f"<span style='color:{_INPUT_COLOUR}'>best input match</span>")
        if column == row.output_column:
            tags.append(f"<span style='color:{_OUTPUT_COLOUR}'>best output match</span>")
        border = (
            _INPUT_COLOUR
            if column == row.input_column
            else (_OUTPUT_COLOUR if column == row.output_column else _PLAIN_COLOUR)
        )
        blocks.append(
            f"<div style='border-left:4px solid {border};padding:4px 10px;margin:6px 0'>"
            f"<b>{html.escape(column)}</b> {' · '.join(tags)}<br>"
            f"<span style='white-space:pre-wrap'>{highlight(text, words)}</span></div>"
        )
    return "".join(blocks)


def rows_like(store: Datastore, row: ScoredRow, top_k: int = 10) -> list[ScoredRow]:
    """The store's rows most like `row` (by its cells), best first."""
    row_idx = store.find_row(row.dataset, row.config, row.row_id)
    if row_idx is None:
        raise InputError(
            f"Row {row.config}/{row.row_id} of {row.dataset} is not in the datastore any more "
            "(was it rebuilt?); retrieve again to browse its current rows."
        )
    return list(similar_rows(store, row_idx, RetrievalOptions(top_k=top_k)).rows)


def similar_table(
    similar: Sequence[ScoredRow], run: Sequence[RetrievedRow]
) -> dict[str, list[Any]]:
    """The table of rows like a row: column name -> values; `in this run` marks those the run
    retrieved too."""
    in_run = {r.row.key for r in run}
    return {
        "dataset": [r.dataset for r in similar],
        "similarity": [r.input_score for r in similar],
        "best cell": [_cell(r, r.input_column) for r in similar],
        "in this run": [r.key in in_run for r in similar],
    }
