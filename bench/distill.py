"""The experiment: a small-scale reproduction of the paper's comparison on this CPU.

    .venv/bin/python bench/distill.py [--tasks nli squad bbh-date_understanding] [--pairs 200] \
        [--test 300] [--losses full-text completion-only] [--epochs 1 3] \
        [--sets rebase direct self-guide] [--methods ...] [--rebase-mode auto|plan|rewrite] \
        [--refs zero-shot few-shot teacher] [--max-attempts 6]

For each held-out task (NLI: vitaminc 3-way; extractive QA: SQuAD v1.1 dev; BBH date
understanding, a chain-of-thought task):
1. build the same number of training pairs three ways, with the same local teacher
   (Qwen2.5-Coder-1.5B-Instruct through llama.cpp) where a teacher is used:
   - ReBase: retrieve from the default datastore, transform the best rows until N pairs exist
     (`--rebase-mode auto`, the default: per-dataset plans where valid, the LLM's rewrite
     elsewhere; `rewrite`: the paper's per-row rewrite only);
   - direct synthesis (prompt2model style) from the instruction and examples alone;
   - SELF-GUIDE: the student (SmolLM2-135M-Instruct) writes and labels its own pairs;
2. fine-tune the student (LoRA, the paper's defaults) on each set, once with the paper's loss on
   the whole text and once on the response tokens only (`--losses`), for one epoch (the
   paper's) or more (`--epochs 1 3`);
3. evaluate the untrained student (zero- and few-shot) and the three trained students on the
   first `--test` rows of the held-out test set, and the teacher on the first
   `--teacher-rows`, with bootstrap 95% intervals (`--refs` picks the references);
and print the table with the time each stage took, and per pair set: the share made by plans,
grounding (share of the input's words found in its row), agreement of the pair's label with
its source row's label, LLM calls and wall time per 100 pairs.

Every stage is cached, so an interrupted run continues where it stopped: the LLM response cache,
the trained models (bench/out/distill, ignored by git) and — committed, so a later session or
machine resumes from them — the pair sets, their statistics, the evaluation reports and the
stage times (bench/results/distill/<task>/). A baseline set that spends its attempts short of
`--pairs` stays a checkpoint (`<set>.partial.jsonl`); rerun with a larger `--max-attempts` to go
on (at the same budget a rerun only replays its calls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebase_core.bundled import heldout_sets
from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.evaluate import (
    MAX_LABELS,
    answer_counts,
    balanced_accuracy,
    balanced_accuracy_ci,
    evaluate,
    paired_difference,
    report_from_json,
    summarize_scores,
)
from rebase_core.evaluate.metrics import infer_metric, score_example
from rebase_core.finetune import TrainConfig, finetune, format_prompt
from rebase_core.llm import (
    Message,
    Request,
    ResponseCache,
    complete_many,
    get_llm,
    usage_fields,
)
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.settings import Settings
from rebase_core.synthesize import synthesize
from rebase_core.task import final_answer, is_chain_of_thought, load_task
from rebase_core.transform import (
    Plan,
    TransformConfig,
    balance_by_label,
    is_classification,
    label_of,
    outcomes_to_json,
    plan_datasets,
    task_labels,
    transform,
)
from rebase_core.transform.checks import grounding, input_markers
from rebase_core.transform.plan import answer_text, label_value, row_fields
from rebase_core.transform.prompt import row_key
from rebase_core.types import Pair, Progress, ScoredRow, Task

OUT = ROOT / "bench" / "out" / "distill"  # trained models (large, not committed)
DATA = ROOT / "bench" / "results" / "distill"  # pair sets, stats, reports, times (committed)
PRESETS = ROOT / "assets" / "presets"  # the held-out tasks' files, as shipped
TEACHER = "local:qwen2.5-coder-1.5b-instruct"
STUDENT_LLM = "local:smollm2-135m-instruct"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def save_pairs(path: Path, pairs: list[Pair]) -> None:
    path.write_text("".join(json.dumps(p.to_json_dict(), ensure_ascii=False) + "\n" for p in pairs))


def load_pairs(path: Path) -> list[Pair] | None:
    if not path.exists():
        return None
    return [Pair.from_json_dict(json.loads(line)) for line in path.read_text().splitlines()]


@contextmanager
def timed(times: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to times[name]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - start


def rebase_pairs(
    task: Task,
    settings: Settings,
    n: int,
    cache: ResponseCache,
    times: dict[str, float],
    mode: str,
    stats: dict[str, object],
    pool: int = 3,
    checkpoint: Path | None = None,
) -> list[Pair]:
    """Retrieve, transform the best rows until there are enough pairs, then do what a curator
    would with the label chart: keep an even share of each label (label tasks only), as far as
    pool*n rows provide them. In auto/plan mode every dataset among those rows is planned first.

    `checkpoint` (committed, like the sets): the plans, the pairs so far and the rows already
    tried, written after each chunk, so a run on a fresh machine (no LLM cache) goes on from
    there instead of paying the teacher again."""
    store = open_datastore(settings.default_store, settings)
    embedder = get_embedder(store.embedder_name, settings.threads)
    with timed(times, "retrieve"):
        rows = retrieve(store, task, embedder, RetrievalOptions(top_k=pool * n)).rows
    stats["pool_rows"] = len(rows)
    teacher = get_llm(TEACHER, settings)
    plans: dict[tuple[str, str], Plan] = {}
    calls = 0
    started = time.perf_counter()
    saved = json.loads(checkpoint.read_text()) if checkpoint and checkpoint.exists() else {}
    earlier = float(saved.get("wall_s", 0.0))  # the runs before this one
    stats["earlier_wall_s"] = earlier
    tried: set[str] = set(saved.get("tried", ()))
    if saved:
        calls = int(saved["llm_calls"])
        stats["plans"] = saved["plans"]
        plans = {
            (o["dataset"], o["config"]): Plan.from_json_dict(o)
            for o in saved["plans"]
            if o["status"] == "valid"
        }
        log(
            f"  resumed from {checkpoint}: {len(plans)} plans, {len(saved['pairs'])} pairs "
            f"from {len(tried)} rows"
        )
    elif mode != "rewrite":
        with timed(times, "plan"):
            outcomes = plan_datasets(
                task,
                rows,
                teacher,
                cache=cache,
                on_progress=lambda p: (
                    log(f"  planning: {p.done} of {p.total} datasets")
                    if p.done % 10 == 0 or p.done == p.total
                    else None
                ),
            )
        calls += sum(o.calls for o in outcomes)
        plans = {o.key: o.plan for o in outcomes if o.status == "valid" and o.plan is not None}
        stats["plans"] = outcomes_to_json(outcomes)
        log(
            f"  plans: {len(plans)} of {len(outcomes)} datasets valid, covering "
            f"{sum(o.rows for o in outcomes if o.key in plans)} of {len(rows)} rows "
            f"({calls} LLM calls)"
        )
    pairs: list[Pair] = [Pair.from_json_dict(d) for d in saved.get("pairs", ())]
    config = TransformConfig(temperature=0.7, max_tokens=400, concurrency=1, mode=mode)
    labels = len({label_of(e.output) for e in task.examples}) if is_classification(task) else 1
    per_label = math.ceil(n / labels)
    by_key = {r.key: r for r in rows}
    # Cheapest first: every planned row (no call per row, except a rationale), then — in auto
    # and rewrite mode — the other rows, best first, rewritten by the teacher until the set is
    # full. (Auto mode in the product does both in row order; the pairs are the same, this
    # order just stops paying for rewrites once the plans have filled the set.)
    fresh = [r for r in rows if row_key(r) not in tried]
    planned = [r for r in fresh if r.key[:2] in plans]
    others = [r for r in fresh if r.key[:2] not in plans] if mode != "plan" else []
    # A direct-answer task's planned rows cost nothing, so all go at once; a reasoning task's
    # each cost a rationale call, so they go best first in chunks until the set is full.
    step = n // 2 if is_chain_of_thought(task.examples) else len(planned)
    chunks = [planned[i : i + step] for i in range(0, len(planned), step)] if planned else []
    # Rewrites cost a call a row: each chunk is twice what the set still lacks (many rewrites
    # fail: ungrounded, off-format), at most n/2 rows, at least 10.
    done = 0
    balanced = balance_by_label(task, pairs, per_label=per_label)
    with timed(times, "transform"):
        while chunks or done - len(planned) < len(others):
            if chunks:
                chunk = chunks.pop(0)
            else:
                start = done - len(planned)
                size = min(n // 2, max(10, 2 * (n - len(balanced))))
                chunk = others[start : start + size]
            result = transform(
                task,
                chunk,
                teacher,
                config,
                cache=cache,
                known_inputs=[p.input for p in pairs],
                plans=plans,
            )
            done += len(chunk)
            calls += int(usage_fields(result.usage)["paid_calls"] or 0)
            pairs += list(result.pairs)
            tried.update(row_key(r) for r in chunk)
            if checkpoint is not None:
                checkpoint.write_text(
                    json.dumps(
                        {
                            "plans": stats.get("plans", []),
                            "llm_calls": calls,
                            "wall_s": earlier + time.perf_counter() - started,
                            "tried": sorted(tried),
                            "pairs": [p.to_json_dict() for p in pairs],
                        },
                        ensure_ascii=False,
                    )
                )
            balanced = balance_by_label(task, pairs, per_label=per_label)
            log(
                f"  rebase: {len(pairs)} pairs after {done} rows, "
                f"{len(balanced)} balanced (failures {result.failure_counts})"
            )
            if len(balanced) >= n:
                break
    # When a label stays rare even after pool*n rows, fill the budget with the other pairs in order.
    chosen = balance_by_label(task, pairs, per_label=per_label)[:n]
    ids = {p.id for p in chosen}
    chosen = chosen + [p for p in pairs if p.id not in ids][: n - len(chosen)]
    stats["llm_calls"] = calls
    stats["rows_used"] = len(tried)
    stats.update(pair_set_stats(task, chosen, by_key, plans))
    return chosen


def pair_set_stats(
    task: Task,
    pairs: list[Pair],
    rows: dict[tuple[str, str, str], ScoredRow],
    plans: dict[tuple[str, str], Plan],
) -> dict[str, object]:
    """How a ReBase set was made: by which method, how grounded in its rows, and how often its
    label agrees with the row's own, where the row's answer cell names a task label."""
    methods = Counter(p.method or "rewrite" for p in pairs)
    shares = []
    agree = judged = 0
    labels = task_labels(task)
    for pair in pairs:
        if pair.source is None:
            continue
        row = rows.get((pair.source.dataset, pair.source.config, pair.source.row_id))
        if row is None:
            continue
        share = grounding(task, pair.input, row.row)
        if share is not None:
            shares.append(share)
        if not labels:
            continue
        # The row's own label where it literally names a task label (not through the plan's
        # label map, so a wrong map shows up here).
        plan = plans.get(row.key[:2])
        column = plan.output_field if plan is not None else row.output_column
        raw = row_fields(row.row, input_markers(task)).get(column, "")
        source = labels.get(label_value(answer_text(raw)), "")
        if source:
            judged += 1
            agree += label_of(pair.output) == label_of(source)
    shares.sort()
    return {
        "pairs": len(pairs),
        "by_method": dict(methods),
        "grounding_median": shares[len(shares) // 2] if shares else None,
        "grounded_share": sum(s >= 0.2 for s in shares) / len(shares) if shares else None,
        "grounding_judged": len(shares),
        "label_agreement": agree / judged if judged else None,
        "label_judged": judged,
        "labels": dict(Counter(label_of(p.output) for p in pairs).most_common()) if labels else {},
    }


def baseline_pairs(
    task: Task,
    settings: Settings,
    method: str,
    n: int,
    cache: ResponseCache,
    times: dict[str, float],
    stats: dict[str, object],
    checkpoint: Path | None = None,
    max_attempts: float | None = None,
) -> list[Pair]:
    """A baseline set. `checkpoint` (JSONL, committed): every pair is appended the moment it is
    made, and a rerun passes them on as `existing`, so a fresh machine (no LLM cache) goes on
    from there; its calls then count only this run's (`resumed_pairs` says how many were
    made before). `max_attempts` raises the method's attempts budget: its prompts are a
    prefix-stable sequence, so a rerun replays the first budget's calls (from the cache, or the
    checkpoint's pairs) and goes on past it."""
    spec = TEACHER if method == "direct" else STUDENT_LLM
    llm = get_llm(spec, settings)
    existing = (load_pairs(checkpoint) or []) if checkpoint is not None else []
    if existing:
        log(f"  {method}: resumed from {checkpoint}: {len(existing)} pairs")

    def keep(pair: Pair) -> None:
        if checkpoint is not None:
            with checkpoint.open("a", encoding="utf-8") as out:
                out.write(json.dumps(pair.to_json_dict(), ensure_ascii=False) + "\n")

    logged = [-1]  # the last tenth of the set logged

    def progress(p: Progress) -> None:
        if p.total and p.done * 10 // p.total > logged[0]:
            logged[0] = p.done * 10 // p.total
            log(f"  {method}: {p.done} of {p.total} pairs")

    with timed(times, method):
        result = synthesize(
            task,
            llm,
            method,
            n,
            {
                "seed": 0,
                "concurrency": 1,
                **({"max_attempts": max_attempts} if max_attempts else {}),
            },
            cache=cache,
            on_pair=keep,
            on_progress=progress,
            existing=existing,
        )
    log(f"  {method}: {len(result.pairs)} new pairs (failures {dict(result.failure_counts)})")
    pairs = [*existing, *result.pairs][:n]
    stats["resumed_pairs"] = len(existing)
    # Calls made, not replies replayed from the cache (a rerun replays its earlier calls).
    usage = usage_fields(result.usage)
    stats["llm_calls"] = usage["paid_calls"]
    stats["cached_calls"] = usage["cached_calls"]
    stats["pairs"] = len(pairs)
    if is_classification(task):  # (an open task's answers are no labels to count)
        stats["labels"] = dict(Counter(label_of(p.output) for p in pairs).most_common())
    return pairs


