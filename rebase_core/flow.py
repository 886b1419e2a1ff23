"""The flow's steps, what each does, and which of them the current task has done.

The app's sidebar checklist and its home page show these; a step is done when its output exists
(a saved task, a built datastore, a retrieval run, curated pairs, a baseline run, a trained model,
an evaluation report). Export is never "done": it can be repeated at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rebase_core.settings import Settings

if TYPE_CHECKING:
    from rebase_core.workspace import Workspace


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One step of the flow: its stage name (also the page's file name), label, what it does,
    and whether the current task has done it."""

    stage: str
    label: str
    description: str
    done: bool
    note: str = ""  # where the step stands when that is more than done / not done


# (stage, label, description), in flow order.
STEPS: tuple[tuple[str, str, str], ...] = (
    (
        "task",
        "1 · Task",
        "Write the instruction and 1–20 examples, or start from a preset "
        "(the held-out evaluation tasks).",
    ),
    (
        "datastore",
        "2 · Datastore",
        "Rows of many datasets, every cell embedded (built once, in the "
        "background; add your own files or Hub datasets).",
    ),
    (
        "retrieve",
        "3 · Retrieve",
        "Score every row against your examples and instruction; browse, "
        "filter and keep the rows to rewrite.",
    ),
    (
        "transform",
        "4 · Transform & curate",
        "An LLM rewrites each kept row into a pair for your task; accept, edit or reject each one.",
    ),
    (
        "compare",
        "5 · Compare",
        "The same task through synthetic baselines (direct generation, "
        "SELF-GUIDE): diversity metrics and a map.",
    ),
    (
        "finetune",
        "6 · Fine-tune",
        "Train a small student (SmolLM2-135M by default) on the curated pairs, in the background.",
    ),
    (
        "evaluate",
        "7 · Evaluate",
        "Score the student before and after training on held-out data, against the baselines.",
    ),
    (
        "export",
        "8 · Export",
        "Download the pairs (JSONL, Parquet, CSV, datasets) with a card, and the trained model.",
    ),
)


def store_exists(path: str | Path) -> bool:
    """Whether a datastore is at `path`: a built one (its SQLite index is the marker), a
    published share, or a folder linked to a share (`datastore link`)."""
    folder = Path(path)
    if (folder / "store.sqlite").exists():
        return True
    from rebase_core.datastore.shared import MANIFEST, POINTER

    return (folder / MANIFEST).exists() or (folder / POINTER).exists()


def flow_status(settings: Settings, ws: Workspace, task_id: int | None) -> list[FlowStep]:
    """Every step in flow order, each marked done or not for the task `task_id` (None: no task
    yet, so only the datastore and training steps can be done)."""
    retrieved = transformed = compared = False
    if task_id is not None:
        retrieved = bool(ws.retrieval_runs(task_id))
        counts = ws.status_counts(task_id=task_id)
        transformed = counts.get("accepted", 0) + counts.get("edited", 0) > 0
        compared = any(r.kind in ("direct", "self-guide") for r in ws.pair_runs(task_id))
    from rebase_core.datastore.readiness import latest_builds, store_state, usable_store

    builds = latest_builds(settings)
    store = store_state(settings, settings.default_store, builds)
    choice = usable_store(settings, builds)
    notes = {"datastore": store.label() if store.building or store.incomplete else ""}
    if store.building and choice.path != store.path:
        notes["datastore"] += " · starter ready"
    elif not store.built and not store.building:
        starter = store_state(settings, settings.starter_store, builds)
        if starter.building:  # the first start's starter build, before the full one
            notes["datastore"] = f"starter store {starter.label()}"
    runs_dir = settings.runs_dir
    trained = runs_dir.exists() and any(runs_dir.iterdir())
    done = {
        "task": task_id is not None,
        "datastore": store.complete,
        "retrieve": retrieved,
        "transform": transformed,
        "compare": compared,
        "finetune": trained,
        "evaluate": trained and any(runs_dir.glob("*/evals/*.json")),
        "export": False,
    }
    return [
        FlowStep(stage, label, text, done[stage], notes.get(stage, ""))
        for stage, label, text in STEPS
    ]


def next_step(steps: list[FlowStep]) -> FlowStep | None:
    """The first step not done yet (None when all are)."""
    return next((s for s in steps if not s.done), None)
