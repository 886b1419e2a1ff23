"""`diversity FILE.jsonl ... --out FILE.json [--plot FILE.html]`: metrics per set, and the map."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rebase_core.cli._common import read_jsonl, stderr_progress, write_json
from rebase_core.diversity import (
    embed_texts,
    input_output,
    measure_diversity,
    project,
    projection_figure,
)
from rebase_core.embed import EMBEDDER_NAMES, get_embedder
from rebase_core.errors import InputError
from rebase_core.settings import Settings
from rebase_core.types import ScoredRow


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "diversity",
        help="diversity metrics of pair/retrieved-row files, and their 2-D map",
        description="Each FILE is a pairs JSONL (input/output/...) or a retrieved-rows JSONL; "
        "the report holds one entry per file, named by the file's stem.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl")
    parser.add_argument("--out", help="report JSON (default: stdout)")
    parser.add_argument("--plot", type=Path, metavar="FILE.html", help="write the map as HTML")
    parser.add_argument("--embedder", choices=EMBEDDER_NAMES, default=None)
    parser.add_argument("--method", choices=("umap", "pca"), default="umap")
    parser.add_argument("--seed", type=int, default=0, help="UMAP seed (default %(default)s)")
    parser.add_argument(
        "--near-dup-threshold",
        type=float,
        default=0.95,
        help="cosine at which a nearest neighbour counts as a near-duplicate (default %(default)s)",
    )
    parser.set_defaults(handler=_diversity)


def load_set(path: Path) -> tuple[list[Any], list[str]]:
    """The items of one file (ScoredRow for retrieved rows, the raw mapping for pairs) and a
    point id per item."""
    records = read_jsonl(path)
    if not records:
        raise InputError(f"{path} holds no records; expected pairs or retrieved rows (JSONL).")
    items: list[Any] = []
    ids: list[str] = []
    for lineno, rec in enumerate(records, start=1):
        if isinstance(rec.get("row"), dict):
            try:
                row = ScoredRow.from_json_dict(rec)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(
                    f"{path} record {lineno} looks like a retrieved row but lacks {exc}; "
                    "expected the contracts.md retrieved-row fields (dataset, row_id, row, ...)."
                ) from exc
            items.append(row)
            ids.append("/".join(row.key))
        elif isinstance(rec.get("input"), str):
            items.append({"input": rec["input"], "output": str(rec.get("output") or "")})
            ids.append(str(rec.get("id") or f"{path.stem}:{lineno - 1}"))
        else:
            raise InputError(
                f"{path} record {lineno} has neither an 'input' text nor a 'row' object; "
                "expected a pairs or a retrieved-rows JSONL."
            )
    return items, ids


def _diversity(args: argparse.Namespace, settings: Settings) -> int:
    names = [p.stem for p in args.files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"Several files share the stem {repeated[0]!r}; the report names sets by file stem, "
            "so rename one of them."
        )
    if args.plot is not None and not args.plot.parent.exists():
        raise InputError(f"Folder {args.plot.parent} for --plot does not exist; create it first.")
    sets = {p.stem: load_set(p) for p in args.files}

    progress = stderr_progress()
    embedder = get_embedder(args.embedder or settings.embedder, settings.threads)
    report: dict[str, Any] = {}
    inputs: dict[str, list[str]] = {}
    vectors = {}
    for name, (items, _) in sets.items():
        inputs[name] = [input_output(item)[0] for item in items]
        vectors[name] = embed_texts(embedder, inputs[name], progress)
        metrics = measure_diversity(
            items,
            embedder=embedder,
            vectors=vectors[name],
            near_dup_threshold=args.near_dup_threshold,
        )
        report[name] = metrics.to_json_dict()
    write_json({"sets": report}, args.out)

    if args.plot is not None:
        projection = project(
            inputs,
            vectors=vectors,
            ids={name: ids for name, (_, ids) in sets.items()},
            method=args.method,
            seed=args.seed,
            cache_dir=settings.home / "cache" / "projections",
            on_progress=progress,
        )
        figure = projection_figure(projection, title=f"{projection.method.upper()}: inputs")
        tmp = args.plot.with_name(args.plot.name + ".tmp")
        # Standalone: plotly.js is inlined, so the file opens offline.
        figure.write_html(tmp, include_plotlyjs=True, full_html=True)
        tmp.replace(args.plot)
    return 0
