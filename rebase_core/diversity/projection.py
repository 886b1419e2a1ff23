"""A shared 2-D projection of several sets (examples, retrieved rows, ReBase pairs, baselines),
fitted once on their union: seeded UMAP, PCA for tiny or huge sets, cached by content; and
`start_projection`, the same in a background thread for a caller that polls."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rebase_core.diversity.metrics import embed_texts
from rebase_core.diversity.numba_cache import import_umap
from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)

UMAP_MIN_POINTS = 10  # below this UMAP is meaningless (and fails under 5 points): PCA instead
UMAP_MAX_POINTS = 50_000  # above: PCA. Seeded UMAP took 29 s at 50k on 2 busy cores (bench)
# umap's own default is 500 epochs up to 10k points, 200 above. At 10k points 200 epochs took
# 8.5 s instead of 13.9 s (the epochs are most of a fit) with the same trustworthiness (0.9912 at
# 15 neighbours on the bench's clustered vectors), so the map uses 200 at every size.
UMAP_EPOCHS = 200


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


def _umap_2d(
    vectors: np.ndarray,
    *,
    seed: int,
    n_neighbors: int,
    min_dist: float,
    numba_cache_dir: Path | None = None,
) -> np.ndarray:
    # Heavy: numba compiles umap on first use in a process (see `warm_up`), unless a numba cache
    # folder from an earlier process has the compiled code (see `numba_cache`).
    umap = import_umap(numba_cache_dir)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, len(vectors) - 1)),
        min_dist=min_dist,
        metric="cosine",
        n_epochs=UMAP_EPOCHS,
        random_state=seed,  # deterministic; umap then runs single-threaded anyway
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)


def warm_up(n_points: int = 4200, seed: int = 0, numba_cache_dir: Path | None = None) -> float:
    """Pay umap's numba JIT once in this process (both kNN paths: exact below 4,096 points,
    NN-descent above); return the seconds it took (43 s on 2 busy cores). The app can run it in a
    background thread at start-up: numba serialises compilation behind a lock. With
    `numba_cache_dir` the compiled code is kept for the next process (see `numba_cache`)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for n in (64, n_points):
        points = rng.normal(size=(n, 16)).astype(np.float32)
        _umap_2d(points, seed=seed, n_neighbors=15, min_dist=0.1, numba_cache_dir=numba_cache_dir)
    return time.perf_counter() - start


def warm_up_in_background(
    numba_cache_dir: Path | None = None, niceness: int = 10
) -> threading.Thread:
    """Start `warm_up` in a daemon thread at low priority (Linux lets a thread have its own
    niceness; `niceness` is added to the process's, so an app started under `nice` keeps the
    thread below itself rather than raising it), so the first UMAP a user asks for pays no
    compilation. numba serialises compilation behind a lock, so a UMAP started meanwhile waits
    for it rather than compiling twice."""

    def run() -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
            )
        try:
            seconds = warm_up(numba_cache_dir=numba_cache_dir)
            logger.info("umap warmed up in %.1f s", seconds)
        except Exception:  # the map still works, it compiles on first use instead
            logger.exception("umap warm-up failed")

    thread = threading.Thread(target=run, name="umap-warm-up", daemon=True)
    thread.start()
    return thread


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
    numba_cache_dir: Path | None = None,
    on_progress: ProgressFn = no_progress,
) -> Projection:
    """Project every group (origin -> texts) onto one 2-D map, fitted once on their union.

    Vectors come from `vectors` (origin -> array, one row per text), from a group given directly as
    an array (its texts are then empty), or from `embedder`. UMAP is seeded, so a seed gives the
    same map; under `UMAP_MIN_POINTS` or over `max_umap_points` points PCA is used instead (see
    `Projection.method`/`note`). With `cache_dir`, coordinates are stored under a hash of texts,
    origins, method, seed, parameters and embedder, and a repeat call returns them without
    embedding or fitting anything. With `numba_cache_dir`, umap's compiled code is kept there, so
    the first UMAP of a later process does not compile it again (see `numba_cache`).
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
    params = f"nn={n_neighbors},md={min_dist},ep={UMAP_EPOCHS}" if used == "umap" else ""
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
        xy = _umap_2d(
            all_vectors,
            seed=seed,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            numba_cache_dir=numba_cache_dir,
        )
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


class BackgroundProjection:
    """A projection computed in a daemon thread, for a caller that must not block on it (UMAP
    takes seconds to minutes, and its first call in a process compiles). Poll `done`, then read
    `result` or `error`; the handle can be kept across a page's reruns (in its session state).
    The thread calls only the library, never the UI."""

    def __init__(self, compute: Callable[[], Projection], *, name: str = "projection") -> None:
        self._result: Projection | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(compute,), name=name, daemon=True)
        self._thread.start()

    def _run(self, compute: Callable[[], Projection]) -> None:
        try:
            self._result = compute()
        except Exception as exc:  # kept for the caller to show: a thread's exception is lost
            logger.warning("background projection failed: %s", exc)
            self._error = exc

    @property
    def done(self) -> bool:
        """True once the thread has finished, with a result or an error."""
        return not self._thread.is_alive()

    @property
    def result(self) -> Projection | None:
        """The projection, once `done` and if it did not fail."""
        return self._result

    @property
    def error(self) -> Exception | None:
        """What the projection raised, once `done`, if it failed."""
        return self._error

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until done or `timeout_s` passed; return `done`."""
        self._thread.join(timeout_s)
        return self.done


def start_projection(
    groups: Mapping[str, Sequence[str] | np.ndarray],
    *,
    vectors: Mapping[str, np.ndarray] | None = None,
    embedder: Embedder | None = None,
    ids: Mapping[str, Sequence[str]] | None = None,
    method: str = "umap",
    seed: int = 0,
    cache_dir: Path | None = None,
    numba_cache_dir: Path | None = None,
) -> BackgroundProjection:
    """Start `project(...)` with these arguments in a daemon thread and return its handle at once.

    The result goes to the disk cache under `cache_dir` as with `project`, so a later call on the
    same data (another session, another server process) loads it instead of fitting again.
    """
    if method not in ("umap", "pca"):  # said here, not later from inside the thread
        raise InputError(f"Projection method must be 'umap' or 'pca', got {method!r}.")

    def compute() -> Projection:
        return project(
            groups,
            vectors=vectors,
            embedder=embedder,
            ids=ids,
            method=method,
            seed=seed,
            cache_dir=cache_dir,
            numba_cache_dir=numba_cache_dir,
        )

    return BackgroundProjection(compute, name=f"{method}-projection")
