"""Atomic writes of corpus folders and held-out sets; knows which ones a crashed run finished."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.bundled.sources import folder_slug, stride_indices
from rebase_core.errors import DatasetError
from rebase_core.task import task_from_dict
from rebase_core.types import Task


@dataclass(frozen=True, slots=True)
class ConfigData:
    """One dataset/config ready to be written: columns plus its rebase.json fields."""

    name: str
    config: str
    columns: dict[str, list[Any]]
    description: str
    license: str
    keywords: tuple[str, ...]
    source: str
    class_labels: Mapping[str, Sequence[str]] | None = None


class CorpusWriter:
    """Writes corpus folders and held-out sets atomically; knows which ones are finished."""

    def __init__(self, corpus_dir: Path, heldout_dir: Path, *, max_rows: int, force: bool):
        self.corpus_dir = corpus_dir
        self.heldout_dir = heldout_dir
        self.max_rows = max_rows
        self.force = force
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped: list[dict[str, str]] = []
        self.heldout: dict[str, int] = {}
        for staging in (corpus_dir / ".staging", heldout_dir / ".staging"):
            shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed run
            staging.mkdir(parents=True, exist_ok=True)

    def finished(self, name: str, config: str) -> bool:
        """True (and the record kept) when this config was written by an earlier run."""
        slug = folder_slug(name, config)
        meta_path = self.corpus_dir / slug / "rebase.json"
        if self.force or not meta_path.exists():
            return False
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        self.records[slug] = meta
        return True

    def skip(self, name: str, config: str, reason: str) -> None:
        self.skipped.append({"name": name, "config": config, "reason": reason})

    def write(self, cfg: ConfigData) -> None:
        from datasets import ClassLabel, Dataset, Features, List, Value

        slug = folder_slug(cfg.name, cfg.config)
        lengths = {len(v) for v in cfg.columns.values()}
        n_source = lengths.pop() if len(lengths) == 1 else 0
        if lengths or n_source == 0:
            self.skip(cfg.name, cfg.config, "no rows")
            return
        keep = stride_indices(n_source, self.max_rows)
        columns = {k: [v[i] for i in keep] for k, v in cfg.columns.items()}
        features = None
        if cfg.class_labels:
            # Declared types for every column so the ClassLabel is not inferred as an int.
            spec: dict[str, Any] = {}
            for key, values in columns.items():
                if key in cfg.class_labels:
                    spec[key] = ClassLabel(names=list(cfg.class_labels[key]))
                elif any(isinstance(v, list) for v in values):
                    spec[key] = List(Value("string"))
                else:
                    spec[key] = Value("string")
            features = Features(spec)
        try:
            dataset = Dataset.from_dict(columns, features=features)
        except (ValueError, TypeError) as exc:
            raise DatasetError(
                f"{cfg.name} ({cfg.config}): cannot build a dataset ({exc})."
            ) from exc
        meta = {
            "name": cfg.name,
            "config": cfg.config,
            "description": cfg.description,
            "license": cfg.license,
            "keywords": list(cfg.keywords),
            "source": cfg.source,
            "split": "train",
            "n_rows_source": n_source,
            "n_rows": len(keep),
        }
        tmp = self.corpus_dir / ".staging" / slug
        shutil.rmtree(tmp, ignore_errors=True)
        dataset.save_to_disk(str(tmp / "data"))
        (tmp / "rebase.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), "utf-8")
        _replace_dir(tmp, self.corpus_dir / slug)
        self.records[slug] = meta

    def heldout_finished(self, name: str) -> bool:
        folder = self.heldout_dir / name
        if self.force or not (folder / "task.json").exists():
            return False
        test = folder / "test.jsonl"
        if not test.exists():
            return False
        self.heldout[name] = count_lines(test)
        return True

    def write_heldout(self, task: Task, test: Sequence[Mapping[str, Any]]) -> None:
        if not test:
            raise DatasetError(f"Held-out set {task.name} came out empty; the archive looks wrong.")
        task_from_dict(task.to_dict(), source=f"held-out {task.name}")  # validate before writing
        tmp = self.heldout_dir / ".staging" / task.name
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "task.json").write_text(task_json(task), "utf-8")
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in test)
        (tmp / "test.jsonl").write_text(lines, "utf-8")
        _replace_dir(tmp, self.heldout_dir / task.name)
        self.heldout[task.name] = len(test)

    def finish(self) -> None:
        """Remove folders an earlier run wrote that this run no longer produces."""
        for meta_path in self.corpus_dir.glob("*/rebase.json"):
            if meta_path.parent.name not in self.records:
                shutil.rmtree(meta_path.parent, ignore_errors=True)
        for base in (self.corpus_dir, self.heldout_dir):
            shutil.rmtree(base / ".staging", ignore_errors=True)


def task_json(task: Task) -> str:
    return json.dumps(task.to_dict(), ensure_ascii=False, indent=2) + "\n"


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an older copy is swapped out first, then deleted.

    The older copy goes to the staging folder, where readers globbing `*/rebase.json` never look.
    """
    old = tmp.with_name(tmp.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())
