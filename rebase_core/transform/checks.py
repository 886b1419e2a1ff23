"""Checks on a set of pairs: label collapse, language drift, text normalisation."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from rebase_core.task import final_answer
from rebase_core.types import (
    Pair,
    Task,
)

_STOPWORDS = {
    "en": "the and of to is in that it for was on are with as this be by not or",
    "de": "der die und das ist nicht ein eine zu den mit sich von auf für",
    "fr": "le la les et est des une un du que pas pour dans qui sur",
    "es": "el la los las y es de que en un una por con para no se",
    "it": "il la e di che è un una per non con del della sono",
    "pt": "o a os as e de que um uma para com não do da em",
    "nl": "de het een en van is dat niet op te met voor zijn",
    "sl": "je in na da se za so pa ki ni to v z s tudi",
    "pl": "i w na nie to się że jest z do jak o co",
}
_STOPSETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


def guess_language(text: str) -> str:
    """A rough language/script guess: 'cjk', 'cyrillic', 'arabic', … or a Latin language code
    from stopwords ('en', 'de', 'sl', …); 'unknown' when too short to tell."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "unknown"
    scripts = Counter(unicodedata.name(ch, "UNKNOWN").split()[0] for ch in letters)
    script, count = scripts.most_common(1)[0]
    if count / len(letters) > 0.5 and script != "LATIN":
        if script in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL"}:
            return "cjk"
        return script.lower()
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 4:
        return "unknown"
    hits = {lang: sum(1 for w in words if w in stops) for lang, stops in _STOPSETS.items()}
    lang, best = max(hits.items(), key=lambda kv: kv[1])
    return lang if best >= 2 else "unknown"


def label_of(output: str) -> str:
    """The label an output names (its final answer, normalised)."""
    return re.sub(r"[\s.]+$", "", final_answer(output).strip().lower())


def is_classification(task: Task, max_labels: int = 10) -> bool:
    """Outputs look like labels: short final answers from a small set."""
    labels = [label_of(e.output) for e in task.examples]
    return all(len(label) <= 40 for label in labels) and len(set(labels)) <= max_labels


def quality_warnings(task: Task, pairs: Sequence[Pair]) -> tuple[list[str], dict[str, int]]:
    """Warnings for label collapse and for pairs not in the examples' language."""
    warnings: list[str] = []
    counts: dict[str, int] = {}
    if not pairs:
        return warnings, counts
    if is_classification(task):
        counts = dict(Counter(label_of(p.output) for p in pairs).most_common())
        labels = {label_of(e.output) for e in task.examples}
        top, n_top = next(iter(counts.items()))
        if len(pairs) >= 10 and n_top / len(pairs) > 0.7:
            warnings.append(
                f"Label collapse: {n_top / len(pairs):.0%} of the pairs say {top!r}. Retrieve "
                "more varied rows, cap rows per dataset, or reject some pairs."
            )
        absent = sorted(labels - set(counts))
        if len(pairs) >= 10 and absent:
            warnings.append(f"No pair has the label(s) {', '.join(map(repr, absent))}.")
        odd = [label for label in counts if label not in labels]
        if odd and sum(counts[label] for label in odd) / len(pairs) > 0.1:
            warnings.append(
                f"{sum(counts[label] for label in odd)} pair(s) answer with labels the examples "
                f"never use (e.g. {odd[0]!r})."
            )
    example_langs = Counter(guess_language(e.input) for e in task.examples)
    expected = {lang for lang in example_langs if lang != "unknown"}
    if expected:
        off = [p for p in pairs if guess_language(p.input) not in expected | {"unknown"}]
        if off and len(off) / len(pairs) > 0.05:
            langs = Counter(guess_language(p.input) for p in off).most_common(2)
            warnings.append(
                f"{len(off)} pair(s) ({len(off) / len(pairs):.0%}) are not in the examples' "
                f"language ({', '.join(sorted(expected))}): mostly {langs[0][0]}."
            )
    return warnings, counts


def normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
