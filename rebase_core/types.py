"""Records that cross a stage boundary: frozen dataclasses (JSONL files hold the same fields).

The JSON shapes are the contracts in `shared/design/contracts.md`: change them only by extending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report from a long operation: `done` of `total` units (total None = unknown)."""

    done: int
    total: int | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """The default `on_progress`: report nothing."""


@dataclass(frozen=True, slots=True)
class Example:
    """One few-shot demonstration (or one training pair, before it has provenance)."""

    input: str
    output: str


# Metrics a task can be evaluated with (contracts.md, evaluation report).
METRICS = ("accuracy", "exact_match", "f1", "chrf")


@dataclass(frozen=True, slots=True)
class Task:
    """What the user wants a model for: an instruction and a few examples (method.md, Inputs)."""

    name: str
    instruction: str
    examples: tuple[Example, ...]
    exclude_datasets: tuple[str, ...] = ()
    metric: str | None = None  # one of METRICS; None means "infer from the examples"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "instruction": self.instruction,
            "examples": [{"input": e.input, "output": e.output} for e in self.examples],
            "exclude_datasets": list(self.exclude_datasets),
        }
        if self.metric:
            out["metric"] = self.metric
        return out


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One dataset of the datastore, as shown on the Datastore page."""

    name: str
    description: str
    source: str
    license: str = ""
    keywords: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    n_rows: int = 0
    n_cells: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """A datastore row: every cell as the string that was embedded, in column order."""

    dataset: str
    config: str
    row_id: str
    cells: Mapping[str, str]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.config, self.row_id)


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """A retrieved row with the ReBase score and its three terms (contracts.md, retrieved rows)."""

    dataset: str
    config: str
    row_id: str
    score: float
    input_score: float
    output_score: float
    dataset_score: float
    input_column: str
    output_column: str
    description: str
    row: Mapping[str, str]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.config, self.row_id)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "config": self.config,
            "row_id": self.row_id,
            "score": self.score,
            "input_score": self.input_score,
            "output_score": self.output_score,
            "dataset_score": self.dataset_score,
            "input_column": self.input_column,
            "output_column": self.output_column,
            "description": self.description,
            "row": dict(self.row),
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> ScoredRow:
        return cls(
            dataset=str(d["dataset"]),
            config=str(d.get("config", "default")),
            row_id=str(d["row_id"]),
            score=float(d.get("score", 0.0)),
            input_score=float(d.get("input_score", 0.0)),
            output_score=float(d.get("output_score", 0.0)),
            dataset_score=float(d.get("dataset_score", 0.0)),
            input_column=str(d.get("input_column", "")),
            output_column=str(d.get("output_column", "")),
            description=str(d.get("description", "")),
            row={str(k): str(v) for k, v in dict(d.get("row") or {}).items()},
        )


PAIR_ORIGINS = ("rebase", "direct", "self-guide", "manual")
PAIR_METHODS = ("plan", "rewrite", "rationale")  # how a ReBase pair was made from its row
PAIR_STATUSES = ("pending", "accepted", "rejected", "edited")


@dataclass(frozen=True, slots=True)
class PairSource:
    """Where a pair came from: the datastore row it was written from, and that row's score."""

    dataset: str
    config: str
    row_id: str
    score: float | None = None
    plan: str = ""  # the version of the plan that made the pair (planned pairs only)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "config": self.config,
            "row_id": self.row_id,
            "score": self.score,
        }
        if self.plan:
            out["plan"] = self.plan
        return out

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> PairSource:
        score = d.get("score")
        return cls(
            dataset=str(d["dataset"]),
            config=str(d.get("config", "default")),
            row_id=str(d.get("row_id", "")),
            score=float(score) if score is not None else None,
            plan=str(d.get("plan") or ""),
        )


@dataclass(frozen=True, slots=True)
class Pair:
    """A training pair with provenance (contracts.md, pairs)."""

    id: str
    input: str
    output: str
    origin: str
    status: str = "pending"
    source: PairSource | None = None
    llm: str = ""
    prompt_version: str = ""
    created_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    method: str = ""  # one of PAIR_METHODS for ReBase pairs; "" for the others

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "input": self.input,
            "output": self.output,
            "origin": self.origin,
            "status": self.status,
            "source": self.source.to_json_dict() if self.source else None,
            "llm": self.llm,
            "prompt_version": self.prompt_version,
            "created_at": self.created_at,
        }
        if self.method:
            out["method"] = self.method
        out.update(self.extra)
        return out

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> Pair:
        known = {
            "id",
            "input",
            "output",
            "origin",
            "status",
            "source",
            "llm",
            "prompt_version",
            "created_at",
            "method",
        }
        src = d.get("source")
        source = None
        if isinstance(src, Mapping) and src.get("dataset") is not None:
            source = PairSource.from_json_dict(src)
        return cls(
            id=str(d.get("id", "")),
            input=str(d["input"]),
            output=str(d["output"]),
            origin=str(d.get("origin", "manual")),
            status=str(d.get("status", "pending")),
            source=source,
            llm=str(d.get("llm", "")),
            prompt_version=str(d.get("prompt_version", "")),
            created_at=str(d.get("created_at", "")),
            extra={k: v for k, v in d.items() if k not in known},
            method=str(d.get("method") or ""),
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """A unit of work that produced no pair, with the reason (never dropped silently)."""

    reason: str  # e.g. "parse", "empty", "provider", "filtered", "duplicate"
    detail: str
    source: PairSource | None = None


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Metrics of one model on one held-out set (contracts.md, evaluation report)."""

    metric: str
    score: float
    n: int
    ci95: tuple[float, float]
    per_example: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "score": self.score,
            "n": self.n,
            "ci95": list(self.ci95),
            "per_example": self.per_example,
        }
        out.update(self.extra)
        return out
