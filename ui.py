"""The app's shared Streamlit helpers: settings, cached resources, errors and progress.

The only module besides app.py and app_pages/ that imports streamlit. `rebase_core` errors become
`st.error` here, in one place; unexpected exceptions are left to Streamlit (traceback shown).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from rebase_core.errors import RebaseError
from rebase_core.settings import Settings
from rebase_core.types import Progress, ProgressFn

if TYPE_CHECKING:  # the heavy modules are imported where they are used, so `import ui` is quick
    from streamlit.delta_generator import DeltaGenerator

    from rebase_core.datastore import Datastore
    from rebase_core.embed import Embedder
    from rebase_core.flow import FlowStep
    from rebase_core.jobs import JobStatus
    from rebase_core.llm import LLM
    from rebase_core.workspace import TaskRecord, Workspace


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


def progress_for(bar: DeltaGenerator) -> ProgressFn:
    """Adapt an `st.progress` element to the library's `on_progress` callback."""

    def report(p: Progress) -> None:
        count = f"{p.done:,}/{p.total:,}" if p.total else f"{p.done:,}"
        bar.progress(p.fraction or 0.0, text=f"{p.message} ({count})")

    return report


# ----------------------------------------------------------------------------- shared resources


@st.cache_resource(show_spinner=False)
def _workspace(path: str) -> Workspace:
    from rebase_core.workspace import Workspace

    return Workspace(path)


def get_workspace() -> Workspace:
    """The SQLite workspace of the current settings (one connection per server process)."""
    return _workspace(str(get_settings().workspace_db))


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_embedder(name: str, threads: int) -> Embedder:
    from rebase_core.embed import get_embedder as build

    return build(name, threads)


@st.cache_resource(show_spinner=False, max_entries=4)
def _datastore(path: str, version: str) -> Datastore:
    """Open stores are cached per (path, committed size): a finished build reopens them."""
    from rebase_core.datastore import open_datastore

    return open_datastore(path, get_settings())


def store_version(path: str) -> str:
    """Changes whenever a build commits (the SQLite file and its WAL are touched), or a share
    is published again or linked elsewhere (its manifest or pointer is rewritten)."""
    parts = []
    for name in ("store.sqlite", "store.sqlite-wal", "vectors.f32", "manifest.json", "shared.json"):
        p = Path(path) / name
        parts.append(f"{p.stat().st_mtime_ns}:{p.stat().st_size}" if p.exists() else "-")
    return "|".join(parts)


def get_datastore(path: str) -> Datastore:
    """The datastore at `path`, opened once per committed version (see `store_version`)."""
    return _datastore(path, store_version(path))


def need_datastore(path: str) -> Datastore:
    """The datastore at `path`, or an empty state pointing at the Datastore page (and stop)."""
    if not store_exists(path):
        st.info("There is no datastore yet: build or open one first.")
        st.page_link(
            "app_pages/datastore.py", label="Go to the Datastore page", icon=":material/database:"
        )
        st.stop()
    return get_datastore(path)


def store_exists(path: str | Path) -> bool:
    """Whether a built datastore is at `path`."""
    from rebase_core.flow import store_exists as exists

    return exists(path)


# ----------------------------------------------------------------------------- current task


def current_task() -> TaskRecord | None:
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


def set_current_task(record: TaskRecord) -> None:
    """Make `record` the current task, in this session and for the next visit."""
    st.session_state["task_id"] = record.id
    get_workspace().set_value("current_task", record.id)


def need_task() -> TaskRecord:
    """The current task, or an empty state pointing at the Task page (and stop)."""
    record = current_task()
    if record is None:
        st.info("No task yet. Describe your task and give a few examples first.")
        st.page_link("app_pages/task.py", label="Go to the Task page", icon=":material/edit_note:")
        st.stop()
    return record


def fmt_seconds(seconds: float | None) -> str:
    """A duration as people read it: "42 s", "3 min 05 s", "2 h 07 min" ("?" when unknown)."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def job_panel(job: JobStatus, *, label: str) -> None:
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


# ----------------------------------------------------------------------------- LLM settings

LLM_MODELS = {
    "local": ["qwen2.5-coder-1.5b-instruct", "smollm2-135m-instruct"],
    "anthropic": ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-3-haiku-20240307"],
    "openai": ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"],
    "fake": ["scripted"],
}


class LLMChoice:
    """The LLM the user picked in the sidebar (no keys: those stay in Settings)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.provider: str = data.get("provider", "local")
        self.model: str = data.get("model", LLM_MODELS["local"][0])
        self.base_url: str = data.get("base_url", "")
        self.temperature: float = float(data.get("temperature", 0.7))
        self.max_tokens: int = int(data.get("max_tokens", 1000))
        self.concurrency: int = int(data.get("concurrency", 4))

    @property
    def spec(self) -> str:
        return "fake" if self.provider == "fake" else f"{self.provider}:{self.model}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "concurrency": self.concurrency,
        }


def _default_choice() -> dict[str, Any]:
    provider, _, model = get_settings().llm.partition(":")
    provider = provider if provider in LLM_MODELS else "local"
    return {
        "provider": provider,
        "model": model or LLM_MODELS[provider][0],
        "base_url": get_settings().openai_base_url or "",
    }


def llm_choice() -> LLMChoice:
    """The sidebar's LLM settings, persisted in the workspace (they survive a refresh)."""
    if "llm_choice" not in st.session_state:
        saved = get_workspace().get_value("llm_settings") or _default_choice()
        st.session_state["llm_choice"] = saved
    return LLMChoice(st.session_state["llm_choice"])


@st.cache_resource(show_spinner=False, max_entries=4)
def _llm(spec: str, base_url: str, settings_key: str) -> LLM:
    from rebase_core.llm import get_llm as build

    return build(spec, get_settings(), base_url=base_url or None)


