"""What the Compare page shows, as data: the sets it measures (ReBase pairs, the chosen baseline
runs, manual pairs, retrieved rows; raw and curated), the groups of the shared map, the points a
selection lists, why baseline pairs were dropped, the metrics table and the export.

The page reads widgets, calls one of these per action and renders what it gets back; nothing here
imports streamlit. plotly is imported only by the figure functions (see `charts`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rebase_core.diversity.charts import label_figure, length_figure, selected_indices
from rebase_core.diversity.metrics import DiversityMetrics, input_output
from rebase_core.diversity.projection import Projection
from rebase_core.errors import InputError
from rebase_core.types import Example, Pair, ScoredRow
from rebase_core.workspace import PairRun, TaskRecord, Workspace

if TYPE_CHECKING:
    import plotly.graph_objects as go

BASELINES = ("direct", "self-guide")
PAIR_ORIGINS = ("rebase", *BASELINES, "manual")
CURATED = ("accepted", "edited")
CURATED_SUFFIX = " · curated"
# DiversityMetrics field -> the column the table shows it under, in this order.
METRIC_COLUMNS: dict[str, str] = {
    "n": "pairs",
    "unique_inputs": "unique inputs",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "avg_input_len": "input words",
    "avg_output_len": "output words",
    "dispersion": "dispersion",
    "near_duplicate_share": "near-duplicates",
    "label_entropy": "label balance",
}
METRIC_NOTES = (
    "unique inputs: share of distinct inputs · distinct-n: distinct n-grams ÷ all n-grams of the "
    "inputs · words: average lengths · dispersion: mean pairwise cosine distance of the input "
    "embeddings (higher is more spread) · near-duplicates: share of inputs whose nearest "
    "neighbour has cosine ≥ 0.95 · label balance: label entropy ÷ its maximum (1 = even)."
)

Value = int | float | None
TextPair = tuple[str, str]


# ----------------------------------------------------------------------------- baseline runs


@dataclass(frozen=True, slots=True)
class BaselineRuns:
    """A task's baseline runs per kind (newest first, as the workspace lists them), each with the
    label its picker shows."""

    by_kind: Mapping[str, tuple[PairRun, ...]]
    labels: Mapping[int, str]  # run id -> "#7 · llm · when · 30 pairs, 12 curated"

    @property
    def newest(self) -> PairRun | None:
        """The most recently created run of any kind (the one whose job the page follows)."""
        every = (r for rs in self.by_kind.values() for r in rs)
        return max(every, key=lambda r: r.id, default=None)

    def __bool__(self) -> bool:
        return any(self.by_kind.values())


def run_label(run: PairRun, counts: Mapping[str, int]) -> str:
    """How a run reads in a picker: id, LLM, date, pairs and how many of them are curated."""
    total = sum(counts.values())
    curated = sum(counts.get(s, 0) for s in CURATED)
    return f"#{run.id} · {run.llm or '?'} · {run.created_at} · {total} pairs, {curated} curated"


def list_baseline_runs(ws: Workspace, task_id: int) -> BaselineRuns:
    """Every baseline run of the task (direct and SELF-GUIDE), labelled with its pair counts."""
    by_kind = {kind: tuple(ws.pair_runs(task_id, kind)) for kind in BASELINES}
    labels = {
        r.id: run_label(r, ws.status_counts(run_id=r.id)) for rs in by_kind.values() for r in rs
    }
    return BaselineRuns(by_kind, labels)


# ----------------------------------------------------------------------------- the sets


@dataclass(frozen=True, slots=True)
class RunDrops:
    """Why a baseline run's work units gave no pair: reason -> count, most frequent first."""

    kind: str
    run_id: int
    reasons: tuple[tuple[str, int], ...]

    @property
    def text(self) -> str:
        """ "duplicate 4, unparsable 1", or "none"."""
        return ", ".join(f"{reason} {count}" for reason, count in self.reasons) or "none"


