"""Transformation benchmark: rows per minute with the local teacher vs raw llama.cpp.

    .venv/bin/python bench/transform.py [--rows 8] [--model qwen2.5-coder-1.5b-instruct]

On the same prompts (the NLI preset task over real rows of the bundled corpus), in one process:
1. raw: llama.cpp `create_chat_completion` on each prompt (same sampling, same JSON schema),
   completion tokens per second of wall time;
2. ours: `transform()` over the same rows (no cache): rows per minute, and completion tokens per
   second from the providers' usage counts.
The ratio ours / raw says what our layer (prompt building, runner, parsing, retries) costs.
For hosted-API throughput at concurrency 1, 4 and 16 see bench/llm_throughput.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebase_core.corpus import list_shards, sample_shard
from rebase_core.llm import get_llm
from rebase_core.settings import Settings
from rebase_core.task import task_from_dict
from rebase_core.transform import PAIR_SCHEMA, TransformConfig, build_messages, transform
from rebase_core.types import ScoredRow


def corpus_rows(settings: Settings, n: int) -> list[ScoredRow]:
    """n real rows from different datasets of the bundled corpus (scores are placeholders)."""
    shards = list_shards("bundled", settings)
    step = max(1, len(shards) // n)
    rows = []
    for shard in shards[::step][:n]:
        sample = sample_shard(shard, rows_per_config=1)
        if not sample.rows:
            continue
        row_id, cells = sample.rows[0]
        first = next(iter(cells))
        rows.append(
            ScoredRow(
                shard.dataset,
                shard.config,
                row_id,
                0.0,
                0.0,
                0.0,
                0.0,
                first,
                list(cells)[-1],
                shard.description,
                cells,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    settings = Settings.from_mapping(os.environ)
    task = task_from_dict(json.loads((ROOT / "assets" / "presets" / "nli.json").read_text()))
    rows = corpus_rows(settings, args.rows)
    config = TransformConfig(max_tokens=args.max_tokens, temperature=0.7, concurrency=1)
    llm = get_llm(f"local:{args.model}", settings)
    print(
        f"transform benchmark: local:{args.model}, {len(rows)} rows, {settings.threads} "
        f"thread(s), load {os.getloadavg()[0]:.1f}"
    )
    llm.complete(build_messages(task, rows[0], config), max_tokens=8)  # load the model

    raw_model = llm.load()  # the llama_cpp.Llama behind the provider
    started = time.perf_counter()
    raw_tokens = 0
    for row in rows:
        messages = [
            {"role": m.role, "content": m.content} for m in build_messages(task, row, config)
        ]
        out = raw_model.create_chat_completion(
            messages=messages,
            temperature=0.7,
            max_tokens=args.max_tokens,
            response_format={"type": "json_object", "schema": PAIR_SCHEMA},
        )
        raw_tokens += out["usage"]["completion_tokens"]
    raw_s = time.perf_counter() - started

    started = time.perf_counter()
    result = transform(task, rows, llm, config, cache=None)
    ours_s = time.perf_counter() - started
    ours_tokens = result.usage.output_tokens if result.usage else 0
    raw_rate = raw_tokens / raw_s
    ours_rate = ours_tokens / ours_s
    print(
        f"  raw llama.cpp : {raw_tokens} tokens in {raw_s:.1f} s = {raw_rate:.1f} tok/s "
        f"({len(rows) / raw_s * 60:.1f} rows/min)"
    )
    print(
        f"  transform()   : {len(result.pairs)} pairs, {len(result.failures)} failed, "
        f"{ours_tokens} tokens in {ours_s:.1f} s = {ours_rate:.1f} tok/s, "
        f"{len(rows) / ours_s * 60:.1f} rows/min"
    )
    print(f"  ratio         : {ours_rate / raw_rate:.2f} (tokens/s, ours / raw)")
    for pair in result.pairs[:3]:
        print(f"    e.g. {pair.source.dataset}: {pair.input[:90]!r} -> {pair.output[:40]!r}")


if __name__ == "__main__":
    main()
