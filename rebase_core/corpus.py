"""Dataset sources for the datastore: the bundled corpus, local files and folders, Hub ids.

A source spec (contracts.md) expands into `Shard`s, one per (dataset, config); `sample_shard`
applies the method's filters (method.md §1): the `train` split (or the largest split, said so),
skip image/audio/datetime configs, skip configs above a size cap, stride-sample at most R rows,
flatten nested fields to dotted names, map real `ClassLabel` integers to their names, turn every
cell into a string and cut huge cells (counted in the shard's notes).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebase_core.errors import DatasetError, InputError, OfflineError
from rebase_core.settings import Settings

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
DEFAULT_ROWS_PER_CONFIG = 1000
DEFAULT_MAX_CONFIG_ROWS = 50_000
DEFAULT_MAX_CELL_CHARS = 2000  # MiniLM reads at most 256 tokens (~1,100 characters) anyway
DEFAULT_MAX_COLUMNS = 64
HUB_FIRST_ROW_TIMEOUT_S = 30.0
HUB_CONFIG_TIME_BUDGET_S = 300.0

# datasets feature type names that make a config unusable as text (method.md §1).
_NON_TEXT_FEATURES = ("Image", "Audio", "Video", "Pdf")
_DATETIME_DTYPES = ("timestamp", "date32", "date64", "time32", "time64", "duration")


@dataclass(frozen=True, slots=True)
class Shard:
    """One (dataset, config) of a source, before loading."""

    dataset: str
    config: str
    source: str  # the spec it came from: "bundled", a path, or "hf:<id>"
    kind: str  # "disk" (save_to_disk folder), "files" (json/csv/parquet), "hub"
    location: str  # folder, file or hub id
    description: str = ""
    license: str = ""
    keywords: tuple[str, ...] = ()
    split_files: Mapping[str, str] = field(default_factory=dict)  # split -> file ("files" kind)


@dataclass(frozen=True, slots=True)
class SampledShard:
    """The rows kept from one shard, every cell already a string."""

    shard: Shard
    rows: tuple[tuple[str, dict[str, str]], ...]  # (row_id, {column: text}) in row order
    split: str
    n_source_rows: int | None
    notes: tuple[str, ...] = ()
    skipped: str = ""  # non-empty: why nothing was kept

    @property
    def n_cells(self) -> int:
        return sum(len(cells) for _, cells in self.rows)


# ----------------------------------------------------------------------------- specs -> shards


def list_shards(spec: str, settings: Settings) -> list[Shard]:
    """Expand one `--source` spec into shards (raises InputError/DatasetError/OfflineError)."""
    spec = spec.strip()
    if not spec:
        raise InputError("Empty source spec; use 'bundled', a local path or 'hf:<id>[:<config>]'.")
    if spec == "bundled":
        return _bundled_shards(settings)
    if spec.startswith("hf:"):
        return _hub_shards(spec, settings)
    return _local_shards(spec)


def _bundled_shards(settings: Settings) -> list[Shard]:
    manifest = settings.corpus_dir / "MANIFEST.json"
    if not manifest.exists():
        raise InputError(
            f"The bundled corpus is not prepared ({manifest} is missing). Run "
            "`python -m rebase_core corpus prepare` (or `make setup`) first."
        )
    shards = []
    for meta_path in sorted(settings.corpus_dir.glob("*/rebase.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shards.append(
            Shard(
                dataset=meta["name"],
                config=meta.get("config") or "default",
                source="bundled",
                kind="disk",
                location=str(meta_path.parent / "data"),
                description=meta.get("description", ""),
                license=meta.get("license", ""),
                keywords=tuple(meta.get("keywords") or ()),
            )
        )
    if not shards:
        raise DatasetError(f"The bundled corpus in {settings.corpus_dir} holds no datasets.")
    return shards


def _folder_description(folder: Path) -> str:
    for name in ("description.txt", "README.md", "readme.md"):
        path = folder / name
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            # Skip a YAML front matter block (dataset cards start with one).
            if text.startswith("---"):
                end = text.find("\n---", 3)
                text = text[end + 4 :] if end != -1 else text
            return " ".join(text.split())[:2000]
    return ""


def _file_description(path: Path) -> str:
    """A lone file's description: `<stem>.description.txt` or `description.txt` beside it."""
    for candidate in (
        path.with_name(path.stem + ".description.txt"),
        path.parent / "description.txt",
    ):
        if candidate.exists():
            return " ".join(candidate.read_text(encoding="utf-8", errors="replace").split())[:2000]
    return ""


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists()


