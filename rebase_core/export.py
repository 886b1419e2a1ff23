"""Export curated pairs (JSONL, Parquet, CSV, a `datasets` folder) and trained models (zip).

Every export carries a dataset card (README.md): counts by status and origin, the source datasets
and their licenses, prompt versions, the LLMs that wrote the pairs and the task instruction.
JSONL keeps the contract's nested shape (contracts.md, pairs); the tabular formats flatten
`source` into `source_dataset`, `source_config`, `source_row_id`, `source_score` and keep any
extra fields as one JSON string column `extra`, so `read_pairs` gives back the same pairs.
"""

from __future__ import annotations

import csv
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError, OfflineError, RebaseError
from rebase_core.finetune import read_run_card, slugify
from rebase_core.jsonl import read_jsonl
from rebase_core.types import Pair, PairSource, Task

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet", "csv", "datasets")
_FILE_SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "csv": ".csv"}
COLUMNS = (
    "id",
    "input",
    "output",
    "origin",
    "status",
    "source_dataset",
    "source_config",
    "source_row_id",
    "source_score",
    "llm",
    "prompt_version",
    "created_at",
    "extra",
)


def _flat(pair: Pair) -> dict[str, Any]:
    src = pair.source
    return {
        "id": pair.id,
        "input": pair.input,
        "output": pair.output,
        "origin": pair.origin,
        "status": pair.status,
        "source_dataset": src.dataset if src else None,
        "source_config": src.config if src else None,
        "source_row_id": src.row_id if src else None,
        "source_score": src.score if src else None,
        "llm": pair.llm,
        "prompt_version": pair.prompt_version,
        "created_at": pair.created_at,
        "extra": json.dumps(dict(pair.extra), ensure_ascii=False) if pair.extra else "",
    }


def _unflat(row: Mapping[str, Any]) -> Pair:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    source = None
    if text("source_dataset"):
        score = row.get("source_score")
        source = PairSource(
            dataset=text("source_dataset"),
            config=text("source_config"),
            row_id=text("source_row_id"),
            score=float(score) if score not in (None, "") else None,
        )
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    return Pair(
        id=text("id"),
        input=text("input"),
        output=text("output"),
        origin=text("origin"),
        status=text("status"),
        source=source,
        llm=text("llm"),
        prompt_version=text("prompt_version"),
        created_at=text("created_at"),
        extra=extra,
    )


def _target(out: Path, fmt: str) -> tuple[Path, Path]:
    """(data path, card path). A file name with the format's suffix gives a file plus
    `<stem>.README.md` beside it; anything else is a folder holding the data and README.md."""
    suffix = _FILE_SUFFIX.get(fmt)
    if suffix and out.suffix == suffix:
        return out, out.with_name(f"{out.stem}.README.md")
    if fmt == "datasets":
        return out, out / "README.md"
    return out / f"pairs{suffix}", out / "README.md"


def export_pairs(
    pairs: Sequence[Pair],
    out: Path,
    fmt: str = "jsonl",
    *,
    task: Task | None = None,
    licenses: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Path:
    """Write `pairs` in `fmt` with a dataset card; returns the data file (or datasets folder).

    `licenses` maps a source dataset name to its license; sources missing from it are listed as
    unknown in the card, so nobody redistributes them by accident.
    """
    if fmt not in FORMATS:
        raise InputError(f"Export format {fmt!r} is not supported; choose one of {FORMATS}.")
    if not pairs:
        raise InputError("There are no pairs to export; generate or accept some first.")
    out = Path(out)
    data_path, card_path = _target(out, fmt)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [_flat(p) for p in pairs]
    if fmt == "jsonl":
        text = "".join(json.dumps(p.to_json_dict(), ensure_ascii=False) + "\n" for p in pairs)
        data_path.write_text(text, encoding="utf-8")
    elif fmt == "csv":
        with data_path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=_arrow_schema()), data_path)
    else:
        from datasets import Dataset

        columns = {c: [r[c] for r in rows] for c in COLUMNS}
        dataset = Dataset.from_dict(columns, features=_hf_features())
        dataset.save_to_disk(str(data_path))
    card_path.write_text(
        dataset_card(pairs, task=task, licenses=licenses, title=title, fmt=fmt), encoding="utf-8"
    )
    logger.info("exported %d pairs to %s", len(pairs), data_path)
    return data_path


