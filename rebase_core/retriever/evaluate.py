"""Held-out figures of a retriever: NDCG against teacher rankings, and the yield.

- NDCG@k: a retriever's top k against a held-out signal's ranking, with linear gains (the best
  of n ranked rows gains n, the last 1, unranked rows 0). A retriever that finds good rows the
  teacher never saw (it ranked only the base's top N) is not credited for them, so also:
- pool NDCG@k: how the system orders the teacher's own candidates (its score of each ranked
  row), against the teacher's order: agreement with the teacher, unaffected by new rows.
- yield@100: the share of the task's top 100 rows that the transformation turns into valid,
  grounded pairs with plans (`plan_datasets` with rules only, `transform` in plan mode): no
  LLM call. A reasoning task is planned on its direct-answer form (the examples' final
  answers), since its rationale is written later from the plan's known answer.

Systems: `base` (the store's embedder), `distilled` (with the trained query map) and, when
asked, `ranker` (the base's top rows reranked by the cross-encoder: the teacher's student,
too slow to score a whole store). Means carry 95% bootstrap intervals over tasks, and each
system's paired difference from the base its own interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.retrieval import RetrievalOptions, retrieve, task_vectors
from rebase_core.retriever.ranker import Scorer, ranker_input, ranker_rows
from rebase_core.retriever.signals import RankingSignal, resolve_signals
from rebase_core.task import is_chain_of_thought
from rebase_core.types import Example, Progress, ProgressFn, ScoredRow, Task, no_progress

NDCG_KS = (10, 50)
YIELD_TOP = 100


def ndcg(
    ranked: Sequence[tuple[str, str, str]], reference: Sequence[tuple[str, str, str]], k: int
) -> float:
    """NDCG@k of a ranked list of row keys against a reference order (linear gains)."""
    n = len(reference)
    if n == 0:
        return 0.0
    gains = {key: float(n - i) for i, key in enumerate(reference)}
    dcg = sum(gains.get(key, 0.0) / math.log2(i + 2) for i, key in enumerate(ranked[:k]))
    ideal = sum(float(n - i) / math.log2(i + 2) for i in range(min(k, n)))
    return dcg / ideal


def rebase_row_scores(
    store: Datastore,
    task: Task,
    embedder: Embedder,
    row_idxs: Sequence[int],
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """The ReBase score of given rows (the formula of `retrieval`, for rows of any rank)."""
    tv = task_vectors(task, embedder)
    q = np.stack([tv.m_in, tv.m_out], axis=1)
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty(len(row_idxs), dtype=np.float64)
    for i, idx in enumerate(row_idxs):
        sims = np.asarray(store.vectors[int(store.row_start[idx]) : int(store.row_end[idx])]) @ q
        ds = float(store.dataset_vectors[int(store.row_dataset[idx])] @ tv.instruction)
        out[i] = (w[0] * sims[:, 0].max() + w[1] * sims[:, 1].max() + w[2] * ds) / w.sum()
    return out


def _pool_order(
    keys: Sequence[tuple[str, str, str]], scores: np.ndarray
) -> list[tuple[str, str, str]]:
    """The keys by score, best first; ties keep the reference order (no credit from ties)."""
    return [keys[int(i)] for i in np.argsort(-np.asarray(scores), kind="stable")]


def direct_form(task: Task) -> Task:
    """A reasoning task with its examples' final answers as outputs (what a plan maps to)."""
    if not is_chain_of_thought(task.examples):
        return task
    from rebase_core.task import final_answer

    return replace(
        task, examples=tuple(Example(e.input, final_answer(e.output)) for e in task.examples)
    )


