"""One frozen `Settings`, built once at the edge (app or CLI) from env and secrets, passed down.

The library never reads `os.environ` itself: `Settings.from_mapping({**os.environ, **secrets})`
does, at the edge.
API keys live here in memory only (excluded from `repr`) and are never written anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = PROJECT_ROOT / "workspace"
DEFAULT_PYPI_SIMPLE = "https://pypi.org/simple"
DEFAULT_LOCAL_LLM = "local:qwen2.5-coder-1.5b-instruct"


def _flag(value: str | None) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def _threads(value: str | None) -> int:
    try:
        return max(1, int(str(value)))
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable about a run of the app or the CLI."""

    home: Path = DEFAULT_HOME
    chroma_url: str | None = None
    embedder: str = "minilm"
    # 1 thread by default: with the other core busy, 2 torch/llama.cpp threads are 10-30x slower.
    threads: int = 1
    llm: str = DEFAULT_LOCAL_LLM
    openai_base_url: str | None = None
    pypi_simple_url: str = DEFAULT_PYPI_SIMPLE
    hf_offline: bool = False
    anthropic_api_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    hf_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping such as `{**os.environ, **secrets}` (later keys win)."""
        home = env.get("REBASE_HOME")
        return cls(
            home=Path(home).expanduser().resolve() if home else DEFAULT_HOME,
            chroma_url=env.get("REBASE_CHROMA_URL") or None,
            embedder=env.get("REBASE_EMBEDDER") or "minilm",
            threads=_threads(env.get("REBASE_THREADS")),
            llm=env.get("REBASE_LLM") or DEFAULT_LOCAL_LLM,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            pypi_simple_url=(env.get("REBASE_PYPI_SIMPLE_URL") or DEFAULT_PYPI_SIMPLE).rstrip("/"),
            hf_offline=_flag(env.get("HF_HUB_OFFLINE")) or _flag(env.get("HF_DATASETS_OFFLINE")),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            hf_token=env.get("HF_TOKEN") or None,
        )

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=Path(home))

    # Where things live under the workspace folder.
    @property
    def downloads_dir(self) -> Path:
        """Package archives fetched from PyPI (bigbench sdist, evals wheel, ...)."""
        return self.home / "downloads"

    @property
    def corpus_dir(self) -> Path:
        """The bundled corpus: one `datasets` folder per dataset/config."""
        return self.home / "corpus"

    @property
    def heldout_dir(self) -> Path:
        """Held-out test sets and their task files (never in the datastore)."""
        return self.home / "heldout"

    @property
    def default_store(self) -> Path:
        return self.home / "datastores" / "default"

    @property
    def starter_store(self) -> Path:
        """A few rows of every bundled config, built first so retrieval works within minutes."""
        return self.home / "datastores" / "starter"

    @property
    def workspace_db(self) -> Path:
        return self.home / "workspace.sqlite"

    @property
    def llm_cache_db(self) -> Path:
        return self.home / "llm_cache.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"
