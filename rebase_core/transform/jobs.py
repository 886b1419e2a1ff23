"""Transformation as background jobs: a transform run (plans first, then pairs) and a plan-only
run, both writing to the workspace as they go, so a stopped job keeps what it did. Their typed
specs (`TransformRun`, `PlanRun`) are what the page and the CLI start (`rebase_core.runs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from rebase_core.errors import InputError
from rebase_core.llm import LLM, ResponseCache, usage_fields
from rebase_core.runs import LLMRef, failure_summary, pair_sink
from rebase_core.transform.plan import Plan
from rebase_core.transform.planner import check_given, group_rows, plan_dataset
from rebase_core.transform.prompt import TransformConfig, prompt_version, row_key
from rebase_core.transform.run import transform
from rebase_core.types import Progress, ScoredRow, Task


@dataclass(frozen=True, slots=True)
class TransformRun:
    """Transform the first `limit` kept rows of a retrieval run into the pairs of a pair run."""

    kind: ClassVar[str] = "transform"
    task_id: int
    retrieval_run: int
    llm: LLMRef
    config: TransformConfig = field(default_factory=TransformConfig)
    limit: int | None = None
    pair_run: int = 0

    run_kind: ClassVar[str] = "transform"

    @property
    def llm_spec(self) -> str:
        return self.llm.spec

    @property
    def prompt_version(self) -> str:
        return prompt_version(self.config.template)

    def for_run(self, pair_run: int) -> TransformRun:
        return replace(self, pair_run=pair_run)

    def job_key(self) -> str:
        return f"transform:{self.pair_run}"

    def to_params(self) -> dict[str, Any]:
        return {
            "pair_run": self.pair_run,
            "retrieval_run": self.retrieval_run,
            "task_id": self.task_id,
            "limit": self.limit,
            "config": asdict(self.config),
            **self.llm.to_params(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TransformRun:
        return cls(
            task_id=int(params["task_id"]),
            retrieval_run=int(params["retrieval_run"]),
            llm=LLMRef.from_params(params),
            config=TransformConfig(**dict(params.get("config") or {})),
            limit=int(params["limit"]) if params.get("limit") else None,
            pair_run=int(params.get("pair_run") or 0),
        )


@dataclass(frozen=True, slots=True)
class PlanRun:
    """Plan every dataset among the first `limit` kept rows of a retrieval run (no pairs)."""

    kind: ClassVar[str] = "plan"
    task_id: int
    retrieval_run: int
    llm: LLMRef
    limit: int | None = None
    replan: bool = False

    def job_key(self) -> str:
        return f"plan:{self.task_id}:{self.retrieval_run}"

    def to_params(self) -> dict[str, Any]:
        return {
            "retrieval_run": self.retrieval_run,
            "task_id": self.task_id,
            "limit": self.limit,
            "replan": self.replan,
            **self.llm.to_params(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PlanRun:
        return cls(
            task_id=int(params["task_id"]),
            retrieval_run=int(params["retrieval_run"]),
            llm=LLMRef.from_params(params),
            limit=int(params["limit"]) if params.get("limit") else None,
            replan=bool(params.get("replan")),
        )


def run_transform_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler of a `TransformRun` (its params).

    Unless the mode is "rewrite", every dataset among the rows first gets a plan (saved in the
    workspace; a plan the user edited is kept, and so is the user's plan/rewrite/skip choice).
    Resumable: rows that already produced a pair are skipped; cached calls cost nothing.
    """
    spec = TransformRun.from_params(params)
    with pair_sink(settings, spec.task_id, spec.pair_run) as sink:
        ws, task, config = sink.ws, sink.task, spec.config
        rows = ws.kept_rows(spec.retrieval_run, spec.limit)
        done = sink.done_keys()
        todo = [r for r in rows if row_key(r) not in done]
        # Said at once: loading a local model and the first planning call take a while.
        ctx.progress(Progress(len(done), len(rows), f"starting: loading {spec.llm.spec}"))
        llm = spec.llm.build(settings)
        cache = ResponseCache(settings.llm_cache_db)
        if not todo:
            return {"summary": f"all {len(rows)} rows already transformed", "pairs": 0}
        plans: dict[tuple[str, str], Plan] = {}
        if config.mode != "rewrite":
            plans, skipped = plan_for_job(ws, spec.task_id, task, todo, llm, cache, ctx)
            todo = [r for r in todo if r.key[:2] not in skipped]
            if not todo:
                return {"summary": "every dataset of the rows is skipped", "pairs": 0}

        def progress(p: Progress) -> None:
            ctx.progress(Progress(len(done) + p.done, len(done) + (p.total or 0), p.message))

        result = transform(
            task,
            todo,
            llm,
            config,
            cache=cache,
            known_inputs=[p.input for p in sink.existing()],
            on_progress=progress,
            should_stop=ctx.should_stop,
            on_pair=sink.save_pair,
            on_failure=sink.save_failure,
            plans=plans,
        )
        planned = sum(1 for p in result.pairs if p.method != "rewrite")
        return {
            "planned": planned,
            "summary": f"{len(result.pairs)} new pairs ({planned} by plans), "
            f"{len(result.failures)} failed ({failure_summary(result.failure_counts)})",
            "pairs": len(result.pairs),
            "failures": result.failure_counts,
            "warnings": list(result.warnings),
            **usage_fields(result.usage),
        }


