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
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.jsonl import read_jsonl
from rebase_core.settings import Settings
from rebase_core.task import is_chain_of_thought, load_task, task_from_dict
from rebase_core.types import Example, Pair, Progress, ProgressFn, Task, no_progress

logger = logging.getLogger(__name__)

DEFAULT_STUDENT = "smollm2-135m-instruct"
MIN_TRAIN_PAIRS = 2
DEFAULT_STATUSES = ("accepted", "edited")
PROMPT_FORMAT = "alpaca-examples-v1"  # bump when format_prompt changes: old runs keep their name
COT_PREFIX = "Let's think step by step."
IGNORE_INDEX = -100  # label value the loss skips


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one fine-tuning run; the defaults are the paper's (method.md §4)."""

    student: str = field(
        default=DEFAULT_STUDENT,
        metadata=_help(
            "The model to fine-tune: 'smollm2-135m-instruct' (packaged, converted once) or the "
            "path of a local transformers causal-LM folder."
        ),
    )
    method: str = field(
        default="lora",
        metadata=_help(
            "'lora' trains a small adapter (fast, small files); 'full' trains every "
            "weight (slower, larger files, sometimes better)."
        ),
    )
    lora_r: int = field(default=8, metadata=_help("LoRA rank: the adapter's capacity."))
    lora_alpha: int = field(default=16, metadata=_help("LoRA scaling; alpha/r multiplies updates."))
    lora_dropout: float = field(default=0.0, metadata=_help("Dropout inside the LoRA layers."))
    target_modules: str = field(
        default="all-linear",
        metadata=_help(
            "Layers LoRA adapts: 'all-linear' (every attention and MLP projection, not the output "
            "head) or comma-separated module names such as 'q_proj,v_proj'."
        ),
    )
    learning_rate: float = field(default=3e-4, metadata=_help("Peak learning rate (linear decay)."))
    epochs: float = field(default=1.0, metadata=_help("Passes over the training pairs."))
    per_device_batch: int = field(default=2, metadata=_help("Pairs per forward pass."))
    grad_accum: int = field(
        default=4,
        metadata=_help("Forward passes per optimizer step (effective batch = 2 x 4 = 8)."),
    )
    max_seq_len: int = field(
        default=512,
        metadata=_help(
            "Longest prompt+response in tokens; longer ones lose the start of the prompt. Cost "
            "grows with it, so keep it short on CPU (the paper used 2,048 on a GPU)."
        ),
    )
    max_steps: int | None = field(
        default=None, metadata=_help("Stop after this many optimizer steps (None: run all epochs).")
    )
    warmup: float = field(
        default=0.05,
        metadata=_help("Linear warm-up: a fraction of all steps when < 1, else a step count."),
    )
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay."))
    completion_only_loss: bool = field(
        default=False,
        metadata=_help(
            "Learn only from the response tokens (the prompt is masked). The paper trains on the "
            "whole text; SELF-GUIDE masks the prompt."
        ),
    )
    with_examples: bool = field(
        default=True,
        metadata=_help(
            "Put the task's few-shot examples in every training prompt (the paper does)."
        ),
    )
    seed: int = field(default=3407, metadata=_help("Random seed (the paper's)."))
    threads: int = field(
        default=1,
        metadata=_help("CPU threads for torch; 1 is fastest when anything else uses the CPU."),
    )
    save_every_steps: int = field(
        default=50, metadata=_help("Checkpoint every N steps, so a cancelled run can resume.")
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


@dataclass(frozen=True, slots=True)
class Student:
    """A loaded causal LM ready for generation (untrained, LoRA-merged or fully trained)."""

    model: Any
    tokenizer: Any
    name: str
    device: str = "cpu"
    with_examples: bool | None = None  # the prompt style it was trained with; None = untrained
    max_seq_len: int | None = None
    run_dir: Path | None = None


# ----------------------------------------------------------------------------- prompt


def format_prompt(task: Task, input: str, with_examples: bool = True) -> str:
    """The Alpaca-style prompt of method.md §4; training and evaluation both use it.

    For chain-of-thought tasks the example responses, and the response to write, start with
    "Let's think step by step." (the paper's habit on BBH), so the model reasons before answering.
    """
    cot = is_chain_of_thought(task.examples)
    parts = []
    if with_examples:
        parts.append(
            "Below is an instruction that describes a task, paired with some examples of the task "
            "and an input. Write a response that appropriately completes the request."
        )
    else:
        parts.append(
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request."
        )
    parts.append(f"### Instruction:\n{task.instruction.strip()}")
    if with_examples:
        shots = [
            f"Input: {ex.input.strip()}\nResponse: {_with_cot_prefix(ex.output.strip(), cot)}"
            for ex in task.examples
        ]
        parts.append("### Examples:\n" + "\n\n".join(shots))
    parts.append(f"### Input:\n{input.strip()}")
    parts.append("### Response:\n" + (COT_PREFIX if cot else ""))
    return "\n\n".join(parts)


def format_completion(task: Task, output: str) -> str:
    """The text the model learns to write after `format_prompt` (no end-of-sequence token)."""
    text = output.strip()
    if is_chain_of_thought(task.examples) and text.lower().startswith(COT_PREFIX.lower()):
        text = text[len(COT_PREFIX) :].lstrip()  # the prompt already ends with it
    # After the prefix the reasoning goes on after a space; keeping the space in the completion
    # lets BPE tokenizers make their usual " word" tokens instead of a lone trailing space.
    return " " + text if is_chain_of_thought(task.examples) else text


def _with_cot_prefix(output: str, cot: bool) -> str:
    if cot and not output.lower().startswith(COT_PREFIX.lower()):
        return f"{COT_PREFIX} {output}"
    return output


def end_token(tokenizer: Any) -> str:
    """The token that ends a response: eos, or [SEP] for BERT-style tokenizers without one."""
    token = tokenizer.eos_token or tokenizer.sep_token
    if not token:
        raise InputError(
            "The student's tokenizer has neither an eos nor a sep token; set `eos_token` in its "
            "tokenizer_config.json."
        )
    return str(token)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give the tokenizer an eos and a pad token (many causal LMs ship without a pad token)."""
    if tokenizer.eos_token is None:
        tokenizer.eos_token = end_token(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_features(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    max_seq_len: int,
    completion_only_loss: bool,
) -> dict[str, Any]:
    """Token ids and labels of one training example.

    Prompt and completion are tokenised separately (no special tokens), exactly as generation sees
    them: the prompt alone, then new tokens. When too long, the prompt loses its start (the input
    and "### Response:" stay) and the completion keeps at least half the budget.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    completion_ids.append(tokenizer.convert_tokens_to_ids(end_token(tokenizer)))
    truncated = len(prompt_ids) + len(completion_ids) > max_seq_len
    if truncated:
        prompt_room = max(max_seq_len - len(completion_ids), max_seq_len // 2)
        prompt_ids = prompt_ids[-prompt_room:]
        completion_ids = completion_ids[: max_seq_len - len(prompt_ids)]
    input_ids = prompt_ids + completion_ids
    if completion_only_loss:
        labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    else:
        labels = list(input_ids)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": [1] * len(input_ids),
        "n_prompt": len(prompt_ids),
        "truncated": truncated,
    }


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


# ----------------------------------------------------------------------------- data


def load_training_pairs(
    paths: Sequence[str | Path], statuses: Sequence[str] | None = DEFAULT_STATUSES
) -> list[Pair]:
    """Pairs from JSONL files, keeping those whose status is in `statuses` (None: all).

    A record without a `status` field counts as accepted: a plain `{"input", "output"}` file is
    data the user chose on purpose.
    """
    if not paths:
        raise InputError("No training data given; pass at least one JSONL file of pairs.")
    pairs: list[Pair] = []
    seen: Counter[str] = Counter()
    for path in paths:
        for i, rec in enumerate(read_jsonl(path), start=1):
            if not isinstance(rec.get("input"), str) or not isinstance(rec.get("output"), str):
                raise InputError(f"{path}: record {i} needs string 'input' and 'output' fields.")
            rec = dict(rec)
            rec.setdefault("status", "accepted")
            rec.setdefault("id", f"{Path(path).stem}-{i}")
            pair = Pair.from_json_dict(rec)
            seen[pair.status] += 1
            if statuses is None or pair.status in statuses:
                pairs.append(pair)
    if not pairs:
        found = ", ".join(f"{s} {n}" for s, n in seen.items()) or "no records"
        wanted = ", ".join(statuses or ())
        raise InputError(
            f"No training pairs with status {wanted} in {', '.join(map(str, paths))} (found: "
            f"{found}). Curate the pairs first, or choose the statuses to train on."
        )
    return pairs


def _data_summary(items: Sequence[Pair | Example]) -> dict[str, Any]:
    origins: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    llms: set[str] = set()
    prompts: set[str] = set()
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.input, item.output]).encode())
        if isinstance(item, Pair):
            origins[item.origin] += 1
            statuses[item.status] += 1
            if item.source:
                sources[item.source.dataset] += 1
            if item.llm:
                llms.add(item.llm)
            if item.prompt_version:
                prompts.add(item.prompt_version)
        else:
            origins["manual"] += 1
    return {
        "n_pairs": len(items),
        "by_origin": dict(origins),
        "by_status": dict(statuses),
        "source_datasets": dict(sources.most_common()),
        "llms": sorted(llms),
        "prompt_versions": sorted(prompts),
        "fingerprint": digest.hexdigest()[:16],
    }


