"""Diversity of a set of pairs (paper's Table 3, plus ours) and a shared 2-D projection.

`measure_diversity` gives the contracts.md "Diversity report" fields for one set; `project` puts
several sets (examples, retrieved rows, ReBase pairs, baselines) on the same axes, fitted once on
their union; `projection_figure` draws it with a fixed colour per origin. umap, plotly and the
embedder's model are imported only inside the functions that use them.

Tokens (`tokenize`): a regex, not a subword tokenizer. A run of letters/digits/underscores is one
token, each CJK ideograph or kana is one token (Japanese and Chinese have no spaces), and a run of
punctuation is one token (so `==`, `->` and `):` count in code). Compared with the MiniLM WordPiece
tokenizer this keeps English counts comparable to the paper's whitespace words, never maps unseen
characters to one `[UNK]` (which would merge distinct n-grams), keeps kana voicing marks (uncased
WordPiece strips them), and needs no file. Lengths count words only (punctuation runs excluded).
"""

from __future__ import annotations

import hashlib
import html
import logging
import math
import re
import textwrap
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.types import Progress, ProgressFn, ScoredRow, no_progress

if TYPE_CHECKING:
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

TOKENIZER_NAME = "regex-cjk-v1"
# Hiragana, katakana, CJK ideographs (+ extension A, compatibility), half-width katakana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]"  # one CJK character
    rf"|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*"  # a word; "don't" stays one word
    r"|[^\w\s]+"  # a run of punctuation / operators
)
_ANSWER_RE = re.compile(r"answer is\s*:?\s*([^\n]+)", re.IGNORECASE)

# Fixed colours, so every chart of the app shows an origin the same way (ux_anchors.md).
ORIGIN_COLORS: dict[str, str] = {
    "examples": "#111827",
    "retrieved": "#9ca3af",
    "rebase": "#2f5bea",  # the app's primary colour
    "direct": "#f59e0b",
    "self-guide": "#10b981",
    "manual": "#8b5cf6",
    "test": "#ef4444",
}
_FALLBACK_COLORS = ("#0ea5e9", "#d946ef", "#84cc16", "#f97316", "#14b8a6", "#a16207", "#64748b")

UMAP_MIN_POINTS = 10  # below this UMAP is meaningless (and fails under 5 points): PCA instead
UMAP_MAX_POINTS = 50_000  # above: PCA. Seeded UMAP took 29 s at 50k on 2 busy cores (bench)
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


# --- the shared 2-D projection --------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Projection:
    """2-D coordinates of every point of every group, on one pair of axes."""

    origin: tuple[str, ...]  # the group each point belongs to
    text: tuple[str, ...]
    point_id: tuple[str, ...]  # ids given to `project` (e.g. pair ids), else "origin:index"
    x: np.ndarray
    y: np.ndarray
    method: str  # the method actually used: "umap" or "pca"
    seed: int
    cache_key: str
    from_cache: bool = False
    note: str = ""  # why the method differs from the one asked for, if it does

    def __len__(self) -> int:
        return len(self.origin)

    def origins(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.origin))


def _pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Top-2 principal components through the d×d Gram matrix (float32 product: n >> d, and it
    halves the time at 50k points); signs fixed so the largest loading is positive, which makes
    the axes deterministic."""
    v = np.asarray(vectors, dtype=np.float32)
    if len(v) < 2:
        return np.zeros((len(v), 2), dtype=np.float32)
    centred = v - v.mean(axis=0)
    _, eigvecs = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    top = eigvecs[:, ::-1][:, :2]
    if top.shape[1] < 2:  # one-dimensional input
        top = np.pad(top, ((0, 0), (0, 2 - top.shape[1])))
    signs = np.sign(top[np.abs(top).argmax(axis=0), [0, 1]])
    signs[signs == 0] = 1.0
    return centred @ (top * signs).astype(np.float32)


def _umap_2d(vectors: np.ndarray, *, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    import umap  # heavy: numba JIT on first use in a process (see `warm_up`)

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, len(vectors) - 1)),
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,  # deterministic; umap then runs single-threaded anyway
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)


def warm_up(n_points: int = 4200, seed: int = 0) -> float:
    """Pay umap's numba JIT once in this process (both kNN paths: exact below 4,096 points,
    NN-descent above); return the seconds it took (43 s on 2 busy cores). The app can run it in a
    background thread at start-up: numba serialises compilation behind a lock."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for n in (64, n_points):
        points = rng.normal(size=(n, 16)).astype(np.float32)
        _umap_2d(points, seed=seed, n_neighbors=15, min_dist=0.1)
    return time.perf_counter() - start


