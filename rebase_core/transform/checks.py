"""Checks on a set of pairs: label collapse, language drift, text normalisation."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

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
    """Whether the task picks its answers from a small closed set of labels.

    A task scored by exact match, F1 or chrF has open answers ("the Black Sea"), whatever three
    examples look like. One scored by accuracy is a label task when its final answers are short
    (BBH's "(B)", "Yes", "6"; not word_sorting's lists). Without a metric: short answers that
    repeat, or single words.

    >>> from rebase_core.types import Example
    >>> is_classification(Task("t", "i", (Example("a", "the Black Sea"),), metric="exact_match"))
    False
    """
    labels = [label_of(e.output) for e in task.examples]
    short = all(len(label) <= 40 and len(label.split()) <= 3 for label in labels)
    if task.metric is not None:
        return task.metric == "accuracy" and short
    distinct = set(labels)
    repeated = len(distinct) < len(labels) or all(len(label.split()) == 1 for label in labels)
    return short and len(distinct) <= max_labels and repeated


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


_MARKER = re.compile(r"(?:^|\n)[ \t]*([A-Z][\w -]{0,30}?):")


def input_markers(task: Task) -> tuple[str, ...]:
    """Field markers ("Premise:", "Question:") that every example input has, in order.

    >>> from rebase_core.types import Example
    >>> t = Task("t", "i", (Example("Premise: a\\nHypothesis: b", "x"), Example("Premise: c\\n"
    ...      "Hypothesis: d", "y")))
    >>> input_markers(t)
    ('Premise:', 'Hypothesis:')
    """
    common: list[str] | None = None
    for example in task.examples:
        found = [m + ":" for m in _MARKER.findall(example.input)]
        common = found if common is None else [m for m in common if m in found]
    return tuple(dict.fromkeys(common or []))


def format_problem(task: Task, input: str) -> str | None:
    """Why a new input does not have the examples' shape (None when it does): a field marker
    every example input has ("Hypothesis:") is missing — the sign of a cut-off or off-format
    reply."""
    missing = [m for m in input_markers(task) if m not in input]
    if missing:
        return f"the input lacks {', '.join(repr(m) for m in missing)}, which every example has"
    return None


_ALL_STOPWORDS = set().union(*_STOPSETS.values())
_NOT_SPACED = {"cjk", "thai", "lao", "khmer", "myanmar", "tibetan"}  # words are not split by spaces


def content_words(text: str) -> set[str]:
    """The words of a text that carry content: lower case, three letters or more (or a number),
    no stopword of the languages `guess_language` knows."""
    return {
        w
        for w in re.findall(r"[^\W_]+", text.lower())
        if (len(w) > 2 or w.isdigit()) and w not in _ALL_STOPWORDS
    }


def grounding(task: Task, input: str, row: Mapping[str, str]) -> float | None:
    """The share of a new input's own words that occur in the source row it was built from.

    Words every example input has (field markers, template text) do not count. None when words
    cannot tell: a script written without spaces, a row in another language than the input (a
    translation), or fewer than three words left.

    >>> from rebase_core.types import Example
    >>> t = Task("t", "i", (Example("Premise: a\\nHypothesis: b", "x"),))
    >>> row = {"sentence": "Richard yelled at Ethan in the kitchen.", "label": "entailment"}
    >>> grounding(t, "Premise: Richard yelled at Ethan.\\nHypothesis: Ethan was yelled at.", row)
    1.0
    >>> grounding(t, "Premise: The quick brown fox.\\nHypothesis: The fox jumps.", row)
    0.0
    """
    words = content_words(input)
    shared = [content_words(e.input) for e in task.examples]
    template = set.intersection(*shared) if len(shared) > 1 else set()
    words -= template | content_words(" ".join(input_markers(task)))
    if len(words) < 3:
        return None
    row_text = " ".join(str(v) for v in row.values())
    languages = {guess_language(input), guess_language(row_text)} - {"unknown"}
    if len(languages) > 1 or languages & _NOT_SPACED:
        return None
    return len(words & content_words(row_text)) / len(words)


def balance_by_label(task: Task, pairs: Sequence[Pair], per_label: int | None = None) -> list[Pair]:
    """A label-balanced selection for classification tasks: at most `per_label` pairs of each
    label (default: as many as the rarest label has), earliest first; other tasks unchanged."""
    if not is_classification(task) or not pairs:
        return list(pairs)
    counts = Counter(label_of(p.output) for p in pairs)
    cap = per_label if per_label is not None else min(counts.values())
    kept: list[Pair] = []
    taken: Counter[str] = Counter()
    for pair in pairs:
        label = label_of(pair.output)
        if taken[label] < cap:
            kept.append(pair)
            taken[label] += 1
    return kept
