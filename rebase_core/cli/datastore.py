"""`datastore build|stats`: build or extend a column-wise datastore, and describe one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rebase_core.cli._common import stderr_progress, write_json
from rebase_core.corpus import DEFAULT_MAX_CELL_CHARS, DEFAULT_MAX_CONFIG_ROWS
from rebase_core.datastore import (
    BUNDLED_ROWS_PER_CONFIG,
    BuildParams,
    build_datastore,
    open_datastore,
)
from rebase_core.datastore.build import ENGINES
from rebase_core.datastore.ray_engine import RayEngine
from rebase_core.embed import EMBEDDER_NAMES, get_embedder
from rebase_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("datastore", help="build, extend or describe a datastore")
    dsub = parser.add_subparsers(dest="datastore_command", metavar="<action>")
    dsub.required = True

    build = dsub.add_parser(
        "build",
        help="build or extend a datastore (re-running with the same sources adds nothing)",
    )
    build.add_argument("--store", type=Path, help="store folder (default: workspace default)")
    build.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="SPEC",
        help="'bundled', a local file/folder, or hf:<id>[:<config>] (repeatable)",
    )
    build.add_argument(
        "--rows-per-config",
        type=int,
        default=None,
        metavar="R",
        help=f"rows kept per config by stride sampling (default {BUNDLED_ROWS_PER_CONFIG} for "
        "the bundled corpus, 1000 otherwise: the paper's value)",
    )
    build.add_argument(
        "--max-config-rows",
        type=int,
        default=DEFAULT_MAX_CONFIG_ROWS,
        metavar="N",
        help="skip configs with more rows than this (default %(default)s)",
    )
    build.add_argument(
        "--max-cell-chars",
        type=int,
        default=DEFAULT_MAX_CELL_CHARS,
        help="cut longer cells to this many characters (default %(default)s)",
    )
    build.add_argument("--embedder", choices=EMBEDDER_NAMES, default=None)
    build.add_argument("--threads", type=int, default=None, help="embedding threads")
    build.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local (this process, default) or ray: Ray Data on the cluster RAY_ADDRESS names, "
        "else a local Ray; both write the same store",
    )
    build.add_argument(
        "--actors",
        type=int,
        default=None,
        metavar="N",
        help="--engine ray: embedding actors (default: one per GPU, else one per --threads CPUs)",
    )
    build.add_argument(
        "--chroma-shards",
        type=int,
        default=None,
        metavar="N",
        help="a new store's index over N cell collections, by text hash (comma-separated "
        "REBASE_CHROMA_URL servers take them round-robin); default 1",
    )
    build.set_defaults(handler=_build)

    publish = dsub.add_parser(
        "publish",
        help="share a built store: tables and vectors to a path or fsspec URL, the index on the "
        "REBASE_CHROMA_URL server",
    )
    publish.add_argument("--store", type=Path, help="the built store (default: workspace default)")
    publish.add_argument("--to", required=True, metavar="TARGET", help="folder or fsspec URL")
    publish.add_argument(
        "--index-shards",
        type=int,
        default=None,
        metavar="N",
        help="cell collections on the server(s) (default: the store's own)",
    )
    publish.set_defaults(handler=_publish)

    link = dsub.add_parser(
        "link", help="make a local store folder (default: the workspace's) open a shared store"
    )
    link.add_argument("--store", type=Path, help="an empty folder (default: workspace default)")
    link.add_argument("--to", required=True, metavar="TARGET", help="the shared store")
    link.set_defaults(handler=_link)

    stats = dsub.add_parser("stats", help="datasets, configs, rows, cells and disk size")
    stats.add_argument("--store", type=Path)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=_stats)


def _build(args: argparse.Namespace, settings: Settings) -> int:
    store = args.store or settings.default_store
    rows = args.rows_per_config
    if rows is None:
        rows = BUNDLED_ROWS_PER_CONFIG if args.source == ["bundled"] else 1000
    embedder = get_embedder(args.embedder or settings.embedder, args.threads or settings.threads)
    report = build_datastore(
        store,
        args.source,
        settings,
        embedder=embedder,
        params=BuildParams(rows, args.max_config_rows, args.max_cell_chars),
        on_progress=stderr_progress(),
        engine=(
            RayEngine(actors=args.actors, address=os.environ.get("RAY_ADDRESS"))
            if args.engine == "ray"
            else args.engine
        ),
        chroma_shards=args.chroma_shards,
    )
    for outcome in report.outcomes:
        if outcome.skipped:
            sys.stderr.write(f"  {outcome.dataset} [{outcome.config}]: {outcome.skipped}\n")
    print(report.summary())  # noqa: T201 - the command's result
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.datastore.shared import publish_datastore

    report = publish_datastore(
        args.store or settings.default_store,
        args.to,
        settings,
        index_shards=args.index_shards,
        on_progress=stderr_progress(),
    )
    print(report.summary())  # noqa: T201 - the command's result
    return 0


def _link(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.datastore.shared import SharedDatastore, link_shared

    folder = args.store or settings.default_store
    SharedDatastore(args.to, settings).close()  # fail now, not in the app, if it is not a share
    pointer = link_shared(folder, args.to)
    print(f"{folder} now opens {args.to} ({pointer})")  # noqa: T201 - the command's result
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    store = open_datastore(args.store or settings.default_store, settings)
    try:
        stats = store.stats()
    finally:
        store.close()
    if args.json:
        write_json(stats.to_json_dict(), None)
        return 0
    print(  # noqa: T201 - the command's result
        f"{stats.datasets:,} datasets, {stats.configs:,} configs ({stats.skipped_configs} "
        f"skipped), {stats.rows:,} rows, {stats.cells:,} cells, {stats.bytes / 1e6:,.1f} MB"
    )
    for source, n_ds, n_rows, n_cells in stats.sources:
        print(f"  {source}: {n_ds} datasets, {n_rows:,} rows, {n_cells:,} cells")  # noqa: T201
    return 0
