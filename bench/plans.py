"""How far per-dataset plans reach, what they cost, and how fast they apply.

    .venv/bin/python bench/plans.py [--presets nli squad ...] [--top-k 3000] \
        [--llm rules|local:qwen2.5-coder-1.5b-instruct|...] [--max-datasets N]

For each preset task (default: all 27 in assets/presets) on the default datastore:
- retrieve the top K rows (the paper's 3,000), group them by (dataset, config);
- plan the datasets: `--llm rules` (default) uses only the planner's rules (no LLM: fields named
  like the task's markers, equal or negated labels), an LLM spec adds its constrained choices
  for the largest `--max-datasets` groups (the 1.5B teacher takes ~5-20 s a call on 2 cores);
- print the share of the kept rows covered by valid plans, the rows the plans turn into pairs,
  and LLM calls per 1,000 pairs: planning calls (+ one rationale call per pair for reasoning
  tasks) against the per-row rewrite's 1,000 (+ retries);
- time `apply_plan` over every covered row (rows/s; target >= 10,000).
Results go to bench/out/plans.json. LLM replies are cached, so a rerun is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.llm import ResponseCache, get_llm
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.settings import Settings
from rebase_core.task import is_chain_of_thought, load_task
from rebase_core.transform import apply_plan, group_rows, plan_dataset

OUT = ROOT / "bench" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", help="preset names (default: all)")
    parser.add_argument("--top-k", type=int, default=3000)
    parser.add_argument("--llm", default="rules", help="rules (no LLM) or an LLM spec")
    parser.add_argument(
        "--max-datasets",
        type=int,
        default=10,
        help="with an LLM: plan only the largest N (dataset, config) groups per preset",
    )
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    store = open_datastore(settings.default_store, settings)
    embedder = get_embedder(store.embedder_name, settings.threads)
    llm = None if args.llm == "rules" else get_llm(args.llm, settings)
    cache = ResponseCache(settings.llm_cache_db)
    paths = sorted((ROOT / "assets" / "presets").glob("*.json"))
    if args.presets:
        paths = [p for p in paths if p.stem in args.presets]
    results = []
    print(
        f"{'preset':44} {'rows':>5} {'sets':>4} {'valid':>5} {'covered':>7} {'pairs':>5} "
        f"{'calls/1k plan':>13} {'rows/s':>8}  (planner: {args.llm})"
    )
    for path in paths:
        task = load_task(path)
        rows = retrieve(store, task, embedder, RetrievalOptions(top_k=args.top_k)).rows
        groups = group_rows(rows)
        ordered = sorted(groups.values(), key=len, reverse=True)
        if llm is not None:
            ordered = ordered[: args.max_datasets]
        start = time.perf_counter()
        outcomes = [plan_dataset(task, group, llm, cache=cache) for group in ordered]
        plan_s = time.perf_counter() - start
        valid = [o for o in outcomes if o.status == "valid" and o.plan is not None]
        covered_rows = [r for o in valid for r in groups[o.key]]
        plans = {o.key: o.plan for o in valid}
        # Apply every covered row, repeated until a second has passed (rows/s).
        made = 0
        applied = 0
        start = time.perf_counter()
        while covered_rows:
            for row in covered_rows:
                plan = plans[row.key[:2]]
                assert plan is not None
                made += apply_plan(plan, task, row.row, row.row_id).ok
            applied += len(covered_rows)
            if time.perf_counter() - start >= 1.0:
                break
        apply_s = time.perf_counter() - start
        pairs = round(made * len(covered_rows) / applied) if applied else 0
        calls = sum(o.calls for o in outcomes)
        cot = is_chain_of_thought(task.examples)
        per_1k = (1000 * calls / pairs + (1000 if cot else 0)) if pairs else None
        rate = applied / apply_s if applied else None
        results.append(
            {
                "preset": path.stem,
                "rows": len(rows),
                "datasets": len(groups),
                "planned_datasets": len(outcomes),
                "valid_plans": len(valid),
                "covered_rows": len(covered_rows),
                "covered_share": len(covered_rows) / len(rows) if rows else 0.0,
                "pairs": pairs,
                "planning_calls": calls,
                "planning_s": round(plan_s, 1),
                "calls_per_1000_pairs_plan": per_1k,
                "calls_per_1000_pairs_rewrite": 1000,
                "rationale": cot,
                "apply_rows_per_s": rate,
                "plans": [
                    {
                        "dataset": o.dataset,
                        "config": o.config,
                        "status": o.status,
                        "rows": o.rows,
                        "reason": o.reason,
                        "plan": o.plan.to_json_dict() if o.plan else None,
                    }
                    for o in outcomes
                ],
            }
        )
        print(
            f"{path.stem:44} {len(rows):5} {len(groups):4} {len(valid):5} "
            f"{len(covered_rows) / max(1, len(rows)):7.1%} {pairs:5} "
            f"{(f'{per_1k:.0f}' if per_1k is not None else '-'):>13} "
            f"{(f'{rate:,.0f}' if rate else '-'):>8}",
            flush=True,
        )
    total_rows = sum(r["rows"] for r in results)
    total_cov = sum(r["covered_rows"] for r in results)
    rates = [r["apply_rows_per_s"] for r in results if r["apply_rows_per_s"]]
    print(
        f"\nall presets: {total_cov:,} of {total_rows:,} kept rows covered by valid plans "
        f"({total_cov / max(1, total_rows):.1%}); {sum(r['valid_plans'] for r in results)} "
        f"valid plans from {sum(r['planning_calls'] for r in results)} LLM calls; applying: "
        f"median {sorted(rates)[len(rates) // 2]:,.0f} rows/s"
        if rates
        else ""
    )
    OUT.mkdir(parents=True, exist_ok=True)
    name = "plans.json" if args.llm == "rules" else "plans-llm.json"
    (OUT / name).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
