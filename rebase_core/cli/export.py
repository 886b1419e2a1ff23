"""`export`: pairs to JSONL/Parquet/CSV/datasets with a card, or a run's model as a zip."""

from __future__ import annotations

import argparse
from pathlib import Path

from rebase_core.settings import Settings

_SUFFIX_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv", ".zip": "model"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export pairs (with a dataset card) or a trained model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", action="append", type=Path, help="pairs JSONL (repeatable)")
    source.add_argument("--run", type=Path, help="a finished run folder: zip its model")
    parser.add_argument("--out", required=True, type=Path, help="file or folder to write")
    parser.add_argument(
        "--format",
        choices=("jsonl", "parquet", "csv", "datasets"),
        default=None,
        help="default: from the --out suffix, else jsonl",
    )
    parser.add_argument("--task", type=Path, help="task file, for the dataset card")
    parser.add_argument(
        "--status",
        default="all",
        help="statuses to export, comma-separated (default all), e.g. accepted,edited",
    )
    parser.add_argument(
        "--license",
        action="append",
        default=[],
        metavar="DATASET=LICENSE",
        help="license of a source dataset, for the card (repeatable)",
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from rebase_core.errors import InputError
    from rebase_core.export import export_model, export_pairs
    from rebase_core.finetune import load_training_pairs
    from rebase_core.task import load_task

    if args.run is not None:
        print(export_model(args.run, args.out))  # noqa: T201 - the command's result
        return 0
    fmt = args.format or _SUFFIX_FORMATS.get(args.out.suffix, "jsonl")
    if fmt == "model":
        raise InputError("A .zip output is for --run (a model); give --format for pairs.")
    licenses = {}
    for item in args.license:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--license expects DATASET=LICENSE, got {item!r}.")
        licenses[name.strip()] = value.strip()
    statuses = None if args.status == "all" else [s.strip() for s in args.status.split(",")]
    pairs = load_training_pairs(args.data, statuses)
    task = load_task(args.task) if args.task else None
    path = export_pairs(pairs, args.out, fmt, task=task, licenses=licenses)
    print(path)  # noqa: T201 - the command's result
    return 0
