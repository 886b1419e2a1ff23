"""Stage 1: build, extend and open the column-wise datastore (method.md §1).

In: source specs (`bundled`, local paths, `hf:<id>`). Out: a store folder holding
- Chroma (embedded in `chroma/`, or a server): one record per distinct cell text (see store.py),
  one per dataset description;
- `store.sqlite`: datasets (description, license, vector), shards (what was built, with notes),
  rows (the full row as embedded, for display and transformation) and a keyword index;
- append-only sidecars `vectors.f32`, `cell_ids.u64`, `row_start.i64`, `row_dataset.i32`: the
  cell vectors in row order, which let retrieval rescore rows exactly and scan exhaustively.

A build is a map over (dataset, config) shards (`prepare_shard` is pure and could run anywhere);
each finished shard is committed in one SQLite transaction after its vectors and Chroma records
are written, so a build killed half-way resumes at the first unfinished shard, and building the
same sources twice adds nothing.
"""

from rebase_core.datastore.build import (
    BUILD_THREADS,
    BUNDLED_ROWS_PER_CONFIG,
    BuildParams,
    BuildReport,
    build_datastore,
    build_job_key,
    run_build_job,
    start_build_job,
)
from rebase_core.datastore.files import FORMAT_VERSION
from rebase_core.datastore.read import Datastore, StoreStats, open_datastore
from rebase_core.datastore.writer import PreparedShard, ShardOutcome, StoreWriter, prepare_shard

__all__ = [
    "BUILD_THREADS",
    "BUNDLED_ROWS_PER_CONFIG",
    "FORMAT_VERSION",
    "BuildParams",
    "BuildReport",
    "Datastore",
    "PreparedShard",
    "ShardOutcome",
    "StoreStats",
    "StoreWriter",
    "build_datastore",
    "build_job_key",
    "open_datastore",
    "prepare_shard",
    "run_build_job",
    "start_build_job",
]
