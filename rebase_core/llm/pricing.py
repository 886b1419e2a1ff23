"""Token estimates and cost: what a run will cost before it starts, and what it cost after.

Prices are list prices in USD per million tokens (input, output), standard tier, no prompt
caching or batch discount. They change: the table is small on purpose, an unknown model gives
`None` (shown as "unknown"), never a guess. Local and fake models cost 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rebase_core.llm.base import LLM, Request, Result
from rebase_core.llm.cache import ResponseCache, cache_key

# model name (without a date suffix) -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    # Anthropic
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4-6": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-6": (5.00, 25.00),
    "claude-opus-4-7": (5.00, 25.00),
    # OpenAI
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
}

# What may follow a known name and still be the same model: an alias or a snapshot date.
_SUFFIX = re.compile(r"(-latest|-\d{8}|-\d{4}-\d{2}-\d{2})?")

CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str) -> int:
    """A cheap token count: about 4 characters per token for English text and code."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def price_per_mtok(spec: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for a spec; (0, 0) for local/fake; None if unknown."""
    provider, _, model = spec.partition(":")
    if provider in ("local", "fake"):
        return (0.0, 0.0)
    if provider not in ("anthropic", "openai"):
        return None
    for name in sorted(PRICES_PER_MTOK, key=len, reverse=True):
        if model.startswith(name) and _SUFFIX.fullmatch(model[len(name) :]):
            return PRICES_PER_MTOK[name]
    return None


def estimate_cost(spec: str, input_tokens: int, output_tokens: int) -> float | None:
    """USD for the given tokens, or None when the model's price is unknown."""
    price = price_per_mtok(spec)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


@dataclass(frozen=True, slots=True)
class RunEstimate:
    """What a run is expected to cost, before it starts.

    `cost_usd` assumes `typical_output_tokens` per reply, `max_cost_usd` every reply reaching
    `max_tokens`; both exclude requests already in the cache (they are free). None = unknown price.
    """

    requests: int
    cached: int
    input_tokens: int
    output_tokens: int
    max_output_tokens: int
    cost_usd: float | None
    max_cost_usd: float | None


def estimate_run(
    llm: LLM,
    requests: Sequence[Request],
    *,
    cache: ResponseCache | None = None,
    typical_output_tokens: int = 150,
) -> RunEstimate:
    """Estimate tokens and cost of `complete_many(llm, requests, cache=cache)` before running it."""
    hits = set()
    if cache is not None:
        keys = [cache_key(llm, r) for r in requests]
        found = cache.get_many(keys)
        hits = {i for i, k in enumerate(keys) if k in found}
    todo = [r for i, r in enumerate(requests) if i not in hits]
    input_tokens = sum(estimate_tokens("".join(m.content for m in r.messages)) for r in todo)
    output_tokens = sum(min(r.max_tokens, typical_output_tokens) for r in todo)
    max_output = sum(r.max_tokens for r in todo)
    return RunEstimate(
        requests=len(requests),
        cached=len(hits),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        max_output_tokens=max_output,
        cost_usd=estimate_cost(llm.spec, input_tokens, output_tokens),
        max_cost_usd=estimate_cost(llm.spec, input_tokens, max_output),
    )


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """What a run consumed, after it ran. Cached replies count in `cached`, not in the cost."""

    requests: int
    succeeded: int
    cached: int
    failed: int
    cancelled: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


def usage_fields(usage: UsageSummary | None) -> dict[str, float | int | None]:
    """What a job reports about its LLM use (zeros when it made no call)."""
    if usage is None:
        return {
            "cost_usd": 0.0,
            "paid_calls": 0,
            "cached_calls": 0,
            "input_tokens": 0,
            "output_tokens": 0,
        }
    return {
        "cost_usd": usage.cost_usd,
        "paid_calls": usage.succeeded - usage.cached,
        "cached_calls": usage.cached,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }


def summarize_usage(spec: str, results: Sequence[Result]) -> UsageSummary:
    """Tokens and cost of the calls that were paid for (fresh, successful completions)."""
    paid = [r.completion for r in results if r.completion is not None and not r.completion.cached]
    input_tokens = sum(c.usage.input_tokens for c in paid)
    output_tokens = sum(c.usage.output_tokens for c in paid)
    return UsageSummary(
        requests=len(results),
        succeeded=sum(1 for r in results if r.completion is not None),
        cached=sum(1 for r in results if r.completion is not None and r.completion.cached),
        failed=sum(1 for r in results if r.completion is None and r.error_kind != "cancelled"),
        cancelled=sum(1 for r in results if r.error_kind == "cancelled"),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=estimate_cost(spec, input_tokens, output_tokens),
    )


def cost_text(cost_usd: float | None, max_cost_usd: float | None = None) -> str:
    """An estimate's cost as a user reads it: free, unknown, or dollars (with the ceiling).

    >>> cost_text(0.0), cost_text(None), cost_text(0.0123, 0.05)
    ('free', 'cost unknown (no price for this model)', 'about $0.012 (at most $0.050)')
    """
    if cost_usd is None:
        return "cost unknown (no price for this model)"
    if cost_usd == 0:
        return "free"
    ceiling = f" (at most ${max_cost_usd:.3f})" if max_cost_usd is not None else ""
    return f"about ${cost_usd:.3f}{ceiling}"
