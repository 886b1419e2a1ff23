"""Stored evaluation reports read back, grouped by test set and lined up as the rows of the
results chart; paired comparisons of two reports.

`ORIGIN_LABELS` is how the app names each data origin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.evaluate.metrics import bootstrap_ci, paired_balanced_difference
from rebase_core.jsonl import read_jsonl
from rebase_core.settings import Settings
from rebase_core.types import EvalReport

logger = logging.getLogger(__name__)


def report_from_json(data: Mapping[str, Any]) -> EvalReport:
    """An EvalReport read back from its JSON form."""
    known = {"metric", "score", "n", "ci95", "per_example"}
    low, high = data.get("ci95") or (0.0, 0.0)
    return EvalReport(
        metric=str(data["metric"]),
        score=float(data["score"]),
        n=int(data.get("n", 0)),
        ci95=(float(low), float(high)),
        per_example=str(data.get("per_example", "")),
        extra={k: v for k, v in data.items() if k not in known},
    )


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One bar of the results chart: a model (untrained or a run) on one test set."""

    label: str
    origin: str  # rebase | direct | self-guide | mixed | "" (untrained)
    trained: bool
    few_shot: bool
    n_train: int
    test: str
    metric: str
    score: float
    ci_low: float
    ci_high: float
    n: int
    model: str
    top_answer: str = ""  # a label task's most given answer, and its share of the rows
    top_share: float = 0.0
    answer_words: float = 0.0  # a QA task's mean answer length, and the gold answers' (words)
    gold_words: float = 0.0


# A model giving one answer to at least this share of a label task's rows mostly learned which
# label to fall back on: its accuracy is near that label's share of the test set.
ONE_ANSWER_SHARE = 0.9


def one_answer_rows(
    rows: Iterable[ComparisonRow], *, share: float = ONE_ANSWER_SHARE
) -> list[ComparisonRow]:
    """The rows of models that gave one answer to at least `share` of their test rows."""
    return [r for r in rows if r.top_answer and r.top_share >= share]


# A QA model whose answers are at least this many times as long as the gold answers is scored
# mostly by F1's partial credit: exact match counts none of the longer answers.
LONG_ANSWER_RATIO = 2.0


def long_answer_rows(
    rows: Iterable[ComparisonRow], *, ratio: float = LONG_ANSWER_RATIO
) -> list[ComparisonRow]:
    """The rows of QA models whose answers run at least `ratio` times the gold answers' length."""
    return [r for r in rows if r.gold_words and r.answer_words >= ratio * r.gold_words]


def stored_reports(settings: Settings, *, task_name: str | None = None) -> list[EvalReport]:
    """Every evaluation report kept in the workspace (runs' `evals/` and `<home>/evals/`)."""
    paths = list((settings.home / "evals").glob("*/*.json"))
    if settings.runs_dir.is_dir():
        paths += list(settings.runs_dir.glob("*/evals/*.json"))
    reports = []
    for path in sorted(paths):
        try:
            report = report_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("skipping unreadable report %s", path)
            continue
        if task_name is None or report.extra.get("task") == task_name:
            reports.append(report)
    return reports


_ORIGIN_ORDER = {"": 0, "self-guide": 1, "direct": 2, "rebase": 3, "mixed": 4}
# How the app names each data origin (pairs, runs and chart bars); "" is the untrained student.
ORIGIN_LABELS = {
    "": "untrained",
    "rebase": "ReBase",
    "direct": "direct synthesis",
    "self-guide": "SELF-GUIDE",
    "manual": "manual",
    "mixed": "mixed",
}


def compare_results(
    reports: Iterable[EvalReport], *, metric: str | None = None
) -> list[ComparisonRow]:
    """A table for the results chart: untrained (zero/few-shot) first, then runs by data origin.

    Reports of the same model on the same test set keep only the newest file's numbers (later
    in `reports` wins). `metric` picks one metric when reports carry several (QA: EM and F1).
    """
    rows: dict[tuple[str, str, bool], ComparisonRow] = {}
    for report in reports:
        extra = report.extra
        name = metric or report.metric
        values = extra.get("metrics", {}).get(name)
        if values is None and name != report.metric:
            continue
        score = float(values["score"]) if values else report.score
        low, high = values["ci95"] if values else report.ci95
        few_shot = bool(extra.get("few_shot", False))
        answers = extra.get("answers") or {}  # the most given answers (at most MAX_LABELS)
        top = max(answers, key=answers.__getitem__) if answers else ""
        row = ComparisonRow(
            label=str(extra.get("label", extra.get("model", ""))),
            origin=str(extra.get("origin", "")),
            trained=bool(extra.get("trained", False)),
            few_shot=few_shot,
            n_train=int(extra.get("n_train", 0)),
            test=Path(str(extra.get("test", ""))).stem,
            metric=name,
            score=score,
            ci_low=float(low),
            ci_high=float(high),
            n=report.n,
            model=str(extra.get("model", "")),
            top_answer=str(top),
            top_share=answers[top] / report.n if answers and report.n else 0.0,
            answer_words=float(extra.get("answer_words", 0.0)),
            gold_words=float(extra.get("gold_words", 0.0)),
        )
        rows[(row.model, row.test, few_shot)] = row
    return sorted(
        rows.values(),
        key=lambda r: (r.test, r.trained, _ORIGIN_ORDER.get(r.origin, 5), r.few_shot, r.label),
    )


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """How much better one evaluation is than another on the same test rows."""

    metric: str
    difference: float  # mean over the shared rows of (a's score - b's score)
    ci_low: float
    ci_high: float
    n: int  # rows both evaluations scored

    @property
    def verdict(self) -> str:
        """'better', 'worse' or 'no clear difference' (the interval holds 0)."""
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "no clear difference"