@dataclass(frozen=True, slots=True)
class ComparisonSet:
    """One set the metrics table measures: its name ("rebase", "direct · curated", "retrieved")
    and its (input, output) pairs, which may be empty (a curated set with nothing curated)."""

    name: str
    items: tuple[TextPair, ...]


@dataclass(frozen=True, slots=True)
class MapGroups:
    """The shared map's input: texts per group, one id per text (pair ids for pairs,
    "examples:0", "retrieved:dataset/config/row"), and the outputs of the points that are not
    pairs (pairs keep theirs)."""

    texts: Mapping[str, tuple[str, ...]]
    ids: Mapping[str, tuple[str, ...]]
    outputs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SelectedPoint:
    """A point a click, box or lasso selected on the map: one row of the selection table."""

    origin: str
    input: str
    output: str
    status: str  # the pair's curation status; "" for examples and retrieved rows
    id: str
    is_pair: bool


@dataclass(frozen=True, slots=True)
class MapSelection:
    """The selected points, in map order."""

    points: tuple[SelectedPoint, ...]

    def __len__(self) -> int:
        return len(self.points)

    @property
    def pair_ids(self) -> tuple[str, ...]:
        """The ids of the selected points that are pairs (what the Transform page can curate)."""
        return tuple(p.id for p in self.points if p.is_pair)

    def columns(self) -> dict[str, list[str]]:
        """The selection table, column by column: origin, input, output, status, id."""
        return {
            "origin": [p.origin for p in self.points],
            "input": [p.input for p in self.points],
            "output": [p.output for p in self.points],
            "status": [p.status for p in self.points],
            "id": [p.id for p in self.points],
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """What one task's comparison is made of: its examples, the rows its newest retrieval run
    keeps, and the pairs per origin (rebase, each chosen baseline run, manual), with why the
    chosen runs dropped pairs."""

    examples: tuple[Example, ...]
    retrieved: tuple[ScoredRow, ...]
    pairs: Mapping[str, tuple[Pair, ...]]  # origin -> pairs, in PAIR_ORIGINS order
    runs: Mapping[str, int]  # baseline kind -> the run compared
    drops: tuple[RunDrops, ...]

    @property
    def has_rebase(self) -> bool:
        return bool(self.pairs.get("rebase"))

    @property
    def is_empty(self) -> bool:
        """No pair of any origin and no retrieved row: nothing to measure or map."""
        return not self.retrieved and not any(self.pairs.values())

    def sets(self, *, curated: bool = True) -> tuple[ComparisonSet, ...]:
        """The measured sets: retrieved rows (if any), then each origin that has pairs, each
        followed by its curated part (accepted + edited pairs) when `curated`."""
        out = []
        if self.retrieved:
            out.append(ComparisonSet("retrieved", tuple(input_output(r) for r in self.retrieved)))
        for origin, pairs in self.pairs.items():
            if not pairs:
                continue
            out.append(ComparisonSet(origin, tuple((p.input, p.output) for p in pairs)))
            if curated:
                kept = tuple((p.input, p.output) for p in pairs if p.status in CURATED)
                out.append(ComparisonSet(origin + CURATED_SUFFIX, kept))
        return tuple(out)

    def map_groups(self) -> MapGroups:
        """The map's groups: the task's examples, the retrieved rows, then every origin's pairs."""
        texts: dict[str, tuple[str, ...]] = {"examples": tuple(e.input for e in self.examples)}
        ids: dict[str, tuple[str, ...]] = {
            "examples": tuple(f"examples:{i}" for i in range(len(self.examples)))
        }
        outputs = {f"examples:{i}": e.output for i, e in enumerate(self.examples)}
        if self.retrieved:
            split = [input_output(r) for r in self.retrieved]
            texts["retrieved"] = tuple(text for text, _ in split)
            ids["retrieved"] = tuple(
                f"retrieved:{r.dataset}/{r.config}/{r.row_id}" for r in self.retrieved
            )
            outputs.update(zip(ids["retrieved"], (out for _, out in split), strict=True))
        for origin, pairs in self.pairs.items():
            if pairs:
                texts[origin] = tuple(p.input for p in pairs)
                ids[origin] = tuple(p.id for p in pairs)
        return MapGroups(texts, ids, outputs)

    def selection(
        self, projection: Projection, points: Sequence[Mapping[str, Any]]
    ) -> MapSelection:
        """The points of a map selection event (see `selected_indices`), with each point's output
        and, for pairs, its status."""
        by_id = {p.id: p for pairs in self.pairs.values() for p in pairs}
        outputs = self.map_groups().outputs
        chosen = []
        for i in selected_indices(points, projection):
            point_id = projection.point_id[i]
            pair = by_id.get(point_id)
            chosen.append(
                SelectedPoint(
                    origin=projection.origin[i],
                    input=projection.text[i],
                    output=pair.output if pair else outputs.get(point_id, ""),
                    status=pair.status if pair else "",
                    id=point_id,
                    is_pair=pair is not None,
                )
            )
        return MapSelection(tuple(chosen))


def build_comparison(ws: Workspace, task: TaskRecord, chosen_runs: Mapping[str, int]) -> Comparison:
    """Load a task's comparison: its ReBase pairs, the pairs of the chosen baseline run per kind
    (kind -> run id), its manual pairs (when there are some), the rows its newest retrieval run
    keeps, and the failure reasons of the chosen runs."""
    unknown = set(chosen_runs) - set(BASELINES)
    if unknown:
        raise InputError(
            f"Baseline runs are chosen per kind {BASELINES}; got {sorted(unknown)}. "
            "Pass a mapping such as {'direct': run_id}."
        )
    everything = ws.pairs(task_id=task.id)
    pairs: dict[str, tuple[Pair, ...]] = {
        "rebase": tuple(p for p in everything if p.origin == "rebase")
    }
    for kind, run_id in chosen_runs.items():
        pairs[kind] = tuple(ws.pairs(run_id=run_id))
    manual = tuple(p for p in everything if p.origin == "manual")
    if manual:
        pairs["manual"] = manual
    retrieval_runs = ws.retrieval_runs(task.id)
    retrieved = tuple(ws.kept_rows(retrieval_runs[0].id)) if retrieval_runs else ()
    drops = []
    for kind, run_id in chosen_runs.items():
        reasons = Counter(f.failure.reason for f in ws.failures(run_id))
        drops.append(RunDrops(kind, run_id, tuple(reasons.most_common())))
    return Comparison(task.task.examples, retrieved, pairs, dict(chosen_runs), tuple(drops))


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class MetricCard:
    """One headline number: an origin's distinct bigrams, with its difference from ReBase."""

    label: str
    value: str
    delta: str | None
    help: str


@dataclass(frozen=True, slots=True)
class MetricsTable:
    """The metrics of every set, one row per set (an empty set has only its count, 0)."""

    sets: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]

    def number_formats(self) -> dict[str, str]:
        """printf formats per column: counts as integers, the rest with three decimals."""
        return {c: "%d" if c == METRIC_COLUMNS["n"] else "%.3f" for c in self.columns}

    def to_json_dict(self) -> dict[str, dict[str, Value]]:
        """set -> column -> value (None where a set has no such number)."""
        return {
            name: dict(zip(self.columns, row, strict=True))
            for name, row in zip(self.sets, self.rows, strict=True)
        }

    def to_csv(self) -> str:
        """A header row ("set", then the columns) and one row per set; missing numbers empty."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["set", *self.columns])
        for name, row in zip(self.sets, self.rows, strict=True):
            writer.writerow([name, *("" if v is None else v for v in row)])
        return buffer.getvalue()


def metrics_table(metrics: Mapping[str, DiversityMetrics | None]) -> MetricsTable:
    """The table of `METRIC_COLUMNS` for every set (None stands for an empty set)."""
    rows = []
    for m in metrics.values():
        data = m.to_json_dict() if m is not None else {"n": 0}
        rows.append(tuple(data.get(f) for f in METRIC_COLUMNS))
    return MetricsTable(tuple(metrics), tuple(METRIC_COLUMNS.values()), tuple(rows))


def headline_cards(metrics: Mapping[str, DiversityMetrics | None]) -> tuple[MetricCard, ...]:
    """A card per pair origin that was measured (not the retrieved rows or the curated parts):
    its distinct bigrams and, for the baselines, the difference from ReBase."""
    base = metrics.get("rebase")
    cards = []
    for origin in PAIR_ORIGINS:
        m = metrics.get(origin)
        if m is None:
            continue
        delta = None
        if base is not None and origin != "rebase":
            delta = f"{m.distinct_2 - base.distinct_2:+.3f} vs ReBase"
        cards.append(
            MetricCard(
                label=f"{origin}: distinct bigrams",
                value=f"{m.distinct_2:.3f}",
                delta=delta,
                help=f"{m.n} pairs; unique inputs {m.unique_inputs:.0%}",
            )
        )
    return tuple(cards)


# ----------------------------------------------------------------------------- figures and export


@dataclass(frozen=True, slots=True)
class DistributionFigures:
    """The length histograms (when any origin has pairs) and the label bars (when any measured
    set looks like a small label set)."""

    input_lengths: go.Figure | None
    output_lengths: go.Figure | None
    labels: go.Figure | None

    def named(self) -> dict[str, go.Figure]:
        """name -> figure for the ones drawn (the export's file names)."""
        figures = {
            "input_lengths": self.input_lengths,
            "output_lengths": self.output_lengths,
            "labels": self.labels,
        }
        return {name: fig for name, fig in figures.items() if fig is not None}


def distribution_figures(
    comparison: Comparison, metrics: Mapping[str, DiversityMetrics | None]
) -> DistributionFigures:
    """Input and output lengths per origin, and the label shares of every labelled set."""
    with_pairs = {o: ps for o, ps in comparison.pairs.items() if ps}
    inputs = {o: [p.input for p in ps] for o, ps in with_pairs.items()}
    outputs = {o: [p.output for p in ps] for o, ps in with_pairs.items()}
    labelled = {k: m for k, m in metrics.items() if m is not None and m.label_distribution}
    return DistributionFigures(
        input_lengths=length_figure(inputs, title="Input length in words") if inputs else None,
        output_lengths=length_figure(outputs, title="Output length in words") if inputs else None,
        labels=label_figure(labelled) if labelled else None,
    )


def comparison_zip(table: MetricsTable, figures: Mapping[str, go.Figure]) -> bytes:
    """The comparison as one file: metrics.csv, metrics.json and every figure as a standalone
    HTML page (plotly.js inside, so it opens offline)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metrics.csv", table.to_csv())
        archive.writestr("metrics.json", json.dumps(table.to_json_dict(), indent=2))
        for name, fig in figures.items():
            archive.writestr(f"{name}.html", fig.to_html(include_plotlyjs=True, full_html=True))
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class PngExport:
    """A figure as PNG bytes, or why there are none (kaleido missing, or it failed)."""

    data: bytes | None
    note: str = ""


def figure_png(figure: go.Figure) -> PngExport:
    """Render a figure to PNG with kaleido, which is optional: without it (or when it fails) the
    note says so and points at the HTML export, whose camera button saves a PNG."""
    if importlib.util.find_spec("kaleido") is None:
        return PngExport(
            None,
            "PNG export needs the `kaleido` package, which is not installed. The HTML charts open "
            "offline in any browser; their camera button saves a PNG.",
        )
    try:
        return PngExport(figure.to_image(format="png"))
    except (ValueError, RuntimeError) as exc:
        return PngExport(None, f"PNG export failed ({exc}); use the HTML file.")
