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
from collections.abc import Iterator, Mapping, Sequence
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


def chroma_urls(chroma_url: str | None) -> list[str]:
    """The server URLs in `REBASE_CHROMA_URL` (comma-separated: one per index shard server)."""
    return [u.strip() for u in (chroma_url or "").split(",") if u.strip()]


def make_clients(chroma_path: Path | None, chroma_url: str | None = None) -> list[Any]:
    """One client per server in `chroma_url` (comma-separated), or the one embedded client."""
    urls = chroma_urls(chroma_url)
    if not urls:
        return [make_client(chroma_path, None)]
    return [make_client(chroma_path, url) for url in urls]


def cell_shard_names(prefix: str, shards: int) -> list[str]:
    """Cell collection names: the one `rebase_cells` when unsharded (the existing stores' name)."""
    if shards == 1:
        return [f"{prefix}{CELLS_COLLECTION}"]
    return [f"{prefix}{CELLS_COLLECTION}_{k}of{shards}" for k in range(shards)]


class ChromaIndex:
    """The datastore's Chroma collections: cells (ANN over cell vectors) and descriptions.

    `prefix` namespaces the collections so several datastores can share one Chroma server.
    `shards` > 1 splits the cells over that many collections by text hash (`id % shards`), laid
    round-robin over `client` when it is a list of clients (one per server): past ~10M records
    one HNSW index (one node's memory) is not enough. A query asks every shard for its n nearest
    and keeps the n best of the union; the shards partition the texts, so that union holds the
    global n nearest whenever each shard's answer is exact (and is never worse than one index).
    Descriptions (one per dataset) stay in one collection, on the first client.
    """

    name = "chroma"

    def __init__(self, client: Any, prefix: str = "", shards: int = 1) -> None:
        clients = list(client) if isinstance(client, list | tuple) else [client]
        if shards < 1 or not clients:
            raise InputError(f"An index needs at least one shard and one client, got {shards}.")
        self._client = clients[0]
        self._prefix = prefix
        self.shards = shards
        self.cell_shards = [
            clients[k % len(clients)].get_or_create_collection(
                name,
                embedding_function=None,  # never let Chroma's default (a downloading) model run
                configuration={"hnsw": HNSW_CONFIG},
                metadata={"rebase": "cells"},
            )
            for k, name in enumerate(cell_shard_names(prefix, shards))
        ]
        self.cells = self.cell_shards[0]
        self.descriptions = clients[0].get_or_create_collection(
            f"{prefix}{DESCRIPTIONS_COLLECTION}",
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"rebase": "descriptions"},
        )

    def _by_shard(self, ids: np.ndarray) -> list[np.ndarray]:
        """Positions into `ids` of each shard's texts."""
        if self.shards == 1:
            return [np.arange(len(ids))]
        owner = np.asarray(ids, dtype=np.uint64) % np.uint64(self.shards)
        return [np.flatnonzero(owner == k) for k in range(self.shards)]

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
        ids = np.asarray(ids, dtype=np.uint64)
        for collection, where in zip(self.cell_shards, self._by_shard(ids), strict=True):
            for start in range(0, len(where), CHROMA_MAX_BATCH):
                part = where[start : start + CHROMA_MAX_BATCH]
                collection.upsert(
                    ids=[f"{int(i):016x}" for i in ids[part]],
                    embeddings=np.asarray(vectors)[part],
                    metadatas=[dict(metadatas[int(k)]) for k in part],
                )

    def delete_cells(self, ids: np.ndarray) -> None:
        """Drop records by id (left by a build that crashed before committing them)."""
        ids = np.asarray(ids, dtype=np.uint64)
        for collection, where in zip(self.cell_shards, self._by_shard(ids), strict=True):
            for start in range(0, len(where), CHROMA_MAX_BATCH):
                part = where[start : start + CHROMA_MAX_BATCH]
                collection.delete(ids=[f"{int(i):016x}" for i in ids[part]])

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
        return sum(int(c.count()) for c in self.cell_shards)

    def nearest_ids(self, query: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
        """(cell hashes, cosine similarities) of the n nearest cells, best first."""
        if n <= 0:
            return [], np.zeros(0, dtype=np.float32)
        q = np.asarray(query, dtype=np.float32)[None, :]
        if self.shards == 1:
            return _ids_sims(
                self.cells.query(query_embeddings=q, n_results=int(n), include=["distances"])
            )
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, self.shards)) as pool:
            answers = list(
                pool.map(
                    lambda c: _ids_sims(
                        c.query(query_embeddings=q, n_results=int(n), include=["distances"])
                    ),
                    self.cell_shards,
                )
            )
        ids = [i for got, _ in answers for i in got]
        sims = np.concatenate([s for _, s in answers]) if answers else np.zeros(0, np.float32)
        best = np.argsort(-sims, kind="stable")[:n]
        return [ids[int(b)] for b in best], sims[best]

    def records(
        self, batch: int = CHROMA_MAX_BATCH
    ) -> Iterator[tuple[list[int], np.ndarray, list[dict[str, Any]]]]:
        """Every cell record (ids, vectors, metadatas), a batch at a time (for copying an index)."""
        for collection in self.cell_shards:
            total = int(collection.count())
            for offset in range(0, total, batch):
                got = collection.get(
                    limit=batch, offset=offset, include=["embeddings", "metadatas"]
                )
                yield (
                    [int(x, 16) for x in got["ids"]],
                    np.asarray(got["embeddings"], dtype=np.float32),
                    [dict(m or {}) for m in got["metadatas"]],
                )

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


def _ids_sims(result: Mapping[str, Any]) -> tuple[list[int], np.ndarray]:
    ids = [int(x, 16) for x in result["ids"][0]]
    return ids, 1.0 - np.asarray(result["distances"][0], dtype=np.float32)


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