def _local_shards(spec: str) -> list[Shard]:
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"Source {spec!r} does not exist; give 'bundled', an existing file or folder, "
            "or 'hf:<id>'."
        )
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise InputError(
                f"{path.name}: unsupported file type {path.suffix!r}; expected one of "
                f"{', '.join(FILE_SUFFIXES)}."
            )
        return [
            Shard(
                dataset=path.stem,
                config="default",
                source=str(path),
                kind="files",
                location=str(path),
                description=_file_description(path),
                split_files={"train": str(path)},
            )
        ]
    description = _folder_description(path)
    if _is_saved_dataset(path):
        return [Shard(path.name, "default", str(path), "disk", str(path), description=description)]
    # A folder of saved datasets (one per config) or of data files (one per split).
    subsets = sorted(p for p in path.iterdir() if p.is_dir() and _is_saved_dataset(p))
    if subsets:
        return [
            Shard(path.name, p.name, str(path), "disk", str(p), description=description)
            for p in subsets
        ]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)
    if not files:
        raise InputError(
            f"Folder {path} holds no dataset: expected a `datasets` save_to_disk folder or "
            f"{'/'.join(FILE_SUFFIXES)} files."
        )
    return [
        Shard(
            dataset=path.name,
            config="default",
            source=str(path),
            kind="files",
            location=str(path),
            description=description,
            split_files={p.stem: str(p) for p in files},
        )
    ]


def _hub_shards(spec: str, settings: Settings) -> list[Shard]:
    rest = spec[3:]
    hub_id, _, config = rest.partition(":")
    if not hub_id:
        raise InputError(f"Bad Hub spec {spec!r}; expected 'hf:<id>' or 'hf:<id>:<config>'.")
    if settings.hf_offline and not Path(hub_id).exists():
        raise OfflineError(
            f"{spec}: the Hugging Face Hub is switched off (HF_HUB_OFFLINE=1). Unset "
            "HF_HUB_OFFLINE and HF_DATASETS_OFFLINE when you are online, or add a local copy."
        )
    try:
        import datasets

        configs = [config] if config else datasets.get_dataset_config_names(hub_id)
        description = ""
        try:
            builder = datasets.load_dataset_builder(hub_id, configs[0] if configs else None)
            description = (builder.info.description or "").strip()
        except Exception as exc:  # a missing card must not stop the build
            logger.info("no description for %s: %s", hub_id, exc)
    except Exception as exc:
        raise _hub_error(spec, exc) from exc
    name = Path(hub_id).name if Path(hub_id).exists() else hub_id
    return [
        Shard(name, c or "default", spec, "hub", hub_id, description=description)
        for c in (configs or ["default"])
    ]


def _hub_error(spec: str, exc: Exception) -> Exception:
    text = f"{type(exc).__name__}: {exc}"
    if any(w in text for w in ("Offline", "ConnectError", "ConnectionError", "resolve", "Timeout")):
        return OfflineError(
            f"{spec}: the Hugging Face Hub cannot be reached ({text[:160]}). Check the network "
            "or add the dataset as a local folder."
        )
    return DatasetError(f"{spec}: could not read the dataset ({text[:200]}).")


# ----------------------------------------------------------------------------- cell strings


