"""Training as a background job: its spec `TrainRun`, its handler, and what the Fine-tune page
asks of a run: what launching it would do, starting it, one run's live state and its resume.

A run is resumed from its own spec: its newest job's params, else the spec its run card recorded
(a run whose job folder is gone). Starting the same spec again continues from the last
checkpoint, so resuming is `runs.start_run(settings, state.resume)`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from rebase_core import jobs, runs
from rebase_core.errors import InputError
from rebase_core.finetune.config import (
    DEFAULT_STATUSES,
    DEFAULT_STUDENT,
    MIN_TRAIN_PAIRS,
    TrainConfig,
)
from rebase_core.finetune.data import PairChoice, load_training_pairs
from rebase_core.finetune.runs import (
    RunInfo,
    default_run_dir,
    estimate_seconds,
    read_progress,
    read_run_card,
    run_info,
    task_from_param,
    write_run_card,
)
from rebase_core.finetune.student import resolve_student
from rebase_core.finetune.train import finetune
from rebase_core.heldout_split import training_pairs
from rebase_core.settings import Settings
from rebase_core.types import Pair, Task

RESUMABLE_STATUSES = ("cancelled", "interrupted", "failed")


def train_job_key(run_dir: str | Path) -> str:
    """The job key of a run folder: one active training per run."""
    return f"train:{Path(run_dir).name}"


@dataclass(frozen=True, slots=True)
class TrainRun:
    """Fine-tune the student on the pairs of `data` (JSONL files) into the run folder `out_dir`.

    `out_dir` None names the folder from the task and a hash of the inputs, so the same spec
    started again resumes the same run. Only pairs of `statuses` (None: every status) and of
    `origins` (empty: every origin) are trained on.
    """

    kind: ClassVar[str] = "train"
    task: Task
    data: tuple[Path, ...]
    config: TrainConfig = field(default_factory=TrainConfig)
    out_dir: Path | None = None
    statuses: tuple[str, ...] | None = DEFAULT_STATUSES
    origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.data:
            raise InputError("No training data given; pass at least one JSONL file of pairs.")

    def job_key(self) -> str:
        if self.out_dir is not None:
            return train_job_key(self.out_dir)
        blob = json.dumps(self.to_params(), sort_keys=True, default=str)
        return f"train:{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def to_params(self) -> dict[str, Any]:
        return {
            "task": self.task.to_dict(),
            "data": [str(p) for p in self.data],
            "statuses": None if self.statuses is None else list(self.statuses),
            "origins": list(self.origins),
            "config": asdict(self.config),
            "out_dir": None if self.out_dir is None else str(self.out_dir),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, threads: int = 1) -> TrainRun:
        """The spec of job params: `task` (path or object), `data` (path or paths), optional
        `statuses` (default accepted and edited; None: all), `origins`, `config` (TrainConfig
        fields; `threads` when it does not say) and `out_dir`."""
        data = params.get("data")
        paths = [data] if isinstance(data, str | Path) else list(data or [])
        statuses = params.get("statuses", DEFAULT_STATUSES)
        out_dir = params.get("out_dir")
        return cls(
            task=task_from_param(params.get("task")),
            data=tuple(Path(p) for p in paths),
            config=TrainConfig.from_dict({"threads": threads, **(params.get("config") or {})}),
            out_dir=Path(out_dir) if out_dir else None,
            statuses=None if statuses is None else tuple(statuses),
            origins=tuple(params.get("origins") or ()),
        )

    @classmethod
    def from_run_card(cls, run_dir: Path, *, threads: int = 1) -> TrainRun | None:
        """The spec its run card recorded (cards before the spec was kept name their data files
        instead); None when the card does not say where the data is."""
        card = read_run_card(run_dir)
        params = card.get("spec")
        if not isinstance(params, Mapping):
            if not card.get("data_files"):
                return None
            params = {"task": card.get("task"), "data": card["data_files"]}
            params |= {"config": card.get("config", {}), "out_dir": str(run_dir)}
        try:
            return replace(cls.from_params(params, threads=threads), out_dir=run_dir)
        except InputError:
            return None

    def load_pairs(self) -> list[Pair]:
        """The pairs it trains on (read from `data`, filtered by status and origin)."""
        pairs = load_training_pairs(self.data, self.statuses)
        return [p for p in pairs if p.origin in self.origins] if self.origins else pairs


def run_train_job(params: Mapping[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler of a `TrainRun` (its params). The run card keeps the spec (and the data
    files), so the run can be resumed after its job folder is gone."""
    spec = TrainRun.from_params(params, threads=settings.threads)
    pairs = spec.load_pairs()
    out_dir = spec.out_dir or default_run_dir(settings, spec.task, pairs, spec.config)
    result = finetune(
        spec.task,
        pairs,
        out_dir,
        spec.config,
        settings=settings,
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    card = read_run_card(result.run_dir)
    card["data_files"] = [str(p) for p in spec.data]
    card["spec"] = replace(spec, out_dir=result.run_dir).to_params()
    write_run_card(result.run_dir, card)
    return result.to_json_dict()


# ----------------------------------------------------------------------------- launching


@dataclass(frozen=True, slots=True)
class TrainPlan:
    """What starting a run on the chosen pairs would do (the page's estimate and its dialog)."""

    run_dir: Path
    n_pairs: int  # the pairs it trains on (a non-empty input and output)
    by_origin: Mapping[str, int]
    steps: int
    seconds: float | None  # training time at the speed of earlier runs; None before any ran
    existing: str  # status of a run already in `run_dir` (it resumes, or is done); "" if none


def plan_training(
    settings: Settings, task: Task, choice: PairChoice, config: TrainConfig
) -> TrainPlan:
    """The run folder, pair counts, steps and time estimate of training `choice` with `config`."""
    choice = without_held_out(settings, task, choice)
    usable = choice.usable
    run_dir = default_run_dir(settings, task, choice.pairs, config)
    return TrainPlan(
        run_dir=run_dir,
        n_pairs=len(usable),
        by_origin=dict(Counter(p.origin for p in usable)),
        steps=choice.steps(config),
        seconds=estimate_seconds(settings, config, len(usable)) if usable else None,
        existing=str(read_run_card(run_dir).get("status", "")),
    )


def without_held_out(settings: Settings, task: Task, choice: PairChoice) -> PairChoice:
    """The choice less the task's held-out curated pairs, when its split is on (Evaluate tests
    on them, so no run may train on them)."""
    kept = training_pairs(settings, task.name, choice.pairs)
    return choice if len(kept) == len(choice.pairs) else replace(choice, pairs=tuple(kept))


def check_launch(settings: Settings, choice: PairChoice, config: TrainConfig) -> None:
    """Fail now, saying what to do, where the training job would fail later: too few usable
    pairs, or a student that is neither the packaged one nor a model folder."""
    if len(choice.usable) < MIN_TRAIN_PAIRS:
        raise InputError(
            f"Training needs at least {MIN_TRAIN_PAIRS} pairs with an input and an output; "
            f"{len(choice.usable)} match the chosen origins and statuses. Choose more, or accept "
            "more pairs on the Transform page."
        )
    if config.student != DEFAULT_STUDENT:  # the packaged one is converted by the job itself
        resolve_student(config.student, settings)


def start_training(
    settings: Settings, task: Task, choice: PairChoice, config: TrainConfig
) -> jobs.JobStatus:
    """Write the chosen pairs to the run's data file and train on them in the background (the
    run folder of the same task, data and config: an unfinished run resumes)."""
    from rebase_core.export import export_pairs

    choice = without_held_out(settings, task, choice)
    check_launch(settings, choice, config)
    run_dir = default_run_dir(settings, task, choice.pairs, config)
    data = export_pairs(
        choice.pairs, settings.home / "train_data" / f"{run_dir.name}.jsonl", task=task
    )
    spec = TrainRun(task, (data,), config, run_dir, choice.statuses, choice.origins)
    return runs.start_run(settings, spec)


# ----------------------------------------------------------------------------- watching


def latest_train_job(settings: Settings, run_dir: str | Path) -> jobs.JobStatus | None:
    """The newest training job of a run folder, whatever its state."""
    return next(iter(jobs.list_jobs(settings, key=train_job_key(run_dir))), None)


def resume_spec(
    settings: Settings, run_dir: Path, job: jobs.JobStatus | None = None
) -> TrainRun | None:
    """The spec that trains a run on from its last checkpoint: its newest job's (`job`, looked
    up when not given), else the one its run card recorded; None when neither says where the
    run's data is (launch it again instead)."""
    job = job or latest_train_job(settings, run_dir)
    if job is not None:
        try:
            spec = TrainRun.from_params(job.params, threads=settings.threads)
        except InputError:
            spec = None
        if spec is not None:
            return replace(spec, out_dir=run_dir)
    return TrainRun.from_run_card(run_dir, threads=settings.threads)


@dataclass(frozen=True, slots=True)
class RunState:
    """One run as the Fine-tune page watches it: its card (None until training starts), its
    newest job, its progress lines, and the spec that resumes it (only for a stopped run)."""

    name: str
    run: RunInfo | None
    job: jobs.JobStatus | None
    progress: tuple[Mapping[str, Any], ...]
    resume: TrainRun | None = None

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.is_active

    @property
    def status(self) -> str:
        if self.active:
            return "running"
        return self.run.status if self.run else self.job.state if self.job else "?"

    @property
    def step(self) -> int:
        return int(self.progress[-1]["step"]) if self.progress else 0

    @property
    def expected_steps(self) -> int:
        """The run's total: from its card, else its job's progress, else counted (0: unknown)."""
        if self.run is not None and self.run.max_steps:
            return self.run.max_steps
        if self.job is not None and self.job.progress.total:
            return int(self.job.progress.total)
        return self.run.expected_steps() if self.run is not None else 0

    @property
    def stopping(self) -> bool:
        """Cancel was asked: the trainer saves a checkpoint at the end of the step and stops."""
        return self.job is not None and self.active and (self.job.folder / "cancel").exists()

    @property
    def resumable(self) -> bool:
        return not self.active and self.run is not None and self.run.status in RESUMABLE_STATUSES

    def log_tail(self, max_lines: int = 200) -> str:
        """The last lines of its job's log ("" without a job or log)."""
        log = self.job.folder / "log.txt" if self.job is not None else None
        if log is None or not log.is_file():
            return ""
        text = log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-max_lines:])


