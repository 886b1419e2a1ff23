"""Task files: parse and validate the instruction, the few-shot examples and the exclusions.

A task file is JSON (contracts.md): `name`, `instruction`, `examples` (1-20 objects with non-empty
`input` and `output`), optional `exclude_datasets` and `metric`. Every problem is an `InputError`
that names the field, what was expected and what was found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.types import METRICS, Example, Task

MAX_EXAMPLES = 20


def final_answer(output: str) -> str:
    """The final answer of a chain-of-thought output, or the output itself when it does not reason.

    >>> final_answer("Two apples plus one is three. So the answer is 3.")
    '3'
    >>> final_answer("entailment")
    'entailment'
    """
    matches = list(re.finditer(r"answer\s+is\s*:?\s*", output, re.IGNORECASE))
    if not matches:
        return output.strip()
    tail = output[matches[-1].end() :].strip()
    tail = tail.splitlines()[0].strip() if tail else ""
    return tail.rstrip(".").strip() or output.strip()


def is_chain_of_thought(examples: tuple[Example, ...] | list[Example]) -> bool:
    """True when most example outputs reason before answering ("... the answer is X")."""
    if not examples:
        return False
    reasoning = sum(1 for e in examples if final_answer(e.output) != e.output.strip())
    return reasoning * 2 > len(examples)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, got {type(value).__name__}.")
    return value


def task_from_dict(data: Any, *, source: str = "task") -> Task:
    """Validate a decoded task JSON object and build a `Task`."""
    if not isinstance(data, Mapping):
        raise InputError(
            f"{source}: expected a JSON object with name/instruction/examples, got "
            f"{type(data).__name__}."
        )
    name = _text(data.get("name", ""), f"{source}: 'name'").strip()
    if not name:
        raise InputError(f"{source}: 'name' is missing or empty; give the task a short name.")
    instruction = _text(data.get("instruction", ""), f"{source}: 'instruction'").strip()
    if not instruction:
        raise InputError(
            f"{source}: 'instruction' is missing or empty; describe the task in a sentence or two."
        )
    raw_examples = data.get("examples")
    if isinstance(raw_examples, list) and not raw_examples:
        raise InputError(
            f"{source}: there are no examples; add at least one with an input and an output."
        )
    if not isinstance(raw_examples, list):
        raise InputError(
            f'{source}: \'examples\' must be a non-empty list of {{"input", "output"}} objects, '
            f"got {raw_examples!r:.80}."
        )
    if len(raw_examples) > MAX_EXAMPLES:
        raise InputError(
            f"{source}: {len(raw_examples)} examples given, at most {MAX_EXAMPLES} are supported; "
            "keep the most representative ones."
        )
    examples = []
    for i, ex in enumerate(raw_examples, start=1):
        if not isinstance(ex, Mapping):
            raise InputError(f"{source}: example {i} must be an object with input and output.")
        inp = _text(ex.get("input", ""), f"{source}: example {i} 'input'")
        out = _text(ex.get("output", ""), f"{source}: example {i} 'output'")
        if not inp.strip() or not out.strip():
            which = "input" if not inp.strip() else "output"
            raise InputError(
                f"{source}: example {i} has an empty '{which}'; fill it in or remove it."
            )
        examples.append(Example(input=inp, output=out))
    exclude = data.get("exclude_datasets") or []
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise InputError(f"{source}: 'exclude_datasets' must be a list of dataset names.")
    metric = data.get("metric")
    if metric is not None and metric not in METRICS:
        raise InputError(f"{source}: 'metric' must be one of {', '.join(METRICS)}, got {metric!r}.")
    return Task(
        name=name,
        instruction=instruction,
        examples=tuple(examples),
        exclude_datasets=tuple(x.strip() for x in exclude if x.strip()),
        metric=metric,
    )


def load_task(path: str | Path) -> Task:
    """Read and validate a task file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Task file {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"Task file {path} is not UTF-8 text; save it as UTF-8 JSON.") from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"Task file {path} is not valid JSON: {exc.msg} at line {exc.lineno}."
        ) from exc
    return task_from_dict(data, source=str(path))


def task_to_json(task: Task) -> str:
    """The task file's text (contracts.md): indented UTF-8 JSON, ending with a newline."""
    return json.dumps(task.to_dict(), ensure_ascii=False, indent=2) + "\n"


def save_task(task: Task, path: str | Path) -> None:
    """Write the task file."""
    Path(path).write_text(task_to_json(task), "utf-8")


