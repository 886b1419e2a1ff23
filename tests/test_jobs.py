"""The background-job machinery, with real child processes."""

import time

from rebase_core import jobs


def _wait(folder, states=jobs.FINAL_STATES, timeout_s=30.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = jobs.job_status(folder)
        if status.state in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job stuck in {jobs.job_status(folder).state}")


def test_job_runs_in_background_and_reports_progress(settings):
    job = jobs.start_job(settings, "sleep", {"steps": 3, "step_s": 0.05}, key="t")
    done = _wait(job.folder)
    assert done.state == "done", (done.error, (job.folder / "log.txt").read_text())
    assert done.result == {"steps": 3}
    assert done.progress.done == 3 and done.progress.total == 3


def test_same_key_while_active_returns_the_running_job(settings):
    first = jobs.start_job(settings, "sleep", {"steps": 40, "step_s": 0.05}, key="k")
    second = jobs.start_job(settings, "sleep", {"steps": 1}, key="k")
    assert second.id == first.id
    jobs.cancel_job(first.folder)
    assert _wait(first.folder).state == "cancelled"


def test_failure_is_reported_with_the_reason(settings):
    job = jobs.start_job(settings, "sleep", {"steps": 1, "step_s": 0.01, "fail": True})
    status = _wait(job.folder)
    assert status.state == "failed"
    assert "asked to fail" in status.error


def test_dead_process_is_reported_as_failed(settings):
    import os
    import signal

    job = jobs.start_job(settings, "sleep", {"steps": 200, "step_s": 0.05})
    _wait(job.folder, states=("running",))
    os.killpg(jobs.job_status(job.folder).pid, signal.SIGKILL)
    status = _wait(job.folder)
    assert status.state == "failed"
    assert "stopped unexpectedly" in status.error
