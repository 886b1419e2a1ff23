"""Stage 3: rewrite each retrieved row into a new (input, output) pair for the task (method.md §3).

In: the task, retrieved rows (`ScoredRow`), an LLM. Out: `Pair`s with provenance, and a `Failure`
for every row that produced none (provider error, unparseable reply, empty pair, filtered out,
duplicate) — counted by reason, never dropped silently.

One LLM call per row. The prompt holds the instruction, the examples as JSON objects, and the row
as JSON (fields cut to ~250 characters; only the best-matching input and output cells when the
row is huge); when the examples reason step by step the new output must too (how ReBase distils
chain-of-thought). Replies are parsed strictly, repaired when possible (code fences, smart quotes,
trailing commas), and asked for once more when not. An optional second pass asks the LLM whether
each pair fits the task. Then exact duplicates are dropped, and label collapse and language drift
are reported.
"""

from rebase_core.transform.checks import (
    balance_by_label,
    format_problem,
    guess_language,
    input_markers,
    is_classification,
    label_of,
    normalise_text,
    quality_warnings,
)
from rebase_core.transform.parse import first_json_object, parse_pair, strip_wrapping_quotes
from rebase_core.transform.prompt import (
    COT_NOTE,
    DEFAULT_TEMPLATE,
    FILTER_TEMPLATE,
    PAIR_SCHEMA,
    TransformConfig,
    build_messages,
    prompt_version,
    render_examples,
    render_row,
    row_key,
)
from rebase_core.transform.run import (
    FAILURE_REASONS,
    TransformResult,
    estimate_transform,
    pair_id,
    regenerate,
    run_transform_job,
    transform,
)

__all__ = [
    "COT_NOTE",
    "DEFAULT_TEMPLATE",
    "FAILURE_REASONS",
    "FILTER_TEMPLATE",
    "PAIR_SCHEMA",
    "TransformConfig",
    "TransformResult",
    "balance_by_label",
    "build_messages",
    "estimate_transform",
    "first_json_object",
    "format_problem",
    "guess_language",
    "input_markers",
    "is_classification",
    "label_of",
    "normalise_text",
    "pair_id",
    "parse_pair",
    "prompt_version",
    "quality_warnings",
    "regenerate",
    "render_examples",
    "render_row",
    "row_key",
    "run_transform_job",
    "strip_wrapping_quotes",
    "transform",
]
