"""Training a retriever from signals: ranker (ListMLE), then the query side (KL), then the
held-out figures, written as one retriever folder (`versions.py`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.retriever.evaluate import evaluate_retriever
from rebase_core.retriever.query import DistillInstance, QueryConfig, train_query_side
from rebase_core.retriever.ranker import RankerConfig, Scorer, ranker_rows, train_ranker
from rebase_core.retriever.signals import (
    RankingSignal,
    resolve_signals,
    signal_counts,
    split_by_task,
)
from rebase_core.retriever.versions import RetrieverInfo, load_retriever, save_retriever, write_info
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """How a retriever trains (each stage's own config inside)."""

    ranker: RankerConfig = field(default_factory=RankerConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    extra_candidates: int = 20  # base-retrieved rows added to each signal's list for the KL
    heldout_share: float = 0.2  # tasks kept out for the held-out figures (with >= 5 tasks)
    with_yield: bool = True  # measure yield@100 in the held-out figures
    ranker_depth: int = 200  # base rows the ranker reranks in the held-out figures (0: skip)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.heldout_share < 1.0:
            raise InputError(f"heldout_share must lie in [0, 1), got {self.heldout_share}.")
        if self.extra_candidates < 0:
            raise InputError(f"extra_candidates must be 0 or more, got {self.extra_candidates}.")


def distill_instances(
    store: Datastore,
    signals: Sequence[RankingSignal],
    ranked_idxs: Sequence[Sequence[int]],
    embedder: Embedder,
    scorer: Scorer,
    extra: int,
    *,
    options: RetrievalOptions | None = None,
    on_progress: ProgressFn = no_progress,
) -> list[DistillInstance]:
    """Each signal's candidates (its ranked rows and the base's next best `extra` rows), with
    the scorer's score of every one."""
    out = []
    for i, (signal, idxs) in enumerate(zip(signals, ranked_idxs, strict=True)):
        rows = list(idxs)
        if extra:
            opts = replace(options or RetrievalOptions(), top_k=len(rows) + extra)
            found = retrieve(store, signal.task, embedder, opts).row_idxs
            ranked = set(idxs)
            rows += [r for r in found if r not in ranked][:extra]
        targets = scorer.score(signal.task, ranker_rows(store, rows))
        out.append(DistillInstance(signal.task, tuple(rows), tuple(float(t) for t in targets)))
        on_progress(Progress(i + 1, len(signals), "scoring candidates with the ranker"))
    return out


def train_retriever(
    store: Datastore,
    signals: Sequence[RankingSignal],
    embedder: Embedder,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    heldout: Sequence[RankingSignal] | None = None,
    signal_files: Sequence[str] = (),
    options: RetrievalOptions | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> RetrieverInfo:
    """Train a ranker on the signals, distil the query side from it, save the folder, and
    measure it on the held-out signals (given, or `config.heldout_share` of the tasks)."""
    config = config or TrainConfig()
    out = Path(out_dir).expanduser()
    if out.exists():
        raise InputError(f"{out} already exists; choose another --out folder or delete it.")
    if store.embedder_name != embedder.name:
        raise InputError(
            f"The datastore was built with {store.embedder_name!r}, not {embedder.name!r}."
        )
    resolve_signals(store, [*signals, *(heldout or ())])  # every row exists, before any work
    if heldout is None:
        train, held = split_by_task(signals, config.heldout_share, seed=config.seed)
    else:
        train, held = list(signals), list(heldout)
    if not train:
        raise InputError("No training signals left after the held-out split; give more tasks.")
    started = time.perf_counter()

    def stage(name: str, lo: float, hi: float) -> ProgressFn:
        def report(p: Progress) -> None:
            frac = p.fraction if p.fraction is not None else 0.0
            on_progress(Progress(int(100 * (lo + (hi - lo) * frac)), 100, f"{name}: {p.message}"))

        return report

    idxs = resolve_signals(store, train)
    lists = [(s.task, ranker_rows(store, i)) for s, i in zip(train, idxs, strict=True)]
    ranker, ranker_s = train_ranker(
        lists,
        replace(config.ranker, seed=config.seed),
        on_progress=stage("ranker", 0.0, 0.5),
        should_stop=should_stop,
    )
    t0 = time.perf_counter()
    instances = distill_instances(
        store,
        train,
        idxs,
        embedder,
        ranker,
        config.extra_candidates,
        options=options,
        on_progress=stage("candidates", 0.5, 0.6),
    )
    candidates_s = time.perf_counter() - t0
    weights = (options or RetrievalOptions()).weights
    query_map, query_s, kl = train_query_side(
        store,
        instances,
        embedder,
        replace(config.query, seed=config.seed),
        weights=weights,
        on_progress=stage("query side", 0.6, 0.9),
        should_stop=should_stop,
    )
    info = RetrieverInfo(
        path=out,
        base_embedder=embedder.name,
        dim=embedder.dim,
        store=str(store.path),
        signal_files=tuple(signal_files),
        signal_counts=signal_counts([*train, *held]),
        train_instances=len(train),
        heldout_instances=len(held),
        training_seconds={
            "ranker": round(ranker_s, 2),
            "candidates": round(candidates_s, 2),
            "query": round(query_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        threads=config.ranker.threads,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config={**asdict(config), "final_kl": kl},
    )
    save_retriever(info, query_map, ranker)
    if held and not should_stop():
        trained = load_retriever(out)
        figures = evaluate_retriever(
            store,
            held,
            embedder,
            trained.query_embedder(embedder),
            ranker=ranker if config.ranker_depth else None,
            ranker_depth=config.ranker_depth,
            with_yield=config.with_yield,
            options=options,
            on_progress=stage("held-out figures", 0.9, 1.0),
            should_stop=should_stop,
        )
        info = replace(info, heldout=figures.to_json_dict())
        write_info(info)
    on_progress(Progress(100, 100, f"saved {out}"))
    return info
