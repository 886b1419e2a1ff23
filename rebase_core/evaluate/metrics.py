"""Scoring one prediction: label and answer normalisation, answer extraction and matching, EM/F1,
chrF, the bootstrap interval of a mean, balanced accuracy (with its own bootstrap), and the choice
of metric for a task.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rebase_core.errors import InputError
from rebase_core.task import final_answer
from rebase_core.types import METRICS, Task

BOOTSTRAP_RESAMPLES = 1000


MAX_LABELS = 20  # more distinct answers than this is not a closed label set


# ----------------------------------------------------------------------------- normalisation

_PUNCT = set(string.punctuation) | set("“”‘’«»…–—")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_label(text: str) -> str:
    """Case, punctuation and spacing folded: "(A)" -> "a", "Yes." -> "yes", "not_entailment" ->
    "not entailment"."""
    cleaned = "".join(" " if ch in _PUNCT else ch for ch in text.lower())
    return " ".join(cleaned.split())


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_answer(prediction: str) -> str:
    """The answer part of a prediction: after "the answer is", without an "Answer:" prefix."""
    answer = final_answer(prediction)
    answer = re.sub(r"^\s*(final\s+)?answer\s*:\s*", "", answer, flags=re.IGNORECASE)
    return answer.strip()


def match_label(prediction: str, labels: Iterable[str]) -> str:
    """Map a prediction onto a known (normalised) label, or return it normalised.

    Order: the whole answer is a label; the answer starts with one ("yes, because ..."); else the
    last label named anywhere in the text (longest first, so "not entailment" beats "entailment").
    """
    known = sorted(
        {normalize_label(x) for x in labels if normalize_label(x)}, key=len, reverse=True
    )
    answer = normalize_label(extract_answer(prediction))
    if answer in known:
        return answer
    for label in known:
        if answer.startswith(label + " "):
            return label
    if known:
        pattern = re.compile(r"\b(" + "|".join(re.escape(x) for x in known) + r")\b")
        found = pattern.findall(normalize_label(prediction))
        if found:
            return str(found[-1])
    return answer


# ----------------------------------------------------------------------------- metrics


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """SQuAD token F1 between normalised answers (1.0 when both are empty)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(prediction: str, reference: str, *, order: int = 6, beta: float = 2.0) -> float:
    """Sentence chrF (Popović 2015) in [0, 1]: character n-gram precision and recall, n = 1..6,
    averaged over n, combined as F-beta (recall weighs beta times more).

    Whitespace is removed first, as sacrebleu does. An order counts only when both strings have
    n-grams of it (sacrebleu's effective order), so identical short strings score 1.
    """
    hyp = "".join(prediction.split())
    ref = "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, order + 1):
        hyp_grams, ref_grams = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not hyp_grams or not ref_grams:
            continue
        matched = sum((hyp_grams & ref_grams).values())
        precisions.append(matched / sum(hyp_grams.values()))
        recalls.append(matched / sum(ref_grams.values()))
    if not precisions:
        return float(hyp == ref)
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


