"""JSON Lines files: the format every stage reads and writes (contracts.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """A JSONL file as dicts; a missing file or a bad line is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the path of a JSONL file.")
    records = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{lineno} is not valid JSON ({exc.msg}).") from exc
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{lineno} must be a JSON object, got {obj!r:.60}.")
                records.append(obj)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text; save it as UTF-8 JSONL.") from exc
    return records
