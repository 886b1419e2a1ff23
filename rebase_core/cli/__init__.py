"""The headless CLI: `python -m rebase_core <command> ...` (contracts.md).

Each command lives in its own module with `register(subparsers)`; handlers take the parsed
arguments and the `Settings`, return an exit code, and raise `RebaseError` for bad input, which
becomes one line on stderr and exit code 2. Progress goes to stderr, results to `--out` or stdout.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from rebase_core.errors import RebaseError
from rebase_core.settings import Settings

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "datastore",
    "corpus",
    "retrieve",
    "retriever",
    "transform",
    "synthesize",
    "diversity",
    "train",
    "evaluate",
    "export",
    "job",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rebase_core", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace",
        help="folder where state lives (default: $REBASE_HOME or ./workspace)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rebase_core.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rebase_core.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    _add_global_options(parser, top=True)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Let --workspace and -v also follow the command (`transform ... --workspace W`): every
    (sub)command parser takes them too, without a default, so a value given before the command
    is not reset by the subcommand's parser."""
    if not top:
        parser.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_global_options(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    env = dict(os.environ)
    if args.workspace:
        env["REBASE_HOME"] = args.workspace
    settings = Settings.from_mapping(env)
    try:
        return int(args.handler(args, settings) or 0)
    except RebaseError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's one-line error
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # noqa: T201
        return 130