def _cache_key(
    origins: Sequence[str],
    texts: Sequence[str],
    vector_digest: str,
    method: str,
    seed: int,
    params: str,
) -> str:
    digest = hashlib.sha256(f"v1|{method}|{seed}|{params}|{vector_digest}".encode())
    for origin, text in zip(origins, texts, strict=True):
        digest.update(origin.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x01")
    return digest.hexdigest()[:32]


def _embedder_tag(embedder: Embedder) -> str:
    return f"{embedder.name}/{embedder.dim}/{getattr(embedder, 'precision', '')}"


def project(
    groups: Mapping[str, Sequence[str] | np.ndarray],
    *,
    embedder: Embedder | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    ids: Mapping[str, Sequence[str]] | None = None,
    method: str = "umap",
    seed: int = 0,
    cache_dir: Path | None = None,
    max_umap_points: int = UMAP_MAX_POINTS,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    on_progress: ProgressFn = no_progress,
) -> Projection:
    """Project every group (origin -> texts) onto one 2-D map, fitted once on their union.

    Vectors come from `vectors` (origin -> array, one row per text), from a group given directly as
    an array (its texts are then empty), or from `embedder`. UMAP is seeded, so a seed gives the
    same map; under `UMAP_MIN_POINTS` or over `max_umap_points` points PCA is used instead (see
    `Projection.method`/`note`). With `cache_dir`, coordinates are stored under a hash of texts,
    origins, method, seed, parameters and embedder, and a repeat call returns them without
    embedding or fitting anything.
    """
    if method not in ("umap", "pca"):
        raise InputError(f"Projection method must be 'umap' or 'pca', got {method!r}.")
    origins: list[str] = []
    texts: list[str] = []
    point_ids: list[str] = []
    given: list[np.ndarray] = []
    for origin, members in groups.items():
        if isinstance(members, np.ndarray):
            count, group_texts = len(members), [""] * len(members)
            given.append(np.asarray(members, dtype=np.float32))
        else:
            count, group_texts = len(members), [str(t) for t in members]
            if vectors is not None and origin in vectors:
                given.append(np.asarray(vectors[origin], dtype=np.float32))
                if len(given[-1]) != count:
                    raise InputError(
                        f"Group {origin!r} has {count} texts but {len(given[-1])} vectors."
                    )
            elif embedder is None:
                raise InputError(
                    f"Group {origin!r} needs vectors: pass an embedder or precomputed vectors."
                )
        group_ids = list(ids[origin]) if ids is not None and origin in ids else None
        if group_ids is not None and len(group_ids) != count:
            raise InputError(f"Group {origin!r} has {count} points but {len(group_ids)} ids.")
        origins += [origin] * count
        texts += group_texts
        point_ids += group_ids or [f"{origin}:{i}" for i in range(count)]
    n = len(texts)
    if n == 0:
        raise InputError("Nothing to project: every group is empty.")

    used, note = method, ""
    if method == "umap" and n < UMAP_MIN_POINTS:
        used, note = "pca", f"UMAP needs at least {UMAP_MIN_POINTS} points; got {n}, used PCA."
    elif method == "umap" and n > max_umap_points:
        used, note = "pca", f"{n} points is over the UMAP limit of {max_umap_points}; used PCA."
    if note:
        logger.info(note)

    # What the vectors are made of: the embedder (for texts it embeds) and the bytes of any given.
    given_digest = hashlib.sha256(b"".join(np.ascontiguousarray(g).data for g in given))
    embedded_by = _embedder_tag(embedder) if embedder is not None else ""
    vector_digest = f"{embedded_by}|{len(given)}|{given_digest.hexdigest()}"
    params = f"nn={n_neighbors},md={min_dist}" if used == "umap" else ""
    key = _cache_key(origins, texts, vector_digest, used, seed, params)

    def build(xy: np.ndarray, from_cache: bool) -> Projection:
        return Projection(
            origin=tuple(origins),
            text=tuple(texts),
            point_id=tuple(point_ids),
            x=xy[:, 0].copy(),
            y=xy[:, 1].copy(),
            method=used,
            seed=seed,
            cache_key=key,
            from_cache=from_cache,
            note=note,
        )

    cache_file = cache_dir / f"projection-{key}.npy" if cache_dir is not None else None
    cached = _load_array(cache_file, (n, 2))
    if cached is not None:
        on_progress(Progress(1, 1, "projection loaded from the cache"))
        return build(cached, True)

    all_vectors = _collect_vectors(groups, vectors, embedder, cache_dir, on_progress)
    on_progress(Progress(0, 1, f"{used.upper()} on {n} points"))
    start = time.perf_counter()
    if used == "umap":
        xy = _umap_2d(all_vectors, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    else:
        xy = _pca_2d(all_vectors)
    logger.info("%s on %d points took %.1f s", used, n, time.perf_counter() - start)
    on_progress(Progress(1, 1, f"{used.upper()} done"))

    _save_array(cache_file, xy)
    return build(xy, False)


def _load_array(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """A cached array, or None when there is none (or it is unreadable or of the wrong shape)."""
    if path is None or not path.exists():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        logger.warning("cache file %s is unreadable (%s); computing again", path, exc)
        return None
    if array.shape != shape:
        logger.warning(
            "cache file %s has shape %s, not %s; computing again", path, array.shape, shape
        )
        return None
    return np.asarray(array, dtype=np.float32)


def _save_array(path: Path | None, array: np.ndarray) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.save(fh, array, allow_pickle=False)
        tmp.replace(path)
    except OSError as exc:  # the result is still good; only the cache is lost
        logger.warning("could not write the cache file %s: %s", path, exc)


def _collect_vectors(
    groups: Mapping[str, Sequence[str] | np.ndarray],
    vectors: Mapping[str, np.ndarray] | None,
    embedder: Embedder | None,
    cache_dir: Path | None,
    on_progress: ProgressFn,
) -> np.ndarray:
    """Stack the vectors of every group in order, embedding (all at once) the texts without.

    Embeddings are cached too (next to the coordinates), so the instant PCA view followed by UMAP
    on the same texts embeds them once.
    """
    to_embed = [
        str(t)
        for origin, members in groups.items()
        if not isinstance(members, np.ndarray) and not (vectors and origin in vectors)
        for t in members
    ]
    embedded = None
    if embedder is not None and to_embed:
        key = _cache_key([], [], "embedder:" + _embedder_tag(embedder), "embed", 0, "")
        digest = hashlib.sha256(key.encode())
        for text in to_embed:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x01")
        cache_file = cache_dir / f"vectors-{digest.hexdigest()[:32]}.npy" if cache_dir else None
        embedded = _load_array(cache_file, (len(to_embed), embedder.dim))
        if embedded is None:
            embedded = embed_texts(embedder, to_embed, on_progress)
            _save_array(cache_file, embedded)
    parts, used = [], 0
    for origin, members in groups.items():
        if isinstance(members, np.ndarray):
            parts.append(np.asarray(members, dtype=np.float32))
        elif vectors and origin in vectors:
            parts.append(np.asarray(vectors[origin], dtype=np.float32))
        elif embedded is not None:
            parts.append(embedded[used : used + len(members)])
            used += len(members)
    return np.concatenate([p for p in parts if len(p)])


# --- charts (plotly figures; the pages only render them) ------------------------------------


def origin_color(origin: str, order: Sequence[str] = ()) -> str:
    """The fixed colour of an origin; other names get fallback colours by their position."""
    if origin in ORIGIN_COLORS:
        return ORIGIN_COLORS[origin]
    others = [o for o in order if o not in ORIGIN_COLORS] or [origin]
    position = others.index(origin) if origin in others else 0
    return _FALLBACK_COLORS[position % len(_FALLBACK_COLORS)]


def _hover(text: str, max_chars: int) -> str:
    short = text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"
    return "<br>".join(textwrap.wrap(html.escape(short), 60)) or "(no text)"


def projection_figure(
    projection: Projection, *, max_hover_chars: int = 200, title: str = ""
) -> go.Figure:
    """A scatter of the projection, one trace (and legend entry) per origin in a fixed colour.

    Each point's customdata is `[point_id, index]`, so a lasso or box selection maps back to pairs.
    WebGL (Scattergl) above 2,000 points, where SVG gets slow.
    """
    import plotly.graph_objects as go

    order = projection.origins()
    scatter = go.Scattergl if len(projection) > 2000 else go.Scatter
    origin_arr = np.asarray(projection.origin)
    fig = go.Figure()
    for origin in order:
        idx = np.flatnonzero(origin_arr == origin)
        fig.add_trace(
            scatter(
                x=projection.x[idx],
                y=projection.y[idx],
                mode="markers",
                name=origin,
                marker={"color": origin_color(origin, order), "size": 6, "opacity": 0.75},
                text=[_hover(projection.text[i], max_hover_chars) for i in idx],
                customdata=[[projection.point_id[i], int(i)] for i in idx],
                hovertemplate="%{text}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        title=title or f"{projection.method.upper()} of {len(projection)} points",
        xaxis={"showticklabels": False, "title": ""},
        yaxis={"showticklabels": False, "title": ""},
        legend={"itemsizing": "constant"},
        dragmode="lasso",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def length_figure(
    sets: Mapping[str, Sequence[str]], *, title: str = "Length in words"
) -> go.Figure:
    """Overlaid histograms of text lengths (words, as in the metrics), one per origin."""
    import plotly.graph_objects as go

    order = list(sets)
    fig = go.Figure()
    for origin, texts in sets.items():
        fig.add_trace(
            go.Histogram(
                x=[word_count(t) for t in texts],
                name=origin,
                marker_color=origin_color(origin, order),
                opacity=0.6,
            )
        )
    fig.update_layout(barmode="overlay", title=title, xaxis_title="words", yaxis_title="pairs")
    return fig


def label_figure(
    metrics: Mapping[str, DiversityMetrics], *, title: str = "Label distribution"
) -> go.Figure:
    """Grouped bars of label shares per set (sets without a label distribution are left out)."""
    import plotly.graph_objects as go

    order = list(metrics)
    fig = go.Figure()
    for origin, m in metrics.items():
        if not m.label_distribution:
            continue
        total = sum(m.label_distribution.values())
        fig.add_trace(
            go.Bar(
                x=list(m.label_distribution),
                y=[c / total for c in m.label_distribution.values()],
                name=origin,
                marker_color=origin_color(origin, order),
            )
        )
    fig.update_layout(barmode="group", title=title, yaxis_title="share", yaxis_tickformat=".0%")
    return fig
