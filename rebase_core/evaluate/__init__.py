"""Evaluate a student on a held-out set: metric by task type, answer extraction, bootstrap CIs.

Metrics (contracts.md): `accuracy` for closed label sets, after label normalisation ("(A)" = "A",
"Yes." = "yes") and after mapping a wordy answer onto the label set, reported with
`balanced_accuracy` (the mean per-label recall: a model answering one label everywhere scores
1/k) and the answers the model gave; `exact_match` and `f1` with SQuAD's normalisation for short
answers, reported with the mean length of the model's answers and of the gold ones; `chrf`
(character 6-grams, beta 2) for code. Outputs that reason ("... so the answer is X") are scored
on X. The prompt is `finetune.format_prompt`, the one the student was trained with; decoding is
greedy.

Modules: `metrics` (scoring one prediction), `run` (generation, `evaluate`, the test sets and
models offered), `compare` (stored reports, the results rows, paired differences), `charts` (the
results table and chart), `jobs` (the job spec `EvaluateRun` and its handler).
"""

from __future__ import annotations

from rebase_core.evaluate.charts import RESULT_COLORS, results_figure, results_table
from rebase_core.evaluate.compare import (
    LONG_ANSWER_RATIO,
    ONE_ANSWER_SHARE,
    ORIGIN_LABELS,
    PREDICTION_COLUMNS,
    ComparisonRow,
    PairedDifference,
    compare_results,
    long_answer_rows,
    one_answer_rows,
    paired_difference,
    read_predictions,
    report_from_json,
    report_metrics,
    report_name,
    report_test,
    reports_on,
    stored_reports,
    tested_sets,
)
from rebase_core.evaluate.jobs import (
    EvaluateRun,
    evaluation_jobs,
    evaluation_label,
    evaluation_runs,
    run_evaluate_job,
    start_evaluations,
)
from rebase_core.evaluate.metrics import (
    BOOTSTRAP_RESAMPLES,
    MAX_LABELS,
    answer_counts,
    balanced_accuracy,
    balanced_accuracy_ci,
    bootstrap_ci,
    chrf,
    exact_match,
    extract_answer,
    f1_score,
    infer_metric,
    match_label,
    mean_words,
    normalize_answer,
    normalize_label,
    paired_balanced_difference,
    score_example,
)
from rebase_core.evaluate.run import (
    CURATED_CHOICE,
    STOP_MARKERS,
    EvalSetChoices,
    ModelChoices,
    SideBySide,
    answer_side_by_side,
    eval_set_choices,
    evaluate,
    generate,
    generate_answer,
    load_test_set,
    model_choices,
    runs_trained_on,
    store_test_set,
    summarize_scores,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CURATED_CHOICE",
    "LONG_ANSWER_RATIO",
    "MAX_LABELS",
    "ONE_ANSWER_SHARE",
    "ORIGIN_LABELS",
    "PREDICTION_COLUMNS",
    "RESULT_COLORS",
    "STOP_MARKERS",
    "ComparisonRow",
    "EvalSetChoices",
    "EvaluateRun",
    "ModelChoices",
    "PairedDifference",
    "SideBySide",
    "answer_counts",
    "answer_side_by_side",
    "balanced_accuracy",
    "balanced_accuracy_ci",
    "bootstrap_ci",
    "chrf",
    "compare_results",
    "eval_set_choices",
    "evaluate",
    "evaluation_jobs",
    "evaluation_label",
    "evaluation_runs",
    "exact_match",
    "extract_answer",
    "f1_score",
    "generate",
    "generate_answer",
    "infer_metric",
    "load_test_set",
    "long_answer_rows",
    "match_label",
    "mean_words",
    "model_choices",
    "normalize_answer",
    "normalize_label",
    "one_answer_rows",
    "paired_balanced_difference",
    "paired_difference",
    "read_predictions",
    "report_from_json",
    "report_metrics",
    "report_name",
    "report_test",
    "reports_on",
    "results_figure",
    "results_table",
    "run_evaluate_job",
    "runs_trained_on",
    "score_example",
    "start_evaluations",
    "store_test_set",
    "stored_reports",
    "summarize_scores",
    "tested_sets",
]
