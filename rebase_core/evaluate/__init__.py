"""Evaluate a student on a held-out set: metric by task type, answer extraction, bootstrap CIs.

Metrics (contracts.md): `accuracy` for closed label sets, after label normalisation ("(A)" = "A",
"Yes." = "yes") and after mapping a wordy answer onto the label set; `exact_match` and `f1` with
SQuAD's normalisation for short answers; `chrf` (character 6-grams, beta 2) for code. Outputs that
reason ("... so the answer is X") are scored on X. The prompt is `finetune.format_prompt`, the one
the student was trained with; decoding is greedy.

Modules: `metrics` (scoring one prediction), `run` (generation, `evaluate`, the job handler),
`compare` (stored reports and the results table).
"""

from __future__ import annotations

from rebase_core.evaluate.compare import (
    ORIGIN_LABELS,
    ComparisonRow,
    PairedDifference,
    compare_results,
    paired_difference,
    report_from_json,
    stored_reports,
)
from rebase_core.evaluate.metrics import (
    BOOTSTRAP_RESAMPLES,
    MAX_LABELS,
    bootstrap_ci,
    chrf,
    exact_match,
    extract_answer,
    f1_score,
    infer_metric,
    match_label,
    normalize_answer,
    normalize_label,
    score_example,
)
from rebase_core.evaluate.run import (
    STOP_MARKERS,
    evaluate,
    generate,
    generate_answer,
    load_test_set,
    run_evaluate_job,
    summarize_scores,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "MAX_LABELS",
    "ORIGIN_LABELS",
    "STOP_MARKERS",
    "ComparisonRow",
    "PairedDifference",
    "bootstrap_ci",
    "chrf",
    "compare_results",
    "evaluate",
    "exact_match",
    "extract_answer",
    "f1_score",
    "generate",
    "generate_answer",
    "infer_metric",
    "load_test_set",
    "match_label",
    "normalize_answer",
    "normalize_label",
    "paired_difference",
    "report_from_json",
    "run_evaluate_job",
    "score_example",
    "stored_reports",
    "summarize_scores",
]
