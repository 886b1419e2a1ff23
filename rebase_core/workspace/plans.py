"""Per-dataset plans of a task version, and the user's plan/rewrite/skip choice per dataset."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rebase_core.errors import InputError
from rebase_core.transform.plan import PLAN_USES, Plan
from rebase_core.types import Task
from rebase_core.workspace.db import Database, utc_now
from rebase_core.workspace.records import PlanRecord, task_hash

if TYPE_CHECKING:
    from rebase_core.transform.planner import PlanOutcome


class PlanStore(Database):
    """Plans per (task, dataset, config)."""

    def save_plan(
        self,
        task_id: int,
        task: Task,
        outcome: PlanOutcome,
        *,
        keep_user_plans: bool = True,
    ) -> None:
        """Save a planning outcome (`transform.PlanOutcome`). A plan the user wrote or edited is
        not replaced by a fresh LLM plan (`keep_user_plans`), and the user's `use` choice stays."""
        plan: Plan | None = outcome.plan
        check = outcome.check
        with self._tx() as conn:
            current = conn.execute(
                "SELECT plan, task_hash FROM plans WHERE task_id = ? AND dataset = ? "
                "AND config = ?",
                (task_id, outcome.dataset, outcome.config),
            ).fetchone()
            users = bool(current and current[0] and current[1] == task_hash(task)) and (
                json.loads(current[0]).get("author") == "user"
            )
            if keep_user_plans and users and (plan is None or plan.author != "user"):
                return
            conn.execute(
                "INSERT INTO plans(task_id, task_hash, dataset, config, status, plan, reason, "
                "warnings, rows, calls, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(task_id, dataset, config) DO UPDATE SET task_hash = "
                "excluded.task_hash, status = excluded.status, plan = excluded.plan, reason = "
                "excluded.reason, warnings = excluded.warnings, rows = excluded.rows, calls = "
                "excluded.calls, updated_at = excluded.updated_at",
                (
                    task_id,
                    task_hash(task),
                    outcome.dataset,
                    outcome.config,
                    outcome.status,
                    json.dumps(plan.to_json_dict(), ensure_ascii=False) if plan else None,
                    outcome.reason,
                    json.dumps(list(check.warnings) if check is not None else []),
                    int(outcome.rows),
                    int(outcome.calls),
                    utc_now(),
                ),
            )

    def set_plan_use(self, task_id: int, dataset: str, config: str, use: str) -> None:
        """The user's choice for a dataset's rows: plan, rewrite, skip (or "" for the default)."""
        if use and use not in PLAN_USES:
            raise InputError(f"A dataset's rows are used by one of {PLAN_USES}, got {use!r}.")
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE plans SET use = ?, updated_at = ? WHERE task_id = ? AND dataset = ? "
                "AND config = ?",
                (use, utc_now(), task_id, dataset, config),
            )
            if not cur.rowcount:
                raise InputError(f"No plan is saved for {dataset}/{config}; plan it first.")

    def applied_plans(self, task_id: int, task: Task) -> dict[tuple[str, str], Plan]:
        """The saved plans a transform of this task version applies, by (dataset, config)."""
        return {r.key: r.applied for r in self.plans(task_id, task) if r.applied is not None}

    def plans(self, task_id: int, task: Task) -> list[PlanRecord]:
        """The saved plans of this task version, most rows first."""
        out = []
        for row in self._query(
            "SELECT dataset, config, status, plan, reason, warnings, use, rows, calls, "
            "updated_at FROM plans WHERE task_id = ? AND task_hash = ? "
            "ORDER BY rows DESC, dataset, config",
            (task_id, task_hash(task)),
        ):
            dataset, config, status, plan, reason, warnings, use, rows, calls, at = row
            out.append(
                PlanRecord(
                    dataset,
                    config,
                    status,
                    Plan.from_json_dict(json.loads(plan)) if plan else None,
                    reason,
                    tuple(json.loads(warnings)),
                    use,
                    int(rows),
                    int(calls),
                    at,
                )
            )
        return out
