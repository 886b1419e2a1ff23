"""`retriever collect|train|eval|list|use`: Intermediate Distillation from the command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rebase_core.cli._common import stderr_progress, write_json
from rebase_core.errors import InputError
from rebase_core.settings import Settings

if TYPE_CHECKING:
    from rebase_core.datastore import Datastore
    from rebase_core.retriever import RankingSignal, TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "retriever", help="learn retrieval from teacher rankings and curation (ranker -> query)"
    )
    commands = parser.add_subparsers(dest="retriever_command", metavar="<action>")
    commands.required = True

    collect = commands.add_parser("collect", help="collect ranking signals into a JSONL file")
    collect.add_argument("--store", type=Path, help="datastore folder (default: workspace's)")
    collect.add_argument("--task", type=Path, nargs="+", default=[], help="task JSON file(s)")
    collect.add_argument(
        "--pseudo-tasks", type=int, default=0, metavar="N", help="add N tasks made from the store"
    )
    collect.add_argument("--top-n", type=int, default=20, help="rows the teacher orders per task")
    collect.add_argument("--llm", help="the teacher: anthropic:<model>, openai:<model>, local:…")
    collect.add_argument("--base-url", help="OpenAI-compatible server for --llm openai:…")
    collect.add_argument(
        "--from-workspace",
        action="store_true",
        help="add curation signals of the workspace's tasks (only those of --task when given)",
    )
    collect.add_argument("--seed", type=int, default=0, help="which pseudo-tasks (default 0)")
    collect.add_argument("--out", required=True, help="signals JSONL to write")
    collect.set_defaults(handler=_collect)

    train = commands.add_parser("train", help="train a ranker, then the query side")
    train.add_argument("--store", type=Path, help="datastore folder (default: workspace's)")
    train.add_argument("--signals", type=Path, nargs="+", required=True, help="signals JSONL")
    train.add_argument("--out", type=Path, required=True, help="retriever folder to create")
    train.add_argument(
        "--heldout", type=Path, nargs="+", help="held-out signals (default: a share of the tasks)"
    )
    train.add_argument(
        "--heldout-share",
        type=float,
        default=0.2,
        help="share of the tasks held out when no --heldout is given (with 5+ tasks; 0.2)",
    )
    add_train_flags(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("eval", help="NDCG and yield of a retriever vs the base")
    evaluate.add_argument("--store", type=Path, help="datastore folder (default: workspace's)")
    evaluate.add_argument("--retriever", type=Path, required=True, help="trained retriever")
    evaluate.add_argument("--signals", type=Path, nargs="+", required=True, help="held-out JSONL")
    evaluate.add_argument("--ranker", action="store_true", help="also rerank with the ranker")
    evaluate.add_argument("--no-yield", action="store_true", help="skip the yield")
    evaluate.add_argument("--out", help="report JSON (default stdout)")
    evaluate.set_defaults(handler=_eval)

    listing = commands.add_parser("list", help="trained retrievers of the workspace")
    listing.set_defaults(handler=_list)

    use = commands.add_parser("use", help="make a workspace task retrieve with a retriever")
    use.add_argument("--task", required=True, help="the task's name in the workspace")
    group = use.add_mutually_exclusive_group(required=True)
    group.add_argument("--retriever", type=Path, help="trained retriever folder")
    group.add_argument("--base", action="store_true", help="back to the base retriever")
    use.set_defaults(handler=_use)


def add_train_flags(parser: argparse.ArgumentParser, *, ranker_epochs: float = 1.0) -> None:
    """The flags that set how a retriever trains, read back by `train_config`: declared once so
    that `retriever train` and the retriever bench cannot drift apart. The bench trains longer
    by default (`ranker_epochs`); every other default is the same in both."""
    parser.add_argument("--ranker-epochs", type=float, default=ranker_epochs)
    parser.add_argument("--ranker-lr", type=float, default=3e-5, help="default 3e-5")
    parser.add_argument(
        "--max-length", type=int, default=256, help="tokens the ranker reads (default 256)"
    )
    parser.add_argument("--query-epochs", type=int, default=40)
    parser.add_argument("--extra-candidates", type=int, default=20, metavar="N")
    parser.add_argument("--no-yield", action="store_true", help="skip yield in held-out figures")


def train_config(
    args: argparse.Namespace, threads: int, *, heldout_share: float | None = None
) -> TrainConfig:
    """The `TrainConfig` that the `add_train_flags` flags in `args` ask for, on `threads`.
    `heldout_share` is the share of tasks `train_retriever` holds out itself (None: its default,
    for a caller that gives its own held-out signals, as the bench does)."""
    from rebase_core.retriever import QueryConfig, RankerConfig, TrainConfig

    config = TrainConfig(
        ranker=RankerConfig(
            epochs=args.ranker_epochs,
            learning_rate=args.ranker_lr,
            max_length=args.max_length,
            threads=threads,
        ),
        query=QueryConfig(epochs=args.query_epochs, threads=threads),
        extra_candidates=args.extra_candidates,
        with_yield=not args.no_yield,
    )
    return config if heldout_share is None else replace(config, heldout_share=heldout_share)


def _collect(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.datastore import open_datastore
    from rebase_core.embed import get_embedder
    from rebase_core.llm import ResponseCache, get_llm
    from rebase_core.retriever import (
        TeacherConfig,
        collect_rankings,
        curation_signals,
        pseudo_tasks,
        write_signals,
    )
    from rebase_core.task import load_task
    from rebase_core.workspace import Workspace

    tasks = [load_task(p) for p in args.task]
    if args.pseudo_tasks < 0:
        raise InputError(f"--pseudo-tasks must be 0 or more, got {args.pseudo_tasks}.")
    if not tasks and not args.pseudo_tasks and not args.from_workspace:
        raise InputError(
            "Nothing to collect: give --task FILE, --pseudo-tasks N or --from-workspace."
        )
    out = Path(args.out)
    if not out.parent.exists():
        raise InputError(f"Output folder {out.parent} does not exist; create it first.")
    signals: list[RankingSignal] = []
    store = open_datastore(args.store or settings.default_store, settings)
    try:
        teacher_tasks = list(tasks)
        if args.pseudo_tasks:
            made = pseudo_tasks(store, args.pseudo_tasks, seed=args.seed)
            sys.stderr.write(f"{len(made)} pseudo-tasks from the store\n")
            teacher_tasks += made
        if teacher_tasks:
            if not args.llm:
                raise InputError("Teacher rankings need --llm (e.g. --llm anthropic:<model>).")
            llm = get_llm(args.llm, settings, base_url=args.base_url)
            report = collect_rankings(
                store,
                teacher_tasks,
                get_embedder(store.embedder_name, settings.threads),
                llm,
                TeacherConfig(top_n=args.top_n),
                cache=ResponseCache(settings.llm_cache_db),
                on_progress=stderr_progress(),
            )
            for name, why in report.failures:
                sys.stderr.write(f"failed: {name}: {why}\n")
            sys.stderr.write(f"teacher: {report.summary()}\n")
            signals += report.signals
    finally:
        store.close()
    if args.from_workspace:
        ws = Workspace(settings.workspace_db)
        try:
            names = [t.name for t in tasks] if tasks else None
            curated = curation_signals(ws, names)
        finally:
            ws.close()
        sys.stderr.write(f"curation: {len(curated)} signals from the workspace\n")
        signals += curated
    if not signals:
        raise InputError("No signals were collected (see the failures above); nothing written.")
    n = write_signals(signals, out)
    sys.stderr.write(f"{n} signals written to {out}\n")
    return 0


def _open_store_and_signals(
    args: argparse.Namespace, settings: Settings
) -> tuple[Datastore, list[RankingSignal]]:
    """The signals and the store, checked: every ranked row must be in the store."""
    from rebase_core.datastore import open_datastore
    from rebase_core.retriever import read_signals, resolve_signals

    signals = read_signals(args.signals)
    store = open_datastore(args.store or settings.default_store, settings)
    try:
        resolve_signals(store, signals)
    except InputError:
        store.close()
        raise
    return store, signals


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.embed import get_embedder
    from rebase_core.retriever import read_signals, train_retriever

    if args.out.exists():
        raise InputError(f"{args.out} already exists; choose another --out folder or delete it.")
    heldout = read_signals(args.heldout) if args.heldout else None
    store, signals = _open_store_and_signals(args, settings)
    try:
        info = train_retriever(
            store,
            signals,
            get_embedder(store.embedder_name, settings.threads),
            args.out,
            train_config(args, settings.threads, heldout_share=args.heldout_share),
            heldout=heldout,
            signal_files=[str(p) for p in args.signals],
            on_progress=stderr_progress(),
        )
    finally:
        store.close()
    seconds = info.training_seconds
    sys.stderr.write(
        f"trained on {info.train_instances} signals ({info.heldout_instances} held out) in "
        f"{seconds.get('total', 0):.1f} s (ranker {seconds.get('ranker', 0):.1f} s, query side "
        f"{seconds.get('query', 0):.1f} s); saved {info.path}\n"
    )
    summary = info.heldout.get("summary") or []
    for m in summary:
        sys.stderr.write(
            f"held out: {m['system']:10} {m['metric']:10} {m['mean']:.3f} "
            f"(vs base {m['delta']:+.3f} [{m['delta_ci95'][0]:+.3f}, {m['delta_ci95'][1]:+.3f}])\n"
        )
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.embed import get_embedder
    from rebase_core.retriever import evaluate_retriever, load_retriever
    from rebase_core.retriever.evaluate import figures_line

    trained = load_retriever(args.retriever)
    store, signals = _open_store_and_signals(args, settings)
    try:
        base = get_embedder(store.embedder_name, settings.threads)
        result = evaluate_retriever(
            store,
            signals,
            base,
            trained.query_embedder(base),
            ranker=trained.ranker(settings.threads) if args.ranker else None,
            with_yield=not args.no_yield,
            on_progress=stderr_progress(),
        )
    finally:
        store.close()
    for line in figures_line(result):
        sys.stderr.write(line + "\n")
    write_json(result.to_json_dict(), args.out)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.retriever import list_retrievers

    for info in list_retrievers(settings):
        figures = {(m["system"], m["metric"]): m["mean"] for m in info.heldout.get("summary") or []}
        ndcg = figures.get(("distilled", "ndcg@10"))
        sys.stdout.write(
            f"{info.path}\t{info.created_at}\t{info.train_instances} signals\tndcg@10 {ndcg:.3f}\n"
            if ndcg is not None
            else f"{info.path}\t{info.created_at}\t{info.train_instances} signals\n"
        )
    return 0


def _use(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.retriever import use_retriever
    from rebase_core.workspace import Workspace

    ws = Workspace(settings.workspace_db)
    try:
        record = ws.get_task(args.task)
        use_retriever(ws, record.id, None if args.base else args.retriever)
    finally:
        ws.close()
    chosen = "the base retriever" if args.base else str(args.retriever)
    sys.stderr.write(f"task {args.task!r} now retrieves with {chosen}\n")
    return 0