def cell_text(value: Any) -> str:
    """A cell as the string that is embedded: scalars as text, one-element lists unwrapped,
    other lists and dicts as compact JSON.

    >>> cell_text(["Denver Broncos"]), cell_text([1, 2]), cell_text(True), cell_text(None)
    ('Denver Broncos', '[1, 2]', 'True', '')
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, list | tuple):
        if len(value) == 1 and not isinstance(value[0], list | tuple | dict):
            return cell_text(value[0])
        return json.dumps(list(value), ensure_ascii=False, default=str)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bytes):
        return ""
    return str(value)


def flatten_row(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted column names: {"answers": {"text": [...]}} -> {"answers.text"}."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_row(value, prefix=name + "."))
        else:
            out[name] = value
    return out


# ----------------------------------------------------------------------------- loading


@dataclass
class _Table:
    """A loaded split: its size, which columns carry class labels, and row access by index."""

    split: str
    n_rows: int | None
    label_names: dict[str, list[str]]
    skip_reason: str
    rows_at: Any  # Callable[[list[int]], list[dict]] for random access; None for streams
    stream: Any = None  # iterator of dicts for hub streaming


def _feature_problems(features: Any) -> tuple[str, dict[str, list[str]]]:
    """(skip reason, {column: class names}) from a `datasets.Features`."""
    import datasets

    label_names: dict[str, list[str]] = {}
    problems: list[str] = []

    def visit(feature: Any, name: str) -> None:
        kind = type(feature).__name__
        if kind in _NON_TEXT_FEATURES:
            problems.append(f"{name} is {kind.lower()}")
        elif isinstance(feature, datasets.ClassLabel):
            label_names[name] = list(feature.names)
        elif isinstance(feature, datasets.Value) and feature.dtype.startswith(_DATETIME_DTYPES):
            problems.append(f"{name} is a {feature.dtype}")
        elif isinstance(feature, dict):
            for key, sub in feature.items():
                visit(sub, f"{name}.{key}" if name else key)
        elif isinstance(feature, datasets.Sequence | list):
            inner = feature.feature if isinstance(feature, datasets.Sequence) else feature[0]
            if isinstance(inner, dict):
                for key, sub in inner.items():
                    visit(sub, f"{name}.{key}")
            else:
                visit(inner, name)

    for key, feature in features.items():
        visit(feature, key)
    reason = ""
    if problems:
        reason = "skipped (image/audio/datetime features: " + ", ".join(problems[:3]) + ")"
    return reason, label_names


def _pick_split(splits: Mapping[str, int | None]) -> tuple[str, str]:
    """The split to use and a note when it is not `train` (method.md §1)."""
    if "train" in splits:
        return "train", ""
    if not splits:
        raise DatasetError("the dataset has no splits")
    best = max(splits, key=lambda s: splits[s] or 0)
    return best, f"no train split; used the largest split {best!r}"


def _read_file(path: Path) -> Any:
    """A pandas DataFrame from one json/jsonl/csv/parquet file, with one-line errors."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        with path.open(encoding="utf-8") as fh:  # decode strictly: say so when it is not UTF-8
            if suffix == ".csv":
                return pd.read_csv(fh, dtype=str, keep_default_na=False)
            if suffix == ".jsonl":
                return pd.read_json(fh, lines=True, dtype=False)
            text = fh.read()
        data = json.loads(text)
        if isinstance(data, dict):
            # {"data": [...]} / {"rows": [...]} or a column-oriented object
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]):
                data = lists[0]
        if isinstance(data, list):
            if data and not all(isinstance(r, dict) for r in data):
                raise DatasetError(f"{path.name}: expected a list of JSON objects (one per row).")
            return pd.DataFrame.from_records(data)
        return pd.DataFrame(data)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path.name} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8."
        ) from exc
    except (ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(
            f"{path.name} could not be parsed as {suffix[1:]}: {exc}".strip()[:300]
        ) from exc
    except OSError as exc:
        raise DatasetError(f"{path.name} could not be read: {exc}") from exc


def _open_table(shard: Shard, max_rows_to_sample: int) -> tuple[_Table, list[str]]:
    notes: list[str] = []
    if shard.kind == "files":
        # Sizes in bytes stand in for row counts when choosing the largest split.
        split, note = _pick_split({s: Path(f).stat().st_size for s, f in shard.split_files.items()})
        if note:
            notes.append(note)
        frame = _read_file(Path(shard.split_files[split]))
        records_at = lambda idx: frame.iloc[idx].to_dict("records")  # noqa: E731
        return _Table(split, len(frame), {}, "", records_at), notes
    if shard.kind == "disk":
        import datasets

        try:
            loaded = datasets.load_from_disk(shard.location)
        except Exception as exc:
            raise DatasetError(
                f"{shard.location} is not a readable `datasets` folder: {exc}"
            ) from exc
        if isinstance(loaded, datasets.DatasetDict):
            split, note = _pick_split({k: len(v) for k, v in loaded.items()})
            if note:
                notes.append(note)
            ds = loaded[split]
        else:
            split, ds = "train", loaded
        reason, labels = _feature_problems(ds.features)
        return _Table(split, len(ds), labels, reason, lambda idx: ds.select(idx).to_list()), notes
    return _open_hub_table(shard, notes)


def _open_hub_table(shard: Shard, notes: list[str]) -> tuple[_Table, list[str]]:
    try:
        import datasets

        config = None if shard.config == "default" else shard.config
        builder = datasets.load_dataset_builder(shard.location, config)
        splits = {k: v.num_examples for k, v in (builder.info.splits or {}).items()}
        if not splits:
            splits = {"train": None}
        split, note = _pick_split(splits)
        if note:
            notes.append(note)
        stream = datasets.load_dataset(shard.location, config, split=split, streaming=True)
        reason, labels = "", dict[str, list[str]]()
        if stream.features is not None:
            reason, labels = _feature_problems(stream.features)
    except Exception as exc:
        raise _hub_error(f"hf:{shard.location}", exc) from exc
    return _Table(split, splits.get(split), labels, reason, None, stream=stream), notes


def _is_number(text: str) -> bool:
    """A plain number ("3", "-2.5e3"); lists such as "[1, 2]" are text (list tasks use them)."""
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def stride_indices(n_rows: int, rows_per_config: int) -> list[int]:
    """Keep every m-th row, m = max(1, n // R), at most R rows (method.md §1).

    >>> stride_indices(10, 4)
    [0, 2, 4, 6]
    """
    step = max(1, n_rows // max(1, rows_per_config))
    return list(range(0, n_rows, step))[:rows_per_config]


def _iter_stream(
    stream: Any, n_rows: int | None, rows_per_config: int
) -> Iterator[tuple[int, Any]]:
    """Stride-sample a streaming split; unknown sizes keep the first R rows."""
    step = max(1, (n_rows or 0) // max(1, rows_per_config))
    started = time.monotonic()
    kept = 0
    for i, row in enumerate(stream):
        if i == 0 and time.monotonic() - started > HUB_FIRST_ROW_TIMEOUT_S:
            raise DatasetError("the first row took longer than 30 s to arrive")
        if time.monotonic() - started > HUB_CONFIG_TIME_BUDGET_S:
            break
        if i % step == 0:
            yield i, row
            kept += 1
            if kept >= rows_per_config:
                break


def sample_shard(
    shard: Shard,
    *,
    rows_per_config: int = DEFAULT_ROWS_PER_CONFIG,
    max_config_rows: int = DEFAULT_MAX_CONFIG_ROWS,
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> SampledShard:
    """Load one shard and keep its sampled rows as strings (method.md §1 filters)."""
    table, notes = _open_table(shard, rows_per_config)

    def skipped(reason: str) -> SampledShard:
        return SampledShard(shard, (), table.split, table.n_rows, tuple(notes), reason)

    if table.skip_reason:
        return skipped(table.skip_reason)
    if table.n_rows is not None and table.n_rows > max_config_rows:
        return skipped(f"skipped ({table.n_rows:,} rows > the cap of {max_config_rows:,})")
    if table.n_rows == 0:
        return skipped("skipped (empty: no rows)")
    if table.stream is not None:
        sampled = list(_iter_stream(table.stream, table.n_rows, rows_per_config))
    else:
        idx = stride_indices(int(table.n_rows or 0), rows_per_config)
        sampled = list(zip(idx, table.rows_at(idx), strict=True))

    rows: list[tuple[str, dict[str, str]]] = []
    cut = 0
    longest = 0
    dropped_columns: set[str] = set()
    for i, raw in sampled:
        flat = flatten_row(raw)
        cells: dict[str, str] = {}
        for column, value in flat.items():
            if (
                column in table.label_names
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                names = table.label_names[column]
                value = names[value] if 0 <= value < len(names) else value
            text = cell_text(value).strip()
            if not text:
                continue
            if len(cells) >= max_columns:
                dropped_columns.add(column)
                continue
            if len(text) > max_cell_chars:
                cut += 1
                longest = max(longest, len(text))
                text = text[:max_cell_chars]
            cells[column] = text
        if cells:
            rows.append((str(i), cells))
    if cut:
        notes.append(f"{cut} cell(s) cut to {max_cell_chars:,} characters (longest {longest:,})")
    if dropped_columns:
        notes.append(f"kept the first {max_columns} columns; dropped {len(dropped_columns)}")
    if not rows:
        return skipped("skipped (no non-empty cells)")
    if all(_is_number(text) for _, c in rows for text in c.values()):
        return skipped("skipped (no text columns: every cell is a number or empty)")
    return SampledShard(shard, tuple(rows), table.split, table.n_rows, tuple(notes))


def describe(shard: Shard, sample: SampledShard | None = None) -> str:
    """The text embedded for the dataset term: its description, or a generated stand-in."""
    if shard.description.strip():
        return shard.description.strip()
    columns: list[str] = []
    if sample is not None:
        for _, cells in sample.rows[:50]:
            columns.extend(c for c in cells if c not in columns)
    cols = ", ".join(columns[:12]) or "unknown columns"
    return f"{shard.dataset} ({shard.config}): a dataset with columns {cols}."
