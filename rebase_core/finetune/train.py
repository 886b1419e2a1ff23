"""The training itself: transformers' Trainer with our features, a progress callback and resume.

See the package docstring for why Trainer; `finetune` is the entry point.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune.config import MIN_TRAIN_PAIRS, TrainConfig, total_steps
from rebase_core.finetune.data import data_summary, run_fingerprint
from rebase_core.finetune.prompt import (
    IGNORE_INDEX,
    PROMPT_FORMAT,
    build_features,
    format_completion,
    format_prompt,
    prepare_tokenizer,
)
from rebase_core.finetune.runs import (
    model_card,
    read_progress,
    read_run_card,
    utc_now,
    write_run_card,
)
from rebase_core.finetune.student import default_device, resolve_student, set_threads
from rebase_core.settings import Settings
from rebase_core.types import Example, Pair, Progress, ProgressFn, Task, no_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a call to `finetune` ended with."""

    run_dir: Path
    status: str  # done | cancelled
    global_step: int
    max_steps: int
    final_loss: float | None
    train_seconds: float
    n_train: int
    model_dir: Path | None = None
    device: str = "cpu"

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["model_dir"] = str(self.model_dir) if self.model_dir else None
        return out


def _collate(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> Any:
            rows = [b[key] + [value] * (width - len(b[key])) for b in batch]
            return torch.tensor(rows, dtype=torch.long)

        return {
            "input_ids": pad("input_ids", pad_id),
            "labels": pad("labels", IGNORE_INDEX),
            "attention_mask": pad("attention_mask", 0),
        }

    return collate


def _load_for_training(base: Path, config: TrainConfig) -> tuple[Any, Any]:
    """The model to train (LoRA-wrapped or not) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(config.seed)  # the LoRA initialisation depends on it
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(base))
    # fp32 master weights everywhere; on a GPU Trainer adds bf16 autocast (bf16 weights would
    # round small AdamW updates away in full fine-tuning).
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        targets: str | list[str] = config.target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in config.target_modules.split(",") if t.strip()]
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            raise InputError(
                f"LoRA target modules {config.target_modules!r} do not fit {base.name}: {exc}"
            ) from exc
    return model, tokenizer


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last)."""
    if not ckpt_dir.is_dir():
        return None
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _trim_progress(run_dir: Path, up_to_step: int) -> None:
    """Drop progress lines past the checkpoint we resume from (they will be redone)."""
    rows = [r for r in read_progress(run_dir) if int(r.get("step", 0)) <= up_to_step]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (run_dir / "progress.jsonl").write_text(text, encoding="utf-8")


def _make_callback(
    run_dir: Path,
    on_progress: ProgressFn,
    should_stop: Callable[[], bool],
    elapsed_before: float,
) -> Any:
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Writes progress.jsonl and turns `should_stop` into save-and-stop."""

        def __init__(self) -> None:
            self.start = time.monotonic()
            self.first_step: int | None = None
            self.stopped = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.first_step = state.global_step
            on_progress(Progress(state.global_step, state.max_steps, "training"))

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if should_stop():
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or "loss" not in logs:
                return
            now = time.monotonic() - self.start
            done_here = state.global_step - (self.first_step or 0)
            eta = now / done_here * (state.max_steps - state.global_step) if done_here else None
            row = {
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "elapsed_s": round(elapsed_before + now, 2),
                "eta_s": round(eta, 1) if eta is not None else None,
            }
            with (run_dir / "progress.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            on_progress(Progress(state.global_step, state.max_steps, f"loss {row['loss']:.4f}"))

    return ProgressCallback()


def finetune(
    task: Task,
    pairs: Sequence[Pair | Example],
    out_dir: Path,
    # TrainConfig is a frozen dataclass, so one shared default instance is safe.
    config: TrainConfig = TrainConfig(),  # noqa: B008
    *,
    settings: Settings | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Fine-tune the student on `pairs`; resumable: call again on the same `out_dir` to continue.

    Pairs with an empty input or output are skipped (and counted in the run card). A finished run
    with the same task, data and config is returned as is; a different one in the same folder is an
    error. `should_stop` is checked after every optimizer step: the run then saves a checkpoint and
    returns with status "cancelled".
    """
    out_dir = Path(out_dir)
    usable = [p for p in pairs if p.input.strip() and p.output.strip()]
    if len(usable) < MIN_TRAIN_PAIRS:
        raise InputError(
            f"Fine-tuning needs at least {MIN_TRAIN_PAIRS} pairs with a non-empty input and "
            f"output, got {len(usable)} (of {len(pairs)}). Accept more pairs on the Curate page "
            "first."
        )
    summary = data_summary(usable)
    summary["skipped_empty"] = len(pairs) - len(usable)
    fingerprint = run_fingerprint(config, summary["fingerprint"], task)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = read_run_card(out_dir)
    if card and card.get("fingerprint") != fingerprint:
        raise InputError(
            f"{out_dir} holds a run with another task, data or config; choose a new folder "
            "(or delete that one) to start a fresh run."
        )
    if card.get("status") == "done" and (out_dir / "model").is_dir():
        logger.info("run %s is already finished", out_dir.name)
        return _result_from_card(out_dir, card)

    set_threads(config.threads)
    device = default_device()
    base = resolve_student(config.student, settings)
    ckpt_dir = out_dir / "checkpoints"
    resume_from = _last_checkpoint(ckpt_dir)
    if resume_from is None:
        (out_dir / "progress.jsonl").unlink(missing_ok=True)
    else:
        _trim_progress(out_dir, int(resume_from.name.split("-")[-1]))
        logger.info("resuming %s from %s", out_dir.name, resume_from.name)
    previous = read_progress(out_dir)
    elapsed_before = float(previous[-1]["elapsed_s"]) if previous else 0.0

    from transformers import PrinterCallback, Trainer

    model, tokenizer = _load_for_training(base, config)
    features = [
        build_features(
            tokenizer,
            format_prompt(task, p.input, with_examples=config.with_examples),
            format_completion(task, p.output),
            max_seq_len=config.max_seq_len,
            completion_only_loss=config.completion_only_loss,
        )
        for p in usable
    ]
    summary["truncated"] = sum(1 for f in features if f["truncated"])
    if summary["truncated"]:
        logger.warning(
            "%d of %d pairs exceed max_seq_len=%d and were cut (prompt start first)",
            summary["truncated"],
            len(features),
            config.max_seq_len,
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    card = {
        **card,
        "name": out_dir.name,
        "status": "running",
        "pid": os.getpid(),
        "fingerprint": fingerprint,
        "task": task.to_dict(),
        "config": asdict(config),
        "student_path": str(base),
        "prompt_format": PROMPT_FORMAT,
        "device": device,
        "data": summary,
        "trainable_params": trainable,
        "total_params": total,
        "versions": _versions(),
        "started_at": card.get("started_at") or utc_now(),
        "updated_at": utc_now(),
    }
    write_run_card(out_dir, card)

    args = _training_args(config, ckpt_dir, device, len(features))
    callback = _make_callback(out_dir, on_progress, should_stop, elapsed_before)
    train_rows = [{k: f[k] for k in ("input_ids", "labels", "attention_mask")} for f in features]
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,  # a list is a map-style dataset
        data_collator=_collate(tokenizer.pad_token_id),
        callbacks=[callback],
    )
    # Trainer prints every log dict to stdout when tqdm is off; stdout is the CLI's result channel.
    trainer.remove_callback(PrinterCallback)
    started = time.monotonic()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except BaseException as exc:
        write_run_card(
            out_dir, {**card, "status": "failed", "error": repr(exc), "updated_at": utc_now()}
        )
        raise
    seconds = elapsed_before + (time.monotonic() - started)
    rows = read_progress(out_dir)
    card.update(
        global_step=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        final_loss=rows[-1]["loss"] if rows else None,
        train_seconds=round(seconds, 2),
        updated_at=utc_now(),
    )
    if callback.stopped and trainer.state.global_step < trainer.state.max_steps:
        card["status"] = "cancelled"
        write_run_card(out_dir, card)
        logger.info("run %s stopped at step %d", out_dir.name, trainer.state.global_step)
        return _result_from_card(out_dir, card)

    model_dir = out_dir / "model"
    tmp = out_dir / f"model.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    card.update(status="done", finished_at=utc_now())
    (tmp / "README.md").write_text(model_card(card), encoding="utf-8")
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.replace(model_dir)
    write_run_card(out_dir, card)
    # A finished run needs no resume state; a full-model checkpoint with its optimizer is ~3x
    # the model's size.
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return _result_from_card(out_dir, card)


def _training_args(config: TrainConfig, ckpt_dir: Path, device: str, n_pairs: int) -> Any:
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=config.per_device_batch,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=_warmup_steps(config, n_pairs),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_every_steps,
        save_total_limit=2,
        seed=config.seed,
        use_cpu=device == "cpu",
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        remove_unused_columns=False,
    )


def _warmup_steps(config: TrainConfig, n_pairs: int) -> int:
    # Trainer rounds a warm-up ratio up, so a 2-step run would spend its first step at lr 0.
    if config.warmup >= 1:
        return int(config.warmup)
    return int(config.warmup * total_steps(n_pairs, config))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "transformers", "peft"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _result_from_card(run_dir: Path, card: Mapping[str, Any]) -> TrainResult:
    return TrainResult(
        run_dir=run_dir,
        status=str(card.get("status", "")),
        global_step=int(card.get("global_step", 0)),
        max_steps=int(card.get("max_steps", 0)),
        final_loss=card.get("final_loss"),
        train_seconds=float(card.get("train_seconds", 0.0)),
        n_train=int(card.get("data", {}).get("n_pairs", 0)),
        model_dir=run_dir / "model" if (run_dir / "model").is_dir() else None,
        device=str(card.get("device", "cpu")),
    )
