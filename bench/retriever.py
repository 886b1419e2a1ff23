"""Retriever learning (Intermediate Distillation), leave-tasks-out: does it beat the base?

    .venv/bin/python bench/retriever.py --store DIR --llm local:qwen2.5-coder-1.5b-instruct \
        [--pseudo-tasks 40] [--top-n 20] [--heldout-share 0.33] [--signals FILE ...]
    .venv/bin/python bench/retriever.py --store DIR --teacher keywords   # no LLM at all

1. Tasks: the presets (assets/presets) and `--pseudo-tasks` tasks made from the store; a
   seeded third of each group is held out (never trained on).
2. Signals: the teacher's ranking of each task's top `--top-n` rows (`--llm`, cached, so a rerun
   is free), or `--signals` files collected before. Two offline stand-ins for an LLM (the
   offline 1.5B model answers a 20-row list with 1..20 and takes ~2 minutes a call here):
   `--teacher keywords` ranks rows by how many of the task's skill keywords (BIG-bench's
   human-annotated ones: a pseudo-task's dataset's, a preset's source datasets') their dataset
   shares (Jaccard; ties in random order), and `--teacher plans` puts the rows that rules-only
   plans turn into valid pairs first (it shares its criterion with the yield, and plans are
   rare on small stores). Read their figures as a test of the machinery — can the retriever
   learn a teacher's preference and carry it to unseen tasks — not of an LLM teacher.
3. Train: the ranker (ListMLE) and the query map (KL), on 1 thread (`train_retriever`).
4. Held out: NDCG@10/@50 (top lists against the teacher's ranking; unranked rows gain 0), pool
   NDCG (the order of the teacher's own candidates) and yield@100 — base vs ranker (the base's
   top 200 reranked) vs distilled — with 95% bootstrap intervals over tasks and paired
   differences from the base; retrieval latency of the distilled retriever against the base.
5. `--encoder-epochs N` also measures the alternative query side: fine-tuning MiniLM itself as
   the query encoder under the same KL loss (seconds per epoch, held-out figures).

Any store works (`--store`; default: the workspace's default store). Results: bench/out/
retriever.json and the signals in bench/out/retriever-signals.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from rebase_core.bundled import load_presets
from rebase_core.cli.retriever import add_train_flags, train_config
from rebase_core.datastore import Datastore, open_datastore
from rebase_core.embed import Embedder, get_embedder
from rebase_core.llm import ResponseCache, get_llm
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.retriever import (
    RankingSignal,
    RowRef,
    TeacherConfig,
    collect_rankings,
    evaluate_retriever,
    load_retriever,
    pseudo_tasks,
    read_signals,
    resolve_signals,
    train_retriever,
    write_signals,
)
from rebase_core.retriever.evaluate import direct_form, figures_line
from rebase_core.settings import Settings
from rebase_core.types import Task

OUT = ROOT / "bench" / "out"


def printer(step: int = 10):
    """Print a progress line each time the percentage passes a multiple of `step`."""
    last = [-1]

    def report(p):
        if p.done // step != last[0]:
            last[0] = p.done // step
            print(f"  [{p.done}/{p.total}] {p.message}", flush=True)

    return report


def split_tasks(tasks: list[Task], share: float, seed: int) -> tuple[list[Task], list[Task]]:
    rng = random.Random(seed)
    held = set(rng.sample(range(len(tasks)), round(len(tasks) * share))) if tasks else set()
    return (
        [t for i, t in enumerate(tasks) if i not in held],
        [t for i, t in enumerate(tasks) if i in held],
    )


def plans_teacher(store: Datastore, tasks: list[Task], embedder: Embedder, top_n: int) -> list:
    """The offline stand-in for a teacher: rows a rules-only plan turns into a pair first."""
    from rebase_core.llm.fake import FakeLLM
    from rebase_core.transform import TransformConfig, plan_datasets, transform

    signals = []
    for task in tasks:
        rows = retrieve(store, task, embedder, RetrievalOptions(top_k=top_n)).rows
        direct = direct_form(task)
        outcomes = plan_datasets(direct, rows, None)
        plans = {o.key: o.plan for o in outcomes if o.status == "valid" and o.plan}
        good: set[tuple[str, str, str]] = set()
        if plans:
            made = transform(direct, rows, FakeLLM([]), TransformConfig(mode="plan"), plans=plans)
            good = {
                (p.source.dataset, p.source.config, p.source.row_id) for p in made.pairs if p.source
            }
        if not good or len(good) == len(rows):
            continue  # all alike: no order to learn
        ordered = sorted(rows, key=lambda r: r.key not in good)
        signals.append(RankingSignal(task, tuple(RowRef(*r.key) for r in ordered), "plans"))
    return signals


SHOT_KEYWORDS = {"zero-shot", "one-shot", "many-shot"}  # about the evaluation, not the content


def keywords_teacher(
    store: Datastore, tasks: list[Task], embedder: Embedder, top_n: int, manifest: Path, seed: int
) -> list:
    """The offline stand-in: rows by the Jaccard overlap of their dataset's keywords with the
    task's (a pseudo-task: its dataset's; a preset: its source datasets', from the manifest)."""
    from rebase_core.retrieval import dataset_matches

    by_name = {d.name: set(d.keywords) - SHOT_KEYWORDS for d in store.datasets()}
    corpus: dict[str, set[str]] = {}
    if manifest.exists():
        for d in json.loads(manifest.read_text())["datasets"]:
            corpus.setdefault(d["name"], set()).update(set(d.get("keywords") or ()) - SHOT_KEYWORDS)
    signals = []
    for task in tasks:
        if task.name.startswith("pseudo:"):
            wanted = by_name.get(task.name.removeprefix("pseudo:"), set())
        else:
            wanted = set()
            for name, kws in corpus.items():
                if any(dataset_matches(name, p) for p in task.exclude_datasets):
                    wanted |= kws
        if not wanted:
            continue
        rows = list(retrieve(store, task, embedder, RetrievalOptions(top_k=top_n)).rows)
        random.Random(f"{seed}:{task.name}").shuffle(rows)  # ties: no credit for the base order

        def overlap(row, wanted=wanted):
            kws = by_name.get(row.dataset, set())
            return len(kws & wanted) / len(kws | wanted) if kws else 0.0

        if len({overlap(r) for r in rows}) < 2:
            continue
        ordered = sorted(rows, key=overlap, reverse=True)
        signals.append(RankingSignal(task, tuple(RowRef(*r.key) for r in ordered), "keywords"))
    return signals