def run_state(settings: Settings, name: str) -> RunState:
    """The live state of the run folder `name` (it may not exist yet: its job is loading)."""
    run_dir = settings.runs_dir / name
    run = run_info(run_dir)
    job = latest_train_job(settings, run_dir)
    state = RunState(name, run, job, tuple(read_progress(run_dir)))
    if state.resumable:
        return replace(state, resume=resume_spec(settings, run_dir, job))
    return state


def request_stop(job: jobs.JobStatus) -> None:
    """Ask a training job to stop after the current step (it saves a checkpoint first). Only the
    marker: `jobs.cancel_job` would wait for the job to end."""
    (job.folder / "cancel").touch()


def train_attempts(settings: Settings, *, task_name: str | None = None) -> list[str]:
    """Run names of the training jobs (the task's, with `task_name`), newest first, including
    runs without a run card yet (loading the model, or failed before training: a bad student
    folder), so their progress or error can be watched."""
    names = []
    for job in jobs.list_jobs(settings, kind="train"):
        out_dir, task = job.params.get("out_dir"), job.params.get("task")
        if not out_dir:
            continue
        if (
            task_name is not None
            and (task if isinstance(task, Mapping) else {}).get("name") != task_name
        ):
            continue
        names.append(Path(str(out_dir)).name)
    return list(dict.fromkeys(names))
