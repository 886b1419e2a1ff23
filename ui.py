"""The app's shared Streamlit helpers: settings, cached resources, errors and progress.

The only module besides app.py and pages/ that imports streamlit. `rebase_core` errors become
`st.error` here, in one place; unexpected exceptions are left to Streamlit (traceback shown).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from rebase_core.errors import RebaseError
from rebase_core.settings import Settings
from rebase_core.types import Progress, ProgressFn


def read_secrets() -> dict[str, str]:
    """Root-level string secrets from .streamlit/secrets.toml, or {} when there is no file."""
    try:
        return {k: str(v) for k, v in st.secrets.to_dict().items() if isinstance(v, str | int)}
    except (FileNotFoundError, KeyError, AttributeError):
        return {}
    except Exception:  # a malformed secrets file must not take the app down
        st.warning("`.streamlit/secrets.toml` could not be read; using environment variables only.")
        return {}


def get_settings() -> Settings:
    """Settings from the environment, overridden by secrets (built once per script run)."""
    if "_settings" not in st.session_state:
        st.session_state["_settings"] = Settings.from_mapping({**os.environ, **read_secrets()})
    settings: Settings = st.session_state["_settings"]
    return settings


@contextmanager
def shown_errors(stop: bool = True) -> Iterator[None]:
    """Show a `RebaseError` as a short `st.error` (and stop the page) instead of a traceback."""
    try:
        yield
    except RebaseError as exc:
        st.error(str(exc), icon=":material/error:")
        if stop:
            st.stop()


def progress_for(bar: Any) -> ProgressFn:
    """Adapt an `st.progress` element to the library's `on_progress` callback."""

    def report(p: Progress) -> None:
        count = f"{p.done:,}/{p.total:,}" if p.total else f"{p.done:,}"
        bar.progress(p.fraction or 0.0, text=f"{p.message} ({count})")

    return report


# ----------------------------------------------------------------------------- shared resources


@st.cache_resource(show_spinner=False)
def _workspace(path: str) -> Any:
    from rebase_core.workspace import Workspace

    return Workspace(path)


def get_workspace() -> Any:
    """The SQLite workspace of the current settings (one connection per server process)."""
    return _workspace(str(get_settings().workspace_db))


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_embedder(name: str, threads: int) -> Any:
    from rebase_core.embed import get_embedder as build

    return build(name, threads)


@st.cache_resource(show_spinner=False, max_entries=4)
def _datastore(path: str, version: str) -> Any:
    """Open stores are cached per (path, committed size): a finished build reopens them."""
    from rebase_core.datastore import open_datastore

    return open_datastore(path, get_settings())


def store_version(path: str) -> str:
    """Changes whenever a build commits (the SQLite file and its WAL are touched)."""
    from pathlib import Path

    parts = []
    for name in ("store.sqlite", "store.sqlite-wal", "vectors.f32"):
        p = Path(path) / name
        parts.append(f"{p.stat().st_mtime_ns}:{p.stat().st_size}" if p.exists() else "-")
    return "|".join(parts)


def get_datastore(path: str) -> Any:
    return _datastore(path, store_version(path))


def store_exists(path: Any) -> bool:
    from pathlib import Path

    return (Path(path) / "store.sqlite").exists()


# ----------------------------------------------------------------------------- current task


def current_task() -> Any:
    """The task the user works on: session state, else the one last opened in this workspace."""
    ws = get_workspace()
    task_id = st.session_state.get("task_id")
    if task_id is None:
        task_id = ws.get_value("current_task")
    if task_id is None:
        return None
    try:
        record = ws.get_task(int(task_id))
    except RebaseError:
        return None
    st.session_state["task_id"] = record.id
    return record


def set_current_task(record: Any) -> None:
    st.session_state["task_id"] = record.id
    get_workspace().set_value("current_task", record.id)


def need_task() -> Any:
    """The current task, or an empty state pointing at the Task page (and stop)."""
    record = current_task()
    if record is None:
        st.info("No task yet. Describe your task and give a few examples first.")
        st.page_link("pages/task.py", label="Go to the Task page", icon=":material/edit_note:")
        st.stop()
    return record


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def job_panel(job: Any, *, label: str) -> None:
    """Progress of a background job: bar with counts and ETA, state, error, cancel button."""
    from rebase_core import jobs

    p = job.progress
    if job.is_active:
        count = f"{p.done:,}/{p.total:,}" if p.total else f"{p.done:,}"
        eta = f", about {fmt_seconds(job.eta_s)} left" if job.eta_s is not None else ""
        st.progress(p.fraction or 0.0, text=f"{label}: {count}{eta} — {p.message}")
        if st.button("Cancel", key=f"cancel-{job.id}", icon=":material/stop_circle:"):
            jobs.cancel_job(job.folder, grace_s=0.5)
            st.rerun()
    elif job.state == "done":
        st.success(
            f"{label}: done. {job.result.get('summary', '')}", icon=":material/check_circle:"
        )
    elif job.state == "cancelled":
        st.warning(f"{label}: cancelled. Start it again to resume where it stopped.")
    else:
        st.error(f"{label}: failed — {job.error}", icon=":material/error:")
