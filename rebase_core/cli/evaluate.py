"""`evaluate`: score a model on a held-out set and write the report (contracts.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebase_core.cli._common import stderr_progress, write_json
from rebase_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="metrics of a model on a held-out test set")
    parser.add_argument("--task", required=True, type=Path, help="task file (JSON)")
    parser.add_argument(
        "--model",
        required=True,
        help="a run folder, a model/adapter folder, or 'smollm2-135m-instruct' (untrained)",
    )
    parser.add_argument("--test", required=True, type=Path, help="held-out JSONL (input, output)")
    parser.add_argument(
        "--out", default=None, help="report JSON (per-example rows go to the same name .jsonl)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N test rows")
    shots = parser.add_mutually_exclusive_group()
    shots.add_argument(
        "--few-shot",
        dest="few_shot",
        action="store_true",
        default=None,
        help="put the task's examples in the prompt (default: as the run was trained; "
        "zero-shot for an untrained model)",
    )
    shots.add_argument("--zero-shot", dest="few_shot", action="store_false")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.errors import InputError
    from rebase_core.evaluate import evaluate
    from rebase_core.task import load_task

    task = load_task(args.task)
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be a positive number, got {args.limit}.")
    out = Path(args.out) if args.out and args.out != "-" else None
    if out is not None and not out.parent.exists():
        raise InputError(f"Output folder {out.parent} does not exist; create it first.")
    report = evaluate(
        task,
        args.model,
        args.test,
        settings=settings,
        limit=args.limit,
        few_shot=args.few_shot,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        out=out,
        on_progress=stderr_progress(),
    )
    if out is None:  # the report went to the workspace; show it on stdout too
        write_json(report.to_json_dict(), None)
    return 0
