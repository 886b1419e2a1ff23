"""`synthesize`: baseline pairs without retrieval, by direct generation or SELF-GUIDE."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rebase_core.cli._common import stderr_progress, write_jsonl
from rebase_core.errors import InputError
from rebase_core.settings import Settings
from rebase_core.synthesize.config import DEFAULT_STUDENT_LLM, METHODS
from rebase_core.task import load_task


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "synthesize",
        help="baseline pairs: direct generation by an LLM, or SELF-GUIDE by the student",
        description="direct: an LLM writes pairs from the instruction and examples (temperature "
        "annealed upward, duplicates voted out). self-guide: the student writes inputs, answers "
        "each several times and keeps consistent answers that pass the rule filters.",
    )
    parser.add_argument("--task", type=Path, required=True)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--n", type=int, required=True, help="pairs to make")
    parser.add_argument(
        "--llm",
        help="anthropic:<model>, openai:<model>, local:<model-name> or fake (default: "
        f"{DEFAULT_STUDENT_LLM} for self-guide, $REBASE_LLM for direct)",
    )
    parser.add_argument("--out", help="pairs JSONL (default stdout)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://host/v1")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="another seed gives other pairs")
    parser.add_argument(
        "--per-call", type=int, help="direct: pairs asked for in one call (default 5)"
    )
    parser.add_argument(
        "--max-temperature", type=float, help="direct: the annealing cap (default 1.2)"
    )
    parser.add_argument(
        "--samples", type=int, help="self-guide: answers per input for self-consistency (5)"
    )
    parser.add_argument(
        "--min-share", type=float, help="self-guide: share the top answer needs (default 0.3)"
    )
    parser.add_argument(
        "--max-attempts",
        type=float,
        help="tries per pair wanted, at most: pairs asked for (direct, default 3) or inputs "
        "written (self-guide, default 4). Raise it when a run stops short: the same value "
        "only replays the same calls",
    )
    parser.add_argument("--failures", type=Path, help="write the dropped work JSONL here")
    parser.add_argument("--no-cache", action="store_true", help="do not use the response cache")
    parser.set_defaults(handler=_synthesize)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {"concurrency": args.concurrency, "seed": args.seed}
    if args.max_attempts is not None:
        values["max_attempts"] = args.max_attempts
    per_method = {
        "direct": {"per_call": args.per_call, "max_temperature": args.max_temperature},
        "self-guide": {"samples": args.samples, "min_share": args.min_share},
    }
    for method, options in per_method.items():
        for name, value in options.items():
            if value is None:
                continue
            if method != args.method:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} applies to --method {method}, not {args.method}.")
            values[name] = value
    return values


def _synthesize(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.llm import ResponseCache, get_llm
    from rebase_core.synthesize import estimate_synthesis, make_config, synthesize

    task = load_task(args.task)
    if args.n < 1:
        raise InputError(f"--n must be at least 1, got {args.n}.")
    config = make_config(args.method, _config(args))
    spec = args.llm or (DEFAULT_STUDENT_LLM if args.method == "self-guide" else settings.llm)
    llm = get_llm(spec, settings, base_url=args.base_url)
    estimate = estimate_synthesis(task, llm.spec, args.method, args.n, config)
    cost = f", about ${estimate.cost_usd:.4f}" if estimate.cost_usd else ""
    sys.stderr.write(
        f"{args.method} with {llm.spec}: about {estimate.calls} calls (at most "
        f"{estimate.max_calls}){cost}\n"
    )
    cache = None if args.no_cache else ResponseCache(settings.llm_cache_db)
    result = synthesize(
        task, llm, args.method, args.n, config, cache=cache, on_progress=stderr_progress()
    )
    n = write_jsonl((p.to_json_dict() for p in result.pairs), args.out)
    if args.failures:
        write_jsonl(
            ({"key": key, "reason": f.reason, "detail": f.detail} for key, f in result.failures),
            str(args.failures),
        )
    counts = ", ".join(f"{k}: {v}" for k, v in result.failure_counts.items()) or "none"
    usage = result.usage
    spent = f", ${usage.cost_usd:.4f}" if usage and usage.cost_usd else ""
    cached = f", {usage.cached} cached" if usage and usage.cached else ""
    calls = f"{usage.requests} calls{cached}" if usage else "no calls"
    sys.stderr.write(f"{n} pairs ({calls}{spent}); dropped: {counts}\n")
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return 0
