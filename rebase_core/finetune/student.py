"""Students: resolving a student spec to a transformers folder and loading one for generation.

A trained LoRA adapter is merged into its base on load; torch device and threads are set here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune.config import DEFAULT_STUDENT
from rebase_core.finetune.prompt import prepare_tokenizer
from rebase_core.finetune.runs import read_run_card
from rebase_core.settings import Settings


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


def resolve_student(spec: str, settings: Settings | None) -> Path:
    """The transformers folder of a student spec (packaged name or local folder)."""
    if spec == DEFAULT_STUDENT:
        if settings is None:
            raise InputError(f"Resolving {spec!r} needs the settings (for the model cache).")
        from rebase_core.assets import smollm2_hf_dir

        return smollm2_hf_dir(settings.models_dir)
    path = Path(os.path.expanduser(spec))  # Path.expanduser raises for '~nosuchuser'
    if (path / "config.json").is_file():
        return path.resolve()
    raise InputError(
        f"Student {spec!r} is neither {DEFAULT_STUDENT!r} nor a folder with a transformers "
        "config.json; give the packaged name or the path of a causal-LM folder."
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int) -> None:
    import torch

    # Why 1 by default: with another busy process, more OpenMP threads spin-wait and run 10x slower.
    torch.set_num_threads(max(1, threads))


def load_student(
    model_dir_or_spec: str | Path, *, settings: Settings | None = None, threads: int | None = None
) -> Student:
    """Load a student for generation: a run folder, an adapter or model folder, or a spec.

    A LoRA adapter is merged into its base, so generation costs the same as the base model.
    Loading takes seconds: callers cache the result (the app with `st.cache_resource`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    set_threads(threads if threads is not None else settings.threads if settings else 1)
    spec = str(model_dir_or_spec)
    path = Path(os.path.expanduser(spec))
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
    device = default_device()
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
