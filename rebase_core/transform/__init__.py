"""Stage 3: turn each retrieved row into a new (input, output) pair for the task (method.md §3).

In: the task, retrieved rows (`ScoredRow`), an LLM. Out: `Pair`s with provenance, and a `Failure`
for every row that produced none (provider error, unparseable reply, empty pair, filtered out,
duplicate, a label the plan drops) — counted by reason, never dropped silently.

Two ways, chosen per (dataset, config) (`TransformConfig.mode`, default "auto"):
- plan (`plan.py`, `plan_rules.py`, `planner.py`, `planned.py`): rules and the LLM map the
  dataset's fields and human labels onto the task once, the LLM by constrained choices, and
  code checks the plan on sample rows; applying the plan is pure string work, grounded in the
  row by construction. For reasoning tasks the LLM then writes the rationale for the row's
  known answer (rationale mode). For lettered multiple-choice tasks code writes the options
  from the row's answer (`choices.py`).
- rewrite (below, the paper's): one LLM call per row.

Rewrite: one LLM call per row. The prompt holds the instruction, the examples as JSON objects, and
the row as JSON (fields cut to ~250 characters; only the best-matching input and output cells when
the row is huge); when the examples reason step by step the new output must too (how ReBase distils
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
from rebase_core.transform.choices import (
    ChoiceFormat,
    choice_format,
    distractor_pool,
    without_options,
)
from rebase_core.transform.jobs import PlanRun, TransformRun, run_plan_job, run_transform_job
from rebase_core.transform.parse import first_json_object, parse_pair, strip_wrapping_quotes
from rebase_core.transform.plan import (
    DROP,
    PLAN_USES,
    Plan,
    PlanCheck,
    PlannedRow,
    apply_plan,
    check_plan,
    read_plan_choices,
    row_fields,
    task_labels,
)
from rebase_core.transform.planned import RATIONALE_TEMPLATE, rationale_problem
from rebase_core.transform.planner import (
    PlannerConfig,
    PlanOutcome,
    check_given,
    group_rows,
    outcomes_to_json,
    plan_dataset,
    plan_datasets,
)
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
    TRANSFORM_MODES,
    TransformResult,
    estimate_transform,
    pair_id,
    regenerate,
    transform,
)

__all__ = [
    "COT_NOTE",
    "DEFAULT_TEMPLATE",
    "DROP",
    "FAILURE_REASONS",
    "FILTER_TEMPLATE",
    "PAIR_SCHEMA",
    "PLAN_USES",
    "RATIONALE_TEMPLATE",
    "TRANSFORM_MODES",
    "ChoiceFormat",
    "Plan",
    "PlanCheck",
    "PlanOutcome",
    "PlanRun",
    "PlannedRow",
    "PlannerConfig",
    "TransformConfig",
    "TransformResult",
    "TransformRun",
    "apply_plan",
    "balance_by_label",
    "build_messages",
    "check_given",
    "check_plan",
    "choice_format",
    "distractor_pool",
    "estimate_transform",
    "first_json_object",
    "format_problem",
    "group_rows",
    "guess_language",
    "input_markers",
    "is_classification",
    "label_of",
    "normalise_text",
    "outcomes_to_json",
    "pair_id",
    "parse_pair",
    "plan_dataset",
    "plan_datasets",
    "prompt_version",
    "quality_warnings",
    "rationale_problem",
    "read_plan_choices",
    "regenerate",
    "render_examples",
    "render_row",
    "row_fields",
    "row_key",
    "run_plan_job",
    "run_transform_job",
    "strip_wrapping_quotes",
    "task_labels",
    "transform",
    "without_options",
]
