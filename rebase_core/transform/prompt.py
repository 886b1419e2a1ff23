"""The transformation prompt: the template (versioned by content), the row as the LLM sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rebase_core.errors import InputError
from rebase_core.llm import (
    Message,
)
from rebase_core.task import is_chain_of_thought
from rebase_core.types import (
    ScoredRow,
    Task,
)

DEFAULT_TEMPLATE = """\
You write training data for a machine-learning model.

The task, in the words of its author:
{instruction}

Examples of the task, one JSON object each, with an "input" and the expected "output":
{examples}

Below is one row from a different dataset, as JSON:
{row}

Write ONE new example of the task. Its format and type must match the examples exactly, but \
its content should come from the row: decide which parts of the row are useful and build a new \
input, and its correct output, around them. Do not copy an example.{cot_note}{task_note}
Answer with a JSON object with exactly two string fields, "input" and "output", and nothing else.
"""

COT_NOTE = (
    "\nThe example outputs reason step by step before giving the final answer; your output must "
    "reason the same way and end with the final answer written exactly as in the examples "
    '(for instance "So the answer is X.").'
)

FILTER_TEMPLATE = """\
Here is a task and some examples of it:
{instruction}

{examples}

Is the following new example a correct, well-formed example of the same task, in the same \
format? Answer with one word, Yes or No.
{pair}
"""

PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}, "output": {"type": "string"}},
    "required": ["input", "output"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class TransformConfig:
    """How rows are rewritten. Defaults follow the paper (T 0.7, up to 1,000 tokens)."""

    template: str = DEFAULT_TEMPLATE
    temperature: float = 0.7
    max_tokens: int = 1000
    max_field_chars: int = 250  # each row field is cut to this in the prompt
    max_row_chars: int = 4000  # above this, only the best input and output cells are shown
    json_schema: bool = True  # constrain the reply where the backend supports it
    llm_filter: bool = False  # second pass: "does this pair fit the task?"
    format_check: bool = True  # drop inputs missing a field marker every example has
    min_grounding: float = 0.2  # drop inputs sharing fewer of their words with the row (0: off)
    dedup: bool = True
    concurrency: int = 4
    max_retries: int = 4
    task_note: str = ""  # extra, task-specific instruction appended to the prompt
    mode: str = "auto"  # auto: plans where given, rewrite elsewhere | plan | rewrite

    def __post_init__(self) -> None:
        missing = [p for p in ("{instruction}", "{examples}", "{row}") if p not in self.template]
        if missing:
            raise InputError(
                f"The prompt template must contain {', '.join(missing)}; restore them (the "
                "default template shows where they go)."
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise InputError(f"temperature must be between 0 and 2, got {self.temperature}.")
        if not 0.0 <= self.min_grounding <= 1.0:
            raise InputError(f"min_grounding must be between 0 and 1, got {self.min_grounding}.")
        if self.mode not in ("auto", "plan", "rewrite"):
            raise InputError(f"mode must be auto, plan or rewrite, got {self.mode!r}.")
        if self.max_tokens < 16:
            raise InputError(f"max_tokens must be at least 16, got {self.max_tokens}.")


def prompt_version(template: str) -> str:
    """A short, stable name for a template's content (pairs record which prompt made them)."""
    return "p-" + hashlib.sha256(template.encode("utf-8")).hexdigest()[:10]


def row_key(row: ScoredRow) -> str:
    return f"{row.dataset}\x1f{row.config}\x1f{row.row_id}"


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def render_row(row: ScoredRow, config: TransformConfig) -> str:
    """The row as the LLM sees it: JSON, long fields cut, only the best cells when huge."""
    full = json.dumps(dict(row.row), ensure_ascii=False)
    if len(full) > config.max_row_chars:
        best = {
            row.input_column: row.row.get(row.input_column, ""),
            row.output_column: row.row.get(row.output_column, ""),
        }
        cells = best
    else:
        cells = dict(row.row)
    return json.dumps(
        {k: _cut(v, config.max_field_chars) for k, v in cells.items()}, ensure_ascii=False
    )


def render_examples(task: Task) -> str:
    return "\n".join(
        json.dumps({"input": e.input, "output": e.output}, ensure_ascii=False)
        for e in task.examples
    )


def build_messages(task: Task, row: ScoredRow, config: TransformConfig) -> tuple[Message, ...]:
    cot = COT_NOTE if is_chain_of_thought(task.examples) else ""
    note = f"\n{config.task_note.strip()}" if config.task_note.strip() else ""
    try:
        prompt = config.template.format(
            instruction=task.instruction,
            examples=render_examples(task),
            row=render_row(row, config),
            cot_note=cot,
            task_note=note,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"The prompt template has a placeholder it cannot fill ({exc}); the allowed ones are "
            "{instruction}, {examples}, {row}, {cot_note} and {task_note}. Write literal braces "
            "as {{ and }}."
        ) from exc
    return (Message("user", prompt),)
