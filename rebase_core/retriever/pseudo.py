"""Pseudo-tasks: training tasks made from the datastore itself, so signals need no user.

A dataset becomes a task: its description is the instruction, three of its rows the examples
(each built from the dataset's best input and output columns), and the dataset is excluded from
its own candidates, so the teacher ranks rows of *other* datasets for it. Datasets behind the
held-out sets (the bundled corpus's `ALWAYS_EXCLUDED` and every preset's `exclude_datasets`)
never become pseudo-tasks, so no training signal is drawn from an evaluation source.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from rebase_core.datastore import Datastore
from rebase_core.retrieval import dataset_matches
from rebase_core.types import Example, Row, Task

# Column names that usually hold a task's input / its answer, best first.
INPUT_NAMES = (
    "input",
    "inputs",
    "question",
    "prompt",
    "problem",
    "text",
    "sentence",
    "premise",
    "query",
    "passage",
    "context",
    "document",
    "source",
)
OUTPUT_NAMES = (
    "target",
    "output",
    "answer",
    "ideal",
    "label",
    "summary",
    "targets",
    "answers",
    "ideals",
    "completion",
    "response",
    "solution",
)
MIN_DESCRIPTION_CHARS = 20
MAX_EXAMPLE_CHARS = 1000  # examples longer than this are cut (the cell itself is not changed)
PSEUDO_PREFIX = "pseudo:"


def heldout_exclusions(presets: Mapping[str, Task] | None = None) -> tuple[str, ...]:
    """Dataset names no pseudo-task may come from: the held-out sets' sources and the presets'
    exclusions (copies of those sources under other names)."""
    from rebase_core.bundled import ALWAYS_EXCLUDED, load_presets

    presets = load_presets() if presets is None else presets
    names = set(ALWAYS_EXCLUDED)
    for task in presets.values():
        names.update(task.exclude_datasets)
    return tuple(sorted(names))


def _base_name(column: str) -> str:
    return column.split(".")[0].strip().lower()


def example_columns(rows: Sequence[Row]) -> tuple[str, str] | None:
    """(input column, output column) of a dataset from some of its rows, or None when it has no
    two columns filled in every row. Known names first; else the longest column is the input and
    the shortest the output."""
    if not rows:
        return None
    columns = [c for c in rows[0].cells if all((r.cells.get(c) or "").strip() for r in rows)]
    if len(columns) < 2:
        return None

    def named(names: Sequence[str], skip: str = "") -> str | None:
        for name in names:
            for column in columns:
                if column != skip and _base_name(column) == name:
                    return column
        return None

    mean_len = {c: sum(len(r.cells[c]) for r in rows) / len(rows) for c in columns}
    output = named(OUTPUT_NAMES) or min(columns, key=lambda c: (mean_len[c], c))
    rest = [c for c in columns if c != output]
    input_ = named(INPUT_NAMES, skip=output) or max(rest, key=lambda c: (mean_len[c], c))
    return input_, output


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[: MAX_EXAMPLE_CHARS - 1] + "…"


def pseudo_task(
    store: Datastore, dataset_idx: int, rng: random.Random, n_examples: int = 3
) -> Task | None:
    """The pseudo-task of one dataset, or None when it has too few usable rows or no
    description."""
    name = store.dataset_names[dataset_idx]
    description = store.dataset_descriptions[dataset_idx].strip()
    if not name or len(description) < MIN_DESCRIPTION_CHARS:
        return None
    row_idxs = store.dataset_rows().get(dataset_idx)
    if row_idxs is None or len(row_idxs) < n_examples + 1:
        return None
    sample = sorted(rng.sample(range(len(row_idxs)), min(len(row_idxs), 4 * n_examples)))
    rows = store.rows([int(row_idxs[i]) for i in sample])
    config = rows[0].config
    rows = [r for r in rows if r.config == config]
    columns = example_columns(rows)
    if columns is None:
        return None
    input_col, output_col = columns
    examples: list[Example] = []
    seen: set[str] = set()
    for row in rows:
        inp, out = _cut(row.cells[input_col]), _cut(row.cells[output_col])
        if inp in seen or not inp or not out:
            continue
        seen.add(inp)
        examples.append(Example(inp, out))
        if len(examples) == n_examples:
            break
    if len(examples) < n_examples:
        return None
    return Task(
        name=f"{PSEUDO_PREFIX}{name}",
        instruction=description,
        examples=tuple(examples),
        exclude_datasets=(name,),
    )


def pseudo_tasks(
    store: Datastore,
    n: int,
    *,
    seed: int = 0,
    n_examples: int = 3,
    exclude: Iterable[str] | None = None,
) -> list[Task]:
    """Up to `n` pseudo-tasks from distinct datasets of the store, chosen at random (seeded).
    `exclude` (default: `heldout_exclusions()`) names datasets never used."""
    patterns = tuple(heldout_exclusions() if exclude is None else exclude)
    rng = random.Random(seed)
    candidates = [
        i
        for i, name in enumerate(store.dataset_names)
        if name and not any(dataset_matches(name, p) for p in patterns)
    ]
    rng.shuffle(candidates)
    tasks: list[Task] = []
    for idx in candidates:
        task = pseudo_task(store, idx, rng, n_examples)
        if task is not None:
            tasks.append(task)
        if len(tasks) >= n:
            break
    return tasks
