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

Modules: `config` (TrainConfig, its form labels and defaults), `prompt` (prompt text and token
features), `data` (choosing and reading training pairs, the run fingerprint), `student` (resolving
and loading students), `runs` (run folders, cards and listing), `train` (the Trainer run), `jobs`
(the job spec `TrainRun`, its handler, launching, watching and resuming a run).
"""

from __future__ import annotations

from rebase_core.finetune.config import (
    DEFAULT_STATUSES,
    DEFAULT_STUDENT,
    FORM_GROUPS,
    MIN_TRAIN_PAIRS,
    OptionInfo,
    TrainConfig,
    total_steps,
)
from rebase_core.finetune.data import PairChoice, choose_pairs, load_training_pairs
from rebase_core.finetune.jobs import (
    RESUMABLE_STATUSES,
    RunState,
    TrainPlan,
    TrainRun,
    check_launch,
    latest_train_job,
    plan_training,
    request_stop,
    resume_spec,
    run_state,
    run_train_job,
    start_training,
    train_attempts,
    train_job_key,
    without_held_out,
)
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
    run_info,
    slugify,
    task_from_param,
    write_run_card,
)
from rebase_core.finetune.student import Student, load_student, resolve_student
from rebase_core.finetune.train import TrainResult, finetune

__all__ = [
    "COT_PREFIX",
    "DEFAULT_STATUSES",
    "DEFAULT_STUDENT",
    "FORM_GROUPS",
    "IGNORE_INDEX",
    "MIN_TRAIN_PAIRS",
    "PROMPT_FORMAT",
    "RESUMABLE_STATUSES",
    "OptionInfo",
    "PairChoice",
    "RunInfo",
    "RunState",
    "Student",
    "TrainConfig",
    "TrainPlan",
    "TrainResult",
    "TrainRun",
    "build_features",
    "check_launch",
    "choose_pairs",
    "default_run_dir",
    "end_token",
    "estimate_seconds",
    "finetune",
    "format_completion",
    "format_prompt",
    "latest_train_job",
    "list_runs",
    "load_student",
    "load_training_pairs",
    "model_card",
    "plan_training",
    "prepare_tokenizer",
    "read_progress",
    "read_run_card",
    "request_stop",
    "resolve_student",
    "resume_spec",
    "run_info",
    "run_state",
    "run_train_job",
    "slugify",
    "start_training",
    "task_from_param",
    "total_steps",
    "train_attempts",
    "train_job_key",
    "without_held_out",
    "write_run_card",
]