def export_download(
    pairs: Sequence[Pair],
    fmt: str = "jsonl",
    *,
    task: Task | None = None,
    licenses: Mapping[str, str] | None = None,
    title: str | None = None,
) -> tuple[str, bytes]:
    """(file name, bytes) of an export for a browser download: the data file itself for JSONL,
    Parquet and CSV (the card is `dataset_card`), a zip of the folder with its README.md for
    `datasets`."""
    import tempfile

    stem = slugify(title or (task.name if task else "") or "pairs")
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "datasets":
            folder = export_pairs(
                pairs, Path(tmp) / stem, fmt, task=task, licenses=licenses, title=title
            )
            archive = Path(tmp) / f"{stem}.zip"
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        zf.write(path, Path(stem) / path.relative_to(folder))
            return archive.name, archive.read_bytes()
        suffix = _FILE_SUFFIX.get(fmt, "")
        path = export_pairs(
            pairs, Path(tmp) / f"{stem}{suffix}", fmt, task=task, licenses=licenses, title=title
        )
        return path.name, path.read_bytes()


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(c, pa.float64() if c == "source_score" else pa.string()) for c in COLUMNS])


def _hf_features() -> Any:
    from datasets import Features, Value

    return Features(
        {c: Value("float64") if c == "source_score" else Value("string") for c in COLUMNS}
    )


def read_pairs(path: Path) -> list[Pair]:
    """Read pairs back from any export format (or a contract JSONL file)."""
    path = Path(path)
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_info.json").is_file():
            from datasets import load_from_disk

            return [_unflat(r) for r in load_from_disk(str(path))]
        found = [
            path / f"pairs{s}" for s in _FILE_SUFFIX.values() if (path / f"pairs{s}").is_file()
        ]
        if not found:
            raise InputError(f"{path} holds no exported pairs (pairs.jsonl/.parquet/.csv).")
        path = found[0]
    if path.suffix == ".jsonl":
        return [Pair.from_json_dict(r) for r in read_jsonl(path)]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return [_unflat(r) for r in csv.DictReader(fh)]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [_unflat(r) for r in pq.read_table(path).to_pylist()]
    raise InputError(f"Cannot read pairs from {path}; expected .jsonl, .csv, .parquet or a folder.")


def dataset_card(
    pairs: Sequence[Pair],
    *,
    task: Task | None = None,
    licenses: Mapping[str, str] | None = None,
    title: str | None = None,
    fmt: str = "jsonl",
) -> str:
    """The README.md of an exported pair set (Hugging Face dataset-card style)."""
    licenses = licenses or {}
    by_status = Counter(p.status for p in pairs)
    by_origin = Counter(p.origin for p in pairs)
    sources = Counter(p.source.dataset for p in pairs if p.source)
    llms = Counter(p.llm for p in pairs if p.llm)
    prompts = Counter(p.prompt_version for p in pairs if p.prompt_version)
    source_licenses = {licenses.get(d, "") for d in sources}
    if len(source_licenses) == 1 and "" not in source_licenses:
        license_tag = source_licenses.pop()
    else:
        license_tag = "other"
    name = title or (task.name if task else "ReBase pairs")
    size = len(pairs)
    size_cat = "n<1K" if size < 1000 else "1K<n<10K" if size < 10_000 else "10K<n<100K"
    lines = [
        "---",
        f"license: {license_tag}",
        "size_categories:",
        f"- {size_cat}",
        "tags:",
        "- rebase",
        "- synthetic",
        "---",
        "",
        f"# {name}",
        "",
        f"{size} input/output pairs made with ReBase Studio (Retrieval Based Distillation, "
        f"Ge et al. 2024), exported as {fmt} on {datetime.now(UTC).date().isoformat()}.",
        "",
    ]
    if task is not None:
        lines += ["## Task", "", task.instruction, ""]
        if task.examples:
            lines += ["Examples given with the task:", ""]
            lines += [f"- `{_short(e.input)}` → `{_short(e.output)}`" for e in task.examples]
            lines.append("")
    lines += _table("Pairs by status", "status", by_status)
    lines += _table("Pairs by origin", "origin", by_origin)
    if sources:
        lines += ["## Source datasets", "", "| dataset | pairs | license |", "|---|---|---|"]
        for dataset, count in sources.most_common():
            lic = licenses.get(dataset) or "unknown — check before redistributing"
            lines.append(f"| {dataset} | {count} | {lic} |")
        lines.append("")
    lines += _table("Prompt versions", "prompt version", prompts)
    lines += _table("Models that wrote the pairs", "model", llms)
    lines += [
        "## Fields",
        "",
        "`id`, `input`, `output`, `origin` (rebase, direct, self-guide, manual), `status` "
        "(pending, accepted, rejected, edited), the source row (`dataset`, `config`, `row_id`, "
        "retrieval `score`), the `llm` and `prompt_version` that wrote it, `created_at`.",
        "",
        "Pairs derived from a source dataset inherit its license terms; check them before use.",
        "",
    ]
    return "\n".join(lines)


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split()).replace("`", "'")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _table(heading: str, key: str, counts: Counter[str]) -> list[str]:
    if not counts:
        return []
    rows = [f"| {k} | {n} |" for k, n in counts.most_common()]
    return [f"## {heading}", "", f"| {key} | pairs |", "|---|---|", *rows, ""]