def task_from_json_bytes(data: bytes, *, source: str) -> Task:
    """Validate an uploaded task file's bytes (`source` names it in the messages)."""
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{source} is not a UTF-8 JSON file ({exc}).") from exc
    return task_from_dict(decoded, source=source)


def comma_list(text: str) -> tuple[str, ...]:
    """The non-empty entries of a comma-separated list, stripped.

    >>> comma_list(" bigbench/fact_*, , vitaminc ")
    ('bigbench/fact_*', 'vitaminc')
    """
    return tuple(x.strip() for x in text.split(",") if x.strip())


def describe_task(task: Task) -> str:
    """How many examples the task has and whether their outputs reason first.

    >>> cot = Example("1+1", "One plus one is two. So the answer is 2.")
    >>> describe_task(Task("t", "Add.", (cot,)))
    '1 example(s), chain-of-thought outputs'
    """
    cot = ", chain-of-thought outputs" if is_chain_of_thought(task.examples) else ""
    return f"{len(task.examples)} example(s){cot}"


def available_presets() -> dict[str, Task]:
    """The preset tasks (the held-out evaluation tasks) by name; {} when none are installed."""
    try:
        from rebase_core.bundled import load_presets
    except ImportError:
        return {}
    try:
        return load_presets()
    except InputError:
        return {}


# ----------------------------------------------------------------------------- the task editor
# The editor holds a task as its JSON object (contracts.md), examples as {"input", "output"} rows,
# possibly empty while the user types; `task_from_dict` validates it when the user saves.


def task_form(task: Task | None) -> dict[str, Any]:
    """The editor's content for a task, or for a blank one (one empty example row)."""
    if task is not None:
        return task.to_dict()
    return {
        "name": "",
        "instruction": "",
        "examples": [{"input": "", "output": ""}],
        "exclude_datasets": [],
    }


def edited_examples(
    base: Sequence[Mapping[str, Any]], changes: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The example rows after a table editor's changes: `changes` holds `edited_rows` (row
    position -> changed columns), `added_rows` and `deleted_rows` (positions); missing values
    become empty strings.

    >>> edited_examples(
    ...     [{"input": "a", "output": "1"}, {"input": "b", "output": "2"}],
    ...     {"edited_rows": {"0": {"output": "one"}}, "added_rows": [{"input": "c"}],
    ...      "deleted_rows": [1]},
    ... )
    [{'input': 'a', 'output': 'one'}, {'input': 'c', 'output': ''}]
    """
    rows = [dict(r) for r in base]
    for index, change in (changes.get("edited_rows") or {}).items():
        rows[int(index)].update(change)
    rows += [dict(r) for r in changes.get("added_rows") or []]
    deleted = {int(i) for i in changes.get("deleted_rows") or []}
    return [
        {"input": str(r.get("input") or ""), "output": str(r.get("output") or "")}
        for i, r in enumerate(rows)
        if i not in deleted
    ]


def without_blank_examples(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form with its wholly empty example rows dropped (a half-filled one stays, so saving
    says what is missing)."""
    examples = [e for e in form["examples"] if e["input"].strip() or e["output"].strip()]
    return {**form, "examples": examples}


def add_pasted_examples(form: Mapping[str, Any], text: str) -> tuple[dict[str, Any], int]:
    """The form with the pasted examples (see `parse_examples_text`) after its non-empty rows,
    and how many were added."""
    new = parse_examples_text(text)
    kept = [e for e in form["examples"] if e["input"] or e["output"]]
    examples = kept + [{"input": e.input, "output": e.output} for e in new]
    return {**form, "examples": examples}, len(new)


def parse_examples_text(text: str) -> list[Example]:
    """Examples pasted as lines: `input<TAB>output`, or JSON objects with input and output."""
    examples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"Line {lineno} looks like JSON but is not valid: {exc.msg}."
                ) from exc
            inp, out = str(obj.get("input", "")), str(obj.get("output", ""))
        elif "\t" in line:
            inp, _, out = line.partition("\t")
        else:
            raise InputError(
                f"Line {lineno} has no TAB between input and output and is not JSON: "
                f"{stripped[:60]!r}."
            )
        if not inp.strip() or not out.strip():
            raise InputError(f"Line {lineno} has an empty input or output.")
        examples.append(Example(inp.strip(), out.strip()))
    if not examples:
        raise InputError("Nothing to add: paste one example per line.")
    return examples
