"""Background jobs: long work (datastore builds, transform runs, training) outside the script run.

A job is a folder under `settings.jobs_dir`: `spec.json` (what to run), `status.json` (state and
progress, rewritten atomically), `log.txt` (the child's output) and an optional `cancel` marker.
`start_job` spawns `python -m rebase_core job run <folder>` in its own session, so a page refresh,
a second tab or a Streamlit restart neither kills nor duplicates it; the page polls `job_status`.
Handlers are plain functions `(params, settings, ctx) -> result dict`, registered by kind and
imported lazily; they report progress through `ctx.progress` and check `ctx.should_stop()`.
A job whose process died is reported as `failed` with the reason, and can be started again: the
handlers themselves are resumable (they skip work that is already done).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebase_core.errors import JobError, RebaseError
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.types import Progress

logger = logging.getLogger(__name__)

# kind -> "module:function". Imported only inside the job process.
JOB_KINDS: dict[str, str] = {
    "datastore_build": "rebase_core.datastore:run_build_job",
    "datastore_default": "rebase_core.datastore.readiness:run_default_build_job",
    "transform": "rebase_core.transform:run_transform_job",
    "plan": "rebase_core.transform:run_plan_job",
    "synthesize": "rebase_core.synthesize:run_synthesize_job",
    "train": "rebase_core.finetune:run_train_job",
    "evaluate": "rebase_core.evaluate:run_evaluate_job",
    "retriever_collect": "rebase_core.retriever.jobs:run_collect_job",
    "retriever_train": "rebase_core.retriever.jobs:run_train_retriever_job",
    "sleep": "rebase_core.jobs:_sleep_job",  # for tests of the machinery itself
}

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A snapshot of one job, as read from its folder."""

    id: str
    kind: str
    key: str
    state: str  # queued | running | done | failed | cancelled
    params: Mapping[str, Any] = field(default_factory=dict)
    progress: Progress = field(default_factory=lambda: Progress(0, None, ""))
    error: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)
    pid: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    paused_s: float = 0.0  # time the handler spent waiting (yielding), not working
    folder: Path = Path()

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the rate so far, pauses left out (None when unknown)."""
        p = self.progress
        if not self.started_at or not p.total or p.done <= 0 or not self.is_active:
            return None
        elapsed = max(0.0, (self.updated_at or time.time()) - self.started_at - self.paused_s)
        return max(0.0, elapsed / p.done * (p.total - p.done))


class JobContext:
    """What a running handler gets: progress reporting, cancellation and its own folder."""

    def __init__(self, folder: Path, min_interval_s: float = 0.5) -> None:
        self.folder = folder
        self._min_interval_s = min_interval_s
        self._last_write = 0.0

    def progress(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if now - self._last_write < self._min_interval_s and not final:
            return
        self._last_write = now
        _update_status(
            self.folder,
            progress={"done": p.done, "total": p.total, "message": p.message},
            updated_at=time.time(),
        )

    def should_stop(self) -> bool:
        return (self.folder / "cancel").exists()

    def add_paused(self, seconds: float) -> None:
        """Record time spent waiting rather than working, so the ETA leaves it out."""
        status = _read_json(self.folder / "status.json")
        _update_status(self.folder, paused_s=float(status.get("paused_s", 0.0)) + seconds)


Handler = Callable[[Mapping[str, Any], Settings, JobContext], Mapping[str, Any] | None]


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _update_status(folder: Path, **changes: Any) -> None:
    status = _read_json(folder / "status.json")
    status.update(changes)
    _write_json_atomic(folder / "status.json", status)


def pid_alive(pid: object) -> bool:
    """Whether process `pid` runs (a zombie counts as gone); anything but a positive int is not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (finished but not reaped by us) counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def job_status(folder: Path) -> JobStatus:
    """Read a job's status; a running job whose process is gone is reported as failed."""
    spec = _read_json(folder / "spec.json")
    if not spec:
        raise JobError(f"{folder} is not a job folder (no spec.json).")
    status = _read_json(folder / "status.json")
    state = status.get("state", "queued")
    error = status.get("error", "")
    pid = status.get("pid")
    if state in ACTIVE_STATES and pid and not pid_alive(pid):
        state = "failed"
        error = error or "the job's process stopped unexpectedly; start it again to resume"
    elif state == "queued" and not pid and time.time() - spec.get("created_at", 0) > 60:
        state = "failed"
        error = "the job never started; see log.txt in its folder"
    prog = status.get("progress") or {}
    return JobStatus(
        id=folder.name,
        kind=spec.get("kind", ""),
        key=spec.get("key", ""),
        state=state,
        params=spec.get("params", {}),
        progress=Progress(int(prog.get("done", 0)), prog.get("total"), prog.get("message", "")),
        error=error,
        result=status.get("result") or {},
        pid=pid,
        created_at=spec.get("created_at", 0.0),
        started_at=status.get("started_at"),
        updated_at=status.get("updated_at"),
        finished_at=status.get("finished_at"),
        paused_s=float(status.get("paused_s") or 0.0),
        folder=folder,
    )