def teacher_ceiling(
    task: Task, test: Path, n: int, settings: Settings, cache: ResponseCache, out: Path
) -> None:
    """The teacher answering the first `n` test rows itself (few-shot, greedy): how good the
    labels it writes for ReBase and direct synthesis can be. Written like an evaluation report."""
    rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()][:n]
    golds = [r["output"] for r in rows]
    metric = infer_metric(task, golds)
    labels = [final_answer(o) for o in [e.output for e in task.examples] + golds]
    # A reasoning task's answer comes after its reasoning (the examples' run to ~60 tokens).
    max_tokens = 256 if is_chain_of_thought(task.examples) else 64
    requests = [
        Request(
            key=f"teacher-ceiling-{i}",
            messages=(Message("user", format_prompt(task, r["input"], with_examples=True)),),
            temperature=0.0,
            max_tokens=max_tokens,
        )
        for i, r in enumerate(rows)
    ]
    results = complete_many(get_llm(TEACHER, settings), requests, concurrency=1, cache=cache)
    scored = []
    for row, result in zip(rows, results, strict=True):
        text = result.completion.text if result.completion else ""
        prediction = text.split("###")[0].strip()  # the prompt's next section ends the answer
        scored.append(
            {
                "input": row["input"],
                "gold": row["output"],
                "prediction": prediction,
                **score_example(metric, prediction, row["output"], labels),
            }
        )
    metrics = summarize_scores(metric, scored)
    per_example = out.with_suffix(".jsonl")
    report = {
        "metric": metric,
        "n": len(scored),
        "metrics": metrics,
        "per_example": str(per_example),
        **metrics[metric],
    }
    per_example.write_text("".join(json.dumps(s) + "\n" for s in scored))
    out.write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["nli", "squad", "bbh-date_understanding"])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument(
        "--max-seq-len", type=int, default=384, help="training sequence length (tokens)"
    )
    parser.add_argument(
        "--no-prompt-examples",
        action="store_true",
        help="train (and so evaluate) without the task's examples in the prompt: SQuAD's "
        "three contexts make every prompt ~730 tokens, which 384 would cut from the start",
    )
    parser.add_argument(
        "--losses",
        nargs="+",
        choices=["full-text", "completion-only"],
        default=["full-text", "completion-only"],
        help="train one student per loss: the paper's loss on the whole text, and/or on the "
        "response tokens only",
    )
    parser.add_argument(
        "--epochs",
        nargs="+",
        type=float,
        default=[1.0],
        help="train one student per epoch count (the paper: 1; SELF-GUIDE's reference setup: 3)",
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        choices=["rebase", "direct", "self-guide"],
        default=["rebase", "direct", "self-guide"],
        help="which students to train (every pair set is still built or loaded; none: only the "
        "references)",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=["rebase", "direct", "self-guide"],
        default=["rebase", "direct", "self-guide"],
        help="which pair sets to build now if missing (a set built earlier is always loaded)",
    )
    parser.add_argument(
        "--rebase-mode",
        choices=["auto", "plan", "rewrite"],
        default="auto",
        help="how ReBase turns rows into pairs (auto: plans where valid, rewrite elsewhere)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=3,
        help="retrieve this many rows per wanted pair for ReBase (3: the paper's top 3n; more "
        "rows bring more datasets to plan)",
    )
    parser.add_argument(
        "--store-tag",
        default="",
        help="name the ReBase set after the datastore it is retrieved from (e.g. 'c2612' for "
        "the corpus without BIG-bench): its files and table rows stand beside the sets made "
        "from earlier stores instead of replacing them",
    )
    parser.add_argument(
        "--refs",
        nargs="+",
        choices=["zero-shot", "few-shot", "teacher"],
        default=["zero-shot", "few-shot", "teacher"],
        help="which references to score: the untrained student zero-shot and few-shot, the "
        "teacher (few-shot, on --teacher-rows rows)",
    )
    parser.add_argument(
        "--no-refs",
        action="store_true",
        help="skip the references (untrained student, teacher): for a second run in parallel",
    )
    parser.add_argument(
        "--only-sets",
        action="store_true",
        help="build (or load) the pair sets and stop: no training, no evaluation",
    )
    parser.add_argument(
        "--teacher-rows",
        type=int,
        default=100,
        help="also score the teacher itself on this many test rows (its labels' ceiling; 0: skip)",
    )
    parser.add_argument(
        "--max-attempts",
        type=float,
        default=None,
        help="the baselines' attempts budget, per pair wanted (default: the method's own, "
        "direct 3, SELF-GUIDE 4); raise it to go on with a set that stopped short",
    )
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    cache = ResponseCache(settings.llm_cache_db)
    heldout = {h.name: h for h in heldout_sets(settings)}
    OUT.mkdir(parents=True, exist_ok=True)
    table = []
    for name in args.tasks:
        times: dict[str, float] = {}
        folder = DATA / name  # committed: sets, stats, reports, times
        folder.mkdir(parents=True, exist_ok=True)
        models_dir = OUT / name  # trained students: large, not committed
        models_dir.mkdir(parents=True, exist_ok=True)
        test = folder / f"test{args.test}.jsonl"
        if test.exists() and (PRESETS / f"{name}.json").exists():
            # The experiment's test rows, once written, are fixed: every student is scored on
            # the same rows. (The held-out sets are remade from whatever archives a machine
            # reaches: BIG-bench's sdist left PyPI, and BBH's set now comes from BBH's own rows.)
            task = load_task(PRESETS / f"{name}.json")
            log(f"{name}: the committed {test.name} and preset")
        elif name in heldout:
            task = load_task(heldout[name].task_path)
            # An even stride over the whole test set (SQuAD's file is grouped by article).
            lines = heldout[name].test_path.read_text(encoding="utf-8").splitlines()
            step = max(1, len(lines) // args.test)
            test.write_text("\n".join(lines[::step][: args.test]) + "\n", encoding="utf-8")
        else:
            raise SystemExit(
                f"{name}: no held-out set (run `python -m rebase_core corpus prepare`) and no "
                f"committed {test} to use instead"
            )
        log(f"{name}: {args.pairs} pairs per method, {args.test} test rows")
        sets: dict[str, list[Pair]] = {}
        set_names: dict[str, str] = {}
        for method in ("rebase", "direct", "self-guide"):
            stem = (
                method
                if method != "rebase" or args.rebase_mode == "auto"
                else (f"rebase-{args.rebase_mode}")
            )
            if method == "rebase" and args.store_tag:
                stem += f"-{args.store_tag}"  # a set from another datastore: its own files
            path = folder / f"{stem}-{args.pairs}.jsonl"
            pairs = load_pairs(path)
            if pairs is None:
                if method not in args.sets:
                    log(f"  {method}: no pair set yet (not in --sets), skipped")
                    continue
                stats: dict[str, object] = {}
                start = time.perf_counter()
                if method == "rebase":
                    checkpoint = folder / f"{stem}-{args.pairs}.partial.json"
                    pairs = rebase_pairs(
                        task,
                        settings,
                        args.pairs,
                        cache,
                        times,
                        args.rebase_mode,
                        stats,
                        args.pool,
                        checkpoint,
                    )
                    checkpoint.unlink(missing_ok=True)  # the set itself is saved below
                    if len(pairs) < args.pairs:
                        # The pool's rows made too few pairs (plan mode: too few planned rows).
                        # Saved as the set, a short set would train as if it were full; a rerun
                        # with a larger --pool plans the datasets its new rows bring.
                        log(
                            f"  rebase: {len(pairs)} of {args.pairs} pairs from the top "
                            f"{stats['pool_rows']} rows; no set saved: run again with a larger "
                            "--pool"
                        )
                        continue
                else:
                    checkpoint = folder / f"{stem}-{args.pairs}.partial.jsonl"
                    pairs = baseline_pairs(
                        task,
                        settings,
                        method,
                        args.pairs,
                        cache,
                        times,
                        stats,
                        checkpoint,
                        args.max_attempts,
                    )
                    if len(pairs) < args.pairs:
                        # Short of the count (the writer ran out of new inputs within its
                        # attempt budget): keep the checkpoint for a rerun, save no set.
                        log(
                            f"  {method}: {len(pairs)} of {args.pairs} pairs, kept in "
                            f"{checkpoint.name}; run again to go on"
                        )
                        continue
                    checkpoint.unlink(missing_ok=True)  # the set itself is saved below
                wall = time.perf_counter() - start + float(stats.pop("earlier_wall_s", 0.0))  # type: ignore[arg-type]
                stats["wall_s"] = round(wall, 1)
                # A resumed baseline's calls and wall time are this run's: rate them by the
                # pairs this run made, not the whole set.
                n = max(1, len(pairs) - int(stats.get("resumed_pairs", 0)))  # type: ignore[call-overload]
                stats["per_100_pairs"] = {
                    "llm_calls": round(100 * float(stats.get("llm_calls", 0)) / n, 1),  # type: ignore[arg-type]
                    "wall_s": round(100 * wall / n, 1),
                }
                save_pairs(path, pairs)
                (folder / f"stats-{stem}-{args.pairs}.json").write_text(
                    json.dumps(stats, indent=2, ensure_ascii=False)
                )
            sets[method] = pairs
            set_names[method] = stem
            stats_path = folder / f"stats-{stem}-{args.pairs}.json"
            if stats_path.exists():
                shown = {
                    k: v for k, v in json.loads(stats_path.read_text()).items() if k != "plans"
                }
                log(f"  {method} set: {json.dumps(shown)}")
        if args.only_sets:
            continue
        # label -> (model, few-shot?, report file stem)
        refs = set() if args.no_refs else set(args.refs)
        models: dict[str, tuple[str, bool | None, str]] = {
            f"untrained {shots}": (
                "smollm2-135m-instruct",
                shots == "few-shot",
                f"untrained_{shots}",
            )
            for shots in ("zero-shot", "few-shot")
            if shots in refs
        }
        for method, pairs in sets.items():
            if method not in args.methods:
                continue
            if len(pairs) < 8:
                log(f"  {method}: only {len(pairs)} pairs, not trained")
                continue
            for loss in args.losses:
                for epochs in args.epochs:
                    only = loss == "completion-only"
                    # Run folders and labels of the paper's one epoch keep their earlier names.
                    ep = "" if epochs == 1 else f"-e{epochs:g}"
                    set_name = set_names[method]  # "rebase-plan" for a plan-only ReBase set
                    # Runs at the defaults keep their earlier names; others say how they differ.
                    prompt = ("-zs" if args.no_prompt_examples else "") + (
                        f"-len{args.max_seq_len}" if args.max_seq_len != 384 else ""
                    )
                    ep += prompt
                    run_dir = (
                        models_dir / f"run-{set_name}-{len(pairs)}{'-col' if only else ''}{ep}"
                    )
                    config = TrainConfig(
                        max_seq_len=args.max_seq_len,
                        completion_only_loss=only,
                        epochs=epochs,
                        with_examples=not args.no_prompt_examples,
                        # TrainConfig's own default is 1 thread; the bench trains at the
                        # machine's setting (REBASE_THREADS), like its teacher and evaluations.
                        threads=settings.threads,
                    )
                    tag = f"[{args.store_tag}]" if method == "rebase" and args.store_tag else ""
                    label = f"{method}{tag} {loss}{ep.replace('-e', ' ep')}"
                    # Times of the 200-pair runs keep their earlier keys (no pair count).
                    count = "" if len(pairs) == 200 else f" ({len(pairs)} pairs)"
                    with timed(times, f"train {label}{count}"):
                        finetune(task, pairs, run_dir, config, settings=settings)
                    stem = f"{set_name}-{len(pairs)}-{loss}{ep}"
                    models[f"{label} ({len(pairs)} pairs)"] = (str(run_dir), None, stem)
        if args.teacher_rows and "teacher" in refs:
            models["teacher few-shot"] = ("teacher", True, "teacher_few-shot")
        for label, (model, shots, stem) in models.items():
            report_path = folder / f"eval-{stem}.json"
            if model == "teacher" and not report_path.exists():
                with timed(times, f"eval {label}"):
                    teacher_ceiling(task, test, args.teacher_rows, settings, cache, report_path)
            elif not report_path.exists():
                with timed(times, f"eval {label}"):
                    evaluate(
                        task,
                        model,
                        test,
                        settings=settings,
                        limit=args.test,
                        few_shot=shots,
                        out=report_path,
                    )
            report = json.loads(report_path.read_text())
            # Extractive QA reports exact match and F1; every metric gets its own row.
            metrics = report.get("metrics") or {report["metric"]: report}
            for metric, value in metrics.items():
                table.append((name, label, metric, value["score"], value["ci95"], report["n"]))
                log(
                    f"  {label}: {metric} {value['score']:.3f} "
                    f"[{value['ci95'][0]:.3f}, {value['ci95'][1]:.3f}] on {report['n']} rows"
                )
        # Stages served from the caches took ~0 s; keep the times measured when they ran.
        times_path = folder / "times.json"
        measured = json.loads(times_path.read_text()) if times_path.exists() else {}
        measured.update({k: round(v, 1) for k, v in times.items() if v >= 1 or k not in measured})
        times_path.write_text(json.dumps(measured, indent=2))
        log(f"{name} stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    # Merge with earlier invocations (one task, loss or epoch count per run is the usual way to
    # fit a session): a row of this run replaces the earlier row of the same task, model, metric.
    results = DATA / "results.json"
    earlier = json.loads(results.read_text()) if results.exists() else []
    fresh = {tuple(row[:3]) for row in table}
    merged = [row for row in earlier if tuple(row[:3]) not in fresh] + [list(r) for r in table]
    tasks = list(dict.fromkeys(row[0] for row in merged))
    methods = ("untrained", "rebase", "direct", "self-guide", "teacher")

    def order(row: list) -> tuple[int, int, str]:
        # Each task's rows together: the untrained floor, then method by method, the teacher last.
        method = next((i for i, m in enumerate(methods) if row[1].startswith(m)), len(methods))
        return tasks.index(row[0]), method, row[1]

    merged.sort(key=order)
    results.write_text(json.dumps(merged, indent=2))
    print(f"\n{'task':6} {'model':40} {'metric':12} {'score':>6}   95% CI            n")
    for name, label, metric, score, ci, n in merged:
        print(f"{name:6} {label:40} {metric:12} {score:6.3f}   [{ci[0]:.3f}, {ci[1]:.3f}]  {n}")
    paired_gaps(args.tasks)
    label_spread(args.tasks)


def committed_report(path: Path) -> dict:
    """A report read back from the committed results: its per-example file is the one beside it
    (the path inside names the machine it ran on)."""
    data = json.loads(path.read_text())
    if path.with_suffix(".jsonl").exists():
        data["per_example"] = str(path.with_suffix(".jsonl"))
    return data


def label_spread(tasks: list[str]) -> None:
    """For label tasks: each student's balanced accuracy (the mean of its per-label recalls; a
    student that gives one label to every row scores 1/k whatever that label is), its interval,
    and how often it gives each label. Accuracy alone rewards answering the test's majority
    label."""
    print("\nBalanced accuracy and answers given (label tasks):")
    for name in tasks:
        for path in sorted((DATA / name).glob("eval-*.jsonl")):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line]
            golds = [str(r.get("gold", "")) for r in rows]
            if not rows or len(set(golds)) > MAX_LABELS or "extracted" not in rows[0]:
                continue  # not a label task (SQuAD's answers are all different)
            scores = [float(r["score"]) for r in rows]
            low, high = balanced_accuracy_ci(golds, scores)
            given = answer_counts((str(r["extracted"]) for r in rows), top=4)
            print(
                f"{name:6} {path.stem.removeprefix('eval-'):45} balanced "
                f"{balanced_accuracy(golds, scores):.3f} [{low:.3f}, {high:.3f}]  answers {given}"
            )


def paired_gaps(tasks: list[str]) -> None:
    """Each ReBase student against the others trained with the same loss and epochs, and against
    the untrained few-shot student: mean per-row gap with a 95% paired bootstrap interval."""
    print("\nReBase minus the others, on the same test rows (paired bootstrap):")
    for name in tasks:
        reports = {
            path.stem.removeprefix("eval-"): report_from_json(committed_report(path))
            for path in sorted((DATA / name).glob("eval-*.json"))
        }
        for key, ours in reports.items():
            if not key.startswith("rebase-"):
                continue
            # rebase[-mode][-store tag]-<pairs>-<loss>...: the setting the baselines share
            setting = re.sub(r"^rebase-(?:plan-|rewrite-)?(?:[a-z][\w.]*-(?=\d))?", "", key)
            for other in (
                "direct",
                "self-guide",
                "untrained_zero-shot",
                "untrained_few-shot",
                "teacher_few-shot",
            ):
                theirs = reports.get(other if "_" in other else f"{other}-{setting}")
                if theirs is None:
                    continue
                metrics = list(ours.extra.get("metrics") or [ours.metric])
                if ours.metric == "accuracy" and "balanced_accuracy" not in metrics:
                    metrics.append("balanced_accuracy")  # reports written before it was
                for metric in metrics:
                    gap = paired_difference(ours, theirs, metric=metric)
                    print(
                        f"{name:6} {key.removesuffix('-' + setting) or 'rebase':18} {setting:24} "
                        f"vs {other:18} {metric:12} "
                        f"{gap.difference:+.3f} [{gap.ci_low:+.3f}, {gap.ci_high:+.3f}] "
                        f"{gap.verdict} (n {gap.n})"
                    )


if __name__ == "__main__":
    main()
