"""Diversity metrics of one set of pairs: the paper's Table 3 (unique inputs, distinct-n, lengths)
plus embedding dispersion, near-duplicates and the label distribution.

Tokens (`tokenize`): a regex, not a subword tokenizer. A run of letters/digits/underscores is one
token, each CJK ideograph or kana is one token (Japanese and Chinese have no spaces), and a run of
punctuation is one token (so `==`, `->` and `):` count in code). Compared with the MiniLM WordPiece
tokenizer this keeps English counts comparable to the paper's whitespace words, never maps unseen
characters to one `[UNK]` (which would merge distinct n-grams), keeps kana voicing marks (uncased
WordPiece strips them), and needs no file. Lengths count words only (punctuation runs excluded).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.types import Progress, ProgressFn, ScoredRow, no_progress

TOKENIZER_NAME = "regex-cjk-v1"
# Hiragana, katakana, CJK ideographs (+ extension A, compatibility), half-width katakana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]"  # one CJK character
    rf"|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*"  # a word; "don't" stays one word
    r"|[^\w\s]+"  # a run of punctuation / operators
)
_ANSWER_RE = re.compile(r"answer is\s*:?\s*([^\n]+)", re.IGNORECASE)
_EMBED_BATCH = 1024
_NN_BLOCK = 256


def tokenize(text: str) -> list[str]:
    """Split text into words, single CJK characters and punctuation runs (see module doc)."""
    return _TOKEN_RE.findall(text)


def _is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def word_count(text: str) -> int:
    """Length in words: tokens of `tokenize` that are not punctuation (a CJK character is one)."""
    return sum(1 for t in tokenize(text) if _is_word(t))


def distinct_n(token_lists: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams ÷ all n-grams, n-grams taken within each text (0.0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def answer_label(output: str) -> str:
    """The label an output stands for: the text after the last "answer is", else the whole output;
    stripped, case-folded, without trailing full stops or quotes."""
    found = _ANSWER_RE.findall(output)
    text = found[-1] if found else output
    return text.strip().strip("\"'`").rstrip(".!").strip().casefold()


@dataclass(frozen=True, slots=True)
class DiversityMetrics:
    """Diversity of one set of pairs; `to_json_dict` gives its contracts.md report entry."""

    n: int
    unique_inputs: float  # share of distinct inputs (whitespace-collapsed, case kept)
    distinct_1: float  # distinct unigrams ÷ all unigrams over the inputs
    distinct_2: float
    avg_input_len: float  # words, see `word_count`
    avg_output_len: float
    dispersion: float | None  # mean pairwise cosine distance of input embeddings
    near_duplicate_share: float | None  # share of inputs whose nearest neighbour has cos >= thr
    near_duplicate_threshold: float
    near_duplicate_sample: int  # inputs whose neighbour was looked up (all of them up to a cap)
    label_distribution: Mapping[str, int] | None  # label -> count, most frequent first
    label_entropy: float | None  # Shannon entropy ÷ log(labels): 1.0 is perfectly balanced
    embedder: str | None
    tokenizer: str = TOKENIZER_NAME
    length_unit: str = "words"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "unique_inputs": self.unique_inputs,
            "distinct_1": self.distinct_1,
            "distinct_2": self.distinct_2,
            "avg_input_len": self.avg_input_len,
            "avg_output_len": self.avg_output_len,
            "dispersion": self.dispersion,
            "near_duplicate_share": self.near_duplicate_share,
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "near_duplicate_sample": self.near_duplicate_sample,
            "label_distribution": (
                dict(self.label_distribution) if self.label_distribution is not None else None
            ),
            "label_entropy": self.label_entropy,
            "embedder": self.embedder,
            "tokenizer": self.tokenizer,
            "length_unit": self.length_unit,
        }
        out.update(self.extra)
        return out


def input_output(item: object) -> tuple[str, str]:
    """(input, output) of a Pair, an Example, a ScoredRow (its best input/output cells) or a
    mapping with "input"/"output" keys."""
    if isinstance(item, ScoredRow):
        row = item.row
        text_in = row.get(item.input_column) if item.input_column else None
        if text_in is None:  # no column recorded: the whole row stands for the input
            text_in = " ".join(row.values())
        return text_in, row.get(item.output_column, "") if item.output_column else ""
    if isinstance(item, Mapping):
        return str(item.get("input", "")), str(item.get("output", ""))
    if hasattr(item, "input") and hasattr(item, "output"):
        return str(item.input), str(item.output)
    raise InputError(
        f"Expected a text, a Pair, an Example or a ScoredRow, got {type(item).__name__}."
    )


def _split(
    inputs: Sequence[Any], outputs: Sequence[str] | None
) -> tuple[list[str], list[str] | None]:
    if inputs and not isinstance(inputs[0], str):
        if outputs is not None:
            raise InputError("Pass outputs only with plain input texts; pairs carry their own.")
        split = [input_output(item) for item in inputs]
        return [a for a, _ in split], [b for _, b in split]
    texts = [str(t) for t in inputs]
    if outputs is not None and len(outputs) != len(texts):
        raise InputError(f"Got {len(texts)} inputs but {len(outputs)} outputs; they must pair up.")
    return texts, list(outputs) if outputs is not None else None


def embed_texts(
    embedder: Embedder, texts: Sequence[str], on_progress: ProgressFn = no_progress
) -> np.ndarray:
    """Embed texts in batches (each distinct text once), reporting progress."""
    unique = list(dict.fromkeys(texts))
    parts = []
    for start in range(0, len(unique), _EMBED_BATCH):
        on_progress(Progress(start, len(unique), f"embedding with {embedder.name}"))
        parts.append(np.asarray(embedder.embed(unique[start : start + _EMBED_BATCH])))
    on_progress(Progress(len(unique), len(unique), f"embedded {len(unique)} distinct texts"))
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    table = np.concatenate(parts).astype(np.float32, copy=False)
    where = {t: i for i, t in enumerate(unique)}
    return table[[where[t] for t in texts]]


def dispersion(vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance of unit vectors, over all pairs i != j, exactly.

    Σ_{i≠j} x_i·x_j = |Σ x_i|² − Σ |x_i|², so no pair needs to be formed (O(n·d), no sampling).
    """
    n = len(vectors)
    if n < 2:
        return 0.0
    v = np.asarray(vectors, dtype=np.float64)
    total = v.sum(axis=0)
    off_diagonal = float(total @ total) - float(np.einsum("ij,ij->", v, v))
    # Clipped: float rounding leaves ~1e-8 for a set of identical vectors.
    return min(2.0, max(0.0, 1.0 - off_diagonal / (n * (n - 1))))