def list_jobs(
    settings: Settings, kind: str | None = None, key: str | None = None
) -> list[JobStatus]:
    """Jobs, newest first, optionally only of one kind and/or key."""
    root = settings.jobs_dir
    if not root.exists():
        return []
    out = []
    for folder in root.iterdir():
        if not (folder / "spec.json").exists():
            continue
        try:
            st = job_status(folder)
        except JobError:
            continue
        if (kind is None or st.kind == kind) and (key is None or st.key == key):
            out.append(st)
    out.sort(key=lambda s: s.created_at, reverse=True)
    return out


def active_job(settings: Settings, key: str) -> JobStatus | None:
    """The queued or running job with this key, if any."""
    return next((j for j in list_jobs(settings, key=key) if j.is_active), None)


def start_job(
    settings: Settings,
    kind: str,
    params: Mapping[str, Any],
    *,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> JobStatus:
    """Start a job in a detached process; if one with the same key is active, return that one.

    `env` adds environment variables for the child (settings are rebuilt there from env, so the
    child sees the same workspace). API keys are passed through the environment, never written.
    """
    if kind not in JOB_KINDS:
        raise JobError(f"Unknown job kind {kind!r}; expected one of {sorted(JOB_KINDS)}.")
    key = key or f"{kind}:{uuid.uuid4().hex}"
    running = active_job(settings, key)
    if running is not None:
        return running
    job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = settings.jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    created = time.time()
    _write_json_atomic(
        folder / "spec.json",
        {"kind": kind, "key": key, "params": dict(params), "created_at": created},
    )
    _write_json_atomic(folder / "status.json", {"state": "queued", "created_at": created})
    child_env = dict(os.environ)
    child_env.update(_settings_env(settings))
    if env:
        child_env.update(env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [child_env.get("PYTHONPATH")])]
    )
    with (folder / "log.txt").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rebase_core", "job", "run", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(PROJECT_ROOT),
            env=child_env,
            start_new_session=True,
        )
    _update_status(folder, pid=proc.pid)
    logger.info("started job %s (%s) as pid %d", job_id, kind, proc.pid)
    return job_status(folder)


def _settings_env(settings: Settings) -> dict[str, str]:
    """The non-secret settings a child process needs to rebuild the same `Settings`."""
    env = {
        "REBASE_HOME": str(settings.home),
        "REBASE_EMBEDDER": settings.embedder,
        "REBASE_THREADS": str(settings.threads),
        "REBASE_LLM": settings.llm,
    }
    if settings.chroma_url:
        env["REBASE_CHROMA_URL"] = settings.chroma_url
    if settings.openai_base_url:
        env["OPENAI_BASE_URL"] = settings.openai_base_url
    for name, value in (
        ("ANTHROPIC_API_KEY", settings.anthropic_api_key),
        ("OPENAI_API_KEY", settings.openai_api_key),
        ("HF_TOKEN", settings.hf_token),
    ):
        if value:
            env[name] = value  # in the child's memory only, never in the job folder
    return env


def cancel_job(folder: Path, grace_s: float = 10.0) -> None:
    """Ask a job to stop; handlers stop at their next checkpoint, else SIGTERM after `grace_s`."""
    (folder / "cancel").touch()
    status = job_status(folder)
    if not status.is_active:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if not job_status(folder).is_active:
            return
        time.sleep(0.2)
    if status.pid and pid_alive(status.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(status.pid, signal.SIGTERM)
    _update_status(folder, state="cancelled", finished_at=time.time())


def run_job(folder: Path, settings: Settings) -> int:
    """Run a job in this process (the child side of `start_job`); returns an exit code."""
    spec = _read_json(folder / "spec.json")
    kind = spec.get("kind", "")
    target = JOB_KINDS.get(kind)
    if target is None:
        _update_status(folder, state="failed", error=f"unknown job kind {kind!r}")
        return 2
    _update_status(
        folder, state="running", pid=os.getpid(), started_at=time.time(), updated_at=time.time()
    )
    ctx = JobContext(folder)
    module_name, func_name = target.split(":")
    try:
        handler: Handler = getattr(importlib.import_module(module_name), func_name)
        result = handler(spec.get("params", {}), settings, ctx) or {}
    except RebaseError as exc:
        _update_status(folder, state="failed", error=str(exc), finished_at=time.time())
        logger.error("job %s failed: %s", folder.name, exc)
        return 2
    except Exception as exc:
        _update_status(
            folder,
            state="failed",
            error=f"{type(exc).__name__}: {exc} (details in log.txt)",
            finished_at=time.time(),
        )
        traceback.print_exc()
        return 1
    state = "cancelled" if ctx.should_stop() else "done"
    _update_status(folder, state=state, result=dict(result), finished_at=time.time())
    return 0


def _sleep_job(params: Mapping[str, Any], settings: Settings, ctx: JobContext) -> dict[str, Any]:
    steps = int(params.get("steps", 5))
    for i in range(steps):
        if ctx.should_stop():
            return {"steps": i}
        time.sleep(float(params.get("step_s", 0.1)))
        ctx.progress(Progress(i + 1, steps, "sleeping"))
    if params.get("fail"):
        raise JobError("asked to fail")
    return {"steps": steps}
