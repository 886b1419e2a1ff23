"""The curation log: every change of a pair is an event with the pair before and after, grouped
in batches (one user action), which gives per-pair history and undo."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace

from rebase_core.errors import InputError
from rebase_core.types import PAIR_STATUSES, Pair
from rebase_core.workspace.db import utc_now
from rebase_core.workspace.pairs import PairStore, stored_extra
from rebase_core.workspace.records import Action, PairEvent


def _pair_json(pair: Pair | None) -> str | None:
    return None if pair is None else json.dumps(pair.to_json_dict(), ensure_ascii=False)


def _pair_from_json(text: str | None) -> Pair | None:
    return None if text is None else Pair.from_json_dict(json.loads(text))


class CurationLog(PairStore):
    """Status changes, edits and regenerations of pairs, with history and undo."""

    def _write_pair(self, conn: sqlite3.Connection, pair: Pair) -> None:
        conn.execute(
            "UPDATE pairs SET input = ?, output = ?, status = ?, extra = ?, updated_at = ? "
            "WHERE id = ?",
            (
                pair.input,
                pair.output,
                pair.status,
                json.dumps(stored_extra(pair)),
                utc_now(),
                pair.id,
            ),
        )

    def apply(self, changes: Sequence[tuple[str, Pair]], action: str) -> str:
        """Write new versions of pairs as one undoable action; returns the action's batch id.

        `changes` are (pair_id, new pair). Each change is recorded with the pair before and
        after, so history shows it and `undo` can restore it.
        """
        batch = uuid.uuid4().hex
        now = utc_now()
        with self._tx() as conn:
            for pair_id, new in changes:
                got = conn.execute(
                    f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,)
                ).fetchone()
                if got is None:
                    raise InputError(f"No pair {pair_id!r} in the workspace.")
                before = self._row_to_pair(got)
                if new.status not in PAIR_STATUSES:
                    raise InputError(f"Unknown status {new.status!r}; use one of {PAIR_STATUSES}.")
                if before == replace(new, created_at=before.created_at):
                    continue
                self._write_pair(conn, new)
                conn.execute(
                    "INSERT INTO pair_events(batch, pair_id, action, before, after, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (batch, pair_id, action, _pair_json(before), _pair_json(new), now),
                )
        return batch

    def set_status(self, pair_ids: Iterable[str], status: str) -> str:
        """Accept / reject / reset many pairs as one action.

        Accepting an edited pair keeps it 'edited' (an edit already implies acceptance).
        """
        changes = []
        for pair_id in pair_ids:
            pair = self.get_pair(pair_id)
            if status == "accepted" and pair.status == "edited":
                continue
            changes.append((pair_id, replace(pair, status=status)))
        return self.apply(changes, status if status != "pending" else "reset")

    def edit_pair(
        self, pair_id: str, *, input: str | None = None, output: str | None = None
    ) -> str:
        pair = self.get_pair(pair_id)
        new_input = pair.input if input is None else input
        new_output = pair.output if output is None else output
        if not new_input.strip() or not new_output.strip():
            raise InputError("A pair needs a non-empty input and output; reject it instead.")
        return self.apply(
            [(pair_id, replace(pair, input=new_input, output=new_output, status="edited"))], "edit"
        )

    def replace_pair_text(self, pair_id: str, input: str, output: str, action: str) -> str:
        """New text from a regeneration: back to pending, recorded like an edit."""
        pair = self.get_pair(pair_id)
        return self.apply(
            [(pair_id, replace(pair, input=input, output=output, status="pending"))], action
        )

    def history(self, pair_id: str) -> list[PairEvent]:
        return [
            PairEvent(int(i), b, p, a, _pair_from_json(bef), _pair_from_json(aft), at, bool(u))
            for i, b, p, a, bef, aft, at, u in self._query(
                "SELECT id, batch, pair_id, action, before, after, at, undone FROM pair_events "
                "WHERE pair_id = ? ORDER BY id",
                (pair_id,),
            )
        ]

    def original(self, pair_id: str) -> Pair:
        """The pair as it was first written (before any edit or regeneration)."""
        got = self._query(
            "SELECT before FROM pair_events WHERE pair_id = ? AND action != 'undo' ORDER BY id "
            "LIMIT 1",
            (pair_id,),
        )
        first = _pair_from_json(got[0][0]) if got else None
        return first or self.get_pair(pair_id)

    def count_actions(self, pair_id: str, action: str) -> int:
        got = self._query(
            "SELECT COUNT(*) FROM pair_events WHERE pair_id = ? AND action = ?", (pair_id, action)
        )
        return int(got[0][0])

    def last_action(self, task_id: int, run_id: int | None = None) -> Action | None:
        """The newest action on this task's pairs (only on one run's, with `run_id`) that can
        be undone."""
        where, params = "p.task_id = ?", [task_id]
        if run_id is not None:
            where, params = where + " AND p.run_id = ?", [task_id, run_id]
        got = self._query(
            "SELECT e.batch, e.action, COUNT(*) FROM pair_events e "
            f"JOIN pairs p ON p.id = e.pair_id WHERE {where} AND e.undone = 0 "
            "AND e.action != 'undo' GROUP BY e.batch ORDER BY MAX(e.id) DESC LIMIT 1",
            params,
        )
        return Action(got[0][0], got[0][1], int(got[0][2])) if got else None

    def undo(self, task_id: int, run_id: int | None = None) -> Action | None:
        """Undo the newest action on this task's pairs (one run's, with `run_id`); returns it
        (with the pairs restored)."""
        last = self.last_action(task_id, run_id)
        if last is None:
            return None
        batch, action = last.batch, last.action
        now = utc_now()
        with self._tx() as conn:
            events = conn.execute(
                "SELECT id, pair_id, before, after FROM pair_events WHERE batch = ? "
                "ORDER BY id DESC",
                (batch,),
            ).fetchall()
            for event_id, pair_id, before, after in events:
                restored = _pair_from_json(before)
                if restored is None:
                    continue
                self._write_pair(conn, restored)
                conn.execute("UPDATE pair_events SET undone = 1 WHERE id = ?", (event_id,))
                conn.execute(
                    "INSERT INTO pair_events(batch, pair_id, action, before, after, at, undone) "
                    "VALUES (?, ?, 'undo', ?, ?, ?, 1)",
                    (f"undo-{batch}", pair_id, after, before, now),
                )
        return Action(batch, action, len(events))