def run_plan_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler of a `PlanRun` (its params). Plans are saved in the workspace as they are
    made, so a stopped job keeps what it did."""
    from rebase_core.workspace import Workspace

    spec = PlanRun.from_params(params)
    ws = Workspace(settings.workspace_db)
    try:
        task = ws.get_task(spec.task_id).task
        rows = ws.kept_rows(spec.retrieval_run, spec.limit)
        if not rows:
            raise InputError("No kept rows to plan for: keep some rows on the Retrieve page.")
        llm = spec.llm.build(settings)
        cache = ResponseCache(settings.llm_cache_db)
        plans, skipped = plan_for_job(
            ws, spec.task_id, task, rows, llm, cache, ctx, replan=spec.replan
        )
        records = ws.plans(spec.task_id, task)
        covered = sum(r.rows for r in records if r.key in plans)
        return {
            "summary": f"{len(plans)} of {len(records)} datasets planned, covering {covered} of "
            f"{len(rows)} rows",
            "datasets": len(records),
            "valid": sum(r.status == "valid" for r in records),
            "covered_rows": covered,
            "skipped_datasets": len(skipped),
        }
    finally:
        ws.close()


def plan_for_job(
    ws: Any,
    task_id: int,
    task: Task,
    rows: Sequence[ScoredRow],
    llm: LLM,
    cache: ResponseCache,
    ctx: Any,
    *,
    replan: bool = False,
) -> tuple[dict[tuple[str, str], Plan], set[tuple[str, str]]]:
    """Plans for the datasets among the rows, saved as they are made; (the plans the rows use,
    the datasets the user skips). Saved plans of this task version are reused (a plan the user
    edited is checked again, not rewritten); datasets without one are planned now, and with
    `replan` every dataset whose plan the user did not write."""
    saved = {} if replan else {r.key: r for r in ws.plans(task_id, task)}
    user = {r.key: r for r in ws.plans(task_id, task) if r.plan and r.plan.author == "user"}
    saved.update(user)
    groups = group_rows(rows)
    for i, (key, group) in enumerate(groups.items()):
        if ctx.should_stop():
            break
        record = saved.get(key)
        by_llm = record is not None and (record.plan is None or record.plan.author != "user")
        if by_llm and record is not None and record.rows >= len(group):
            continue  # planned before on at least as many rows
        ctx.progress(Progress(i, len(groups), f"planning {key[0]} ({len(group)} rows)"))
        if record is not None and record.plan is not None and record.plan.author == "user":
            outcome = check_given(task, record.plan, group)
        else:
            outcome = plan_dataset(task, group, llm, cache=cache)
        ws.save_plan(task_id, task, outcome)
    ctx.progress(Progress(len(groups), len(groups), f"planned {len(groups)} dataset(s)"))
    skipped = {r.key for r in ws.plans(task_id, task) if r.chosen == "skip"}
    return ws.applied_plans(task_id, task), skipped
