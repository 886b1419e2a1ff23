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
