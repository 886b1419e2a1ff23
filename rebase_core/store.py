"""Vector indexes over datastore cells: the `CellIndex` protocol, Chroma, and an exact numpy scan.

The only module that imports chromadb. Chroma holds one record per cell (id = a content hash of
dataset/config/row_id/column, metadata = those four plus the cell's position `i`) and a second
collection of dataset descriptions. `ExactIndex` scans the same vectors exhaustively; it is the
reference the Chroma index is tested against, and the fallback.

HNSW settings (chosen by measurement, see bench/retrieval.py and the datastore note): cosine
space, ef_construction 200 and max_neighbors 32 (vs Chroma's 100/16) buy recall for the large
result sets retrieval asks for; ef_search is raised to the requested n per query by hnswlib anyway.
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
    "max_neighbors": 32,
}
CHROMA_MAX_BATCH = 5000  # the server/client limit is 5461


def cell_hash(dataset: str, config: str, row_id: str, column: str) -> int:
    """A stable 63-bit id for one cell (deterministic across builds and machines)."""
    key = "\x1f".join((dataset, config, row_id, column)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def dataset_hash(dataset: str) -> int:
    return cell_hash(dataset, "", "", "")


class CellIndex(Protocol):
    """Nearest-neighbour search over cell vectors, by cosine (= dot product of unit vectors)."""

    name: str

    def nearest(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(cell positions int64, cosine similarities float32), best first, at most n."""
        ...


class ExactIndex:
    """Exhaustive search over a (n_cells, dim) matrix: exact, and the reference for Chroma."""

    name = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

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
        documents: Sequence[str],
    ) -> None:
        """Upsert cells (idempotent: the same ids overwrite, never duplicate)."""
        for start in range(0, len(ids), CHROMA_MAX_BATCH):
            end = start + CHROMA_MAX_BATCH
            self.cells.upsert(
                ids=[f"{int(i):016x}" for i in ids[start:end]],
                embeddings=vectors[start:end],
                metadatas=[dict(m) for m in metadatas[start:end]],
                documents=list(documents[start:end]),
            )

    def delete_cells_from(self, first_position: int) -> None:
        """Drop cells at positions >= `first_position` (left by a build that crashed)."""
        self.cells.delete(where={"i": {"$gte": int(first_position)}})

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
    """`CellIndex` over Chroma: maps Chroma's ids back to cell positions in the datastore."""

    name = "chroma"

    def __init__(self, chroma: ChromaIndex, sorted_hashes: np.ndarray, order: np.ndarray) -> None:
        self._chroma = chroma
        self._sorted = sorted_hashes
        self._order = order

    def nearest(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, sims = self._chroma.nearest_ids(query, n)
        if not ids:
            return np.zeros(0, dtype=np.int64), sims
        wanted = np.asarray(ids, dtype=np.uint64)
        at = np.searchsorted(self._sorted, wanted)
        at = np.minimum(at, len(self._sorted) - 1)
        found = self._sorted[at] == wanted  # ids of uncommitted cells (a crashed build) drop out
        return self._order[at[found]].astype(np.int64), sims[found]
