"""Run specs: they round-trip through job params, name their keys, and a pair run finds its job."""

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from rebase_core import jobs, runs
from rebase_core.errors import InputError
from rebase_core.settings import Settings
from rebase_core.synthesize import BaselineRun, make_config
from rebase_core.transform import PlanRun, TransformConfig, TransformRun
from rebase_core.types import Example, Task
from rebase_core.workspace import Workspace

TASK = Task("sentiment", "Label the review.", (Example("great film", "positive"),))


def _wait(settings: Settings, job: jobs.JobStatus) -> jobs.JobStatus:
    deadline = time.time() + 60
    while time.time() < deadline:
        status = jobs.job_status(job.folder)
        if not status.is_active:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job.id} did not finish")


def test_llm_ref_round_trips_and_needs_a_spec():
    ref = runs.LLMRef("openai:gpt-4o-mini", "http://127.0.0.1:9/v1", {"api_version": "x"})
    assert runs.LLMRef.from_params(ref.to_params()) == ref
    assert ref.to_params()["llm"] == "openai:gpt-4o-mini"  # the name handlers always read
    with pytest.raises(InputError, match="No LLM"):
        runs.LLMRef("")


def test_transform_and_plan_specs_round_trip_through_params():
    config = TransformConfig(temperature=0.3, mode="plan", task_note="short")
    spec = TransformRun(3, 7, runs.LLMRef("fake"), config, limit=50).for_run(11)
    again = TransformRun.from_params(spec.to_params())
    assert again == spec
    assert spec.job_key() == "transform:11" and spec.run_kind == "transform"
    assert spec.prompt_version.startswith("p-")
    plan = PlanRun(3, 7, runs.LLMRef("fake"), limit=None, replan=True)
    assert PlanRun.from_params(plan.to_params()) == plan
    assert plan.job_key() == "plan:3:7"


def test_baseline_spec_round_trips_and_checks_its_method():
    config = make_config("direct", {"seed": 4, "per_call": 3})
    spec = BaselineRun(2, "direct", 20, runs.LLMRef("fake"), config).for_run(5)
    assert BaselineRun.from_params(spec.to_params()) == spec
    assert spec.job_key() == "synthesize:5" and spec.run_kind == "direct"
    with pytest.raises(InputError, match="Unknown method"):
        BaselineRun(2, "nope", 20, runs.LLMRef("fake"), config)
    with pytest.raises(InputError, match="at least 1"):
        BaselineRun(2, "direct", 0, runs.LLMRef("fake"), config)


def test_a_baseline_pair_run_is_started_linked_and_found(settings):
    ws = Workspace(settings.workspace_db)
    rec = ws.save_task(TASK)
    spec = BaselineRun(rec.id, "direct", 4, runs.LLMRef("fake"), make_config("direct", {}))
    run = runs.start_pair_run(settings, ws, spec)
    assert run.kind == "direct" and run.params["n"] == 4
    job = runs.pair_run_job(settings, run)
    assert job is not None and job.key == f"synthesize:{run.id}"  # one key, the run's own
    done = _wait(settings, job)
    assert done.state == "done", done.error
    assert done.result["total_pairs"] == len(ws.pairs(run_id=run.id)) > 0
    # A run made without a job has none to show.
    manual = ws.get_pair_run(ws.create_pair_run(rec.id, "manual"))
    assert runs.pair_run_job(settings, manual) is None
    with pytest.raises(InputError, match="no job to resume"):
        runs.resume_pair_run(settings, ws, manual)


@dataclass(frozen=True)
class _SleepRun:
    """A pair-run spec over the jobs machinery's own test handler."""

    kind: ClassVar[str] = "sleep"
    task_id: int
    fail: bool
    pair_run: int = 0
    run_kind: ClassVar[str] = "manual"
    llm_spec: ClassVar[str] = "fake"
    prompt_version: ClassVar[str] = ""

    def for_run(self, pair_run: int) -> "_SleepRun":
        return _SleepRun(self.task_id, self.fail, pair_run)

    def job_key(self) -> str:
        return f"sleep:{self.pair_run}"

    def to_params(self) -> dict[str, Any]:
        return {"steps": 2, "step_s": 0.01, "fail": self.fail, "pair_run": self.pair_run}


def test_a_failed_pair_run_resumes_from_its_own_spec(settings):
    ws = Workspace(settings.workspace_db)
    rec = ws.save_task(TASK)
    run = runs.start_pair_run(settings, ws, _SleepRun(rec.id, fail=True))
    first = _wait(settings, runs.pair_run_job(settings, run))
    assert first.state == "failed"
    again = runs.resume_pair_run(settings, ws, run)
    assert again.id != first.id and again.params == first.params and again.key == first.key
    assert ws.get_pair_run(run.id).job_id == again.id  # the run follows its newest job
    assert _wait(settings, again).state == "failed"
    assert runs.resume_job(settings, jobs.job_status(again.folder)).id != again.id


def test_call_speed_comes_from_finished_runs_then_the_measured_table(settings):
    assert runs.call_speed(settings, "fake") is None
    measured = runs.call_speed(settings, "local:qwen2.5-coder-1.5b-instruct")
    assert measured is not None and measured.source == "this machine's benchmark"
    job = jobs.start_job(settings, "sleep", {"steps": 1, "step_s": 0.01, "llm": "fake"})
    done = _wait(settings, job)
    assert runs.call_speed(settings, "fake") is None  # a job without paid calls says nothing
    jobs._update_status(done.folder, result={"paid_calls": 4}, started_at=100.0, finished_at=120.0)
    # Only pair-making jobs count: make this one look like a transform of the same LLM.
    spec = (done.folder / "spec.json").read_text().replace('"kind": "sleep"', '"kind": "transform"')
    (done.folder / "spec.json").write_text(spec)
    speed = runs.call_speed(settings, "fake")
    assert speed == runs.CallSpeed(5.0, "your last runs")


def test_default_row_count_fits_a_slow_llm_in_ten_minutes():
    slow = runs.CallSpeed(23.0, "x")
    assert runs.default_row_count(3000, slow) == 26
    assert runs.default_row_count(3000, None) == 200
    assert runs.default_row_count(5, slow) == 5
    assert runs.default_row_count(3000, runs.CallSpeed(600.0, "x")) == 10
