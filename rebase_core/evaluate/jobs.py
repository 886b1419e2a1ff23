"""Evaluation as a background job: its spec `EvaluateRun`, its handler, and the evaluations the
Evaluate page starts and watches."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rebase_core import jobs, runs
from rebase_core.errors import InputError
from rebase_core.evaluate.run import evaluate
from rebase_core.finetune import task_from_param
from rebase_core.settings import Settings
from rebase_core.types import Task


@dataclass(frozen=True, slots=True)
class EvaluateRun:
    """Score `model` (a run folder, model folder or student spec) on the first `limit` rows of
    the held-out file `test`; `few_shot` None: as the run was trained (untrained: zero-shot).
    The report goes to `out` (default: the run's `evals/`, else `<home>/evals/<model>/`)."""

    kind: ClassVar[str] = "evaluate"
    task: Task
    model: str
    test: Path
    limit: int | None = None
    few_shot: bool | None = None
    max_new_tokens: int | None = None
    out: Path | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise InputError("The evaluate job needs 'model': a run folder, model folder or spec.")

    def job_key(self) -> str:
        return f"evaluate:{self.model}:{self.test}:{self.limit}:{self.few_shot}"

    @property
    def label(self) -> str:
        """'Evaluating <model> zero-shot' (a run: no prompt style, it uses its own)."""
        return evaluation_label(self.to_params())

    def to_params(self) -> dict[str, Any]:
        return {
            "task": self.task.to_dict(),
            "model": self.model,
            "test": str(self.test),
            "limit": self.limit,
            "few_shot": self.few_shot,
            "max_new_tokens": self.max_new_tokens,
            "out": None if self.out is None else str(self.out),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EvaluateRun:
        """The spec of job params: `task` (path or object), `model`, `test`, optional `limit`,
        `few_shot`, `max_new_tokens`, `out`."""
        if not params.get("model"):
            raise InputError("The evaluate job needs 'model': a run folder, model folder or spec.")
        if not params.get("test"):
            raise InputError("The evaluate job needs 'test': a held-out JSONL file.")
        limit, tokens = params.get("limit"), params.get("max_new_tokens")
        shots = params.get("few_shot")
        return cls(
            task=task_from_param(params.get("task")),
            model=str(params["model"]),
            test=Path(params["test"]),
            limit=int(limit) if limit else None,
            few_shot=None if shots is None else bool(shots),
            max_new_tokens=int(tokens) if tokens else None,
            out=Path(params["out"]) if params.get("out") else None,
        )


def run_evaluate_job(params: Mapping[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler of an `EvaluateRun` (its params): the report, as written."""
    spec = EvaluateRun.from_params(params)
    report = evaluate(
        spec.task,
        spec.model,
        spec.test,
        settings=settings,
        limit=spec.limit,
        few_shot=spec.few_shot,
        max_new_tokens=spec.max_new_tokens,
        out=spec.out,
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    return report.to_json_dict()


def evaluation_runs(
    task: Task,
    test: Path,
    *,
    limit: int | None,
    untrained: str,
    zero_shot: bool,
    few_shot: bool,
    run_dirs: Sequence[Path] = (),
) -> list[EvaluateRun]:
    """The evaluations of one press of Evaluate: the untrained student zero-shot and/or few-shot,
    then each trained run with the prompt it was trained on. Empty when nothing is chosen."""
    student = untrained.strip()
    shots = [s for s, chosen in ((False, zero_shot), (True, few_shot)) if chosen]
    specs = [EvaluateRun(task, student, test, limit, s) for s in shots]
    return specs + [EvaluateRun(task, str(run_dir), test, limit) for run_dir in run_dirs]


def start_evaluations(settings: Settings, specs: Sequence[EvaluateRun]) -> list[jobs.JobStatus]:
    """Start each evaluation in the background (one already running under its key is returned,
    not started twice)."""
    return [runs.start_run(settings, spec) for spec in specs]


def evaluation_label(params: Mapping[str, Any]) -> str:
    """How a job of these params is named while it runs: 'Evaluating <model> few-shot'."""
    model = str(params.get("model", ""))
    name = Path(model).name or model
    shots = params.get("few_shot")
    how = "" if shots is None else " few-shot" if shots else " zero-shot"
    return f"Evaluating {name}{how}"


def evaluation_jobs(
    settings: Settings, *, task_name: str, started: Collection[str] = ()
) -> list[jobs.JobStatus]:
    """The task's evaluation jobs worth showing: those still running and those `started` (ids,
    e.g. in this session), newest first."""
    listed = jobs.list_jobs(settings, kind=EvaluateRun.kind)
    return [
        job
        for job in listed
        if (job.is_active or job.id in started) and _task_name(job.params) == task_name
    ]


def _task_name(params: Mapping[str, Any]) -> str:
    task = params.get("task")
    return str(task.get("name", "")) if isinstance(task, Mapping) else ""
