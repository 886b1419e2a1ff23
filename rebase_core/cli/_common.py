"""Shared bits of the CLI commands: progress on stderr, output files."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.jsonl import read_jsonl

__all__ = ["read_jsonl", "stderr_progress", "write_json", "write_jsonl", "write_text"]
from rebase_core.types import Progress, ProgressFn


def stderr_progress(min_interval_s: float = 1.0) -> ProgressFn:
    """A progress callback that prints at most one line per `min_interval_s` to stderr."""
    last = [0.0]

    def report(p: Progress) -> None:
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if now - last[0] < min_interval_s and not final:
            return
        last[0] = now
        count = f"{p.done}/{p.total}" if p.total else f"{p.done}"
        pct = f" {100 * p.fraction:.0f}%" if p.fraction is not None else ""
        sys.stderr.write(f"[{count}{pct}] {p.message}\n")
        sys.stderr.flush()

    return report


def write_jsonl(records: Iterable[dict[str, Any]], out: str | None) -> int:
    """Write records as JSON lines to `out` (atomically) or stdout; return the count."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    text = "".join(line + "\n" for line in lines)
    write_text(text, out)
    return len(lines)


def write_json(obj: Any, out: str | None) -> None:
    write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", out)


def write_text(text: str, out: str | None) -> None:
    if not out or out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(out)
    if path.parent and not path.parent.exists():
        raise InputError(f"Output folder {path.parent} does not exist; create it first.")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
