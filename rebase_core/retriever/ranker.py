"""The ranker: a cross-encoder that learns the signals' orders (stage 1 of Intermediate
Distillation).

A sentence-transformers `CrossEncoder` initialised from the packaged all-MiniLM-L6-v2 (its
encoder, plus a fresh one-logit head), trained with the library's `ListMLELoss` on each
signal's ranking (best row first; the Plackett-Luce likelihood of that order). The ranker reads
the task and a row together, so it can judge what a bi-encoder's vectors cannot; it is too slow
to score the whole datastore, which is why the query side is distilled from it
(`rebase_core.retriever.query`). Torch, datasets and sentence-transformers are imported inside
the functions that need them.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rebase_core.datastore import Datastore
from rebase_core.errors import InputError
from rebase_core.types import Progress, ProgressFn, Task, no_progress

logger = logging.getLogger(__name__)

MAX_FIELD_CHARS = 200


class Scorer(Protocol):
    """Scores datastore rows for a task (higher is better): the trained ranker, or a fake."""

    def score(self, task: Task, rows: Sequence[Mapping[str, str]]) -> np.ndarray: ...


def task_text(task: Task, max_chars: int = 700) -> str:
    """The task as the ranker reads it: the instruction and the examples, cut."""
    parts = [task.instruction]
    for e in task.examples:
        parts.append(f"Input: {e.input[:MAX_FIELD_CHARS]}\nOutput: {e.output[:MAX_FIELD_CHARS]}")
    text = "\n".join(parts)
    return text[:max_chars]


DESCRIPTION_FIELD = "dataset description"


def ranker_input(cells: Mapping[str, str], description: str) -> dict[str, str]:
    """What the ranker reads of a row: its dataset's description (which the ReBase score also
    weighs, and which a dataset-level judgement needs), then its cells."""
    return {DESCRIPTION_FIELD: description[:MAX_FIELD_CHARS], **cells}


def ranker_rows(store: Datastore, row_idxs: Sequence[int]) -> list[dict[str, str]]:
    """`ranker_input` of datastore rows, by index."""
    rows = store.rows(row_idxs)
    return [
        ranker_input(row.cells, store.dataset_descriptions[int(store.row_dataset[idx])])
        for idx, row in zip(row_idxs, rows, strict=True)
    ]


def row_text(cells: Mapping[str, str], max_chars: int = 700) -> str:
    """A row as the ranker reads it: `column: value` lines, each value cut."""
    text = "\n".join(f"{k}: {v[:MAX_FIELD_CHARS]}" for k, v in cells.items())
    return text[:max_chars]


@dataclass(frozen=True, slots=True)
class RankerConfig:
    """How the ranker trains. Defaults suit ~1,000 lists of 20 rows on a CPU."""

    epochs: float = 1.0
    learning_rate: float = 3e-5
    batch_size: int = 4  # rankings per optimiser step
    max_length: int = 256  # tokens of (task, row) read together
    max_list: int = 20  # rows of a ranking used, best first
    warmup: float = 0.1  # share of the steps spent warming up the learning rate
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.learning_rate <= 0 or self.batch_size < 1:
            raise InputError(
                "Ranker epochs, learning rate and batch size must be positive, got "
                f"{self.epochs}, {self.learning_rate}, {self.batch_size}."
            )


class Ranker:
    """A trained (or the untrained base) cross-encoder ranker."""

    def __init__(self, model: Any, threads: int = 1) -> None:
        self.model = model
        self.threads = threads

    @classmethod
    def base(cls, max_length: int = 256, threads: int = 1) -> Ranker:
        """MiniLM's encoder with a new scoring head (scores mean nothing before training)."""
        import torch
        from sentence_transformers.cross_encoder import CrossEncoder

        from rebase_core.assets import minilm_path

        torch.set_num_threads(threads)
        model = CrossEncoder(
            str(minilm_path()),
            num_labels=1,
            max_length=max_length,
            device="cpu",
            activation_fn=torch.nn.Identity(),
        )
        return cls(model, threads)

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> Ranker:
        import torch
        from sentence_transformers.cross_encoder import CrossEncoder

        path = Path(path)
        if not (path / "config.json").exists():
            raise InputError(f"No ranker in {path}; train one with `retriever train`.")
        torch.set_num_threads(threads)
        model = CrossEncoder(str(path), device="cpu", activation_fn=torch.nn.Identity())
        return cls(model, threads)

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(str(path))

    def score(self, task: Task, rows: Sequence[Mapping[str, str]]) -> np.ndarray:
        """One logit per row (higher is better)."""
        if not rows:
            return np.zeros(0, dtype=np.float32)
        import torch

        torch.set_num_threads(self.threads)
        query = task_text(task)
        scores = self.model.predict(
            [(query, row_text(r)) for r in rows],
            batch_size=32,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(-1)


def train_ranker(
    lists: Sequence[tuple[Task, Sequence[Mapping[str, str]]]],
    config: RankerConfig | None = None,
    *,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[Ranker, float]:
    """Train a ranker on (task, rows best first) lists with ListMLE; (ranker, seconds)."""
    config = config or RankerConfig()
    usable = [(t, list(rows)[: config.max_list]) for t, rows in lists if len(rows) >= 2]
    if not usable:
        raise InputError("No ranking with two or more rows to train the ranker on.")
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import ListMLELoss
    from transformers import PrinterCallback, TrainerCallback

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    ranker = Ranker.base(config.max_length, config.threads)
    data = Dataset.from_dict(
        {
            "query": [task_text(t) for t, _ in usable],
            "docs": [[row_text(r) for r in rows] for _, rows in usable],
            # Input order is the ranking (respect_input_order); labels only mark the positions.
            "labels": [[float(len(rows) - i) for i in range(len(rows))] for _, rows in usable],
        }
    )

    class _Report(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            on_progress(Progress(state.global_step, state.max_steps or None, "training the ranker"))
            if should_stop():
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="rebase-ranker-") as tmp:
        args = CrossEncoderTrainingArguments(
            output_dir=tmp,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup,
            seed=config.seed,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = CrossEncoderTrainer(
            model=ranker.model,
            args=args,
            train_dataset=data,
            loss=ListMLELoss(ranker.model, mini_batch_size=32),
            callbacks=[_Report()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints the metrics to stdout
        trainer.train()
    ranker.model.eval()
    seconds = time.perf_counter() - started
    logger.info("ranker: %d lists, %.1f s", len(usable), seconds)
    return ranker, seconds
