"""Stage 2: score datastore rows against a task with the ReBase formula (method.md §2).

For every cell c of every row r of dataset D, with unit vectors E(.) and k examples (x_i, y_i):

    s_in(c)  = mean_i E(x_i) . E(c)  =  m_in . E(c)    (m_in: the plain mean, NOT re-normalised)
    s_out(c) = mean_i E(y_i) . E(c)  =  m_out . E(c)   (y_i: the final answer of a CoT output)
    S_in(r)  = max over the row's cells of s_in(c);   S_out(r) likewise
    S_ds(r)  = E(instruction) . E(description(D))
    score(r) = (w_in S_in + w_out S_out + w_ds S_ds) / (w_in + w_out + w_ds)    (default w = 1,1,1)

Worked example: one example, m_in = (1, 0), m_out = (0, 1); row A has cells (0.6, 0.8) and
(1, 0), row B has the single cell (0, 1); both datasets score 0.5. S_in(A) = max(0.6, 1) = 1,
S_out(A) = max(0.8, 0) = 0.8, score(A) = (1 + 0.8 + 0.5) / 3 = 0.7667; S_in(B) = 0, S_out(B) = 1,
score(B) = 0.5. (tests/test_retrieval.py checks this case.)

Two ways to the same answer:
- `exact`: every cell, one (n_cells x 2) matrix product, a segment max per row. The oracle.
- `index`: the top-N cells per side from Chroma (HNSW), every candidate row rescored exactly from
  all its cells, then a certificate: a row that produced no candidate cell has S_in <= t_in and
  S_out <= t_out (the N-th similarities), so its score is at most
  (w_in t_in + w_out t_out + w_ds S_ds(D)) / W. Every dataset whose bound beats the K-th score
  found so far is rescored exhaustively, so the result equals the exhaustive one whenever the ANN
  search returned the true top-N cells (HNSW recall; measured in bench/retrieval.py).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.errors import InputError, StoreError
from rebase_core.readability import content_key
from rebase_core.task import final_answer
from rebase_core.types import Progress, ProgressFn, ScoredRow, Task, no_progress

logger = logging.getLogger(__name__)

METHODS = ("auto", "exact", "index")
FUSIONS = ("mean_rank", "max_rank")
# Up to this many cells `auto` scans exhaustively: one pass over the vectors is then faster than
# the ANN queries it would replace (measured in bench/retrieval.py on the project machine).
EXACT_MAX_CELLS = 2_000_000
_CHUNK_CELLS = 1 << 20
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class RetrievalOptions:
    """How to retrieve; the paper's setting is the default (top 3,000, equal weights, no cap,
    duplicates kept). The app starts from `app_retrieval_options` instead."""

    top_k: int = 3000
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # input, output, dataset description
    per_dataset_cap: int | None = None  # at most this many rows from one dataset
    dedup: bool = False  # drop rows whose cells repeat a better-scored row's (content_key)
    exclude_datasets: tuple[str, ...] = ()  # added to the task's exclusions and the held-out sets
    include_keywords: tuple[str, ...] = ()  # keep rows containing all words of any of these
    exclude_keywords: tuple[str, ...] = ()  # drop rows containing all words of any of these
    fusion: str | None = None  # rank fusion of S_in and S_out (no dataset term): mean_rank|max_rank
    method: str = "auto"  # auto | exact | index
    candidates: int | None = None  # ANN depth per side for the index method (default 4 x top_k)


PAPER_RETRIEVAL = RetrievalOptions()
# The app's cap: at most this many rows of one dataset (chosen with bench/readability.py).
APP_PER_DATASET_CAP = 50


def app_retrieval_options(top_k: int = 3000) -> RetrievalOptions:
    """The app's default: the paper's score and K, identical rows dropped and at most
    APP_PER_DATASET_CAP rows per dataset, so that the first rows a user reads (and transforms)
    come from many datasets. `PAPER_RETRIEVAL` (one click on the Retrieve page) is uncapped."""
    return RetrievalOptions(top_k=top_k, per_dataset_cap=APP_PER_DATASET_CAP, dedup=True)


@dataclass(frozen=True, slots=True)
class TaskVectors:
    """The three query vectors of a task (see the module docstring)."""

    m_in: np.ndarray
    m_out: np.ndarray
    instruction: np.ndarray


@dataclass(frozen=True, slots=True)
class RetrievalResult:
    rows: tuple[ScoredRow, ...]
    row_idxs: tuple[int, ...]
    method: str
    seconds: float
    n_candidates: int = 0
    datasets_scanned: int = 0
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    duplicates_dropped: int = 0  # identical rows skipped before the top K filled (dedup)
    capped: int = 0  # rows skipped before the top K filled because their dataset was full


# ----------------------------------------------------------------------------- task side


def task_vectors(task: Task, embedder: Embedder) -> TaskVectors:
    """Embed the task: mean input vector, mean final-answer vector, the instruction."""
    if not task.examples:
        raise InputError("The task has no examples; add at least one input/output pair.")
    inputs = [e.input for e in task.examples]
    outputs = [final_answer(e.output) for e in task.examples]
    vectors = embedder.embed([*inputs, *outputs, task.instruction])
    k = len(inputs)
    return TaskVectors(
        m_in=vectors[:k].mean(axis=0).astype(np.float32),
        m_out=vectors[k : 2 * k].mean(axis=0).astype(np.float32),
        instruction=vectors[2 * k].astype(np.float32),
    )


def dataset_matches(name: str, pattern: str) -> bool:
    """Whether an exclusion pattern names a dataset: exactly, without its namespace
    ("vitaminc" names "bigbench/vitaminc"), as a namespace ("bigbench" names "bigbench/x"), or as
    a glob ("bigbench/fact_*"). Never by substring: "mnli" does not name "multi_nli".
    """
    pattern = pattern.strip()
    if not pattern:
        return False
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    pattern = pattern.rstrip("/")
    return name == pattern or name.split("/", 1)[-1] == pattern or name.startswith(pattern + "/")


def _always_excluded() -> frozenset[str]:
    try:
        from rebase_core.bundled import ALWAYS_EXCLUDED
    except ImportError:
        return frozenset()
    return frozenset(ALWAYS_EXCLUDED)


# ----------------------------------------------------------------------------- row scoring


def _segment_argmax(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, offset of the first max within its segment) for consecutive segments."""
    maxima = np.maximum.reduceat(values, starts)
    lengths = np.diff(np.append(starts, len(values)))
    expanded = np.repeat(maxima, lengths)
    positions = np.arange(len(values))
    candidates = np.where(values == expanded, positions, len(values))
    first = np.minimum.reduceat(candidates, starts)
    return maxima, first - starts


