"""`retrieve`: the ReBase score over a datastore, best rows first (contracts.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rebase_core.cli._common import stderr_progress, write_jsonl
from rebase_core.datastore import open_datastore
from rebase_core.embed import get_embedder
from rebase_core.errors import InputError
from rebase_core.retrieval import (
    FUSIONS,
    METHODS,
    RetrievalOptions,
    app_retrieval_options,
    retrieve,
)
from rebase_core.settings import Settings
from rebase_core.task import load_task


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("retrieve", help="score datastore rows against a task (ReBase)")
    parser.add_argument("--store", type=Path, help="datastore folder (default: workspace default)")
    parser.add_argument("--task", type=Path, required=True, help="task JSON file")
    parser.add_argument("--top-k", type=int, default=3000, help="rows to keep (default 3000)")
    parser.add_argument("--out", help="output JSONL (default stdout)")
    parser.add_argument(
        "--weights",
        type=float,
        nargs=3,
        default=(1.0, 1.0, 1.0),
        metavar=("W_IN", "W_OUT", "W_DS"),
        help="weights of the input, output and dataset terms (default 1 1 1)",
    )
    parser.add_argument(
        "--per-dataset-cap", type=int, default=None, metavar="N", help="at most N rows a dataset"
    )
    parser.add_argument(
        "--dedup", action="store_true", help="drop rows whose cells repeat a better row's"
    )
    parser.add_argument(
        "--app-defaults",
        action="store_true",
        help="the Retrieve page's defaults: --dedup and a per-dataset cap of "
        f"{app_retrieval_options().per_dataset_cap} (unless --per-dataset-cap is given); "
        "without it the paper's setting (no cap, duplicates kept)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="DATASET",
        help="exclude a dataset (exact name, namespace or glob; repeatable)",
    )
    parser.add_argument("--include-keyword", action="append", default=[], metavar="WORDS")
    parser.add_argument("--exclude-keyword", action="append", default=[], metavar="WORDS")
    parser.add_argument(
        "--fusion", choices=FUSIONS, default=None, help="rank-fusion variant instead of the score"
    )
    parser.add_argument("--method", choices=METHODS, default="auto")
    parser.add_argument(
        "--retriever",
        type=Path,
        help="a trained retriever folder (`retriever train`): its query side embeds the task",
    )
    parser.set_defaults(handler=_retrieve)


def _retrieve(args: argparse.Namespace, settings: Settings) -> int:
    task = load_task(args.task)
    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}.")
    store = open_datastore(args.store or settings.default_store, settings)
    try:
        embedder = get_embedder(store.embedder_name, settings.threads)
        if args.retriever is not None:
            from rebase_core.retriever import load_retriever

            embedder = load_retriever(args.retriever).query_embedder(embedder)
        # The paper's setting stays the default here: scripts and benchmarks compare against
        # it, and a changed default would change what an existing command line returns.
        app = app_retrieval_options(args.top_k) if args.app_defaults else RetrievalOptions()
        cap = args.per_dataset_cap if args.per_dataset_cap is not None else app.per_dataset_cap
        options = RetrievalOptions(
            top_k=args.top_k,
            weights=tuple(args.weights),
            per_dataset_cap=cap,
            dedup=args.dedup or app.dedup,
            exclude_datasets=tuple(args.exclude),
            include_keywords=tuple(args.include_keyword),
            exclude_keywords=tuple(args.exclude_keyword),
            fusion=args.fusion,
            method=args.method,
        )
        result = retrieve(store, task, embedder, options, on_progress=stderr_progress())
    finally:
        store.close()
    n = write_jsonl((r.to_json_dict() for r in result.rows), args.out)
    skipped = ""
    if options.dedup or options.per_dataset_cap:
        skipped = f"; skipped: {result.duplicates_dropped} identical, {result.capped} over the cap"
    sys.stderr.write(
        f"{n} rows in {result.seconds:.2f} s ({result.method}); excluded: "
        f"{', '.join(result.excluded) or 'none'}{skipped}\n"
    )
    return 0
