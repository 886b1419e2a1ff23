"""Trained retrievers on disk, and which one each task uses.

A trained retriever is a folder:

    retriever.json   base embedder, signals used, instances, training time, held-out figures
    query.npz        the query map: matrix (d x d) and bias (d), float32 (see `query.py`)
    ranker/          the cross-encoder it was distilled from (scores rows for the before/after)

Folders live in `<workspace>/retrievers/` (any folder works from the CLI). Each task uses the
base retriever unless the workspace says otherwise (`use_retriever`); switching back is
`use_retriever(ws, task_id, None)`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.retriever.query import AdaptedEmbedder, QueryMap
from rebase_core.settings import Settings

if TYPE_CHECKING:
    from rebase_core.retriever.ranker import Ranker
    from rebase_core.workspace import Workspace

logger = logging.getLogger(__name__)

FORMAT = 1
INFO_FILE = "retriever.json"
QUERY_FILE = "query.npz"
RANKER_DIR = "ranker"


def retrievers_dir(settings: Settings) -> Path:
    return settings.home / "retrievers"


@dataclass(frozen=True, slots=True)
class RetrieverInfo:
    """What `retriever.json` says about a trained retriever."""

    path: Path
    base_embedder: str
    dim: int
    store: str
    signal_files: tuple[str, ...]
    signal_counts: Mapping[str, int]  # instances per source, training and held out
    train_instances: int
    heldout_instances: int
    training_seconds: Mapping[str, float]  # ranker, candidates, query, total
    threads: int
    created_at: str
    heldout: Mapping[str, Any] = field(default_factory=dict)  # RetrieverEval.to_json_dict()
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "base_embedder": self.base_embedder,
            "dim": self.dim,
            "store": self.store,
            "signal_files": list(self.signal_files),
            "signal_counts": dict(self.signal_counts),
            "instances": {"train": self.train_instances, "heldout": self.heldout_instances},
            "training_seconds": dict(self.training_seconds),
            "threads": self.threads,
            "created_at": self.created_at,
            "heldout": dict(self.heldout),
            "config": dict(self.config),
        }

    @classmethod
    def from_json_dict(cls, path: Path, d: Mapping[str, Any]) -> RetrieverInfo:
        instances = d.get("instances") or {}
        return cls(
            path=path,
            base_embedder=str(d["base_embedder"]),
            dim=int(d["dim"]),
            store=str(d.get("store", "")),
            signal_files=tuple(d.get("signal_files") or ()),
            signal_counts=dict(d.get("signal_counts") or {}),
            train_instances=int(instances.get("train", 0)),
            heldout_instances=int(instances.get("heldout", 0)),
            training_seconds={k: float(v) for k, v in (d.get("training_seconds") or {}).items()},
            threads=int(d.get("threads", 1)),
            created_at=str(d.get("created_at", "")),
            heldout=dict(d.get("heldout") or {}),
            config=dict(d.get("config") or {}),
        )


@dataclass(frozen=True, slots=True)
class TrainedRetriever:
    """A loaded retriever: its record and its query map."""

    info: RetrieverInfo
    query_map: QueryMap

    def query_embedder(self, base: Embedder) -> AdaptedEmbedder:
        """The base embedder with this retriever's query map: pass it to `retrieve`."""
        if base.name != self.info.base_embedder:
            raise InputError(
                f"The retriever {self.info.name} was trained on the {self.info.base_embedder!r} "
                f"embedder, not {base.name!r}; use a retriever trained on this datastore's "
                "embedder."
            )
        return AdaptedEmbedder(base, self.query_map)

    def ranker(self, threads: int = 1) -> Ranker:
        from rebase_core.retriever.ranker import Ranker

        return Ranker.load(self.info.path / RANKER_DIR, threads)


def write_info(info: RetrieverInfo) -> None:
    path = info.path / INFO_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info.to_json_dict(), indent=2, ensure_ascii=False), "utf-8")
    tmp.replace(path)


