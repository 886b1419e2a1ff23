"""`train`: fine-tune the student on a pair file (contracts.md), less the task's held-out
split when it is on in the workspace, as the Fine-tune page trains."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rebase_core.cli._common import stderr_progress
from rebase_core.settings import Settings

if TYPE_CHECKING:
    from rebase_core.types import Pair


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="fine-tune the student on curated pairs")
    parser.add_argument("--task", required=True, type=Path, help="task file (JSON)")
    parser.add_argument(
        "--data", required=True, action="append", type=Path, help="pairs JSONL (repeatable)"
    )
    parser.add_argument("--out", required=True, type=Path, help="run folder (resumes if present)")
    parser.add_argument(
        "--student", default=None, help="'smollm2-135m-instruct' (default) or a model folder"
    )
    parser.add_argument("--method", choices=("lora", "full"), default=None)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--lr", dest="learning_rate", type=float, default=None)
    parser.add_argument("--lora-r", type=int, default=None)
    parser.add_argument("--lora-alpha", type=int, default=None)
    parser.add_argument("--batch-size", dest="per_device_batch", type=int, default=None)
    parser.add_argument("--grad-accum", type=int, default=None)
    parser.add_argument("--max-seq-len", type=int, default=None)
    parser.add_argument("--save-every", dest="save_every_steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--completion-only",
        dest="completion_only_loss",
        action="store_true",
        default=None,
        help="mask the prompt: learn from the response tokens only",
    )
    parser.add_argument(
        "--no-examples",
        dest="with_examples",
        action="store_false",
        default=None,
        help="leave the task's few-shot examples out of the training prompt",
    )
    parser.add_argument(
        "--status",
        default="accepted,edited",
        help="pair statuses to train on, comma-separated, or 'all' (default: accepted,edited; "
        "records without a status count as accepted)",
    )
    parser.add_argument(
        "--include-heldout",
        action="store_true",
        help="also train on the pairs of the task's held-out split (by default, when the split "
        "is on in the workspace, they are left out as the Fine-tune page does: Evaluate tests "
        "on them)",
    )
    parser.set_defaults(handler=_train)


_CONFIG_KEYS = (
    "student",
    "method",
    "max_steps",
    "epochs",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "per_device_batch",
    "grad_accum",
    "max_seq_len",
    "save_every_steps",
    "seed",
    "threads",
    "completion_only_loss",
    "with_examples",
)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.finetune import TrainConfig, finetune, load_training_pairs
    from rebase_core.task import load_task

    task = load_task(args.task)
    statuses = None if args.status == "all" else [s.strip() for s in args.status.split(",")]
    pairs = _without_held_out(
        settings, task.name, load_training_pairs(args.data, statuses), args.include_heldout
    )
    values = {k: getattr(args, k) for k in _CONFIG_KEYS if getattr(args, k) is not None}
    values.setdefault("threads", settings.threads)
    config = TrainConfig.from_dict(values)
    result = finetune(
        task, pairs, args.out, config, settings=settings, on_progress=stderr_progress()
    )
    print(json.dumps(result.to_json_dict(), indent=2))  # noqa: T201 - the command's result
    return 0


def _without_held_out(
    settings: Settings, task_name: str, pairs: list[Pair], include: bool
) -> list[Pair]:
    """The pairs less those of the task's held-out split when it is on in the workspace, as the
    Fine-tune page trains (the Evaluate page scores on them, so a run trained on them would be
    scored on its own training data); all of them with `include`. Says on stderr what it did
    whenever the split is on, so the count trained on is never a surprise."""
    from rebase_core.heldout_split import split_since, training_pairs

    if split_since(settings, task_name) is None:
        return pairs
    kept = training_pairs(settings, task_name, pairs)
    n_held = len(pairs) - len(kept)
    if include:
        sys.stderr.write(
            f"held-out split of task {task_name!r} is on; --include-heldout: training on its "
            f"{n_held} held-out pair(s) too\n"
        )
        return pairs
    sys.stderr.write(
        f"held-out split of task {task_name!r}: {n_held} of {len(pairs)} pair(s) left out "
        "(the Evaluate page tests on them; --include-heldout trains on them too)\n"
    )
    return kept