def near_duplicate_share(
    vectors: np.ndarray, threshold: float = 0.95, *, max_queries: int = 2000, seed: int = 0
) -> tuple[float, int]:
    """Share of points whose nearest other point has cosine >= threshold, and how many points
    were checked: all of them up to `max_queries`, else a seeded sample (standard error <= 0.011
    at 2,000) searched against every point."""
    n = len(vectors)
    if n < 2:
        return 0.0, n
    v = np.asarray(vectors, dtype=np.float32)
    if n <= max_queries:
        queries = np.arange(n)
    else:
        queries = np.sort(np.random.default_rng(seed).choice(n, max_queries, replace=False))
    hits = 0
    for start in range(0, len(queries), _NN_BLOCK):
        block = queries[start : start + _NN_BLOCK]
        sims = v[block] @ v.T
        sims[np.arange(len(block)), block] = -np.inf  # a point is not its own neighbour
        hits += int((sims.max(axis=1) >= threshold).sum())
    return hits / len(queries), len(queries)


def label_distribution(
    outputs: Sequence[str], *, force: bool = False, max_labels: int = 20, max_label_words: int = 5
) -> dict[str, int] | None:
    """Counts of `answer_label(output)`, most frequent first, or None when the outputs do not look
    like a closed label set. They do when there are at most `max_labels` distinct labels, each
    label is used twice on average (2·labels <= n) and every label has <= `max_label_words` words.
    `force` skips the test."""
    labels = [answer_label(o) for o in outputs]
    counts = Counter(labels)
    if not force:
        if len(labels) < 4 or len(counts) > max_labels or 2 * len(counts) > len(labels):
            return None
        if any(word_count(label) > max_label_words or not label for label in counts):
            return None
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _entropy(counts: Mapping[str, int]) -> float:
    total = sum(counts.values())
    if len(counts) < 2 or total == 0:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts.values() if c)
    return h / math.log(len(counts))


def measure_diversity(
    inputs: Sequence[Any],
    outputs: Sequence[str] | None = None,
    *,
    embedder: Embedder | None = None,
    vectors: np.ndarray | None = None,
    labels: bool | None = None,
    near_dup_threshold: float = 0.95,
    on_progress: ProgressFn = no_progress,
) -> DiversityMetrics:
    """Diversity metrics of one set. `inputs` are texts (with `outputs` alongside, optional) or
    pairs (Pair, Example, ScoredRow, or {"input", "output"} mappings).

    The embedding metrics need `embedder` or precomputed input `vectors` (unit rows, one per
    input); without either they are None. `labels`: None decides by `label_distribution`'s rule,
    True always counts labels, False never does.
    """
    texts, outs = _split(inputs, outputs)
    if not texts:
        raise InputError("There is nothing to measure: the set has no pairs.")
    token_lists = [tokenize(t) for t in texts]
    word_lens = [sum(1 for t in tokens if _is_word(t)) for tokens in token_lists]
    unique = len({" ".join(t.split()) for t in texts})

    if vectors is None and embedder is not None:
        vectors = embed_texts(embedder, texts, on_progress)
    spread = near_share = None
    checked = 0
    if vectors is not None:
        if len(vectors) != len(texts):
            raise InputError(f"Got {len(vectors)} vectors for {len(texts)} inputs.")
        spread = dispersion(vectors)
        near_share, checked = near_duplicate_share(vectors, near_dup_threshold)

    dist = None
    if outs is not None and labels is not False:
        dist = label_distribution(outs, force=bool(labels))
    return DiversityMetrics(
        n=len(texts),
        unique_inputs=unique / len(texts),
        distinct_1=distinct_n(token_lists, 1),
        distinct_2=distinct_n(token_lists, 2),
        avg_input_len=sum(word_lens) / len(texts),
        avg_output_len=(sum(word_count(o) for o in outs) / len(outs)) if outs else 0.0,
        dispersion=spread,
        near_duplicate_share=near_share,
        near_duplicate_threshold=near_dup_threshold,
        near_duplicate_sample=checked,
        label_distribution=dist,
        label_entropy=_entropy(dist) if dist is not None else None,
        embedder=embedder.name
        if embedder is not None
        else ("vectors" if spread is not None else None),
    )
