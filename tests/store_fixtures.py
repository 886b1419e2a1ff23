"""Small fixture datastores for the retrieval tests: a few topic folders of sentences, built with
the hashing embedder so the tests need no model and run in a second or two.

Plain functions, not pytest fixtures: each test file keeps its own fixture (and its own topics,
since its assertions count their rows) and calls these to build the store the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from rebase_core.datastore import build_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.settings import Settings

Topics = Mapping[str, Sequence[str]]


def write_topic_sources(root: Path, topics: Topics, *, descriptions: bool = True) -> list[str]:
    """One folder per topic under `root`: a `train.jsonl` of its sentences labelled with the
    topic, and a `description.txt` unless `descriptions` is off (the dataset score reads it, so
    a test about row scores alone can leave it out). Returns the folders, in `topics` order."""
    sources = []
    for topic, sentences in topics.items():
        folder = root / topic
        folder.mkdir(parents=True)
        rows = [{"text": s, "label": topic} for s in sentences]
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if descriptions:
            (folder / "description.txt").write_text(f"Sentences about {topic}.")
        sources.append(str(folder))
    return sources


def build_topic_store(
    settings: Settings, root: Path, topics: Topics, *, descriptions: bool = True
) -> list[str]:
    """The default store of `settings` built from `topics` (sources written under `root`);
    returns the source folders, for a test that builds a second store from them."""
    sources = write_topic_sources(root, topics, descriptions=descriptions)
    build_datastore(settings.default_store, sources, settings, embedder=HashingEmbedder())
    return sources


def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topics: Topics) -> Path:
    """A REBASE_HOME for an AppTest, its default store built from `topics` (sources under
    `tmp_path/src`); the environment points the app at it and at the hashing embedder, which
    is what the store was built with."""
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    build_topic_store(Settings(home=home, embedder="hash"), tmp_path / "src", topics)
    return home
