"""Runs: typed specs of the background work a page or the CLI starts, and one way to start,
find and resume any of them.

A spec is a frozen record that says what a job does (`kind`, a handler in `jobs.JOB_KINDS`),
names its job key (one active job per key) and serialises itself into the job's params (and
back, so a stopped job resumes from its own folder). Specs that make pairs (a transform, a
baseline) also own a workspace pair run: `start_pair_run` creates the run, starts its job and
links the two, and `pair_run_job` finds the job of any run — the page that shows a run needs
no key of its own. Job handlers of those specs write through one `PairSink`.

The specs live beside their handlers (`transform.TransformRun`, `transform.PlanRun`,
`synthesize.BaselineRun`, `finetune.TrainRun`, `evaluate.EvaluateRun`); this module holds what
they share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from rebase_core import jobs
from rebase_core.errors import InputError, JobError
from rebase_core.settings import Settings
from rebase_core.types import Failure, Pair, Task

if TYPE_CHECKING:
    from rebase_core.llm import LLM
    from rebase_core.workspace import PairRun, Workspace


class RunSpec(Protocol):
    """What every run spec offers."""

    kind: ClassVar[str]  # the job kind (a handler in jobs.JOB_KINDS)

    def job_key(self) -> str: ...

    def to_params(self) -> dict[str, Any]: ...


class PairRunSpec(RunSpec, Protocol):
    """A run that writes pairs into a workspace pair run."""

    @property
    def task_id(self) -> int: ...

    @property
    def pair_run(self) -> int: ...  # 0 until the run exists in the workspace

    @property
    def run_kind(self) -> str: ...  # the pair run's kind: transform | direct | self-guide

    @property
    def llm_spec(self) -> str: ...

    @property
    def prompt_version(self) -> str: ...

    def for_run(self, pair_run: int) -> Self: ...


@dataclass(frozen=True, slots=True)
class LLMRef:
    """The LLM a job builds in its own process: provider spec, base URL, provider options.
    Never a key (keys reach the job through its environment)."""

    spec: str
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.spec:
            raise InputError("No LLM given: pick a provider and model (e.g. local:<model>).")

    def build(self, settings: Settings) -> LLM:
        from rebase_core.llm import get_llm

        return get_llm(self.spec, settings, base_url=self.base_url, **dict(self.options))

    def to_params(self) -> dict[str, Any]:
        """The job params' LLM fields (the names every handler has always read)."""
        return {
            "llm": self.spec,
            "base_url": self.base_url or None,
            "llm_options": dict(self.options),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LLMRef:
        return cls(
            str(params["llm"]),
            params.get("base_url") or None,
            dict(params.get("llm_options") or {}),
        )


# ----------------------------------------------------------------------------- any run


def start_run(settings: Settings, spec: RunSpec) -> jobs.JobStatus:
    """Start the spec's job in the background (or return the active one with its key)."""
    return jobs.start_job(settings, spec.kind, spec.to_params(), key=spec.job_key())


def latest_job(settings: Settings, spec: RunSpec) -> jobs.JobStatus | None:
    """The newest job of the spec's key, whatever its state."""
    return next(iter(jobs.list_jobs(settings, key=spec.job_key())), None)


def resume_job(settings: Settings, job: jobs.JobStatus) -> jobs.JobStatus:
    """Start a stopped job again from its own spec (handlers skip the work already done)."""
    if job.is_active:
        return job
    return jobs.start_job(settings, job.kind, job.params, key=job.key)


# ----------------------------------------------------------------------------- pair runs


def start_pair_run(settings: Settings, ws: Workspace, spec: PairRunSpec) -> PairRun:
    """Create the pair run in the workspace, start the job that fills it, and link the two."""
    run_id = ws.create_pair_run(
        spec.task_id,
        spec.run_kind,
        llm=spec.llm_spec,
        prompt_version=spec.prompt_version,
        params=spec.to_params(),
    )
    job = start_run(settings, spec.for_run(run_id))
    ws.set_pair_run_job(run_id, job.id)
    return ws.get_pair_run(run_id)


def pair_run_job(settings: Settings, run: PairRun) -> jobs.JobStatus | None:
    """The job that fills (or filled) a pair run, or None for a run made without one."""
    if not run.job_id:
        return None
    folder = settings.jobs_dir / run.job_id
    if not (folder / "spec.json").exists():
        return None
    try:
        return jobs.job_status(folder)
    except JobError:
        return None


def resume_pair_run(settings: Settings, ws: Workspace, run: PairRun) -> jobs.JobStatus:
    """Start a stopped pair run's job again; the run remembers the new job."""
    job = pair_run_job(settings, run)
    if job is None:
        raise InputError(f"Run #{run.id} has no job to resume; start a new run instead.")
    new = resume_job(settings, job)
    ws.set_pair_run_job(run.id, new.id)
    return new


class PairSink:
    """What a pair-writing job handler writes through: the run's task, its pairs so far, and
    callbacks that save each new pair (clearing an earlier failure of its work unit) and each
    failure, the moment they happen — a stopped job keeps what it did."""

    def __init__(self, ws: Workspace, task_id: int, pair_run: int) -> None:
        self.ws = ws
        self.task_id = task_id
        self.run_id = pair_run
        self.task: Task = ws.get_task(task_id).task

    def existing(self) -> list[Pair]:
        return self.ws.pairs(run_id=self.run_id)

    def done_keys(self) -> set[str]:
        return self.ws.done_keys(self.run_id)

    def save_pair(self, pair: Pair) -> None:
        self.ws.add_pairs(self.run_id, self.task_id, [pair])
        self.ws.clear_failure(self.run_id, str(pair.extra["key"]))

    def save_failure(self, key: str, failure: Failure) -> None:
        self.ws.add_failure(self.run_id, key, failure)


@contextmanager
def pair_sink(settings: Settings, task_id: int, pair_run: int) -> Iterator[PairSink]:
    """A `PairSink` on the workspace of `settings`, closed when the handler returns."""
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    try:
        yield PairSink(ws, task_id, pair_run)
    finally:
        ws.close()


# Seconds per LLM call measured on the 2-core reference machine (1 thread), for an estimate
# before this workspace has a finished run of its own with that LLM.
MEASURED_SECONDS_PER_CALL = {
    "local:qwen2.5-coder-1.5b-instruct": 23.0,  # 2.6 rows/min, a transform run (issue 16)
    "local:smollm2-135m-instruct": 0.5,  # 1.2-3.1 SELF-GUIDE calls/s
}
PAIR_JOB_KINDS = ("transform", "synthesize")


@dataclass(frozen=True, slots=True)
class CallSpeed:
    """How long one LLM call takes, and where the figure comes from."""

    seconds: float
    source: str  # "your last runs" | "this machine's benchmark"


def call_speed(settings: Settings, llm_spec: str, *, recent: int = 5) -> CallSpeed | None:
    """Seconds per paid LLM call: the median over this workspace's last finished pair runs with
    this LLM (wall time ÷ paid calls), else the figure measured for it here, else None."""
    rates = []
    for job in jobs.list_jobs(settings):  # one scan of the job folders, newest first
        paid = int(job.result.get("paid_calls") or 0)
        if job.kind not in PAIR_JOB_KINDS or job.state != "done" or paid <= 0:
            continue
        if job.params.get("llm") == llm_spec and job.started_at and job.finished_at:
            rates.append((job.finished_at, (job.finished_at - job.started_at) / paid))
    if rates:
        newest = sorted(r for _, r in sorted(rates, reverse=True)[:recent])
        return CallSpeed(newest[len(newest) // 2], "your last runs")
    if llm_spec in MEASURED_SECONDS_PER_CALL:
        return CallSpeed(MEASURED_SECONDS_PER_CALL[llm_spec], "this machine's benchmark")
    return None


def default_row_count(kept: int, speed: CallSpeed | None, *, budget_s: float = 600.0) -> int:
    """How many rows a transform should offer by default: all kept rows up to 200, fewer when
    the LLM is slow enough that a rewrite of each would take over `budget_s` (10 minutes)."""
    cap = 200
    if speed is not None and speed.seconds > 0:
        cap = min(cap, max(10, int(budget_s / speed.seconds)))
    return max(1, min(kept, cap))


def failure_summary(counts: Mapping[str, int]) -> str:
    """'parse: 2, duplicate: 1', or 'none'."""
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"
