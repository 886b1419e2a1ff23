"""Parsing LLM replies into (input, output): strict JSON first, then repairs."""

from __future__ import annotations

import json
import re
from typing import Any

from rebase_core.errors import ParseError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_SMART = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


def first_json_object(text: str) -> str | None:
    """The first balanced {...} in the text (string-aware)."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def strip_wrapping_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def parse_pair(text: str) -> tuple[str, str]:
    """The (input, output) of an LLM reply; raises ParseError with the reason.

    Strict JSON first; then repairs: code fences, the first {...} in the text, smart quotes,
    trailing commas, raw newlines inside strings. Keys are matched case-insensitively.
    """
    if not text or not text.strip():
        raise ParseError("the reply was empty")
    candidates = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    obj_text = first_json_object(text)
    if obj_text:
        candidates.append(obj_text)
    data: Any = None
    for candidate in candidates:
        for attempt in (
            candidate,
            candidate.translate(_SMART),
            re.sub(r",\s*([}\]])", r"\1", candidate.translate(_SMART)),
        ):
            try:
                data = json.loads(attempt, strict=False)
                break
            except json.JSONDecodeError:
                continue
        if isinstance(data, dict):
            break
    if not isinstance(data, dict):
        raise ParseError(f"the reply is not a JSON object: {text.strip()[:120]!r}")
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    missing = [k for k in ("input", "output") if k not in lowered]
    if missing:
        raise ParseError(
            f"the JSON lacks {' and '.join(repr(m) for m in missing)} (keys: {sorted(lowered)})"
        )
    inp = strip_wrapping_quotes(_as_text(lowered["input"]))
    out = strip_wrapping_quotes(_as_text(lowered["output"]))
    if not inp or not out:
        raise ParseError("empty input or output")
    return inp, out
