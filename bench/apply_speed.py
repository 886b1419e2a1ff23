"""How fast a plan applies to rows shaped like a task's own, with no datastore needed.

    .venv/bin/python bench/apply_speed.py [--tasks squad nli ...] [--rows 2000]

`bench/plans.py` times plans on the rows a preset retrieves from the built datastore; a bare
machine has none (building it takes ~17 min). This times `apply_plan` on a held-out set's test
rows instead (`workspace/heldout/<task>/`, made by `scripts/setup.sh app`): each row's
input is split at the task's markers into columns ("Context: ... Question: ..." -> `context`,
`question`), its output is the answer column, and a plan maps them back, so the row and its
span or label checks are the real ones. Prints rows/s per task (target >= 10,000, issue 12).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebase_core.bundled import heldout_sets
from rebase_core.settings import Settings
from rebase_core.task import final_answer, load_task
from rebase_core.transform import Plan, apply_plan, input_markers


def split_row(text: str, markers: tuple[str, ...]) -> dict[str, str]:
    """A held-out input as columns, one per marker ("Context:" -> "context")."""
    names = [m.rstrip(":").strip() for m in markers]
    if not names:
        return {"input": text.strip()}
    pattern = re.compile(r"(?:^|\n)(" + "|".join(map(re.escape, names)) + r"):[ \t]*")
    parts = pattern.split(text)
    lead = {"input": parts[0].strip()} if parts[0].strip() else {}  # (text before any marker)
    return lead | {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["squad", "nli"])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    heldout = {h.name: h for h in heldout_sets(Settings.from_mapping(os.environ))}
    for name in args.tasks:
        if name not in heldout or not heldout[name].test_path.exists():
            sys.exit(f"no held-out set {name!r}: run `bash scripts/setup.sh app` first.")
        task = load_task(heldout[name].task_path)
        markers = input_markers(task)
        lines = heldout[name].test_path.read_text(encoding="utf-8").splitlines()[: args.rows]
        rows = []
        for line in lines:
            item = json.loads(line)
            cells = split_row(item["input"], markers)
            rows.append({**cells, "answer": final_answer(item["output"])})
        parts = [f"{m} {{{m.rstrip(':').strip().lower()}}}" for m in markers]
        template = "\n".join((["{input}"] if "input" in rows[0] else []) + parts)
        plan = Plan(f"heldout/{name}", "default", template, "answer")
        apply_plan(plan, task, rows[0])  # (the per-task caches fill here)
        made = applied = 0
        start = time.perf_counter()
        while time.perf_counter() - start < 1.0:
            made += sum(apply_plan(plan, task, r, str(i)).ok for i, r in enumerate(rows))
            applied += len(rows)
        rate = applied / (time.perf_counter() - start)
        print(
            f"{name:26} {len(rows):>5} rows  {made * len(rows) // applied:>5} pairs  "
            f"{rate:>9,.0f} rows/s  (plan: {template!r})"
        )


if __name__ == "__main__":
    main()
