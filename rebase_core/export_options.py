"""What the Export page offers: the pairs to export (by status and origin), the formats with their
labels and MIME types, the dataset card split for display, the trained runs and the Hub targets.

Plain records in, plain records out; the writing itself is `rebase_core.export`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rebase_core.evaluate.compare import ORIGIN_LABELS
from rebase_core.finetune import RunInfo
from rebase_core.types import PAIR_ORIGINS, Pair

FORMAT_LABELS = {
    "jsonl": "JSONL",
    "parquet": "Parquet",
    "csv": "CSV",
    "datasets": "datasets folder (zip)",
}
FORMAT_MIME = {
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "datasets": "application/zip",
}


@dataclass(frozen=True, slots=True)
class PairCounts:
    """How many pairs have each status and each origin; `origins`: the origins present, the
    known ones in flow order, then any others by name."""

    by_status: Counter[str]
    by_origin: Counter[str]
    origins: tuple[str, ...]


def pair_counts(pairs: Iterable[Pair]) -> PairCounts:
    """Count the pairs by status and by origin."""
    pairs = list(pairs)
    by_origin = Counter(p.origin for p in pairs)
    present = [o for o in PAIR_ORIGINS if by_origin[o]]
    present += sorted(set(by_origin) - set(PAIR_ORIGINS))
    return PairCounts(Counter(p.status for p in pairs), by_origin, tuple(present))


def select_pairs(
    pairs: Iterable[Pair], statuses: Iterable[str], origins: Iterable[str]
) -> list[Pair]:
    """The pairs whose status and origin are both among those chosen, in their order."""
    statuses, origins = set(statuses), set(origins)
    return [p for p in pairs if p.status in statuses and p.origin in origins]


def split_card(card: str) -> tuple[str, str]:
    """(YAML front matter without its fences, Markdown body) of a dataset card; the front
    matter is "" when the card has none.

    >>> split_card("---\\nlicense: mit\\n---\\n# Title\\n")
    ('license: mit', '\\n# Title\\n')
    """
    if not card.startswith("---"):
        return "", card
    _, front, body = card.split("---", 2)
    return front.strip(), body


def finished_runs(runs: Iterable[RunInfo], task_name: str) -> list[RunInfo]:
    """The runs that finished training, those of the task first (newest first within each)."""
    done = [r for r in runs if r.status == "done"]
    return sorted(done, key=lambda r: r.task_name != task_name)


def run_label(run: RunInfo) -> str:
    """How a run is named in a picker: name, task, data origin and size."""
    origin = ORIGIN_LABELS.get(run.origin, run.origin)
    return f"{run.name} · {run.task_name} · {origin} · {run.n_train:,} pairs"


def model_summary(model_dir: Path) -> str:
    """What a run's model folder holds: "LoRA adapter, 3.1 MB" or "full model, 540.2 MB"."""
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    kind = "LoRA adapter" if (model_dir / "adapter_config.json").exists() else "full model"
    return f"{kind}, {size / 1e6:,.1f} MB"


def hub_targets(n_pairs: int, fmt: str, runs: Sequence[RunInfo]) -> dict[str, str]:
    """What can be pushed to the Hub: "pairs" (when any are chosen) and "run:<name>" per
    finished run, each with its description."""
    targets = {}
    if n_pairs:
        targets["pairs"] = f"the {n_pairs:,} curated pairs ({FORMAT_LABELS.get(fmt, fmt)})"
    for r in runs:
        targets[f"run:{r.name}"] = f"the model of run {r.name}"
    return targets