@dataclass
class _Scores:
    """Exact S_in/S_out (and the argmax cell offsets) for a set of rows."""

    rows: np.ndarray
    s_in: np.ndarray
    s_out: np.ndarray
    arg_in: np.ndarray
    arg_out: np.ndarray


def _score_rows(store: Datastore, rows: np.ndarray, q: np.ndarray) -> _Scores:
    """Rescore rows exactly from all their cells (cells of a row are contiguous)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        empty = np.zeros(0, dtype=np.float32)
        return _Scores(rows, empty, empty, rows, rows)
    starts = store.row_start[rows]
    ends = store.row_end[rows]
    lengths = ends - starts
    offsets = np.zeros(len(rows), dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)[:-1]
    # Runs of consecutive rows have consecutive cells: multiply slices of the vectors in place
    # (whole datasets in the bound check) instead of gathering a copy of every cell.
    run_starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
    if len(run_starts) * 16 < len(rows):
        run_ends = np.append(run_starts[1:], len(rows))
        sims = np.concatenate(
            [
                store.vectors[starts[a] : ends[b - 1]] @ q
                for a, b in zip(run_starts, run_ends, strict=True)
            ]
        ).astype(np.float32, copy=False)
    else:
        cells = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        sims = np.asarray(store.vectors[cells] @ q, dtype=np.float32)
    s_in, arg_in = _segment_argmax(np.ascontiguousarray(sims[:, 0]), offsets)
    s_out, arg_out = _segment_argmax(np.ascontiguousarray(sims[:, 1]), offsets)
    return _Scores(rows, s_in, s_out, arg_in, arg_out)


def _score_all(store: Datastore, q: np.ndarray) -> _Scores:
    """Every row, exhaustively: the oracle."""
    sims = np.empty((store.n_cells, 2), dtype=np.float32)
    for start in range(0, store.n_cells, _CHUNK_CELLS):
        end = min(store.n_cells, start + _CHUNK_CELLS)
        sims[start:end] = store.vectors[start:end] @ q
    starts = np.asarray(store.row_start, dtype=np.int64)
    s_in, arg_in = _segment_argmax(np.ascontiguousarray(sims[:, 0]), starts)
    s_out, arg_out = _segment_argmax(np.ascontiguousarray(sims[:, 1]), starts)
    return _Scores(np.arange(store.n_rows, dtype=np.int64), s_in, s_out, arg_in, arg_out)


def _concat(parts: Sequence[_Scores]) -> _Scores:
    return _Scores(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in _Scores.__annotations__)
    )


# ----------------------------------------------------------------------------- selection


class _Selector:
    """Applies exclusions, keyword filters, the per-dataset cap and dedup; picks the top K."""

    def __init__(self, store: Datastore, options: RetrievalOptions, allowed_datasets: np.ndarray):
        self.store = store
        self.options = options
        self.allowed_datasets = allowed_datasets  # bool per dataset idx
        self.keyword_mask: np.ndarray | None = None
        if options.include_keywords or options.exclude_keywords:
            mask = np.zeros(store.n_rows, dtype=bool)
            if options.include_keywords:
                for query in options.include_keywords:
                    mask[store.keyword_rows(query)] = True
            else:
                mask[:] = True
            for query in options.exclude_keywords:
                mask[store.keyword_rows(query)] = False
            self.keyword_mask = mask
        self._keys: dict[int, int] = {}  # row idx -> hash of its content_key
        self.duplicates = 0  # rows the last `select` dropped as repeats of a better row
        self.capped = 0  # rows the last `select` skipped for the per-dataset cap

    def allowed(self, rows: np.ndarray) -> np.ndarray:
        ok = self.allowed_datasets[self.store.row_dataset[rows]]
        if self.keyword_mask is not None:
            ok &= self.keyword_mask[rows]
        return np.asarray(ok, dtype=bool)

    def _fetch_keys(self, row_idxs: Sequence[int]) -> None:
        """Content keys of the rows not fetched yet, in one query."""
        missing = [r for r in row_idxs if r not in self._keys]
        for r, row in zip(missing, self.store.rows(missing), strict=True):
            self._keys[r] = hash(content_key(row.cells))

    def select(self, rows: np.ndarray, order_key: np.ndarray) -> np.ndarray:
        """Positions (into `rows`) of the top K after cap and dedup, best first.

        Both rules walk the rows in score order and skip a row, never reorder: the first n
        picks are the same for every K >= n. Ties are broken by row index so the choice is
        deterministic across methods.
        """
        order = np.lexsort((rows, -order_key))
        k = self.options.top_k
        cap = self.options.per_dataset_cap
        self.duplicates = self.capped = 0
        if not cap and not self.options.dedup:
            return order[:k]
        picked: list[int] = []
        per_dataset: dict[int, int] = {}
        seen: set[int] = set()
        chunk = max(2 * k, 1000)  # row texts come from SQLite a chunk at a time
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            if self.options.dedup:
                self._fetch_keys([int(r) for r in rows[part]])
            for pos in part:
                r = int(rows[pos])
                d = int(self.store.row_dataset[r])
                if self.options.dedup:
                    key = self._keys[r]
                    if key in seen:
                        self.duplicates += 1
                        continue
                if cap and per_dataset.get(d, 0) >= cap:
                    self.capped += 1
                    continue
                if self.options.dedup:
                    seen.add(key)
                picked.append(int(pos))
                per_dataset[d] = per_dataset.get(d, 0) + 1
                if len(picked) >= k:
                    return np.asarray(picked, dtype=np.int64)
        return np.asarray(picked, dtype=np.int64)


# ----------------------------------------------------------------------------- retrieval


def _weights(options: RetrievalOptions) -> np.ndarray:
    w = np.asarray(options.weights, dtype=np.float64)
    if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
        raise InputError(
            f"Weights must be three non-negative numbers (input, output, dataset) with a positive "
            f"sum, got {options.weights}."
        )
    return w


def _final_scores(
    scores: _Scores, ds_score: np.ndarray, store: Datastore, w: np.ndarray
) -> np.ndarray:
    ds = ds_score[store.row_dataset[scores.rows]]
    total = w[0] * scores.s_in + w[1] * scores.s_out + w[2] * ds
    return np.asarray(total / w.sum(), dtype=np.float64)


def _fusion_key(scores: _Scores, fusion: str) -> np.ndarray:
    """Higher is better: minus the mean (or max) of the S_in and S_out ranks."""
    rank_in = np.empty(len(scores.rows), dtype=np.float64)
    rank_out = np.empty(len(scores.rows), dtype=np.float64)
    rank_in[np.lexsort((scores.rows, -scores.s_in))] = np.arange(len(scores.rows))
    rank_out[np.lexsort((scores.rows, -scores.s_out))] = np.arange(len(scores.rows))
    fused = (rank_in + rank_out) / 2 if fusion == "mean_rank" else np.maximum(rank_in, rank_out)
    return -fused


def retrieve(
    store: Datastore,
    task: Task,
    embedder: Embedder,
    options: RetrievalOptions | None = None,
    *,
    on_progress: ProgressFn = no_progress,
) -> RetrievalResult:
    """The top-K rows of the datastore for the task, best first (see the module docstring)."""
    options = options or RetrievalOptions()
    if options.method not in METHODS:
        raise InputError(f"Unknown retrieval method {options.method!r}; use one of {METHODS}.")
    if options.fusion is not None and options.fusion not in FUSIONS:
        raise InputError(f"Unknown rank fusion {options.fusion!r}; use one of {FUSIONS}.")
    if options.top_k < 1:
        raise InputError(f"top_k must be at least 1, got {options.top_k}.")
    if store.embedder_name != embedder.name:
        raise StoreError(
            f"The datastore was built with the {store.embedder_name!r} embedder but the query "
            f"uses {embedder.name!r}; use the same embedder."
        )
    on_progress(Progress(0, 3, "embedding the task"))
    tv = task_vectors(task, embedder)
    exclusions = (*task.exclude_datasets, *options.exclude_datasets, *_always_excluded())
    return retrieve_vectors(store, tv, options, exclusions=exclusions, on_progress=on_progress)


def retrieve_vectors(
    store: Datastore,
    tv: TaskVectors,
    options: RetrievalOptions,
    *,
    exclusions: Iterable[str] = (),
    on_progress: ProgressFn = no_progress,
) -> RetrievalResult:
    """`retrieve` for precomputed task vectors (also used for "more like this row")."""
    started = time.perf_counter()
    w = _weights(options)
    exclusions = tuple(dict.fromkeys(exclusions))
    excluded_names = [
        n for n in store.dataset_names if n and any(dataset_matches(n, p) for p in exclusions)
    ]
    allowed = np.array([bool(n) and n not in excluded_names for n in store.dataset_names])
    selector = _Selector(store, options, allowed)
    ds_score = store.dataset_vectors @ tv.instruction if len(store.dataset_names) else np.zeros(0)
    q = np.stack([tv.m_in, tv.m_out], axis=1).astype(np.float32)
    method = options.method
    if method == "auto":
        exact = options.fusion is not None or store.n_cells <= EXACT_MAX_CELLS
        method = "exact" if exact else "index"
    if options.fusion is not None and method == "index":
        raise InputError("Rank fusion ranks every row; use the exact method with it.")
    on_progress(Progress(1, 3, f"scoring rows ({method})"))
    notes: list[str] = []
    scanned = 0
    if store.n_rows == 0:
        scores = _score_rows(store, np.zeros(0, dtype=np.int64), q)
    elif method == "exact":
        scores = _score_all(store, q)
    else:
        scores, scanned, index_notes = _index_candidates(
            store, q, tv, ds_score, w, options, selector
        )
        notes.extend(index_notes)
    keep = selector.allowed(scores.rows)
    scores = _Scores(*(getattr(scores, f)[keep] for f in _Scores.__annotations__))
    final = _final_scores(scores, ds_score, store, w)
    key = final if options.fusion is None else _fusion_key(scores, options.fusion)
    picked = selector.select(scores.rows, key)
    on_progress(Progress(2, 3, "loading rows"))
    result_rows = _to_scored_rows(store, scores, final, ds_score, picked)
    on_progress(Progress(3, 3, f"{len(result_rows)} rows"))
    return RetrievalResult(
        rows=tuple(result_rows),
        row_idxs=tuple(int(scores.rows[p]) for p in picked),
        method=method,
        seconds=time.perf_counter() - started,
        n_candidates=len(scores.rows),
        datasets_scanned=scanned,
        excluded=tuple(excluded_names),
        notes=tuple(notes),
        duplicates_dropped=selector.duplicates,
        capped=selector.capped,
    )


def _index_candidates(
    store: Datastore,
    q: np.ndarray,
    tv: TaskVectors,
    ds_score: np.ndarray,
    w: np.ndarray,
    options: RetrievalOptions,
    selector: _Selector,
) -> tuple[_Scores, int, list[str]]:
    """Candidates from the ANN index, rescored exactly, plus the datasets the bound flags."""
    index = store.cell_index("chroma")
    depth = min(index.size, options.candidates or max(4 * options.top_k, 2000))
    # Asking for every distinct vector the index holds returns every cell: nothing is unseen.
    complete = depth >= index.size
    thresholds = []
    cells = []
    for vec in (tv.m_in, tv.m_out):
        norm = float(np.linalg.norm(vec))
        positions, cos = index.nearest(vec / (norm or 1.0), depth)
        cells.append(positions)
        thresholds.append(-np.inf if complete or not len(cos) else norm * float(cos[-1]) + _EPS)
    cand_cells = np.unique(np.concatenate(cells))
    cand_rows = np.unique(np.searchsorted(store.row_start, cand_cells, side="right") - 1)
    cand_rows = cand_rows[selector.allowed(cand_rows)]
    parts = [_score_rows(store, cand_rows, q)]
    scanned: set[int] = set()
    notes = []
    t_in, t_out = thresholds
    row_groups = store.dataset_rows()
    # Datasets in decreasing order of their score bound for rows that produced no candidate.
    allowed_ds = np.flatnonzero(selector.allowed_datasets)
    unseen_bound = (w[0] * max(t_in, -1.0) + w[1] * max(t_out, -1.0) + w[2] * ds_score) / w.sum()
    if np.isneginf(t_in) and np.isneginf(t_out):
        allowed_ds = allowed_ds[:0]
    allowed_ds = allowed_ds[np.argsort(-unseen_bound[allowed_ds], kind="stable")]
    pos = 0
    while pos < len(allowed_ds):
        current = _concat(parts)
        final = _final_scores(current, ds_score, store, w)
        picked = selector.select(current.rows, final)
        kth = final[picked[-1]] if len(picked) >= options.top_k else -np.inf
        batch = []
        while pos < len(allowed_ds) and unseen_bound[allowed_ds[pos]] > kth:
            batch.append(int(allowed_ds[pos]))
            pos += 1
            if len(batch) >= 64:
                break
        if not batch:
            break
        rows = np.concatenate([row_groups.get(d, np.zeros(0, dtype=np.int64)) for d in batch])
        rows = np.setdiff1d(rows[selector.allowed(rows)], current.rows, assume_unique=False)
        parts.append(_score_rows(store, rows, q))
        scanned.update(batch)
    if len(scanned) > 0:
        notes.append(f"bound check rescored {len(scanned)} dataset(s) in full")
    return _concat(parts), len(scanned), notes


def _to_scored_rows(
    store: Datastore,
    scores: _Scores,
    final: np.ndarray,
    ds_score: np.ndarray,
    picked: np.ndarray,
) -> list[ScoredRow]:
    row_idxs = [int(scores.rows[p]) for p in picked]
    rows = store.rows(row_idxs)
    out = []
    for p, row in zip(picked, rows, strict=True):
        columns = list(row.cells)
        d = int(store.row_dataset[scores.rows[p]])
        out.append(
            ScoredRow(
                dataset=row.dataset,
                config=row.config,
                row_id=row.row_id,
                score=round(float(final[p]), 7),
                input_score=round(float(scores.s_in[p]), 7),
                output_score=round(float(scores.s_out[p]), 7),
                dataset_score=round(float(ds_score[d]), 7),
                input_column=columns[int(scores.arg_in[p])],
                output_column=columns[int(scores.arg_out[p])],
                description=store.dataset_descriptions[d],
                row=row.cells,
            )
        )
    return out


def similar_rows(
    store: Datastore, row_idx: int, options: RetrievalOptions | None = None
) -> RetrievalResult:
    """ "More like this row": rows whose best cell is closest to the row's mean cell vector."""
    if not 0 <= row_idx < store.n_rows:
        raise InputError(f"Row {row_idx} is not in the datastore (it has {store.n_rows} rows).")
    cells = store.vectors[int(store.row_start[row_idx]) : int(store.row_end[row_idx])]
    mean = np.asarray(cells, dtype=np.float32).mean(axis=0)
    tv = TaskVectors(mean, mean, np.zeros(store.dim, dtype=np.float32))
    options = replace(options or RetrievalOptions(top_k=20), weights=(1.0, 0.0, 0.0))
    result = retrieve_vectors(store, tv, replace(options, top_k=options.top_k + 1))
    keep = [i for i, r in enumerate(result.row_idxs) if r != row_idx][: options.top_k]
    return replace(
        result,
        rows=tuple(result.rows[i] for i in keep),
        row_idxs=tuple(result.row_idxs[i] for i in keep),
    )
