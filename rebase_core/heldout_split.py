"""The curated held-out split: a share of a task's curated pairs kept out of training to test on.

For a task of the user's own there is no held-out set; its curated (accepted or edited) pairs are
the best data to score a student on, provided no run trained on them. The split is opt-in per task
(the Evaluate page turns it on) and, once on, `finetune` leaves the held-out pairs out.

Which pairs are held out is a hash of the pair id, not a draw over the current pairs: the split is
deterministic, and a pair never changes side as more pairs are curated (a share taken over "the
pairs so far" would move pairs from test to train as the set grows, and a later run would train on
what an earlier score was measured on).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rebase_core.errors import InputError
from rebase_core.settings import Settings
from rebase_core.types import Pair

HELD_OUT_SHARE = 0.2  # one curated pair in five
CURATED_STATUSES = ("accepted", "edited")


def is_held_out(pair_id: str, share: float = HELD_OUT_SHARE) -> bool:
    """Whether a pair falls in the held-out split (a hash of its id below `share`).

    >>> is_held_out("any-id", share=0.0), is_held_out("any-id", share=1.0)
    (False, True)
    """
    head = int.from_bytes(hashlib.sha256(pair_id.encode()).digest()[:8], "big")
    return head < share * 2**64


def _state_path(settings: Settings) -> Path:
    return settings.home / "test_sets" / "curated_splits.json"


def _state(settings: Settings) -> dict[str, dict[str, object]]:
    path = _state_path(settings)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def split_since(settings: Settings, task_name: str) -> str | None:
    """When the task's split was turned on (UTC, ISO), or None when it is off."""
    entry = _state(settings).get(task_name)
    return str(entry.get("since", "")) or None if isinstance(entry, dict) else None


def set_split(settings: Settings, task_name: str, on: bool) -> None:
    """Turn the task's held-out split on (Fine-tune leaves those pairs out from now on) or off."""
    state = _state(settings)
    if on:
        state.setdefault(
            task_name, {"share": HELD_OUT_SHARE, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
    else:
        state.pop(task_name, None)
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def training_pairs(settings: Settings, task_name: str, pairs: Sequence[Pair]) -> list[Pair]:
    """`pairs` without the held-out ones when the task's split is on (else all of them)."""
    if split_since(settings, task_name) is None:
        return list(pairs)
    return [p for p in pairs if not is_held_out(p.id)]


@dataclass(frozen=True, slots=True)
class CuratedTestSet:
    """The held-out curated pairs written as a test file, and how they were chosen."""

    path: Path | None  # None when no curated pair falls in the split yet
    n_test: int
    n_curated: int
    since: str


def curated_test_set(settings: Settings, task_name: str, pairs: Iterable[Pair]) -> CuratedTestSet:
    """Write the task's held-out curated pairs as a test file (`<home>/test_sets/`); the split
    must be on. The file is rewritten only when its content changes, so reports line up."""
    since = split_since(settings, task_name)
    if since is None:
        raise InputError(
            f"The held-out split of task {task_name!r} is off; turn it on on the Evaluate page "
            "first (Fine-tune then leaves those pairs out of training)."
        )
    curated = [p for p in pairs if p.status in CURATED_STATUSES]
    held = sorted((p for p in curated if is_held_out(p.id)), key=lambda p: p.id)
    if not held:
        return CuratedTestSet(None, 0, len(curated), since)
    text = "".join(
        json.dumps({"id": p.id, "input": p.input, "output": p.output}, ensure_ascii=False) + "\n"
        for p in held
    )
    slug = "".join(c if c.isalnum() else "-" for c in task_name.lower()).strip("-") or "task"
    path = settings.home / "test_sets" / f"{slug}-curated-heldout.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return CuratedTestSet(path, len(held), len(curated), since)
