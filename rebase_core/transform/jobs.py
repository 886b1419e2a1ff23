"""Transformation as background jobs: a transform run (plans first, then pairs) and a plan-only
run, both writing to the workspace as they go, so a stopped job keeps what it did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rebase_core.errors import InputError
from rebase_core.llm import LLM, ResponseCache, usage_fields
from rebase_core.transform.plan import Plan
from rebase_core.transform.planner import check_given, group_rows, plan_dataset
from rebase_core.transform.prompt import TransformConfig, row_key
from rebase_core.transform.run import transform
from rebase_core.types import Pair, Progress, ScoredRow, Task


def run_transform_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler: transform the kept rows of a retrieval run into the pairs of a pair run.

    params: {"pair_run": id, "retrieval_run": id, "task_id": id, "llm": spec,
             "config": {...TransformConfig fields, "mode": auto|plan|rewrite}, "limit": n | None,
             "base_url": str | None, "llm_options": {...provider options, e.g. api_version}}.
    Unless the mode is "rewrite", every dataset among the rows first gets a plan (saved in the
    workspace; a plan the user edited is kept, and so is the user's plan/rewrite/skip choice).
    Resumable: rows that already produced a pair are skipped; cached calls cost nothing.
    """
    from rebase_core.llm import get_llm
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    try:
        task = ws.get_task(int(params["task_id"])).task
        run_id = int(params["pair_run"])
        rows = [
            r for _, r, _ in ws.retrieved_rows(int(params["retrieval_run"]), selected_only=True)
        ]
        if params.get("limit"):
            rows = rows[: int(params["limit"])]
        done = ws.done_keys(run_id)
        todo = [r for r in rows if row_key(r) not in done]
        config = TransformConfig(**dict(params.get("config") or {}))
        llm = get_llm(
            params["llm"],
            settings,
            base_url=params.get("base_url"),
            **dict(params.get("llm_options") or {}),
        )
        cache = ResponseCache(settings.llm_cache_db)
        if not todo:
            return {"summary": f"all {len(rows)} rows already transformed", "pairs": 0}
        plans: dict[tuple[str, str], Plan] = {}
        if config.mode != "rewrite":
            plans, skipped = plan_for_job(ws, task_id_of(params), task, todo, llm, cache, ctx)
            todo = [r for r in todo if r.key[:2] not in skipped]
            if not todo:
                return {"summary": "every dataset of the rows is skipped", "pairs": 0}

        def progress(p: Progress) -> None:
            ctx.progress(Progress(len(done) + p.done, len(done) + (p.total or 0), p.message))

        known = [p.input for p in ws.pairs(run_id=run_id)]
        task_id = int(params["task_id"])

        def save_pair(pair: Pair) -> None:
            ws.add_pairs(run_id, task_id, [pair])
            ws.clear_failure(run_id, str(pair.extra["key"]))

        result = transform(
            task,
            todo,
            llm,
            config,
            cache=cache,
            known_inputs=known,
            on_progress=progress,
            should_stop=ctx.should_stop,
            on_pair=save_pair,
            on_failure=lambda k, f: ws.add_failure(run_id, k, f),
            plans=plans,
        )
        usage = result.usage
        planned = sum(1 for p in result.pairs if p.method != "rewrite")
        return {
            "planned": planned,
            "summary": f"{len(result.pairs)} new pairs ({planned} by plans), "
            f"{len(result.failures)} failed "
            f"({', '.join(f'{k}: {v}' for k, v in result.failure_counts.items()) or 'none'})",
            "pairs": len(result.pairs),
            "failures": result.failure_counts,
            "warnings": list(result.warnings),
            **usage_fields(usage),
        }
    finally:
        ws.close()


def task_id_of(params: Mapping[str, Any]) -> int:
    return int(params["task_id"])


def run_plan_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler: plan every dataset among a retrieval run's kept rows (no pairs are made).

    params: {"retrieval_run": id, "task_id": id, "llm": spec, "limit": n | None,
             "base_url": str | None, "llm_options": {...}, "replan": bool}.
    Plans are saved in the workspace as they are made, so a stopped job keeps what it did.
    """
    from rebase_core.llm import get_llm
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    try:
        task_id = task_id_of(params)
        task = ws.get_task(task_id).task
        rows = [
            r for _, r, _ in ws.retrieved_rows(int(params["retrieval_run"]), selected_only=True)
        ]
        if params.get("limit"):
            rows = rows[: int(params["limit"])]
        if not rows:
            raise InputError("No kept rows to plan for: keep some rows on the Retrieve page.")
        llm = get_llm(
            params["llm"],
            settings,
            base_url=params.get("base_url"),
            **dict(params.get("llm_options") or {}),
        )
        cache = ResponseCache(settings.llm_cache_db)
        plans, skipped = plan_for_job(
            ws, task_id, task, rows, llm, cache, ctx, replan=bool(params.get("replan"))
        )
        records = ws.plans(task_id, task)
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
