"""The BIG-bench sdist (bigbench==1.0.0, deleted from PyPI in December 2026): its task.json files
become corpus configs, and it holds the sources of the held-out NLI set (vitaminc), SQuAD's
fallback (squad_shifts' copy of the dev set) and BBH's fallback (BBH's source tasks).

Read where a machine still has the archive (a cached download, a mirror that kept it); the
corpus and the other held-out sources do without it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.bundled.heldout import vitaminc_rows
from rebase_core.bundled.rules import BBH_SOURCES, bigbench_skip_reason
from rebase_core.bundled.sources import (
    bigbench_columns,
    bigbench_description,
    bigbench_keywords,
    bigbench_member_path,
    read_json,
    readme_summary,
)
from rebase_core.bundled.writer import ConfigData, CorpusWriter
from rebase_core.errors import DatasetError


def _task_files(tf: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """The archive's files under BIG-bench's task folders: (member, task folder, file name)."""
    for member in tf:
        where = bigbench_member_path(member.name) if member.isfile() else None
        if where is not None:
            yield member, *where


def scan_bigbench(sdist: Path) -> tuple[int, dict[str, str], dict[str, dict]]:
    """First pass: count task files, read READMEs and the small container task.json files.

    READMEs and parent task.json files can come after their subtasks in the tar, and gzip
    cannot seek, so they are collected before the conversion pass.
    """
    n_tasks, readmes, parents = 0, {}, {}
    with tarfile.open(sdist, "r:gz") as tf:
        for member, folder, filename in _task_files(tf):
            if filename == "task.json":
                n_tasks += 1
                if "/" not in folder and member.size < 200_000:
                    fh = tf.extractfile(member)
                    task = read_json(fh.read(), member.name) if fh else {}
                    if isinstance(task, dict) and not task.get("examples"):
                        parents[folder] = task
            elif filename.lower() == "readme.md":
                fh = tf.extractfile(member)
                if fh:
                    readmes[folder] = readme_summary(fh.read().decode("utf-8", errors="replace"))
    return n_tasks, readmes, parents


@dataclass
class HeldoutSources:
    """What the held-out sets need from the BIG-bench pass (only when not already written)."""

    squad: dict[str, Any] | None = None
    vitaminc: list[dict[str, str]] | None = None
    bbh: dict[str, dict[str, Any]] | None = None


def convert_bigbench(
    sdist: Path,
    writer: CorpusWriter,
    steps: Callable[[str], None],
    scan: tuple[int, dict[str, str], dict[str, dict]],
    want: set[str],
) -> HeldoutSources:
    _, readmes, parents = scan
    found = HeldoutSources(bbh={} if "bbh" in want else None)
    bbh_paths = set(BBH_SOURCES.values())
    with tarfile.open(sdist, "r:gz") as tf:
        for member, folder, filename in _task_files(tf):
            if folder == "squad_shifts" and filename == "squaddev_v1.1.json":
                if "squad" in want:
                    fh = tf.extractfile(member)
                    found.squad = read_json(fh.read(), member.name) if fh else None
                continue
            if filename != "task.json":
                continue
            top, _, sub = folder.partition("/")
            name, config = f"bigbench/{top}", sub or "default"
            reason = bigbench_skip_reason(folder)
            needed = (folder == "vitaminc_fact_verification" and "nli" in want) or (
                folder in bbh_paths and found.bbh is not None
            )
            if reason and not needed:
                writer.skip(name, config, reason)
                steps(f"skipped {folder}")
                continue
            if not reason and writer.finished(name, config):
                steps(f"kept {folder}")
                continue
            fh = tf.extractfile(member)
            task = read_json(fh.read(), member.name) if fh else {}
            if not isinstance(task, dict):
                raise DatasetError(f"{member.name}: expected a JSON object.")
            if folder == "vitaminc_fact_verification":
                found.vitaminc = vitaminc_rows(task)
            elif folder in bbh_paths and found.bbh is not None:
                found.bbh[folder] = {
                    "task_prefix": task.get("task_prefix") or "",
                    "examples": task.get("examples") or [],
                }
            if reason:
                writer.skip(name, config, reason)
                steps(f"skipped {folder} (held-out source read)")
                continue
            if not task.get("examples"):
                steps(f"{folder}: container without examples")
                continue
            parent = parents.get(top) if sub else None
            columns, labels = bigbench_columns(task)
            writer.write(
                ConfigData(
                    name=name,
                    config=config,
                    columns=columns,
                    description=bigbench_description(
                        folder, task, parent, readmes.get(folder) or readmes.get(top, "")
                    ),
                    license="Apache-2.0",
                    keywords=bigbench_keywords(task, parent),
                    source="bundled:bigbench",
                    class_labels={"target": labels} if labels else None,
                )
            )
            steps(f"converted {folder}")
    return found