# ----------------------------------------------------------------------------- models


def resolve_student(spec: str, settings: Settings | None) -> Path:
    """The transformers folder of a student spec (packaged name or local folder)."""
    if spec == DEFAULT_STUDENT:
        if settings is None:
            raise InputError(f"Resolving {spec!r} needs the settings (for the model cache).")
        from rebase_core.assets import smollm2_hf_dir

        return smollm2_hf_dir(settings.models_dir)
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    raise InputError(
        f"Student {spec!r} is neither {DEFAULT_STUDENT!r} nor a folder with a transformers "
        "config.json; give the packaged name or the path of a causal-LM folder."
    )


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _set_threads(threads: int) -> None:
    import torch

    # Why 1 by default: with another busy process, more OpenMP threads spin-wait and run 10x slower.
    torch.set_num_threads(max(1, threads))


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


def load_student(
    model_dir_or_spec: str | Path, *, settings: Settings | None = None, threads: int | None = None
) -> Student:
    """Load a student for generation: a run folder, an adapter or model folder, or a spec.

    A LoRA adapter is merged into its base, so generation costs the same as the base model.
    Loading takes seconds: callers cache the result (the app with `st.cache_resource`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _set_threads(threads if threads is not None else settings.threads if settings else 1)
    spec = str(model_dir_or_spec)
    path = Path(spec).expanduser()
    card: dict[str, Any] = {}
    run_dir = None
    if (path / "run.json").is_file():
        run_dir = path
        card = read_run_card(path)
        path = path / "model"
        if not path.is_dir():
            raise InputError(
                f"Run {run_dir.name} has no trained model yet (status {card.get('status')!r}); "
                "finish or resume the training first."
            )
    device = _device()
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = Path(str(adapter.get("base_model_name_or_path") or ""))
        if not (base / "config.json").is_file():
            # The workspace moved: resolve the run's student spec again.
            base = resolve_student(str(card.get("config", {}).get("student", base)), settings)
        model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    else:
        if not (path / "config.json").is_file():
            path = resolve_student(spec, settings)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    model.to(device).eval()
    config = card.get("config", {})
    return Student(
        model=model,
        tokenizer=tokenizer,
        name=run_dir.name if run_dir else Path(spec).name or spec,
        device=device,
        with_examples=bool(config.get("with_examples", True)) if run_dir else None,
        max_seq_len=config.get("max_seq_len") if run_dir else None,
        run_dir=run_dir,
    )


# ----------------------------------------------------------------------------- training


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_run_card(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_card(run_dir: Path, card: Mapping[str, Any]) -> None:
    tmp = run_dir / f"run.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(card, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(run_dir / "run.json")


def _fingerprint(config: TrainConfig, data_fingerprint: str, task: Task) -> str:
    # threads and checkpoint frequency do not change what is learned: a resume may alter them.
    relevant = {k: v for k, v in asdict(config).items() if k not in ("threads", "save_every_steps")}
    blob = json.dumps([relevant, data_fingerprint, task.to_dict()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    config: TrainConfig = TrainConfig(),
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
    summary = _data_summary(usable)
    summary["skipped_empty"] = len(pairs) - len(usable)
    fingerprint = _fingerprint(config, summary["fingerprint"], task)
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

    _set_threads(config.threads)
    device = _device()
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
        "started_at": card.get("started_at") or _now(),
        "updated_at": _now(),
    }
    _write_card(out_dir, card)

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
        _write_card(out_dir, {**card, "status": "failed", "error": repr(exc), "updated_at": _now()})
        raise
    seconds = elapsed_before + (time.monotonic() - started)
    rows = read_progress(out_dir)
    card.update(
        global_step=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        final_loss=rows[-1]["loss"] if rows else None,
        train_seconds=round(seconds, 2),
        updated_at=_now(),
    )
    if callback.stopped and trainer.state.global_step < trainer.state.max_steps:
        card["status"] = "cancelled"
        _write_card(out_dir, card)
        logger.info("run %s stopped at step %d", out_dir.name, trainer.state.global_step)
        return _result_from_card(out_dir, card)

    model_dir = out_dir / "model"
    tmp = out_dir / f"model.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    card.update(status="done", finished_at=_now())
    (tmp / "README.md").write_text(model_card(card), encoding="utf-8")
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.replace(model_dir)
    _write_card(out_dir, card)
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


# ----------------------------------------------------------------------------- jobs and runs


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
    digest = _fingerprint(config, _data_summary(pairs)["fingerprint"], task)[:8]
    return settings.runs_dir / f"{slugify(task.name)}-{digest}"


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
    _write_card(result.run_dir, card)
    return result.to_json_dict()


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(settings: Settings) -> list[RunInfo]:
    """Every run folder under `settings.runs_dir`, newest first, with its evaluation metrics."""
    root = settings.runs_dir
    if not root.is_dir():
        return []
    runs = []
    for run_dir in root.iterdir():
        card = read_run_card(run_dir)
        if not card:
            continue
        status = str(card.get("status", ""))
        if status == "running" and not _pid_alive(card.get("pid")):
            status = "interrupted"  # the process died: resumable from its last checkpoint
        rows = read_progress(run_dir)
        metrics = {}
        for report in sorted((run_dir / "evals").glob("*.json")):
            try:
                metrics[report.stem] = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
        data = card.get("data", {})
        runs.append(
            RunInfo(
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
        )
    runs.sort(key=lambda r: r.started_at, reverse=True)
    return runs


def total_steps(n_pairs: int, config: TrainConfig) -> int:
    """Optimizer steps a run will take (for the form's estimate), as Trainer counts them."""
    batches = math.ceil(n_pairs / config.per_device_batch)
    per_epoch = max(1, math.ceil(batches / config.grad_accum))
    steps = math.ceil(per_epoch * config.epochs)
    return min(steps, config.max_steps) if config.max_steps else steps


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