def get_llm(choice: LLMChoice | None = None) -> LLM:
    """One provider object per (spec, base URL): a local model is loaded once per server."""
    choice = choice or llm_choice()
    settings = get_settings()
    # Keys are part of the identity (a new key gives a new client) but never shown or stored.
    key_id = hash((settings.anthropic_api_key, settings.openai_api_key))
    return _llm(choice.spec, choice.base_url, str(key_id))


def llm_sidebar() -> None:
    """Provider, model, key status, sampling settings and a connection test."""
    from rebase_core.llm import check_connection, key_status

    choice = llm_choice()
    settings = get_settings()
    providers = [p for p in LLM_MODELS if p != "fake" or settings.llm.startswith("fake")]
    with st.sidebar.expander(f"LLM: `{choice.spec}`", icon=":material/smart_toy:"):
        provider = st.selectbox(
            "Provider",
            providers,
            index=providers.index(choice.provider) if choice.provider in providers else 0,
            key="llm_provider",
        )
        models = LLM_MODELS[provider]
        model = st.selectbox(
            "Model",
            models
            if choice.model in models or provider != choice.provider
            else [choice.model, *models],
            key=f"llm_model_{provider}",
            accept_new_options=True,
        )
        base_url = choice.base_url
        if provider == "openai":
            base_url = st.text_input(
                "Base URL (any OpenAI-compatible server; empty = OpenAI)",
                value=choice.base_url,
                key="llm_base_url",
            )
        status = key_status(settings)
        if provider in status:
            name = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
            if status[provider] == "set":
                st.caption(f":green[●] {name} is set")
            elif provider == "openai" and base_url:
                st.caption("No key set: fine for a local OpenAI-compatible server.")
            else:
                st.caption(
                    f":red[●] {name} is missing: set it in the environment or in "
                    "`.streamlit/secrets.toml`."
                )
        temperature = st.slider(
            "Temperature", 0.0, 1.5, choice.temperature, 0.05, key="llm_temperature"
        )
        max_tokens = st.number_input(
            "Max tokens", 16, 8000, choice.max_tokens, 50, key="llm_max_tokens"
        )
        concurrency = st.number_input(
            "Parallel requests",
            1,
            64,
            choice.concurrency,
            key="llm_concurrency",
            help="Local models run one request at a time anyway.",
        )
        new = LLMChoice(
            {
                "provider": provider,
                "model": model or models[0],
                "base_url": base_url or "",
                "temperature": temperature,
                "max_tokens": max_tokens,
                "concurrency": concurrency,
            }
        )
        if new.as_dict() != choice.as_dict():
            st.session_state["llm_choice"] = new.as_dict()
            get_workspace().set_value("llm_settings", new.as_dict())
        if st.button("Test connection", key="llm_test", icon=":material/cable:"):
            with st.spinner("Asking the model for one word…"), shown_errors(stop=False):
                st.success(check_connection(get_llm(new)))


# ----------------------------------------------------------------------------- flow status


def step_page(step: FlowStep) -> str:
    """The page file of a flow step (each stage has the page of its name)."""
    return f"app_pages/{step.stage}.py"


def flow_status() -> list[FlowStep]:
    """Each step of the flow with whether the current task has done it (sidebar checklist)."""
    from rebase_core.flow import flow_status as status

    record = current_task()
    return status(get_settings(), get_workspace(), record.id if record else None)


def flow_sidebar() -> None:
    """The sidebar's checklist: a link per step, marked when done, and the current task."""
    record = current_task()
    with st.sidebar:
        st.page_link("app_pages/home.py", label="Overview", icon=":material/hub:")
        for step in flow_status():
            icon = ":material/check_circle:" if step.done else ":material/radio_button_unchecked:"
            if "building" in step.note or "paused" in step.note:
                icon = ":material/hourglass_top:"
            label = f"{step.label} · {step.note}" if step.note else step.label
            st.page_link(step_page(step), label=label, icon=icon)
        st.caption("✓ marks the steps done for the current task.")
        if record is not None:
            st.caption(f"Task: **{record.name}** (v{record.version})")


# ----------------------------------------------------------------------------- first start


@st.cache_resource(show_spinner=False)
def warm_up_umap() -> bool:
    """Once per server process: compile umap in a low-priority background thread, so the
    Compare page's first UMAP does not wait for the compiler (REBASE_WARMUP=0: off)."""
    if os.environ.get("REBASE_WARMUP", "1") == "0":
        return False
    from rebase_core.diversity.projection import warm_up_in_background

    warm_up_in_background(numba_cache_dir=get_settings().home / "cache" / "numba")
    return True


def maybe_start_default_build() -> None:
    """On the very first start (corpus prepared, no store, no build ever tried), start building
    the starter datastore (minutes) and then the full default one in the background, so
    retrieval works by the time the task is written. Set REBASE_AUTOBUILD=0 to switch this off."""
    if os.environ.get("REBASE_AUTOBUILD", "1") == "0" or st.session_state.get("_autobuild_done"):
        return
    st.session_state["_autobuild_done"] = True
    settings = get_settings()
    from rebase_core import jobs
    from rebase_core.datastore import build_job_key
    from rebase_core.datastore.readiness import start_first_build
    from rebase_core.datastore.sources import corpus_prepared

    if store_exists(settings.default_store) or not corpus_prepared(settings):
        return
    for store in (settings.default_store, settings.starter_store):
        if jobs.list_jobs(settings, key=build_job_key(store)):
            return  # tried before (running, failed or cancelled): the Datastore page shows it
    with shown_errors(stop=False):
        start_first_build(settings)
        st.toast(
            "Building a starter datastore (a few minutes), then the full one, in the background "
            "(see the Datastore page)."
        )