def export_model(run_dir: Path, out_zip: Path) -> Path:
    """Zip a finished run's model (adapter or full) with its card, run.json and loss log."""
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        status = read_run_card(run_dir).get("status", "no run.json")
        raise InputError(
            f"{run_dir} has no trained model to export (status: {status}); finish the run first."
        )
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(out_zip.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                zf.write(path, Path(run_dir.name) / path.relative_to(model_dir))
        for extra in ("run.json", "progress.jsonl"):
            if (run_dir / extra).is_file():
                zf.write(run_dir / extra, Path(run_dir.name) / extra)
    tmp.replace(out_zip)
    return out_zip


def model_zip(run_dir: Path, out_zip: Path) -> Path:
    """`export_model`, unless `out_zip` is already newer than the run's model (a full model
    zips for a while and weighs ~0.5 GB)."""
    out_zip = Path(out_zip)
    model_dir = Path(run_dir) / "model"
    fresh = out_zip.exists() and model_dir.exists()
    if fresh and out_zip.stat().st_mtime >= model_dir.stat().st_mtime:
        return out_zip
    return export_model(run_dir, out_zip)


def push_pairs_to_hub(
    pairs: Sequence[Pair],
    folder: Path,
    repo_id: str,
    token: str | None,
    *,
    fmt: str = "jsonl",
    task: Task | None = None,
    licenses: Mapping[str, str] | None = None,
    title: str | None = None,
    private: bool = True,
) -> str:
    """Export the pairs into `folder` (emptied first, so only this export's files go up) and push
    it to the Hub as a dataset repository; returns its URL."""
    import shutil

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    export_pairs(pairs, folder, fmt, task=task, licenses=licenses, title=title)
    return push_to_hub(folder, repo_id, token, private=private, repo_type="dataset")


def push_to_hub(
    folder: Path,
    repo_id: str,
    token: str | None,
    *,
    private: bool = True,
    repo_type: str | None = None,
) -> str:
    """Upload an exported folder to the Hugging Face Hub (only when the user asks); returns its URL.

    `repo_type` defaults to "model" for a model folder (config.json or adapter_config.json) and
    "dataset" otherwise.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; export to a folder before pushing.")
    if not token:
        raise InputError("Pushing to the Hub needs a token: set HF_TOKEN (a write token).")
    if repo_type is None:
        is_model = any((folder / f).is_file() for f in ("config.json", "adapter_config.json"))
        repo_type = "model" if is_model else "dataset"
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type)
    except OfflineModeIsEnabled as exc:
        raise OfflineError(
            "The Hub is switched off (HF_HUB_OFFLINE=1); unset it and run the push again."
        ) from exc
    except HfHubHTTPError as exc:
        raise RebaseError(f"The Hub refused the upload to {repo_id}: {exc}") from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise OfflineError(
            f"Could not reach the Hugging Face Hub ({exc}); check the network and try again."
        ) from exc
    except Exception as exc:  # httpx and socket errors do not share a base with the above
        if _is_network_error(exc):
            raise OfflineError(
                f"Could not reach the Hugging Face Hub ({exc}); check the network and try again."
            ) from exc
        raise
    return str(url)


def _is_network_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"ConnectError", "ConnectTimeout", "SocketBlockedError", "NetworkError"})


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: BaseException | None = exc
    for _ in range(10):  # causes can form a cycle
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__
