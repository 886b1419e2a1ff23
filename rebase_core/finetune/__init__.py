"""Fine-tune a small student on curated pairs: LoRA or full, resumable, with a progress file.

A run is a folder: `run.json` (the run card: config, data counts and origins, timings, status),
`progress.jsonl` (one line per optimizer step: step, epoch, loss, learning_rate, elapsed_s, eta_s),
`checkpoints/` (the last two Trainer checkpoints) and, once finished, `model/` (the LoRA adapter or
the full model, with the tokenizer and a README card).

Why transformers' `Trainer` and not a hand-written loop: resuming needs the optimizer, scheduler,
RNG and data-order state restored exactly, and Trainer already checkpoints all of it; the loop
would be ~150 lines re-implementing that. We keep control where it matters: our own tokenisation
(the prompt is `format_prompt`, shared with evaluation; completion-only loss masks the prompt) and a
callback that writes the progress file and turns `should_stop` into "save a checkpoint and stop".

Modules: `config` (TrainConfig and defaults), `prompt` (prompt text and token features), `data`
(training pairs and the run fingerprint), `student` (resolving and loading students), `runs` (run
folders, cards and listing), `train` (the Trainer run). The job handler lives here: it needs both
`runs` and `train`, and `train` already imports `runs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rebase_core.finetune.config import (
    DEFAULT_STATUSES,
    DEFAULT_STUDENT,
    MIN_TRAIN_PAIRS,
    TrainConfig,
    total_steps,
)
from rebase_core.finetune.data import load_training_pairs
from rebase_core.finetune.prompt import (
    COT_PREFIX,
    IGNORE_INDEX,
    PROMPT_FORMAT,
    build_features,
    end_token,
    format_completion,
    format_prompt,
    prepare_tokenizer,
)
from rebase_core.finetune.runs import (
    RunInfo,
    default_run_dir,
    estimate_seconds,
    list_runs,
    model_card,
    read_progress,
    read_run_card,
    slugify,
    task_from_param,
    write_run_card,
)
from rebase_core.finetune.student import Student, load_student, resolve_student
from rebase_core.finetune.train import TrainResult, finetune
from rebase_core.settings import Settings

__all__ = [
    "COT_PREFIX",
    "DEFAULT_STATUSES",
    "DEFAULT_STUDENT",
    "IGNORE_INDEX",
    "MIN_TRAIN_PAIRS",
    "PROMPT_FORMAT",
    "RunInfo",
    "Student",
    "TrainConfig",
    "TrainResult",
    "build_features",
    "default_run_dir",
    "end_token",
    "estimate_seconds",
    "finetune",
    "format_completion",
    "format_prompt",
    "list_runs",
    "load_student",
    "load_training_pairs",
    "model_card",
    "prepare_tokenizer",
    "read_progress",
    "read_run_card",
    "resolve_student",
    "run_train_job",
    "slugify",
    "task_from_param",
    "total_steps",
]


def run_train_job(params: Mapping[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler: params `task` (path or object), `data` (path or paths), optional `statuses`,
    `origins`, `config` (TrainConfig fields) and `out_dir`.

    Without `out_dir` the run folder is named from the task and a hash of the inputs, so starting
    the same job again resumes the same run.
    """
    task = task_from_param(params.get("task"))
    data = params.get("data")
    paths = [data] if isinstance(data, str | Path) else list(data or [])
    statuses = params.get("statuses", list(DEFAULT_STATUSES))
    pairs = load_training_pairs(paths, statuses)
    origins = params.get("origins")
    if origins:
        pairs = [p for p in pairs if p.origin in origins]
    config = TrainConfig.from_dict({"threads": settings.threads, **(params.get("config") or {})})
    out_dir = params.get("out_dir") or default_run_dir(settings, task, pairs, config)
    result = finetune(
        task,
        pairs,
        Path(out_dir),
        config,
        settings=settings,
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    card = read_run_card(result.run_dir)
    card["data_files"] = [str(p) for p in paths]
    write_run_card(result.run_dir, card)
    return result.to_json_dict()
