"""Fixtures for the scale-out tests and bench: a local Ray, a `chroma run` server, a tiny corpus.

Real Ray and a real Chroma server, both on loopback, started once per test session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rebase_core.settings import PROJECT_ROOT

TOPICS = {
    "animals": ["The cat sat on the mat", "A dog chased the ball", "Birds fly south in winter"],
    "finance": ["Stocks fell sharply today", "The bank raised interest rates", "Bonds rallied"],
    "sport": ["The team won the final", "She ran a marathon", "The striker scored twice"],
    "weather": ["Rain is expected tomorrow", "A sunny day at the beach", "Snow closed the road"],
}


def write_corpus(root: Path, rows_per_topic: int = 3) -> list[str]:
    """One folder per topic (a jsonl split and a description); returns the folders."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic, sentences in TOPICS.items():
        folder = root / topic
        folder.mkdir(exist_ok=True)
        rows = [
            {"text": f"{sentences[i % len(sentences)]} ({i // len(sentences)})", "label": topic}
            for i in range(rows_per_topic)
        ]
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "description.txt").write_text(f"Sentences about {topic}.")
        paths.append(str(folder))
    return paths


def start_local_ray(num_cpus: int = 2) -> None:
    """A small local Ray on loopback (the tests allow only loopback sockets)."""
    from rebase_core.datastore.ray_engine import connect_ray

    connect_ray(
        num_cpus=num_cpus,
        object_store_memory=150 * 2**20,
        _node_ip_address="127.0.0.1",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def chroma_server(path: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """`chroma run` on a free loopback port; yields its URL and stops it after."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    log = (path.parent / f"chroma-{port}.log").open("w")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start (see {log.name})") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class CrashOnceEmbedder:
    """The hashing embedder, except that the first process to embed dies (`os._exit`), as a
    worker killed by the OOM killer or a lost node would; a marker file makes it once per test.
    """

    def __init__(self, marker: Path, dim: int = 256) -> None:
        from rebase_core.embed import HashingEmbedder

        self._inner = HashingEmbedder(dim)
        self.name, self.dim = self._inner.name, dim
        self.marker = marker

    def embed(self, texts):
        if not self.marker.exists():
            self.marker.write_text("crashed once")
            os._exit(1)
        return self._inner.embed(texts)
