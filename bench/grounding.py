"""Does the teacher build its pair from the row? Grounding, format and labels per prompt.

    .venv/bin/python bench/grounding.py [--task nli] [--rows 24] [--offset 0]

Takes the held-out task's best rows from the default datastore (the retrieval bench/distill.py
uses), transforms rows [offset, offset + rows) with the local teacher four ways and prints, for
each: rows that gave a pair, how many of those pairs are grounded (at least 20% of the input's own
words occur in the source row; `rebase_core.transform.checks.grounding`), the median overlap, the
labels, calls paid and wall time.
- default prompt, check off: what bench/distill.py trained on (these calls are usually cached);
- default prompt, check on: ungrounded replies are asked for once more, told why;
- STRICT prompt (below), check off and on.
The sampling is bench/distill.py's (temperature 0.7, 400 tokens), so its cache is reused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebase_core.bundled import heldout_sets
from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.llm import ResponseCache, get_llm
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.settings import Settings
from rebase_core.task import load_task
from rebase_core.transform import DEFAULT_TEMPLATE, TransformConfig, label_of, transform
from rebase_core.transform.checks import grounding

TEACHER = "local:qwen2.5-coder-1.5b-instruct"

STRICT = DEFAULT_TEMPLATE.replace(
    "Write ONE new example of the task. Its format and type must match the examples exactly, but "
    "its content should come from the row: decide which parts of the row are useful and build a "
    "new input, and its correct output, around them. Do not copy an example.",
    "Write ONE new example of the task, built from this row. Its format must match the examples "
    "exactly, but its content must come from the row: reuse the row's own sentences, names, "
    "numbers and facts (copy them word for word where they fit), then work out the correct "
    "output for your new input. Do not invent content the row does not have, and do not copy an "
    "example.",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="nli")
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    if STRICT == DEFAULT_TEMPLATE:
        raise SystemExit("The default template changed; update STRICT's replacement text.")
    settings = Settings.from_mapping(os.environ)
    cache = ResponseCache(settings.llm_cache_db)
    task = load_task({h.name: h for h in heldout_sets(settings)}[args.task].task_path)
    store = open_datastore(settings.default_store, settings)
    embedder = get_embedder(store.embedder_name, settings.threads)
    top = retrieve(store, task, embedder, RetrievalOptions(top_k=600)).rows
    rows = list(top[args.offset : args.offset + args.rows])
    teacher = get_llm(TEACHER, settings)
    by_key = {(r.dataset, r.config, r.row_id): r for r in rows}
    print(f"{args.task}: rows {args.offset}..{args.offset + len(rows) - 1} of the retrieval")
    print(
        f"{'prompt':8} {'check':5} {'pairs':>5} {'grounded':>8} {'median':>6} {'paid':>4} "
        f"{'wall s':>6}  labels / failures"
    )
    for name, template in (("default", DEFAULT_TEMPLATE), ("strict", STRICT)):
        for check in (0.0, 0.2):
            config = TransformConfig(
                template=template,
                temperature=0.7,
                max_tokens=400,
                concurrency=1,
                min_grounding=check,
            )
            start = time.perf_counter()
            result = transform(task, rows, teacher, config, cache=cache)
            wall = time.perf_counter() - start
            shares = []
            for pair in result.pairs:
                src = pair.source
                assert src is not None
                share = grounding(
                    task, pair.input, by_key[(src.dataset, src.config, src.row_id)].row
                )
                shares.append(share)
            judged = [s for s in shares if s is not None]
            grounded = sum(s >= 0.2 for s in judged)
            median = statistics.median(judged) if judged else float("nan")
            labels = dict(Counter(label_of(p.output) for p in result.pairs).most_common(4))
            paid = result.usage.succeeded - result.usage.cached if result.usage else 0
            print(
                f"{name:8} {'on' if check else 'off':5} {len(result.pairs):5} "
                f"{grounded:4}/{len(judged):<3} {median:6.2f} {paid:4} {wall:6.0f}  "
                f"{labels} {result.failure_counts}",
                flush=True,
            )


if __name__ == "__main__":
    main()