def latency(store: Datastore, tasks: list[Task], embedder: Embedder, repeats: int = 5) -> float:
    """Median seconds of a top-100 retrieval (embedding included), warm."""
    times = []
    options = RetrievalOptions(top_k=100)
    retrieve(store, tasks[0], embedder, options)
    for _ in range(repeats):
        for task in tasks:
            started = time.perf_counter()
            retrieve(store, task, embedder, options)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def encoder_query_side(
    store: Datastore,
    train: list[RankingSignal],
    held: list[RankingSignal],
    ranker_dir: Path,
    epochs: int,
    threads: int,
) -> dict:
    """The alternative: fine-tune MiniLM as the query encoder under the same KL loss."""
    import torch
    from sentence_transformers import SentenceTransformer

    from rebase_core.assets import minilm_path
    from rebase_core.retriever import Ranker
    from rebase_core.retriever.query import _batch_tensors, rebase_scores, standardised, task_texts
    from rebase_core.retriever.train import distill_instances

    torch.set_num_threads(threads)
    base = get_embedder("minilm", threads)
    ranker = Ranker.load(ranker_dir, threads)
    instances = standardised(
        distill_instances(store, train, resolve_signals(store, train), base, ranker, 20)
    )
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
    eye, zero = torch.eye(store.dim), torch.zeros(store.dim)
    log_tau = torch.nn.Parameter(torch.tensor(float(np.log(0.05))))
    tau_opt = torch.optim.Adam([log_tau], lr=2e-3)
    per_epoch = []
    for _ in range(epochs):
        started = time.perf_counter()
        for start in range(0, len(instances), 8):
            batch = instances[start : start + 8]
            texts = [task_texts(i.task) for i in batch]
            features = model.tokenize([t for group in texts for t in group])
            vectors = model(features)["sentence_embedding"]
            vecs, at = [], 0
            for group in texts:
                vecs.append(vectors[at : at + len(group)])
                at += len(group)
            cells, cell_mask, desc, row_mask, targets = _batch_tensors(store, batch)
            scores = rebase_scores(
                eye, zero, vecs, [len(i.task.examples) for i in batch], cells, cell_mask, desc
            )
            neg = torch.finfo(torch.float32).min
            teacher = torch.softmax((targets / 0.5).masked_fill(~row_mask, neg), dim=1)
            student = torch.log_softmax((scores / log_tau.exp()).masked_fill(~row_mask, neg), 1)
            kl = (
                (teacher * (torch.log(teacher.clamp_min(1e-12)) - student))
                .masked_fill(~row_mask, 0.0)
                .sum(1)
                .mean()
            )
            optimiser.zero_grad()
            tau_opt.zero_grad()
            kl.backward()
            optimiser.step()
            tau_opt.step()
        per_epoch.append(time.perf_counter() - started)
    model.eval()

    class _Tuned:
        name, dim = "minilm", store.dim

        def embed(self, texts):
            with torch.no_grad():
                return model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)

    figures = evaluate_retriever(store, held, base, _Tuned(), with_yield=True)
    return {
        "seconds_per_epoch": per_epoch,
        "epochs": epochs,
        "heldout": figures.to_json_dict(),
        "lines": figures_line(figures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="datastore (default: the workspace's)")
    parser.add_argument("--llm", help="teacher LLM spec (cached calls)")
    parser.add_argument("--teacher", choices=["llm", "keywords", "plans"], default="llm")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=ROOT / "workspace" / "corpus" / "MANIFEST.json",
        help="the bundled corpus's manifest (keywords of the presets' source datasets)",
    )
    parser.add_argument("--signals", type=Path, nargs="*", help="use these signals instead")
    parser.add_argument("--pseudo-tasks", type=int, default=40)
    parser.add_argument("--presets", nargs="*", help="preset names (default: all)")
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--heldout-share", type=float, default=0.33)
    add_train_flags(parser, ranker_epochs=2.0)
    parser.add_argument("--encoder-epochs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    store = open_datastore(args.store or settings.default_store, settings)
    embedder = get_embedder(store.embedder_name, settings.threads)
    presets = load_presets()
    preset_tasks = [t for name, t in presets.items() if not args.presets or name in args.presets]
    made = pseudo_tasks(store, args.pseudo_tasks, seed=args.seed)
    _, p_held = split_tasks(preset_tasks, args.heldout_share, args.seed)
    _, s_held = split_tasks(made, args.heldout_share, args.seed)
    held_names = {t.name for t in p_held + s_held}
    print(f"store {store.path}: {store.n_rows} rows, {len(store.dataset_names)} datasets")
    print(
        f"tasks: {len(preset_tasks)} presets ({len(p_held)} held out), {len(made)} "
        f"pseudo-tasks ({len(s_held)} held out)"
    )

    OUT.mkdir(parents=True, exist_ok=True)
    if args.signals:
        signals = read_signals(args.signals)
    elif args.teacher == "keywords":
        signals = keywords_teacher(
            store, preset_tasks + made, embedder, args.top_n, args.manifest, args.seed
        )
        write_signals(signals, OUT / "retriever-signals-keywords.jsonl")
    elif args.teacher == "plans":
        signals = plans_teacher(store, preset_tasks + made, embedder, args.top_n)
        write_signals(signals, OUT / "retriever-signals-plans.jsonl")
    else:
        if not args.llm:
            parser.error("--llm is needed (or --teacher plans, or --signals FILE)")
        started = time.perf_counter()
        report = collect_rankings(
            store,
            preset_tasks + made,
            embedder,
            get_llm(args.llm, settings),
            TeacherConfig(top_n=args.top_n),
            cache=ResponseCache(settings.llm_cache_db),
            on_progress=printer(1),
        )
        print(f"teacher: {report.summary()} in {time.perf_counter() - started:.0f} s")
        for name, why in report.failures:
            print(f"  failed: {name}: {why}")
        signals = list(report.signals)
        write_signals(signals, OUT / "retriever-signals.jsonl")
    train = [s for s in signals if s.task.name not in held_names]
    held = [s for s in signals if s.task.name in held_names]
    print(f"signals: {len(train)} to train on, {len(held)} held out")
    if not train or not held:
        sys.exit("not enough signals on both sides of the split")

    out_dir = OUT / "retrievers" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    config = train_config(args, settings.threads)
    info = train_retriever(
        store, train, embedder, out_dir, config, heldout=held, on_progress=printer()
    )
    trained = load_retriever(out_dir)
    distilled = trained.query_embedder(embedder)
    held_tasks = [s.task for s in held]
    base_s = latency(store, held_tasks, embedder)
    new_s = latency(store, held_tasks, distilled)
    figures = info.heldout
    print(
        f"\ninstances: {info.train_instances} train, {info.heldout_instances} held out "
        f"({dict(info.signal_counts)})"
    )
    print("training seconds (1 thread):", dict(info.training_seconds))
    print(
        f"retrieval latency (top 100, median): base {1000 * base_s:.1f} ms, distilled "
        f"{1000 * new_s:.1f} ms, ratio {new_s / base_s:.3f}"
    )
    for m in figures.get("summary", []):
        low, high = m["ci95"]
        line = f"  {m['system']:10} {m['metric']:14} {m['mean']:.3f} [{low:.3f}, {high:.3f}]"
        if m["system"] != "base":
            low, high = m["delta_ci95"]
            line += f"  vs base {m['delta']:+.3f} [{low:+.3f}, {high:+.3f}]"
        print(line)
    result = {
        "store": str(store.path),
        "rows": store.n_rows,
        "teacher": args.llm if not args.signals and args.teacher == "llm" else args.teacher,
        "signals": {"train": len(train), "heldout": len(held)},
        "retriever": str(out_dir),
        "training_seconds": dict(info.training_seconds),
        "latency_s": {"base": base_s, "distilled": new_s, "ratio": new_s / base_s},
        "heldout": figures,
    }
    if args.encoder_epochs:
        enc = encoder_query_side(
            store, train, held, out_dir / "ranker", args.encoder_epochs, settings.threads
        )
        per_epoch = statistics.mean(enc["seconds_per_epoch"])
        map_s = info.training_seconds["query"]
        print(
            f"\nquery encoder fine-tuned instead ({args.encoder_epochs} epochs, "
            f"{per_epoch:.0f} s/epoch; the map: {map_s:.0f} s for {args.query_epochs} epochs):"
        )
        for line in enc["lines"]:
            print("  " + line)
        result["encoder"] = {k: v for k, v in enc.items() if k != "lines"}
    (OUT / "retriever.json").write_text(json.dumps(result, indent=2))
    store.close()


if __name__ == "__main__":
    main()
