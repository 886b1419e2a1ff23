"""Vector indexes over datastore cells: the `CellIndex` protocol, Chroma, and an exact numpy scan.

The only module that imports chromadb. Chroma holds one record per *distinct cell text* (id = a
hash of the text; metadata = dataset, config, row_id and column of its first occurrence; the
embedding) and a second collection of dataset descriptions. Every occurrence of a text — its
cells, in whichever rows and datasets — is found through the datastore's `cell_ids` sidecar.

Why distinct texts and not one record per cell (measured, bench/hnsw.py, 200k real MiniLM cells
of the bundled corpus): label cells repeat ("True" 3,965 times), and HNSW degrades on exact
duplicates — recall of the top-3,000 over the 54 preset queries was 0.51 with Chroma's defaults
and 0.88 with M 32 / ef_construction 200 on per-cell records, against 0.974 (defaults) and 0.984
(ef_construction 200) on the 130k distinct texts, which also add 35% fewer records.

HNSW settings: cosine space, ef_construction 200 (recall of the top-12,000, what retrieval asks
for, 0.993 mean and 0.987 worst vs 0.986 / 0.958 at 100, for 1.75x slower adds), M 16.
`ExactIndex` scans the same vectors exhaustively; it is the reference the Chroma index is tested
against, and the fallback.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from rebase_core.errors import InputError, StoreError

logger = logging.getLogger(__name__)

CELLS_COLLECTION = "rebase_cells"
DESCRIPTIONS_COLLECTION = "rebase_descriptions"
HNSW_CONFIG: dict[str, Any] = {
    "space": "cosine",
    "ef_construction": 200,
    "ef_search": 200,
    "max_neighbors": 16,
}
CHROMA_MAX_BATCH = 5000  # the server/client limit is 5461


def text_hash(text: str) -> int:
    """A stable 63-bit id for a cell text (deterministic across builds and machines)."""
    return (
        int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") >> 1
    )


def dataset_hash(dataset: str) -> int:
    return text_hash("\x1fdataset\x1f" + dataset)


class CellIndex(Protocol):
    """Nearest-neighbour search over cell vectors, by cosine (= dot product of unit vectors)."""

    name: str

    @property
    def size(self) -> int:
        """How many distinct vectors the index holds (asking for that many returns them all)."""
        ...

    def nearest(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(cell positions int64, cosine similarities float32), best first: every cell of the
        n nearest distinct vectors (cells sharing a vector come together)."""
        ...


class ExactIndex:
    """Exhaustive search over a (n_cells, dim) matrix: exact, and the reference for Chroma."""

    name = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

    @property
    def size(self) -> int:
        return int(self._vectors.shape[0])

    def nearest(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(query, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        scores = self._vectors @ q
        n = min(n, scores.shape[0])
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top.astype(np.int64), scores[top].astype(np.float32)


def make_client(chroma_path: Path | None, chroma_url: str | None = None) -> Any:
    """An embedded PersistentClient at `chroma_path`, or an HttpClient when `chroma_url` is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        if not parsed.hostname:
            raise InputError(
                f"REBASE_CHROMA_URL={chroma_url!r} is not a URL like http://host:8000."
            )
        try:
            return chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:
            raise StoreError(
                f"Could not reach the Chroma server at {chroma_url} ({exc}); start it with "
                "`chroma run --path DIR` or unset REBASE_CHROMA_URL to use the embedded store."
            ) from exc
    if chroma_path is None:
        raise InputError("An embedded Chroma store needs a folder.")
    return chromadb.PersistentClient(path=str(chroma_path), settings=chroma_settings)


class ChromaIndex:
    """The datastore's Chroma collections: cells (ANN over cell vectors) and descriptions.

    `prefix` namespaces the collections so several datastores can share one Chroma server.
    """

    name = "chroma"

    def __init__(self, client: Any, prefix: str = "") -> None:
        self._client = client
        self._prefix = prefix
        self.cells = client.get_or_create_collection(
            f"{prefix}{CELLS_COLLECTION}",
            embedding_function=None,  # never let Chroma's default (a downloading) model run
            configuration={"hnsw": HNSW_CONFIG},
            metadata={"rebase": "cells"},
        )
        self.descriptions = client.get_or_create_collection(
            f"{prefix}{DESCRIPTIONS_COLLECTION}",
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"rebase": "descriptions"},
        )

    def add_cells(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Upsert distinct cell texts (idempotent: the same ids overwrite, never duplicate).

        No documents: the cell texts live with their rows in store.sqlite, and Chroma's
        full-text index over documents cost 0.75 KB per cell and slowed adds.
        """
        for start in range(0, len(ids), CHROMA_MAX_BATCH):
            end = start + CHROMA_MAX_BATCH
            self.cells.upsert(
                ids=[f"{int(i):016x}" for i in ids[start:end]],
                embeddings=vectors[start:end],
                metadatas=[dict(m) for m in metadatas[start:end]],
            )

    def delete_cells(self, ids: np.ndarray) -> None:
        """Drop records by id (left by a build that crashed before committing them)."""
        for start in range(0, len(ids), CHROMA_MAX_BATCH):
            self.cells.delete(ids=[f"{int(i):016x}" for i in ids[start : start + CHROMA_MAX_BATCH]])

    def add_descriptions(
        self,
        names: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        if not names:
            return
        self.descriptions.upsert(
            ids=[f"{dataset_hash(n):016x}" for n in names],
            embeddings=vectors,
            documents=list(documents),
            metadatas=[dict(m) for m in metadatas],
        )

    def count(self) -> int:
        return int(self.cells.count())

    def nearest_ids(self, query: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
        """(cell hashes, cosine similarities) of the n nearest cells, best first."""
        if n <= 0:
            return [], np.zeros(0, dtype=np.float32)
        result = self.cells.query(
            query_embeddings=np.asarray(query, dtype=np.float32)[None, :],
            n_results=int(n),
            include=["distances"],
        )
        ids = [int(x, 16) for x in result["ids"][0]]
        sims = 1.0 - np.asarray(result["distances"][0], dtype=np.float32)
        return ids, sims

    def search_descriptions(self, query: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Dataset names whose descriptions are nearest the query, with cosine similarity."""
        total = int(self.descriptions.count())
        if total == 0:
            return []
        result = self.descriptions.query(
            query_embeddings=np.asarray(query, dtype=np.float32)[None, :],
            n_results=min(int(n), total),
            include=["metadatas", "distances"],
        )
        return [
            (str(meta.get("dataset", "")), 1.0 - float(dist))
            for meta, dist in zip(result["metadatas"][0], result["distances"][0], strict=True)
        ]


class ChromaCellIndex:
    """`CellIndex` over Chroma: maps each returned text back to every cell holding it."""

    name = "chroma"

    def __init__(self, chroma: ChromaIndex, sorted_hashes: np.ndarray, order: np.ndarray) -> None:
        self._chroma = chroma
        self._sorted = sorted_hashes
        self._order = order
        self._size: int | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self._chroma.count()
        return self._size

    def nearest(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, sims = self._chroma.nearest_ids(query, n)
        if not ids:
            return np.zeros(0, dtype=np.int64), sims
        wanted = np.asarray(ids, dtype=np.uint64)
        lo = np.searchsorted(self._sorted, wanted, side="left")
        hi = np.searchsorted(self._sorted, wanted, side="right")  # lo == hi: not committed
        counts = hi - lo
        positions = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return self._order[positions].astype(np.int64), np.repeat(sims, counts)
