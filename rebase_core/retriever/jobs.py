"""Collecting signals and training a retriever as background jobs (`rebase_core.runs`).

`start_run(settings, CollectRun(...))` / `start_run(settings, TrainRetrieverRun(...))`; the
handlers are `run_collect_job` and `run_train_retriever_job` (job kinds `retriever_collect`
and `retriever_train` in `jobs.JOB_KINDS`). Progress and stop requests go through the job's
context, so the page shows an ETA and a stopped collection keeps nothing half-written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rebase_core.errors import InputError
from rebase_core.runs import LLMRef
from rebase_core.settings import Settings


@dataclass(frozen=True, slots=True)
class CollectRun:
    """Teacher rankings for workspace tasks and pseudo-tasks (and, with `curation`, the
    workspace's curation signals), written to one signals file."""

    kind: ClassVar[str] = "retriever_collect"
    store: str
    out: str
    llm: LLMRef | None = None  # None: curation signals only
    task_ids: tuple[int, ...] = ()
    pseudo_tasks: int = 0
    top_n: int = 20
    curation: bool = False
    seed: int = 0

    def job_key(self) -> str:
        return f"retriever_collect:{self.out}"

    def to_params(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "out": self.out,
            "task_ids": list(self.task_ids),
            "pseudo_tasks": self.pseudo_tasks,
            "top_n": self.top_n,
            "curation": self.curation,
            "seed": self.seed,
            **(self.llm.to_params() if self.llm else {}),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CollectRun:
        return cls(
            store=str(params["store"]),
            out=str(params["out"]),
            llm=LLMRef.from_params(params) if params.get("llm") else None,
            task_ids=tuple(int(t) for t in params.get("task_ids") or ()),
            pseudo_tasks=int(params.get("pseudo_tasks") or 0),
            top_n=int(params.get("top_n") or 20),
            curation=bool(params.get("curation")),
            seed=int(params.get("seed") or 0),
        )


@dataclass(frozen=True, slots=True)
class TrainRetrieverRun:
    """Train a retriever folder `out` from signal files."""

    kind: ClassVar[str] = "retriever_train"
    store: str
    signal_files: tuple[str, ...]
    out: str
    config: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig fields to override

    def job_key(self) -> str:
        return f"retriever_train:{self.out}"

    def to_params(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "signal_files": list(self.signal_files),
            "out": self.out,
            "config": dict(self.config),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainRetrieverRun:
        return cls(
            store=str(params["store"]),
            signal_files=tuple(str(p) for p in params.get("signal_files") or ()),
            out=str(params["out"]),
            config=dict(params.get("config") or {}),
        )


def train_config(overrides: Mapping[str, Any]) -> Any:
    """A TrainConfig from a (JSON) mapping: nested `ranker` and `query` mappings allowed."""
    from rebase_core.retriever.query import QueryConfig
    from rebase_core.retriever.ranker import RankerConfig
    from rebase_core.retriever.train import TrainConfig

    values = dict(overrides)
    try:
        ranker = RankerConfig(**dict(values.pop("ranker", {}) or {}))
        query = QueryConfig(**dict(values.pop("query", {}) or {}))
        return TrainConfig(ranker=ranker, query=query, **values)
    except TypeError as exc:
        raise InputError(f"Unknown retriever training option ({exc}).") from exc


def default_train_params(settings: Settings) -> dict[str, Any]:
    """The defaults as a JSON mapping, with the settings' thread count (for a form)."""
    config = train_config(
        {"ranker": {"threads": settings.threads}, "query": {"threads": settings.threads}}
    )
    return asdict(config)


def run_collect_job(params: Mapping[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler of a `CollectRun` (its params)."""
    from rebase_core.datastore import open_datastore
    from rebase_core.embed import get_embedder
    from rebase_core.llm import ResponseCache
    from rebase_core.retriever.curated import curation_signals
    from rebase_core.retriever.pseudo import pseudo_tasks
    from rebase_core.retriever.signals import RankingSignal, write_signals
    from rebase_core.retriever.teacher import TeacherConfig, collect_rankings
    from rebase_core.workspace import Workspace

    spec = CollectRun.from_params(params)
    ws = Workspace(settings.workspace_db)
    store = open_datastore(spec.store, settings)
    try:
        signals: list[RankingSignal] = []
        summary = []
        tasks = [ws.get_task(t).task for t in spec.task_ids]
        if spec.pseudo_tasks:
            tasks += pseudo_tasks(store, spec.pseudo_tasks, seed=spec.seed)
        if tasks:
            if spec.llm is None:
                raise InputError("Teacher rankings need an LLM; pick a provider and model.")
            embedder = get_embedder(store.embedder_name, settings.threads)
            report = collect_rankings(
                store,
                tasks,
                embedder,
                spec.llm.build(settings),
                TeacherConfig(top_n=spec.top_n),
                cache=ResponseCache(settings.llm_cache_db),
                on_progress=ctx.progress,
                should_stop=ctx.should_stop,
            )
            signals += report.signals
            summary.append(report.summary())
        if spec.curation:
            curated = curation_signals(ws)
            signals += curated
            summary.append(f"{len(curated)} curation signals")
        if not signals:
            raise InputError("No signals were collected; see the failures in the job log.")
        if not ctx.should_stop():
            write_signals(signals, Path(spec.out))
        return {"summary": "; ".join(summary), "signals": len(signals), "out": spec.out}
    finally:
        store.close()
        ws.close()


def run_train_retriever_job(
    params: Mapping[str, Any], settings: Settings, ctx: Any
) -> dict[str, Any]:
    """Job handler of a `TrainRetrieverRun` (its params)."""
    from rebase_core.datastore import open_datastore
    from rebase_core.embed import get_embedder
    from rebase_core.retriever.signals import read_signals
    from rebase_core.retriever.train import train_retriever

    spec = TrainRetrieverRun.from_params(params)
    signals = read_signals(list(spec.signal_files))
    store = open_datastore(spec.store, settings)
    try:
        info = train_retriever(
            store,
            signals,
            get_embedder(store.embedder_name, settings.threads),
            spec.out,
            train_config(spec.config),
            signal_files=spec.signal_files,
            on_progress=ctx.progress,
            should_stop=ctx.should_stop,
        )
    finally:
        store.close()
    return {
        "summary": f"trained on {info.train_instances} signals in "
        f"{info.training_seconds.get('total', 0):.0f} s",
        "out": str(info.path),
        "training_seconds": dict(info.training_seconds),
    }