def save_retriever(
    info: RetrieverInfo, query_map: QueryMap, ranker: Ranker | None
) -> RetrieverInfo:
    """Write the folder under a temporary name and rename it into place (a crash leaves no
    half-written retriever). An existing folder of that name is an error."""
    final = info.path
    if final.exists():
        raise InputError(f"{final} already exists; choose another --out folder or delete it.")
    if not final.parent.exists():
        raise InputError(f"Folder {final.parent} does not exist; create it first.")
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.savez(tmp / QUERY_FILE, matrix=query_map.matrix, bias=query_map.bias)
    if ranker is not None:
        ranker.save(tmp / RANKER_DIR)
    write_info(replace(info, path=tmp))
    tmp.rename(final)
    return info


def load_retriever(path: str | Path) -> TrainedRetriever:
    """A retriever folder, checked: its record and a query map of the right shape."""
    path = Path(path).expanduser()
    info_path = path / INFO_FILE
    if not info_path.exists():
        raise InputError(
            f"{path} is not a trained retriever (no {INFO_FILE}); train one with "
            "`python -m rebase_core retriever train`."
        )
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
        info = RetrieverInfo.from_json_dict(path, data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{info_path} is damaged ({exc}); train the retriever again.") from exc
    try:
        with np.load(path / QUERY_FILE) as data:
            query_map = QueryMap(data["matrix"].astype(np.float32), data["bias"].astype(np.float32))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path / QUERY_FILE} cannot be read ({exc}); train again.") from exc
    if query_map.matrix.shape != (info.dim, info.dim) or query_map.dim != info.dim:
        raise InputError(
            f"{path / QUERY_FILE} does not hold a {info.dim}-d query map; train again."
        )
    return TrainedRetriever(info, query_map)


def list_retrievers(settings: Settings) -> list[RetrieverInfo]:
    """The trained retrievers of the workspace, newest first (damaged folders are skipped with
    a warning in the log)."""
    base = retrievers_dir(settings)
    out = []
    for folder in sorted(base.iterdir()) if base.exists() else ():
        if folder.name.startswith(".") or not (folder / INFO_FILE).exists():
            continue
        try:
            out.append(load_retriever(folder).info)
        except InputError as exc:
            logger.warning("skipping %s: %s", folder, exc)
    return sorted(out, key=lambda i: (i.created_at, i.name), reverse=True)


# ----------------------------------------------------------------------------- per-task choice


def _key(task_id: int) -> str:
    return f"retriever:{task_id}"


def use_retriever(ws: Workspace, task_id: int, path: str | Path | None) -> None:
    """Make a task retrieve with a trained retriever, or with the base again (`None`)."""
    if path is None:
        ws.delete_value(_key(task_id))
        return
    load_retriever(path)  # a folder that does not load is refused now, not at retrieval
    ws.set_value(_key(task_id), str(Path(path).expanduser().resolve()))


def task_retriever(ws: Workspace, task_id: int) -> Path | None:
    """The trained retriever a task uses, or None for the base."""
    value = ws.get_value(_key(task_id))
    return Path(value) if value else None


def task_embedder(ws: Workspace, task_id: int, base: Embedder) -> Embedder:
    """The embedder to retrieve a task with: the base, or the base with the task's retriever."""
    path = task_retriever(ws, task_id)
    if path is None:
        return base
    if not (path / INFO_FILE).exists():
        raise InputError(
            f"The task's retriever {path} is gone; switch the task back to the base retriever."
        )
    return load_retriever(path).query_embedder(base)


def signals_dir(settings: Settings) -> Path:
    """Where the app keeps the signals it collects (one JSONL file per collection)."""
    return retrievers_dir(settings) / "signals"


def signal_files(settings: Settings) -> list[Path]:
    """The workspace's signal files, oldest first."""
    folder = signals_dir(settings)
    return sorted(folder.glob("*.jsonl")) if folder.exists() else []


def new_retriever_name(settings: Settings, prefix: str = "r") -> str:
    """The next free folder name under the workspace's retrievers (r1, r2, …)."""
    taken = {p.name for p in retrievers_dir(settings).glob(f"{prefix}*")}
    return next(f"{prefix}{i}" for i in range(1, len(taken) + 2) if f"{prefix}{i}" not in taken)
