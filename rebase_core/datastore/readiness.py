"""Which datastore the app can retrieve from now, and how far its build is.

The first start builds a small *starter* store first (a few rows of every config of the bundled
corpus: minutes on 2 cores), then the full default store. Until the full store is complete the
app retrieves from the starter store and says so; a retrieval made on a partial store is offered
again once the full one is ready. Both builds run at low priority and pause between shards while
one of the user's own jobs (a transform, a baseline, a training, an evaluation) runs, so the build
never slows what the user is waiting for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core import jobs
from rebase_core.datastore.build import (
    BUILD_THREADS,
    BUNDLED_ROWS_PER_CONFIG,
    BuildParams,
    build_datastore,
    build_job_key,
)
from rebase_core.embed import get_embedder
from rebase_core.flow import store_exists
from rebase_core.settings import Settings
from rebase_core.types import Progress

logger = logging.getLogger(__name__)

# Rows of each bundled config in the starter store: 695 configs x 5 rows is 3.5k rows, 8.2k cells,
# built in 208 s at one thread beside a training (the full store: 100 rows a config, 51.2k rows,
# 123.6k cells). On the 27 presets its top 100 holds 90% of the datasets of the full store's top
# 100, and its best row scores 98% of the full one's (bench/starter.py, 2026-12-06; with
# BIG-bench's 1,563 configs before: 96% and 96%).
STARTER_ROWS_PER_CONFIG = 5
# The build's niceness: the scheduler gives the user's own jobs (and the app) the CPU first.
BUILD_NICENESS = 10
# Job kinds the user waits for; a background build pauses while one of them runs.
USER_JOB_KINDS = frozenset(
    {"transform", "plan", "synthesize", "train", "evaluate", "retriever_collect", "retriever_train"}
)
PAUSE_POLL_S = 2.0
PAUSED_PREFIX = "paused"


@dataclass(frozen=True, slots=True)
class StoreState:
    """A store folder and its build: whether it exists, is being built (n of m shards, ETA,
    paused for the user's jobs), or was left incomplete by a build that failed or was stopped."""

    path: Path
    built: bool
    building: bool = False
    incomplete: bool = False
    done: int = 0
    total: int | None = None
    eta_s: float | None = None
    paused: bool = False
    job_kind: str = ""

    @property
    def complete(self) -> bool:
        return self.built and not self.building and not self.incomplete

    def label(self) -> str:
        """Short status for the sidebar and overview: never "done" while a build runs.

        >>> StoreState(Path("s"), built=True, building=True, done=769, total=1563).label()
        'building (769 of 1,563)'
        >>> StoreState(Path("s"), built=True).label()
        'ready'
        """
        if self.building:
            count = f" ({self.done:,} of {self.total:,})" if self.total else ""
            return f"{'paused' if self.paused else 'building'}{count}"
        if not self.built:
            return "not built"
        if self.incomplete:
            return "incomplete (its build stopped)"
        return "ready"


BuildJobs = Mapping[str, jobs.JobStatus]  # build job key -> the newest job with that key


def latest_builds(settings: Settings) -> BuildJobs:
    """The newest build job of every store, from one scan of the job folders (the sidebar asks
    about two stores on every page run)."""
    newest: dict[str, jobs.JobStatus] = {}
    for job in jobs.list_jobs(settings):  # newest first
        if job.key.startswith("datastore_build:"):
            newest.setdefault(job.key, job)
    return newest


def store_state(
    settings: Settings, path: str | Path, builds: BuildJobs | None = None
) -> StoreState:
    """The state of the store at `path` from its folder and its newest build job (`builds`:
    from `latest_builds`, when the caller asks about several stores)."""
    path = Path(path)
    built = store_exists(path)
    builds = latest_builds(settings) if builds is None else builds
    latest = builds.get(build_job_key(path))
    if latest is None:
        return StoreState(path, built)
    if latest.is_active:
        return StoreState(
            path,
            built,
            building=True,
            done=latest.progress.done,
            total=latest.progress.total,
            eta_s=latest.eta_s,
            paused=latest.progress.message.startswith(PAUSED_PREFIX),
            job_kind=latest.kind,
        )
    # Only the bundled build leaves the store short of what retrieval expects; a user's source
    # that failed to add is the Datastore page's business, the rest of the store is whole.
    stopped = latest.state in ("failed", "cancelled") or bool(latest.result.get("stopped_early"))
    return StoreState(
        path, built, incomplete=built and stopped and latest.kind == "datastore_default"
    )


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """The store to retrieve from now; `partial` when it is not the complete default store, with
    `note` saying which store it is and how far the full one is."""

    path: Path
    partial: bool = False
    note: str = ""


def usable_store(settings: Settings, builds: BuildJobs | None = None) -> StoreChoice:
    """The store to retrieve from: the default store when complete; while the first build runs,
    the starter store once it is ready; otherwise the default store as far as it is built.
    `note` says what the user gets."""
    builds = latest_builds(settings) if builds is None else builds
    full = store_state(settings, settings.default_store, builds)
    if full.complete:
        return StoreChoice(full.path)
    starter = store_state(settings, settings.starter_store, builds)
    starter_note = f"the starter datastore ({STARTER_ROWS_PER_CONFIG} rows of each bundled config)"
    if full.building:
        how_far = full.label() + (f", about {_minutes(full.eta_s)} left" if full.eta_s else "")
        first_build = not full.built or full.job_kind == "datastore_default"
        if starter.complete and first_build:
            return StoreChoice(
                starter.path, True, f"{starter_note}, while the full one is {how_far}"
            )
        if full.built:
            return StoreChoice(full.path, True, f"the datastore as far as it is built: {how_far}")
        return StoreChoice(full.path)  # nothing to retrieve from yet
    if full.incomplete:
        return StoreChoice(
            full.path,
            True,
            "the datastore as far as it is built: its build stopped before the end (resume it "
            "on the Datastore page)",
        )
    if starter.complete:
        return StoreChoice(starter.path, True, f"{starter_note}; the full one is not built")
    return StoreChoice(full.path)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{max(1, round(seconds / 60))} min"


# ----------------------------------------------------------------------------- the first build


def start_first_build(settings: Settings) -> jobs.JobStatus:
    """The first start's build: the starter store, then (started by that job when it finishes)
    the full default store. Returns the starter build's job."""
    return _start_bundled_build(settings, settings.starter_store, STARTER_ROWS_PER_CONFIG, True)


def start_full_build(settings: Settings) -> jobs.JobStatus:
    """Build (or resume) the full default store from the bundled corpus, in the background."""
    return _start_bundled_build(settings, settings.default_store, BUNDLED_ROWS_PER_CONFIG, False)


def _start_bundled_build(
    settings: Settings, store: Path, rows_per_config: int, then_full: bool
) -> jobs.JobStatus:
    return jobs.start_job(
        settings,
        "datastore_default",
        {
            "store": str(store.resolve()),
            "rows_per_config": rows_per_config,
            "then_full": then_full,
            "threads": BUILD_THREADS,
        },
        key=build_job_key(store),
        env={"OMP_WAIT_POLICY": "PASSIVE"},
    )


def user_jobs_running(settings: Settings) -> list[jobs.JobStatus]:
    """The user's own jobs that are queued or running now (what a background build yields to)."""
    return [j for j in jobs.list_jobs(settings) if j.kind in USER_JOB_KINDS and j.is_active]


class YieldingBuild:
    """Progress and stop callbacks for a background build that pauses between shards while the
    user's own jobs run (reported as "paused …", and not counted in the job's ETA)."""

    def __init__(
        self,
        settings: Settings,
        ctx: Any,
        label: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = PAUSE_POLL_S,
    ) -> None:
        self._settings = settings
        self._ctx = ctx
        self._label = label
        self._sleep = sleep
        self._poll_s = poll_s
        self._last = Progress(0, None, "")
        self._checked = 0.0
        self.paused_s = 0.0

    def progress(self, p: Progress) -> None:
        self._last = p
        self._ctx.progress(Progress(p.done, p.total, f"{self._label}: {p.message}"))

    def should_stop(self) -> bool:
        """Called before each shard: waits while a user job runs, then says whether to stop."""
        if self._ctx.should_stop():
            return True
        if time.monotonic() - self._checked < self._poll_s:
            return False
        waited = False
        while waiting := user_jobs_running(self._settings):
            if self._ctx.should_stop():
                return True
            kinds = ", ".join(sorted({j.kind for j in waiting}))
            p = self._last
            self._ctx.progress(
                Progress(p.done, p.total, f"{PAUSED_PREFIX} while your {kinds} job runs")
            )
            started = time.monotonic()
            self._sleep(self._poll_s)
            pause = time.monotonic() - started
            self.paused_s += pause
            self._ctx.add_paused(pause)
            waited = True
        if waited:
            self.progress(self._last)
        self._checked = time.monotonic()
        return False


def run_default_build_job(
    params: Mapping[str, Any], settings: Settings, ctx: Any
) -> dict[str, Any]:
    """Job handler: build the bundled corpus into `params["store"]` at low priority, yielding
    to the user's jobs; with `then_full`, start the full default build when done."""
    try:
        os.nice(BUILD_NICENESS)
    except OSError:  # pragma: no cover - not permitted on some systems
        logger.info("could not lower the build's priority")
    store = Path(params["store"])
    rows = int(params.get("rows_per_config", BUNDLED_ROWS_PER_CONFIG))
    label = "starter store" if params.get("then_full") else "full store"
    callbacks = YieldingBuild(settings, ctx, label)
    embedder = get_embedder(settings.embedder, int(params.get("threads") or settings.threads))
    report = build_datastore(
        store,
        ["bundled"],
        settings,
        embedder=embedder,
        params=BuildParams(rows),
        on_progress=callbacks.progress,
        should_stop=callbacks.should_stop,
    )
    result: dict[str, Any] = {
        "summary": report.summary(),
        "rows_added": report.rows_added,
        "cells_added": report.cells_added,
        "shards_skipped": report.shards_skipped,
        "seconds": report.seconds,
        "paused_s": round(callbacks.paused_s, 1),
        "stopped_early": report.stopped_early,
    }
    if params.get("then_full") and not report.stopped_early:
        full = start_full_build(settings)
        result["full_build_job"] = full.id
    return result