def plan_yield(task: Task, rows: Sequence[ScoredRow]) -> float:
    """Share of the rows that rules-only plans turn into valid, grounded pairs (no LLM call)."""
    if not rows:
        return 0.0
    from rebase_core.llm.fake import FakeLLM
    from rebase_core.transform import TransformConfig, plan_datasets, transform

    task = direct_form(task)
    outcomes = plan_datasets(task, rows, None)
    plans = {o.key: o.plan for o in outcomes if o.status == "valid" and o.plan is not None}
    if not plans:
        return 0.0
    # Plan mode calls no LLM for a direct-answer task; the fake only satisfies the signature.
    result = transform(task, rows, FakeLLM([]), TransformConfig(mode="plan"), plans=plans)
    return len(result.pairs) / len(rows)


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One system's mean of one metric over tasks, its interval, and its paired difference
    from the base (zero for the base itself)."""

    system: str
    metric: str
    mean: float
    ci95: tuple[float, float]
    delta: float
    delta_ci95: tuple[float, float]
    n: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "metric": self.metric,
            "mean": self.mean,
            "ci95": list(self.ci95),
            "delta": self.delta,
            "delta_ci95": list(self.delta_ci95),
            "n": self.n,
        }


@dataclass(frozen=True, slots=True)
class RetrieverEval:
    """Held-out figures: per task, per system, per metric; the summary; retrieval seconds."""

    per_task: tuple[tuple[str, Mapping[str, Mapping[str, float]]], ...]
    summary: tuple[MetricSummary, ...]
    seconds: Mapping[str, float]  # mean retrieval seconds per task, by system

    def figure(self, system: str, metric: str) -> MetricSummary | None:
        return next((m for m in self.summary if (m.system, m.metric) == (system, metric)), None)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "tasks": len(self.per_task),
            "summary": [m.to_json_dict() for m in self.summary],
            "retrieval_seconds": dict(self.seconds),
            "per_task": [
                {"task": name, **{k: dict(v) for k, v in f.items()}} for name, f in self.per_task
            ],
        }


def summarise(
    per_task: Sequence[Mapping[str, Mapping[str, float]]], baseline: str = "base"
) -> list[MetricSummary]:
    """Means with bootstrap intervals, and paired differences from `baseline`."""
    from rebase_core.evaluate.metrics import bootstrap_ci

    if not per_task:
        return []
    out = []
    for system in per_task[0]:
        for metric in per_task[0][system]:
            values = [t[system][metric] for t in per_task]
            base = [t[baseline][metric] for t in per_task] if baseline in per_task[0] else values
            diffs = [v - b for v, b in zip(values, base, strict=True)]
            out.append(
                MetricSummary(
                    system,
                    metric,
                    float(np.mean(values)),
                    bootstrap_ci(values),
                    float(np.mean(diffs)),
                    bootstrap_ci(diffs),
                    len(values),
                )
            )
    return out


def evaluate_retriever(
    store: Datastore,
    signals: Sequence[RankingSignal],
    base: Embedder,
    distilled: Embedder | None = None,
    *,
    ranker: Scorer | None = None,
    ranker_depth: int = 3 * YIELD_TOP,
    with_yield: bool = True,
    options: RetrievalOptions | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> RetrieverEval:
    """NDCG@10/@50 against each signal's ranking and yield@100, per system (module docstring)."""
    if not signals:
        raise InputError("No held-out signals to evaluate on; give a signals file.")
    depth = max(max(NDCG_KS), YIELD_TOP if with_yield else 0)
    options = replace(options or RetrievalOptions(), top_k=depth)
    systems: dict[str, Embedder] = {"base": base}
    if distilled is not None:
        systems["distilled"] = distilled
    per_task: list[tuple[str, dict[str, dict[str, float]]]] = []
    seconds: dict[str, list[float]] = {}
    pools = resolve_signals(store, signals)
    for i, signal in enumerate(signals):
        if should_stop():
            break
        on_progress(Progress(i, len(signals), f"evaluating on {signal.task.name}"))
        reference = [r.key for r in signal.ranking]
        pool = pools[i]
        figures: dict[str, dict[str, float]] = {}
        pool_scores: dict[str, np.ndarray] = {
            name: rebase_row_scores(store, signal.task, embedder, pool, options.weights)
            for name, embedder in systems.items()
        }
        lists: dict[str, Sequence[ScoredRow]] = {}
        for name, embedder in systems.items():
            started = time.perf_counter()
            lists[name] = retrieve(store, signal.task, embedder, options).rows
            seconds.setdefault(name, []).append(time.perf_counter() - started)
        if ranker is not None:
            started = time.perf_counter()
            found = retrieve(store, signal.task, base, replace(options, top_k=ranker_depth)).rows
            scores = ranker.score(signal.task, [ranker_input(r.row, r.description) for r in found])
            order = np.argsort(-scores, kind="stable")[:depth]
            lists["ranker"] = [found[int(j)] for j in order]
            seconds.setdefault("ranker", []).append(time.perf_counter() - started)
            pool_scores["ranker"] = ranker.score(signal.task, ranker_rows(store, pool))
        for name, rows in lists.items():
            keys = [r.key for r in rows]
            figures[name] = {f"ndcg@{k}": ndcg(keys, reference, k) for k in NDCG_KS}
            in_pool = _pool_order(reference, pool_scores[name])
            figures[name].update({f"pool_ndcg@{k}": ndcg(in_pool, reference, k) for k in NDCG_KS})
            if with_yield:
                figures[name][f"yield@{YIELD_TOP}"] = plan_yield(signal.task, rows[:YIELD_TOP])
        per_task.append((signal.task.name, figures))
    on_progress(Progress(len(signals), len(signals), "evaluated"))
    return RetrieverEval(
        per_task=tuple(per_task),
        summary=tuple(summarise([f for _, f in per_task])),
        seconds={k: float(np.mean(v)) for k, v in seconds.items()},
    )


def figures_line(result: RetrieverEval) -> list[str]:
    """One line per system and metric: mean [CI], and the difference from the base [CI]."""
    lines = []
    for m in result.summary:
        line = f"{m.system:10} {m.metric:13} {m.mean:.3f} [{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]"
        if m.system != "base":
            line += f"  vs base {m.delta:+.3f} [{m.delta_ci95[0]:+.3f}, {m.delta_ci95[1]:+.3f}]"
        lines.append(line)
    return lines


def figures_by_system(result: RetrieverEval) -> Mapping[str, Mapping[str, float]]:
    """{system: {metric: mean}} (for a compact table)."""
    out: dict[str, dict[str, float]] = {}
    for m in result.summary:
        out.setdefault(m.system, {})[m.metric] = m.mean
    return out
