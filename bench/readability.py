"""Readability benchmark (issue 16 §4): what the first rows of a retrieval look like on the
default datastore, under the paper's setting and under the app's defaults.

    REBASE_THREADS=1 .venv/bin/python bench/readability.py
    .venv/bin/python bench/readability.py --caps 10 20 50 100 --top-k 3000   # a sweep

For the 27 preset tasks (plus the support-routing task that issue 16 was found with) it runs one
top-K retrieval per setting (exact method, the task's exclusions and the held-out sets excluded)
and prints, per task and as a summary:
- `share20` / `share`: the share of the top 20 / top 100 from its largest dataset;
- `dups`: rows among the top 100 whose cells repeat a better row's (`readability.content_key`);
- `ds100`: distinct datasets in the top 100;
- `kind`: the best rank (1-based, within the top K) of a dataset of the task's own kind, for the
  tasks where one can be named (SAME_KIND below; "-" when none is in the top K); the summary
  counts the tasks where it is in the top 10 and in the top 100;
- `mean100` / `meanK`: the mean ReBase score of the top 100 / of the top K (what a cap costs).
Cap and dedup pick rows greedily in score order, so the top 100 of a top-3,000 run is the top 100
of a top-100 run: the figures hold for any K >= 100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebase_core.datastore import Datastore, open_datastore
from rebase_core.embed import get_embedder
from rebase_core.readability import best_rank, content_key, top_readability
from rebase_core.retrieval import (
    RetrievalOptions,
    TaskVectors,
    app_retrieval_options,
    retrieve_vectors,
    task_vectors,
)
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.task import task_from_dict
from rebase_core.types import Example, Task

# A dataset of the task's own kind, as a regular expression over the store's dataset names
# (bundled corpus; the held-out sets are excluded from retrieval anyway). Tasks left out have no
# dataset in the store that is plainly of their kind.
SAME_KIND = {
    "support-routing": r"banking77|intent_recognition",
    "bbh-causal_judgement": r"corr2cause|cause_and_effect|causal|counterfactual",
    "bbh-date_understanding": r"date|timedial",
    "bbh-disambiguation_qa": r"anaphora|winowhy|ambigu",
    "bbh-dyck_languages": r"cs_algorithms|context-free-grammar|syntax-check",
    "bbh-formal_fallacies": r"fallac|formal_logic|logical_args|logic-statements",
    "bbh-geometric_shapes": r"svg|shape",
    "bbh-logical_deduction_three_objects": r"logic.grid|seating|logical_sequence|logiqa",
    "bbh-logical_deduction_five_objects": r"logic.grid|seating|logical_sequence|logiqa",
    "bbh-logical_deduction_seven_objects": r"logic.grid|seating|logical_sequence|logiqa",
    "bbh-movie_recommendation": r"movie",
    "bbh-navigate": r"movement|direction",
    "bbh-object_counting": r"counting|piece_count",
    "bbh-snarks": r"sarcasm|irony",
    "bbh-sports_understanding": r"cricket|nfl|sport",
    "bbh-tracking_shuffled_objects_three_objects": r"track|passing-balls",
    "bbh-tracking_shuffled_objects_five_objects": r"track|passing-balls",
    "bbh-tracking_shuffled_objects_seven_objects": r"track|passing-balls",
    "bbh-word_sorting": r"sort",
    "humaneval": r"python|codeio|code_line|auto_debugging|code_progress",
    "nli": r"entail|mrpc|russe",
    "squad": r"coqa|narrativeqa|quac|boolq|reading_comprehension|nq-open",
}

SUPPORT_TASK = Task(
    "support-routing",
    "Route the customer's message to the team that should answer it: billing, technical or "
    "account.",
    (
        Example("I was charged twice for my subscription this month.", "billing"),
        Example("The app crashes every time I open the settings screen.", "technical"),
        Example("How do I change the email address on my profile?", "account"),
    ),
)


@dataclass(frozen=True)
class Query:
    task: Task
    vectors: TaskVectors
    exclusions: tuple[str, ...]


def load_queries(embedder_name: str) -> list[Query]:
    from rebase_core.bundled import ALWAYS_EXCLUDED

    tasks = [
        task_from_dict(json.loads(p.read_text()), source=p.name)
        for p in sorted((PROJECT_ROOT / "assets" / "presets").glob("*.json"))
    ]
    tasks.append(SUPPORT_TASK)
    embedder = get_embedder(embedder_name, 1)
    return [
        Query(t, task_vectors(t, embedder), (*t.exclude_datasets, *ALWAYS_EXCLUDED)) for t in tasks
    ]


def settings_to_measure(top_k: int, caps: list[int]) -> dict[str, RetrievalOptions]:
    paper = RetrievalOptions(top_k=top_k, method="exact")
    app = replace(app_retrieval_options(top_k), method="exact")
    out = {"paper": paper, "dedup only": replace(paper, dedup=True)}
    for cap in caps:
        out[f"dedup+cap {cap}"] = replace(paper, dedup=True, per_dataset_cap=cap)
    out[f"app (dedup, cap {app.per_dataset_cap})"] = app
    return out


def store_duplicates(store: Datastore) -> tuple[int, int, int]:
    """(rows repeating an earlier row's cells, of them in another config of the same dataset,
    of them in another dataset) over the whole store."""
    first: dict[tuple[str, ...], tuple[str, str]] = {}
    repeats = other_config = other_dataset = 0
    for start in range(0, store.n_rows, 5000):
        for row in store.rows(range(start, min(store.n_rows, start + 5000))):
            key = content_key(row.cells)
            if key not in first:
                first[key] = (row.dataset, row.config)
                continue
            repeats += 1
            dataset, config = first[key]
            other_dataset += dataset != row.dataset
            other_config += dataset == row.dataset and config != row.config
    return repeats, other_config, other_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="datastore (default: the workspace default)")
    parser.add_argument("--top-k", type=int, default=3000)
    parser.add_argument("--caps", type=int, nargs="*", default=[], help="extra caps to sweep")
    parser.add_argument("--per-task", action="store_true", help="print every task's figures")
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    store = open_datastore(args.store or settings.default_store, settings)
    started = time.perf_counter()
    queries = load_queries(store.embedder_name)
    print(
        f"readability: {store.n_rows:,} rows, {len(store.dataset_names)} datasets, "
        f"{len(queries)} tasks, top-{args.top_k}, load {os.getloadavg()[0]:.1f} "
        f"(tasks embedded in {time.perf_counter() - started:.1f} s)"
    )
    repeats, other_config, other_dataset = store_duplicates(store)
    print(
        f"store: {repeats:,} rows repeat an earlier row's cells ({other_config:,} in another "
        f"config of its dataset, {other_dataset:,} in another dataset)"
    )
    header = f"{'setting':<22} {'share20':>6} {'share':>6} {'max':>5} {'dups':>5} {'ds100':>6} "
    header += f"{'kind':>10} {'mean100':>8} {'meanK':>7} {'s/task':>7}"
    summary = []
    for name, options in settings_to_measure(args.top_k, args.caps).items():
        figures = []
        t0 = time.perf_counter()
        for q in queries:
            result = retrieve_vectors(store, q.vectors, options, exclusions=q.exclusions)
            top = top_readability(result.rows, 100)
            pattern = SAME_KIND.get(q.task.name)
            rank = best_rank(result.rows, pattern) if pattern else None
            mean_k = statistics.fmean(r.score for r in result.rows) if result.rows else 0.0
            share20 = top_readability(result.rows, 20).largest_share
            figures.append((q.task.name, top, pattern is not None, rank, mean_k, share20))
            if args.per_task:
                print(
                    f"  {name:<22} {q.task.name:<44} share {top.largest_share:.2f} "
                    f"({top.largest_dataset}) dups {top.duplicates:>3} ds {top.datasets:>3} "
                    f"kind {rank if rank else '-':>5}"
                )
        seconds = (time.perf_counter() - t0) / len(queries)
        shares = [f[1].largest_share for f in figures]
        dups = [f[1].duplicates for f in figures]
        named = [f for f in figures if f[2]]
        ranks = [f[3] for f in named if f[3] is not None]
        in10 = sum(1 for r in ranks if r <= 10)
        in100 = sum(1 for r in ranks if r <= 100)
        kind = f"{in10}/{in100}/{len(named)}"
        top20 = statistics.fmean(f[5] for f in figures)
        summary.append(
            f"{name:<22} {top20:>6.2f} {statistics.fmean(shares):>6.2f} {max(shares):>5.2f} "
            f"{sum(dups):>5} {statistics.fmean(f[1].datasets for f in figures):>6.1f} "
            f"{kind:>10} {statistics.fmean(f[1].mean_score for f in figures):>8.4f} "
            f"{statistics.fmean(f[4] for f in figures):>7.4f} {seconds:>7.2f}"
        )
        print(summary[-1], flush=True)
    print()
    print("share20/share: mean share of the top 20/100 from its largest dataset (max: the worst")
    print("task, top 100); dups: duplicate rows in the top 100, all tasks together; ds100: mean")
    print("datasets in the top 100; kind: tasks whose first same-kind dataset ranks in the top")
    print("10 / top 100 / tasks named; mean100/meanK: mean score of the top 100 / top K.")
    print(header)
    print("\n".join(summary))
    store.close()


if __name__ == "__main__":
    main()
