"""Which store the app retrieves from while the first build runs, the build's status text, and
the background build yielding to the user's own jobs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from test_bundled import make_archives

from rebase_core import jobs
from rebase_core.bundled.prepare import prepare_corpus
from rebase_core.datastore import build_job_key, open_datastore
from rebase_core.datastore.readiness import (
    STARTER_ROWS_PER_CONFIG,
    YieldingBuild,
    run_default_build_job,
    store_state,
    usable_store,
)
from rebase_core.flow import flow_status
from rebase_core.settings import Settings
from rebase_core.types import Progress
from rebase_core.workspace import Workspace


def _job(
    settings: Settings,
    kind: str,
    key: str,
    state: str,
    progress: tuple[int, int] = (0, 0),
    message: str = "",
    result: dict | None = None,
) -> Path:
    """A job folder as `jobs.start_job` writes it, owned by this (live) process."""
    folder = settings.jobs_dir / f"{time.time_ns()}-{kind}"
    folder.mkdir(parents=True)
    now = time.time()
    (folder / "spec.json").write_text(
        json.dumps({"kind": kind, "key": key, "params": {}, "created_at": now})
    )
    done, total = progress
    status = {
        "state": state,
        "pid": os.getpid(),
        "started_at": now - 100,
        "updated_at": now,
        "progress": {"done": done, "total": total, "message": message},
        "result": result or {},
    }
    (folder / "status.json").write_text(json.dumps(status))
    return folder


def _built(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "store.sqlite").write_bytes(b"")


def test_the_status_is_building_n_of_m_never_done_while_the_build_runs(settings):
    default = settings.default_store
    _built(default)
    _job(settings, "datastore_default", build_job_key(default), "running", (769, 1563))
    state = store_state(settings, default)
    assert state.building and not state.complete
    assert state.label() == "building (769 of 1,563)"
    ws = Workspace(settings.workspace_db)
    step = next(s for s in flow_status(settings, ws, None) if s.stage == "datastore")
    assert not step.done
    assert step.note == "building (769 of 1,563)"


def test_the_sidebar_names_the_starter_build_before_the_full_one_starts(settings):
    _job(settings, "datastore_default", build_job_key(settings.starter_store), "running", (5, 9))
    ws = Workspace(settings.workspace_db)
    step = next(s for s in flow_status(settings, ws, None) if s.stage == "datastore")
    assert not step.done and step.note == "starter store building (5 of 9)"


def test_a_store_without_any_build_job_is_complete(settings):
    _built(settings.default_store)
    assert store_state(settings, settings.default_store).complete
    assert usable_store(settings).path == settings.default_store
    assert not usable_store(settings).partial


def test_the_starter_store_serves_while_the_first_full_build_runs(settings):
    _built(settings.starter_store)
    _job(settings, "datastore_default", build_job_key(settings.starter_store), "done")
    # Before the full build has written anything: the starter store, and the note says so.
    _job(settings, "datastore_default", build_job_key(settings.default_store), "running", (3, 9))
    choice = usable_store(settings)
    assert choice.path == settings.starter_store and choice.partial
    assert f"{STARTER_ROWS_PER_CONFIG} rows of each" in choice.note
    assert "building (3 of 9)" in choice.note
    # Half-way through the full build: still the starter store (complete over all configs).
    _built(settings.default_store)
    assert usable_store(settings).path == settings.starter_store


def test_adding_a_source_keeps_the_default_store_in_use(settings):
    """A user's own source being added is not the first build: the default store (partial for
    the new source) stays the one retrieval uses, with a note."""
    _built(settings.default_store)
    _built(settings.starter_store)
    _job(settings, "datastore_build", build_job_key(settings.default_store), "running", (1, 4))
    choice = usable_store(settings)
    assert choice.path == settings.default_store and choice.partial
    assert "building (1 of 4)" in choice.note


def test_a_stopped_build_leaves_the_store_incomplete(settings):
    _built(settings.default_store)
    _job(settings, "datastore_default", build_job_key(settings.default_store), "cancelled")
    state = store_state(settings, settings.default_store)
    assert state.incomplete and not state.complete
    choice = usable_store(settings)
    assert choice.partial and "resume" in choice.note


def test_a_users_source_that_failed_to_add_leaves_the_store_whole(settings):
    _built(settings.default_store)
    _job(settings, "datastore_build", build_job_key(settings.default_store), "failed")
    assert store_state(settings, settings.default_store).complete
    assert not usable_store(settings).partial


def test_the_eta_leaves_pauses_out(settings):
    folder = _job(settings, "datastore_default", "k", "running", (50, 100))
    assert 99 < (jobs.job_status(folder).eta_s or 0) < 101  # 100 s for the first half
    ctx = jobs.JobContext(folder)
    ctx.add_paused(60)
    ctx.add_paused(20)
    status = jobs.job_status(folder)
    assert status.paused_s == 80
    assert 19 < (status.eta_s or 0) < 21  # 20 s of work for the first half


class _Ctx:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.paused = 0.0
        self.stop = False

    def progress(self, p: Progress) -> None:
        self.messages.append(p.message)

    def should_stop(self) -> bool:
        return self.stop

    def add_paused(self, seconds: float) -> None:
        self.paused += seconds


def test_the_build_pauses_while_a_user_job_runs_and_goes_on_after(settings):
    transform = _job(settings, "transform", "transform:1", "running")
    _job(settings, "sleep", "sleep:1", "running")  # not a user job: no pause for it
    ctx = _Ctx()
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(0.01)
        if len(naps) == 3:  # the user's transform finishes during the third nap
            status = json.loads((transform / "status.json").read_text())
            (transform / "status.json").write_text(json.dumps({**status, "state": "done"}))

    build = YieldingBuild(settings, ctx, "full store", sleep=nap, poll_s=0.0)
    build.progress(Progress(5, 10, "bigbench/x [default]"))
    assert build.should_stop() is False
    assert len(naps) == 3
    assert "paused while your transform job runs" in ctx.messages
    assert ctx.messages[-1] == "full store: bigbench/x [default]"  # the message is restored
    assert ctx.paused > 0 and build.paused_s == ctx.paused
    # No user job any more: no wait at all.
    assert build.should_stop() is False and len(naps) == 3


def test_a_cancel_stops_the_build_even_while_it_waits(settings):
    _job(settings, "train", "train:1", "running")
    ctx = _Ctx()

    def nap(seconds: float) -> None:
        ctx.stop = True

    build = YieldingBuild(settings, ctx, "starter store", sleep=nap, poll_s=0.0)
    assert build.should_stop() is True


def test_the_first_build_makes_the_starter_store_then_the_full_one(tmp_path, settings):
    prepare_corpus(settings, max_rows_per_config=10, archives=make_archives(tmp_path / "archives"))
    folder = tmp_path / "starter-job"
    folder.mkdir()
    result = run_default_build_job(
        {"store": str(settings.starter_store), "rows_per_config": 2, "then_full": True},
        settings,
        jobs.JobContext(folder),
    )
    starter = open_datastore(settings.starter_store, settings)
    per_shard = [s["rows"] for s in starter.shards() if not s["skipped"]]
    assert per_shard and max(per_shard) <= 2
    assert result["rows_added"] == sum(per_shard)
    # The full build was started as a real background job; wait for it.
    full_job = settings.jobs_dir / result["full_build_job"]
    deadline = time.time() + 120
    while jobs.job_status(full_job).is_active and time.time() < deadline:
        time.sleep(0.5)
    status = jobs.job_status(full_job)
    assert status.state == "done", (full_job / "log.txt").read_text()
    assert status.key == build_job_key(settings.default_store)
    full = open_datastore(settings.default_store, settings)
    assert full.stats().rows > starter.stats().rows
    assert usable_store(settings).path == settings.default_store
    assert not usable_store(settings).partial
