"""Training options: the run defaults and `TrainConfig` with its help text (the paper's values).

`total_steps` counts the optimizer steps a config takes on n pairs, as Trainer does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rebase_core.errors import InputError

DEFAULT_STUDENT = "smollm2-135m-instruct"
MIN_TRAIN_PAIRS = 2
DEFAULT_STATUSES = ("accepted", "edited")


def _meta(label: str, text: str) -> dict[str, str]:
    """A field's label (the form's) and help text (the form's tooltip and `--help`)."""
    return {"label": label, "help": text}


# How the app's form groups the options (the student has its own box above them).
FORM_GROUPS: dict[str, tuple[str, ...]] = {
    "Training": ("method", "learning_rate", "epochs", "max_steps", "max_seq_len"),
    "LoRA": ("lora_r", "lora_alpha", "lora_dropout", "target_modules"),
    "Batches and schedule": ("per_device_batch", "grad_accum", "warmup", "weight_decay"),
    "Prompt, loss and machine": (
        "completion_only_loss",
        "with_examples",
        "seed",
        "threads",
        "save_every_steps",
    ),
}


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """One training option as a form shows it: its label, help text and default value."""

    name: str
    label: str
    help: str
    default: Any

    @property
    def default_text(self) -> str:
        return "all epochs" if self.default is None else str(self.default)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one fine-tuning run; the defaults are the paper's (method.md §4)."""

    student: str = field(
        default=DEFAULT_STUDENT,
        metadata=_meta(
            "Student",
            "The model to fine-tune: 'smollm2-135m-instruct' (packaged, converted once) or the "
            "path of a local transformers causal-LM folder.",
        ),
    )
    method: str = field(
        default="lora",
        metadata=_meta(
            "Method",
            "'lora' trains a small adapter (fast, small files); 'full' trains every "
            "weight (slower, larger files, sometimes better).",
        ),
    )
    lora_r: int = field(
        default=8, metadata=_meta("LoRA rank r", "LoRA rank: the adapter's capacity.")
    )
    lora_alpha: int = field(
        default=16, metadata=_meta("LoRA alpha", "LoRA scaling; alpha/r multiplies updates.")
    )
    lora_dropout: float = field(
        default=0.0, metadata=_meta("LoRA dropout", "Dropout inside the LoRA layers.")
    )
    target_modules: str = field(
        default="all-linear",
        metadata=_meta(
            "LoRA target modules",
            "Layers LoRA adapts: 'all-linear' (every attention and MLP projection, not the output "
            "head) or comma-separated module names such as 'q_proj,v_proj'.",
        ),
    )
    learning_rate: float = field(
        default=3e-4, metadata=_meta("Learning rate", "Peak learning rate (linear decay).")
    )
    epochs: float = field(
        default=1.0,
        metadata=_meta(
            "Epochs",
            "Passes over the training pairs; the paper uses 1. With a few hundred pairs or fewer, "
            "more help: 3 epochs over 50 SQuAD pairs doubled a 135M student's F1 (0.17 -> 0.34, "
            "bench/DISTILL_RESULTS.md).",
        ),
    )
    per_device_batch: int = field(
        default=2, metadata=_meta("Batch size", "Pairs per forward pass.")
    )
    grad_accum: int = field(
        default=4,
        metadata=_meta(
            "Gradient accumulation",
            "Forward passes per optimizer step (effective batch = 2 x 4 = 8).",
        ),
    )
    max_seq_len: int = field(
        default=512,
        metadata=_meta(
            "Max length (tokens)",
            "Longest prompt+response in tokens; longer ones lose the start of the prompt. Cost "
            "grows with it, so keep it short on CPU (the paper used 2,048 on a GPU).",
        ),
    )
    max_steps: int | None = field(
        default=None,
        metadata=_meta(
            "Max steps (0 = all epochs)",
            "Stop after this many optimizer steps (None: run all epochs).",
        ),
    )
    warmup: float = field(
        default=0.05,
        metadata=_meta(
            "Warm-up", "Linear warm-up: a fraction of all steps when < 1, else a step count."
        ),
    )
    weight_decay: float = field(default=0.01, metadata=_meta("Weight decay", "AdamW weight decay."))
    completion_only_loss: bool = field(
        default=False,
        metadata=_meta(
            "Completion-only loss",
            "Learn only from the response tokens (the prompt is masked). The paper trains on the "
            "whole text; SELF-GUIDE masks the prompt. Turn it on for small students: with the "
            "whole-text loss a 135M student learnt the prompt's template, not the answers "
            "(bench/DISTILL_RESULTS.md).",
        ),
    )
    with_examples: bool = field(
        default=True,
        metadata=_meta(
            "Few-shot examples in the prompt",
            "Put the task's few-shot examples in every training prompt (the paper does).",
        ),
    )
    seed: int = field(default=3407, metadata=_meta("Seed", "Random seed (the paper's)."))
    threads: int = field(
        default=1,
        metadata=_meta(
            "CPU threads", "CPU threads for torch; 1 is fastest when anything else uses the CPU."
        ),
    )
    save_every_steps: int = field(
        default=50,
        metadata=_meta(
            "Checkpoint every N steps", "Checkpoint every N steps, so a cancelled run can resume."
        ),
    )

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise InputError(f"method must be 'lora' or 'full', got {self.method!r}.")
        for name in ("lora_r", "per_device_batch", "grad_accum", "threads", "save_every_steps"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)!r}.")
        if self.max_seq_len < 16:
            raise InputError(f"max_seq_len must be at least 16 tokens, got {self.max_seq_len}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"max_steps must be a positive number or None, got {self.max_steps}.")
        if not self.learning_rate > 0 or not self.epochs > 0:
            raise InputError("learning_rate and epochs must be positive numbers.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a JSON-like mapping; unknown keys are an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"Unknown training option(s) {unknown}; expected any of {sorted(known)}."
            )
        return cls(**{k: v for k, v in data.items() if v is not None or k == "max_steps"})

    @staticmethod
    def help() -> dict[str, str]:
        """Field name -> help text (for forms and `--help`)."""
        return {f.name: f.metadata.get("help", "") for f in fields(TrainConfig)}

    def options(self) -> dict[str, OptionInfo]:
        """Every option by name, in field order, with this config's values as the defaults (the
        app's form and its table of what the defaults mean)."""
        return {
            f.name: OptionInfo(
                f.name, f.metadata["label"], f.metadata["help"], getattr(self, f.name)
            )
            for f in fields(self)
        }


def total_steps(n_pairs: int, config: TrainConfig) -> int:
    """Optimizer steps a run will take (for the form's estimate), as Trainer counts them."""
    batches = math.ceil(n_pairs / config.per_device_batch)
    per_epoch = max(1, math.ceil(batches / config.grad_accum))
    steps = math.ceil(per_epoch * config.epochs)
    return min(steps, config.max_steps) if config.max_steps else steps
