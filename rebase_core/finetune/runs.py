"""Run folders: the run card and progress file, the saved model's README, and listing runs.

Also what the app needs before a run starts: its folder name and a training-time estimate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune.config import TrainConfig, total_steps
from rebase_core.finetune.data import data_summary, run_fingerprint
from rebase_core.jobs import pid_alive
from rebase_core.settings import Settings
from rebase_core.task import load_task, task_from_dict
from rebase_core.types import Example, Pair, Task


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run folder, as listed on the Finetune page."""

    name: str
    path: Path
    status: str  # running | done | cancelled | failed | interrupted
    task_name: str
    config: Mapping[str, Any]
    n_train: int
    origins: Mapping[str, int]
    global_step: int
    max_steps: int
    last_loss: float | None
    started_at: str
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """The data origin: the only one, or 'mixed'."""
        present = [o for o, n in self.origins.items() if n]
        return present[0] if len(present) == 1 else "mixed" if present else ""

    @property
    def student(self) -> str:
        return str(self.config.get("student", ""))

    @property
    def steps_text(self) -> str:
        """'12/30' (steps done of the run's total), or '12' before the total is known."""
        return f"{self.global_step}/{self.max_steps}" if self.max_steps else str(self.global_step)

    @property
    def metrics_text(self) -> str:
        """Its evaluations in one line: 'test few-shot accuracy 0.620; ...'."""
        parts = []
        for report in self.metrics.values():
            shots = "few" if report.get("few_shot") else "zero"
            test = Path(str(report.get("test", ""))).stem
            score = float(report.get("score", 0))
            parts.append(f"{test} {shots}-shot {report.get('metric')} {score:.3f}")
        return "; ".join(parts)

    def table_row(self) -> dict[str, Any]:
        """Its row in the runs table ('data' is the origin code; the app names it)."""
        return {
            "run": self.name,
            "status": self.status,
            "data": self.origin,
            "pairs": self.n_train,
            "steps": self.steps_text,
            "last loss": self.last_loss,
            "metrics": self.metrics_text,
            "student": self.student,
            "started": self.started_at,
        }

    def expected_steps(self) -> int:
        """The run's total steps: from its card once training started, else counted from its
        data and config."""
        if self.max_steps:
            return self.max_steps
        try:
            return total_steps(self.n_train, TrainConfig.from_dict(self.config))
        except InputError:
            return 0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_run_card(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_run_card(run_dir: Path, card: Mapping[str, Any]) -> None:
    tmp = run_dir / f"run.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(card, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(run_dir / "run.json")


def read_progress(run_dir: Path) -> list[dict[str, Any]]:
    """The progress lines of a run (for the live loss chart); a half-written line is skipped."""
    path = Path(run_dir) / "progress.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def model_card(card: Mapping[str, Any]) -> str:
    """A README.md for the saved model folder, from the run card."""
    cfg = card.get("config", {})
    data = card.get("data", {})
    task = card.get("task", {})
    kind = "LoRA adapter" if cfg.get("method") == "lora" else "fully fine-tuned model"
    origins = ", ".join(f"{o}: {n}" for o, n in data.get("by_origin", {}).items()) or "-"
    sources = ", ".join(data.get("source_datasets", {})) or "-"
    lines = [
        f"# {task.get('name', 'task')}: {kind}",
        "",
        f"Student `{cfg.get('student')}` fine-tuned with ReBase Studio "
        f"(Retrieval Based Distillation, Ge et al. 2024) on {data.get('n_pairs', 0)} pairs.",
        "",
        "## Task",
        "",
        str(task.get("instruction", "")),
        "",
        "## Training",
        "",
        f"- method: {cfg.get('method')} (r {cfg.get('lora_r')}, alpha {cfg.get('lora_alpha')})"
        if cfg.get("method") == "lora"
        else f"- method: {cfg.get('method')}",
        f"- steps: {card.get('global_step')}, final loss: {card.get('final_loss')}",
        f"- learning rate {cfg.get('learning_rate')}, epochs {cfg.get('epochs')}, effective batch "
        f"{int(cfg.get('per_device_batch', 0)) * int(cfg.get('grad_accum', 0))}, "
        f"max length {cfg.get('max_seq_len')}",
        f"- prompt: {card.get('prompt_format')} (few-shot examples in the prompt: "
        f"{cfg.get('with_examples')}); completion-only loss: {cfg.get('completion_only_loss')}",
        f"- data origins: {origins}; source datasets: {sources}",
        f"- trained on {card.get('device')} in {card.get('train_seconds')} s",
        "",
        "Use the same prompt at inference (`rebase_core.finetune.format_prompt`).",
    ]
    return "\n".join(lines) + "\n"


def task_from_param(value: Any) -> Task:
    if isinstance(value, Mapping):
        return task_from_dict(value, source="job params 'task'")
    if isinstance(value, str | Path):
        return load_task(value)
    raise InputError(f"'task' must be a task file path or a task object, got {value!r:.60}.")


def slugify(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(filter(None, keep.split("-")))[:40] or "run"


def default_run_dir(
    settings: Settings, task: Task, pairs: Sequence[Pair | Example], config: TrainConfig
) -> Path:
    """The run folder for this task, data and config: the same inputs give the same folder, so
    starting the same training again resumes it (the app uses it to find a run before it starts)."""
    digest = run_fingerprint(config, data_summary(pairs)["fingerprint"], task)[:8]
    return settings.runs_dir / f"{slugify(task.name)}-{digest}"


def run_info(run_dir: Path) -> RunInfo | None:
    """One run folder as listed (None without a run card): a 'running' run whose process died is
    'interrupted' (resumable from its last checkpoint)."""
    card = read_run_card(run_dir)
    if not card:
        return None
    status = str(card.get("status", ""))
    if status == "running" and not pid_alive(card.get("pid")):
        status = "interrupted"
    rows = read_progress(run_dir)
    metrics = {}
    for report in sorted((run_dir / "evals").glob("*.json")):
        try:
            metrics[report.stem] = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    data = card.get("data", {})
    return RunInfo(
        name=run_dir.name,
        path=run_dir,
        status=status,
        task_name=str(card.get("task", {}).get("name", "")),
        config=card.get("config", {}),
        n_train=int(data.get("n_pairs", 0)),
        origins=data.get("by_origin", {}),
        global_step=int(rows[-1]["step"]) if rows else int(card.get("global_step", 0)),
        max_steps=int(card.get("max_steps", 0)),
        last_loss=float(rows[-1]["loss"]) if rows else card.get("final_loss"),
        started_at=str(card.get("started_at", "")),
        metrics=metrics,
    )


def list_runs(settings: Settings, *, task_name: str | None = None) -> list[RunInfo]:
    """Every run folder under `settings.runs_dir` (only the task's with `task_name`), newest
    first, with its evaluation metrics."""
    root = settings.runs_dir
    if not root.is_dir():
        return []
    runs = [run for run in map(run_info, root.iterdir()) if run is not None]
    if task_name is not None:
        runs = [r for r in runs if r.task_name == task_name]
    runs.sort(key=lambda r: r.started_at, reverse=True)
    return runs


def estimate_seconds(settings: Settings, config: TrainConfig, n_pairs: int) -> float | None:
    """Training time of a new run, from the speed measured by earlier runs of the same student and
    method on this machine (seconds per pair seen, median over runs); None when none ran yet.

    Model loading is not included; sequence length and batch size are assumed alike.
    """
    rates = []
    for run in list_runs(settings):
        cfg = run.config
        if cfg.get("student") != config.student or cfg.get("method") != config.method:
            continue
        rows = read_progress(run.path)
        if not rows:
            continue
        per_step = int(cfg.get("per_device_batch", 1)) * int(cfg.get("grad_accum", 1))
        seen = int(rows[-1]["step"]) * per_step
        elapsed = float(rows[-1].get("elapsed_s") or 0.0)
        if seen > 0 and elapsed > 0:
            rates.append(elapsed / seen)
    if not rates:
        return None
    rate = sorted(rates)[len(rates) // 2]
    per_step = config.per_device_batch * config.grad_accum
    return rate * total_steps(n_pairs, config) * per_step
