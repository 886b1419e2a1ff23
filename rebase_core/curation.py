"""Curation: the rules of reviewing pairs, one call per user action.

The workspace stores pairs and the event log (every change with the pair before and after, in
undoable batches); this module holds what a reviewer's click means:
- **accept** keeps the pair; when the reviewer changed its text first, it becomes an *edit*
  (an edit already implies acceptance). **save** is an edit without moving on; **reject** drops it.
- **drafts**: text typed into a pair is kept in the workspace at once (a refresh loses nothing),
  and every decision on the pair clears it.
- **regenerate**: a new sample for the pair's source row (each regeneration its own sample
  number, so the response cache does not hand back the old reply); back to pending.
- where a pair came from (`source_row`), which pairs a view shows (`PairFilter`), and which
  pairs a per-label cap would reject (`over_label_cap`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rebase_core.errors import InputError
from rebase_core.transform.checks import balance_by_label
from rebase_core.types import PAIR_STATUSES, Pair, ScoredRow, Task

if TYPE_CHECKING:
    from rebase_core.llm import LLM, ResponseCache
    from rebase_core.transform.prompt import TransformConfig
    from rebase_core.workspace import Action, PairRun, Workspace

DECISIONS = ("accept", "reject", "save")


@dataclass(frozen=True, slots=True)
class Draft:
    """Text the reviewer typed into a pair and has not decided on yet."""

    input: str
    output: str


def _draft_key(pair_id: str) -> str:
    return f"pair_draft:{pair_id}"


def draft(ws: Workspace, pair_id: str) -> Draft | None:
    data = ws.get_value(_draft_key(pair_id))
    if not isinstance(data, dict):
        return None
    return Draft(str(data.get("input", "")), str(data.get("output", "")))


def keep_draft(ws: Workspace, pair_id: str, input: str, output: str) -> None:
    """Keep what the reviewer typed (called on every change of the text boxes)."""
    ws.set_value(_draft_key(pair_id), {"input": input, "output": output})


def decide(ws: Workspace, pair: Pair, decision: str, input: str, output: str) -> str:
    """Apply a reviewer's decision on one pair, given the text in the boxes; returns the
    action's batch id. Accepting changed text is an edit; saving unchanged text is an error."""
    if decision not in DECISIONS:
        raise InputError(f"A decision is one of {DECISIONS}, got {decision!r}.")
    changed = (input, output) != (pair.input, pair.output)
    if decision == "reject":
        batch = ws.set_status([pair.id], "rejected")
    elif changed:
        batch = ws.edit_pair(pair.id, input=input, output=output)
    elif decision == "accept":
        batch = ws.set_status([pair.id], "accepted")
    else:
        raise InputError("Nothing to save: the text is unchanged. Accept the pair instead.")
    ws.delete_value(_draft_key(pair.id))
    return batch


def set_many(ws: Workspace, pair_ids: Sequence[str], status: str) -> str:
    """Accept, reject or reset many pairs as one undoable action."""
    if status not in PAIR_STATUSES or status == "edited":
        raise InputError(f"Many pairs can be set to accepted, rejected or pending, not {status!r}.")
    return ws.set_status(pair_ids, status)


def undo(ws: Workspace, task_id: int, run_id: int | None = None) -> Action | None:
    """Undo the newest action on the task's pairs — on one run's, with `run_id`, so the Undo
    of the run being reviewed never reverts a click made on another run (None: nothing)."""
    return ws.undo(task_id, run_id)


def _run_key(task_id: int) -> str:
    return f"curated_run:{task_id}"


def curated_run(ws: Workspace, task_id: int) -> int | None:
    """The pair run the reviewer last worked on for this task (a reload returns to it)."""
    value = ws.get_value(_run_key(task_id))
    return int(value) if value is not None else None


def set_curated_run(ws: Workspace, task_id: int, run_id: int) -> None:
    ws.set_value(_run_key(task_id), int(run_id))


def source_row(ws: Workspace, run: PairRun, pair: Pair) -> ScoredRow | None:
    """The retrieved row a ReBase pair was made from (None for a baseline pair)."""
    retrieval = run.params.get("retrieval_run")
    if pair.source is None or retrieval is None:
        return None
    return ws.retrieved_row(
        int(retrieval), pair.source.dataset, pair.source.config, pair.source.row_id
    )


def regenerate_pair(
    ws: Workspace,
    task: Task,
    run: PairRun,
    pair: Pair,
    llm: LLM,
    config: TransformConfig,
    *,
    cache: ResponseCache | None = None,
) -> str:
    """Ask the LLM for a new pair from the same source row; the pair goes back to pending."""
    from rebase_core.transform import regenerate

    row = source_row(ws, run, pair)
    if row is None:
        raise InputError("Only a pair made from a retrieved row can be regenerated.")
    sample = ws.count_actions(pair.id, "regenerate") + 2  # sample 1 made the pair
    new_input, new_output = regenerate(
        task, row, llm, replace(config, llm_filter=False), sample=sample, cache=cache
    )
    batch = ws.replace_pair_text(pair.id, new_input, new_output, "regenerate")
    ws.delete_value(_draft_key(pair.id))
    return batch


@dataclass(frozen=True, slots=True)
class PairFilter:
    """Which pairs a review view shows: all words of `search` in the input or output, one of
    `datasets` as the source (none: any), and only `ids` when given (a selection made on the
    Compare page's map)."""

    search: str = ""
    datasets: tuple[str, ...] = ()
    ids: frozenset[str] | None = None

    def apply(self, pairs: Iterable[Pair]) -> list[Pair]:
        words = self.search.lower().split()
        out = []
        for pair in pairs:
            if self.ids is not None and pair.id not in self.ids:
                continue
            if self.datasets and (pair.source is None or pair.source.dataset not in self.datasets):
                continue
            text = f"{pair.input} {pair.output}".lower()
            if all(w in text for w in words):
                out.append(pair)
        return out


def source_datasets(pairs: Iterable[Pair]) -> list[str]:
    """The source datasets among the pairs, sorted (the choices of the dataset filter)."""
    return sorted({p.source.dataset for p in pairs if p.source})


def over_label_cap(task: Task, pairs: Sequence[Pair], cap: int) -> list[str]:
    """Ids of the pairs a cap of `cap` pairs per label would reject (the best-scored of each
    label stay); rejected pairs are not counted."""
    live = [p for p in pairs if p.status != "rejected"]
    kept = {p.id for p in balance_by_label(task, live, per_label=cap)}
    return [p.id for p in live if p.id not in kept]