def _row_scores(report: EvalReport, metric: str) -> dict[tuple[str, str, int], float]:
    """Per-row scores of a report's predictions file, keyed by (input, gold, occurrence)."""
    path = Path(report.per_example)
    if not path.is_file():
        raise InputError(f"The predictions file {path} is gone; evaluate the model again.")
    scores: dict[tuple[str, str, int], float] = {}
    seen: dict[tuple[str, str], int] = {}
    for row in read_jsonl(path):
        value = row.get(metric, row.get("score") if metric == report.metric else None)
        if value is None:
            raise InputError(f"{path} has no {metric!r} scores; pick a metric both reports have.")
        base = (str(row.get("input", "")), str(row.get("gold", "")))
        seen[base] = seen.get(base, 0) + 1
        scores[(*base, seen[base])] = float(value)
    return scores


def paired_difference(
    a: EvalReport, b: EvalReport, *, metric: str | None = None
) -> PairedDifference:
    """Mean per-row difference a - b of `metric` on the test rows both scored, with a 95% paired
    bootstrap interval: resampling rows, not models, so the rows' shared difficulty cancels out
    and the interval is tighter than comparing the two reports' own intervals.

    `balanced_accuracy` is no mean of per-row scores: each resample of the shared rows is scored
    again (the mean of its per-label recalls) for both models."""
    name = metric or a.metric
    balanced = name == "balanced_accuracy"
    row_metric = "accuracy" if balanced else name
    left, right = _row_scores(a, row_metric), _row_scores(b, row_metric)
    shared = [key for key in left if key in right]
    if not shared:
        raise InputError(
            "The two evaluations share no test row; compare evaluations on the same test set."
        )
    if balanced:
        gap, low, high = paired_balanced_difference(
            [key[1] for key in shared], [left[k] for k in shared], [right[k] for k in shared]
        )
        return PairedDifference(name, gap, low, high, len(shared))
    diffs = [left[key] - right[key] for key in shared]
    low, high = bootstrap_ci(diffs)
    return PairedDifference(name, sum(diffs) / len(diffs), low, high, len(diffs))


# ----------------------------------------------------------------------------- reading reports


def report_test(report: EvalReport) -> str:
    """The name of the test set a report scored (its file's stem)."""
    return Path(str(report.extra.get("test", ""))).stem


def tested_sets(reports: Iterable[EvalReport]) -> list[str]:
    """The test sets the reports scored, sorted."""
    return sorted({report_test(r) for r in reports})


def reports_on(reports: Iterable[EvalReport], test: str) -> list[EvalReport]:
    """The reports of one test set (by name)."""
    return [r for r in reports if report_test(r) == test]


def report_metrics(reports: Iterable[EvalReport]) -> list[str]:
    """Every metric the reports carry (extractive QA: exact match and F1), sorted."""
    return sorted({m for r in reports for m in (r.extra.get("metrics") or {r.metric: 0})})


def report_name(report: EvalReport) -> str:
    """How the pickers name an evaluation: '<model> · few-shot'."""
    extra = report.extra
    shots = "few" if extra.get("few_shot") else "zero"
    return f"{extra.get('label', extra.get('model'))} · {shots}-shot"


PREDICTION_COLUMNS = ("input", "gold", "prediction", "extracted", "correct", "score")


def read_predictions(report: EvalReport, *, wrong_only: bool = False) -> list[dict[str, Any]]:
    """The report's per-row predictions (the columns of `PREDICTION_COLUMNS` each row has);
    `wrong_only` keeps the rows scored incorrect."""
    path = Path(report.per_example)
    if not path.is_file():
        raise InputError(f"The predictions file {path} is gone; evaluate the model again.")
    return [
        {c: row[c] for c in PREDICTION_COLUMNS if c in row}
        for row in read_jsonl(path)
        if not (wrong_only and "correct" in row and bool(row["correct"]))
    ]
