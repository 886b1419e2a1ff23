"""`transform`: one pair per retrieved row, by per-dataset plan or LLM rewrite (contracts.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rebase_core.cli._common import read_jsonl, stderr_progress, write_json, write_jsonl
from rebase_core.errors import InputError
from rebase_core.llm import LLM
from rebase_core.settings import Settings
from rebase_core.task import load_task
from rebase_core.transform.plan import Plan, read_plan_choices
from rebase_core.transform.planner import outcomes_to_json, plan_datasets
from rebase_core.types import ScoredRow, Task


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "transform",
        help="turn retrieved rows into pairs: per-dataset plans, LLM rewrites elsewhere",
    )
    parser.add_argument("--task", type=Path, required=True)
    parser.add_argument("--rows", type=Path, required=True, help="retrieved rows JSONL")
    parser.add_argument(
        "--llm",
        required=True,
        help="anthropic:<model>, openai:<model>, local:<model-name>, or fake",
    )
    parser.add_argument("--out", help="pairs JSONL (default stdout)")
    parser.add_argument("--limit", type=int, default=None, help="transform the first N rows")
    parser.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://host/v1")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=1000)
    parser.add_argument("--filter", action="store_true", help="second pass: LLM yes/no filter")
    parser.add_argument("--no-dedup", action="store_true", help="keep duplicate inputs")
    parser.add_argument(
        "--min-grounding",
        type=float,
        default=0.2,
        help="set aside pairs whose input shares a smaller share of its words with the source "
        "row (the LLM ignored the row); 0 turns the check off",
    )
    parser.add_argument(
        "--prompt",
        type=Path,
        help="a prompt template file (see --help of the Transform page for the placeholders)",
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "plan", "rewrite"),
        default="auto",
        help="auto: a per-dataset plan where one is valid (no LLM call per row, the source's "
        "own labels), the LLM's row rewrite elsewhere; plan: planned pairs only; rewrite: the "
        "paper's per-row rewrite only",
    )
    parser.add_argument(
        "--plans",
        type=Path,
        help="a plans file (as --plans-out writes, edited): its plans are used as given "
        '(checked), and each entry\'s "use" (plan, rewrite, skip) decides its dataset',
    )
    parser.add_argument(
        "--plans-out", type=Path, help="write every dataset's plan, status and reason here"
    )
    parser.add_argument("--failures", type=Path, help="write the failures JSONL here")
    parser.add_argument("--no-cache", action="store_true", help="do not use the response cache")
    parser.set_defaults(handler=_transform)


def _transform(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.llm import ResponseCache, get_llm
    from rebase_core.transform import TransformConfig, transform

    task = load_task(args.task)
    records = read_jsonl(args.rows)
    if not records:
        raise InputError(f"{args.rows} holds no rows; run `retrieve` first.")
    try:
        rows = [ScoredRow.from_json_dict(r) for r in records]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{args.rows} is not a retrieved-rows file ({exc}).") from exc
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit must be at least 1, got {args.limit}.")
        rows = rows[: args.limit]
    template_kwargs = {}
    if args.prompt:
        if not args.prompt.exists():
            raise InputError(f"Prompt file {args.prompt} does not exist.")
        template_kwargs["template"] = args.prompt.read_text(encoding="utf-8")
    config = TransformConfig(
        mode=args.mode,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        llm_filter=args.filter,
        dedup=not args.no_dedup,
        min_grounding=args.min_grounding,
        concurrency=args.concurrency,
        **template_kwargs,
    )
    llm = get_llm(args.llm, settings, base_url=args.base_url)
    cache = None if args.no_cache else ResponseCache(settings.llm_cache_db)
    plans = _plans(args, task, rows, llm, cache) if args.mode != "rewrite" else {}
    if args.plans:
        _, uses = read_plan_choices(args.plans.read_text(encoding="utf-8"), where=str(args.plans))
        rows = [r for r in rows if uses.get(r.key[:2]) != "skip"]
        if not rows:
            raise InputError(f"{args.plans} skips every dataset of the rows; nothing to do.")
    result = transform(
        task, rows, llm, config, cache=cache, on_progress=stderr_progress(), plans=plans
    )
    n = write_jsonl((p.to_json_dict() for p in result.pairs), args.out)
    if args.failures:
        write_jsonl(
            (
                {"row": key.split("\x1f"), "reason": f.reason, "detail": f.detail}
                for key, f in result.failures
            ),
            str(args.failures),
        )
    counts = ", ".join(f"{k}: {v}" for k, v in result.failure_counts.items()) or "none"
    usage = result.usage
    cost = f", ${usage.cost_usd:.4f}" if usage and usage.cost_usd else ""
    sys.stderr.write(f"{n} pairs from {len(rows)} rows; failures: {counts}{cost}\n")
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return 0


def _plans(
    args: argparse.Namespace, task: Task, rows: list[ScoredRow], llm: LLM, cache: Any
) -> dict[tuple[str, str], Plan]:
    """The plans to use: the file's (checked), the LLM's for the other datasets; a line on
    stderr per dataset; all outcomes to --plans-out."""
    given: dict[tuple[str, str], Plan] = {}
    uses: dict[tuple[str, str], str] = {}
    if args.plans:
        if not args.plans.exists():
            raise InputError(f"Plans file {args.plans} does not exist.")
        given, uses = read_plan_choices(
            args.plans.read_text(encoding="utf-8"), where=str(args.plans)
        )
    todo = [r for r in rows if uses.get(r.key[:2], "plan") == "plan"]
    outcomes = (
        plan_datasets(task, todo, llm, cache=cache, given=given, on_progress=stderr_progress())
        if todo
        else []
    )
    for o in outcomes:
        what = f"plan {o.plan.version} ({o.plan.author})" if o.plan else "no plan"
        why = f": {o.reason}" if o.reason else ""
        sys.stderr.write(f"{o.status:>7}  {o.dataset}/{o.config} ({o.rows} rows): {what}{why}\n")
    if args.plans_out:
        write_json(outcomes_to_json(outcomes), str(args.plans_out))
    calls = sum(o.calls for o in outcomes)
    valid = [o for o in outcomes if o.status == "valid" and o.plan is not None]
    covered = sum(o.rows for o in valid)
    sys.stderr.write(
        f"plans: {len(valid)} of {len(outcomes)} dataset(s) valid, covering {covered} of "
        f"{len(rows)} rows ({calls} LLM calls)\n"
    )
    return {o.key: o.plan for o in valid if o.plan is not None}
