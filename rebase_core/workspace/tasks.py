"""Tasks: every save is a version; identical content adds none."""

from __future__ import annotations

import json
from typing import Any

from rebase_core.errors import InputError
from rebase_core.task import task_from_dict
from rebase_core.types import Task
from rebase_core.workspace.db import Database, utc_now
from rebase_core.workspace.records import TaskRecord, TaskVersion


class TaskStore(Database):
    """Tasks and their versions."""

    def save_task(self, task: Task, note: str = "") -> TaskRecord:
        """Save a new version of the task (by name); identical content adds no version."""
        data = json.dumps(task.to_dict(), ensure_ascii=False, sort_keys=True)
        now = utc_now()
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM tasks WHERE name = ?", (task.name,)).fetchone()
            if row is None:
                task_id = int(
                    conn.execute(
                        "INSERT INTO tasks(name, created_at, updated_at) VALUES (?, ?, ?)",
                        (task.name, now, now),
                    ).lastrowid
                    or 0
                )
                last_version, last_data = 0, None
            else:
                task_id = int(row[0])
                last = conn.execute(
                    "SELECT version, data FROM task_versions WHERE task_id = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (task_id,),
                ).fetchone()
                last_version, last_data = (int(last[0]), last[1]) if last else (0, None)
            if last_data == data:
                return TaskRecord(task_id, task.name, last_version, task, now)
            version = last_version + 1
            conn.execute(
                "INSERT INTO task_versions(task_id, version, data, note, saved_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (task_id, version, data, note, now),
            )
            conn.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
        return TaskRecord(task_id, task.name, version, task, now)

    def get_task(self, name_or_id: str | int, version: int | None = None) -> TaskRecord:
        column = "id" if isinstance(name_or_id, int) else "name"
        got = self._query(
            f"SELECT id, name, updated_at FROM tasks WHERE {column} = ?", (name_or_id,)
        )
        if not got:
            raise InputError(f"No task {name_or_id!r} in the workspace.")
        task_id, name, updated = got[0]
        sql = "SELECT version, data FROM task_versions WHERE task_id = ?"
        params: list[Any] = [task_id]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        sql += " ORDER BY version DESC LIMIT 1"
        rows = self._query(sql, params)
        if not rows:
            raise InputError(f"Task {name!r} has no version {version}.")
        return TaskRecord(
            task_id, name, int(rows[0][0]), task_from_dict(json.loads(rows[0][1])), updated
        )

    def list_tasks(self) -> list[TaskRecord]:
        out = []
        for (task_id,) in self._query("SELECT id FROM tasks ORDER BY updated_at DESC, id DESC"):
            out.append(self.get_task(int(task_id)))
        return out

    def task_history(self, task_id: int) -> list[TaskVersion]:
        """Every saved version, newest first."""
        return [
            TaskVersion(int(v), at, note, task_from_dict(json.loads(data)))
            for v, at, note, data in self._query(
                "SELECT version, saved_at, note, data FROM task_versions WHERE task_id = ? "
                "ORDER BY version DESC",
                (task_id,),
            )
        ]

    def delete_task(self, task_id: int) -> None:
        with self._tx() as conn:
            for table, column in (
                ("pair_events", "pair_id IN (SELECT id FROM pairs WHERE task_id = ?)"),
                ("failures", "run_id IN (SELECT id FROM pair_runs WHERE task_id = ?)"),
                ("pairs", "task_id = ?"),
                ("pair_runs", "task_id = ?"),
                ("retrieved_rows", "run_id IN (SELECT id FROM retrieval_runs WHERE task_id = ?)"),
                ("retrieval_runs", "task_id = ?"),
                ("task_versions", "task_id = ?"),
                ("tasks", "id = ?"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column}", (task_id,))