def bootstrap_ci(
    scores: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean (seeded, so reports are reproducible)."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // values.size)  # bounds memory on large test sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def _label_keys(golds: Sequence[str]) -> list[str]:
    """Each gold answer's label as accuracy compares it (the final answer, normalised)."""
    return [normalize_label(final_answer(g)) for g in golds]


def _per_label(golds: Sequence[str], scores: Sequence[float]) -> tuple[Any, Any, int]:
    """(label index per row, scores) as arrays, and the number of labels."""
    import numpy as np

    if len(golds) != len(scores):
        raise ValueError(f"{len(golds)} gold answers but {len(scores)} scores")
    keys = _label_keys(golds)
    names = {label: i for i, label in enumerate(dict.fromkeys(keys))}
    index = np.asarray([names[label] for label in keys], dtype=np.int64)
    return index, np.asarray(scores, dtype=np.float64), len(names)


def _balanced(index: Any, scores: Any, k: int) -> float:
    """Mean per-label recall over the labels present in these rows."""
    import numpy as np

    counts = np.bincount(index, minlength=k)
    hits = np.bincount(index, weights=scores, minlength=k)
    present = counts > 0
    return float((hits[present] / counts[present]).mean()) if present.any() else 0.0


def balanced_accuracy(golds: Sequence[str], scores: Sequence[float]) -> float:
    """The mean over gold labels of the share of that label's rows scored correct.

    A model that gives one label to every row scores 1/k, whichever label it is, where plain
    accuracy gives it that label's share of the test set (the majority rate, for the majority
    label): it tells a model that learned the task from one that learned the label prior.
    """
    if not golds:
        return 0.0
    return _balanced(*_per_label(golds, scores))


def balanced_accuracy_ci(
    golds: Sequence[str],
    scores: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the balanced accuracy (rows resampled, seeded)."""
    import numpy as np

    if not golds:
        return (0.0, 0.0)
    index, values, k = _per_label(golds, scores)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(resamples):  # one resample at a time: memory stays one test set's
        idx = rng.integers(0, len(values), size=len(values))
        stats.append(_balanced(index[idx], values[idx], k))
    low, high = np.percentile(stats, [2.5, 97.5])
    return (float(low), float(high))


def paired_balanced_difference(
    golds: Sequence[str],
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Balanced accuracy of `a` minus that of `b` on the same rows, with a 95% paired bootstrap
    interval (the same resampled rows for both): (difference, low, high)."""
    import numpy as np

    index, left, k = _per_label(golds, a)
    right = np.asarray(b, dtype=np.float64)
    if right.shape != left.shape:
        raise ValueError(f"{len(a)} and {len(b)} scores: pair the same rows")
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(resamples):
        idx = rng.integers(0, len(left), size=len(left))
        gaps.append(_balanced(index[idx], left[idx], k) - _balanced(index[idx], right[idx], k))
    low, high = np.percentile(gaps, [2.5, 97.5])
    return _balanced(index, left, k) - _balanced(index, right, k), float(low), float(high)


def mean_words(texts: Iterable[str]) -> float:
    """The mean number of words of the texts (0.0 for none)."""
    counts = [len(text.split()) for text in texts]
    return sum(counts) / len(counts) if counts else 0.0


def answer_counts(extracted: Iterable[str], *, top: int = MAX_LABELS) -> dict[str, int]:
    """How often each answer was given, most frequent first (at most `top` answers)."""
    return dict(Counter(str(x) for x in extracted).most_common(top))


_CODE_SIGNS = re.compile(
    r"(\bdef |\bimport |\breturn\b|\bprint\(|\bfor \w+ in\b|\w+\.\w+\(|\w+\([^)]*\)|==|\+=|;$|[{}])"
)


def _looks_like_code(text: str) -> bool:
    return bool(_CODE_SIGNS.search(text)) and not text.rstrip().endswith((".", "?", "!"))


def infer_metric(task: Task, golds: Sequence[str] = ()) -> str:
    """The metric for a task: `task.metric` if set, else inferred from the example and gold
    outputs (contracts.md): code -> chrf; a small closed label set -> accuracy; else exact_match."""
    if task.metric:
        return task.metric
    outputs = [e.output for e in task.examples] + list(golds)
    answers = [final_answer(o) for o in outputs]
    if sum(_looks_like_code(a) for a in answers) * 2 > len(answers):
        return "chrf"
    labels = {normalize_label(a) for a in answers}
    short = all(len(a.split()) <= 3 for a in labels)
    if golds:
        # Labels repeat: few distinct answers compared with the number of test rows.
        closed = len(labels) <= MAX_LABELS and len(labels) * 2 <= len(answers)
    else:
        repeated = len(labels) < len(answers)
        closed = repeated or labels <= {"yes", "no", "true", "false", "a", "b", "c", "d", "e"}
    return "accuracy" if short and closed else "exact_match"


def score_example(metric: str, prediction: str, gold: str, labels: Iterable[str]) -> dict[str, Any]:
    """Extracted answer and score(s) of one prediction under `metric`."""
    gold_answer = final_answer(gold)
    if metric == "accuracy":
        extracted = match_label(prediction, labels)
        correct = extracted == normalize_label(gold_answer)
        return {"extracted": extracted, "score": float(correct), "correct": correct}
    if metric in ("exact_match", "f1"):
        extracted = extract_answer(prediction)
        em, f1 = exact_match(extracted, gold_answer), f1_score(extracted, gold_answer)
        return {
            "extracted": extracted,
            "score": em if metric == "exact_match" else f1,
            "exact_match": em,
            "f1": f1,
            "correct": bool(em),
        }
    if metric == "chrf":
        extracted = _strip_code_fence(prediction)
        return {"extracted": extracted, "score": chrf(extracted, gold)}
    raise InputError(f"Unknown metric {metric!r}; expected one of {', '.join(METRICS)}.")


def _strip_code_fence(text: str) -> str:
    fenced = re.search(r"```[\w+-]*\n(.*?)(```|$)", text, re.DOTALL)
    return (fenced.group(1) if fenced else text).strip()
