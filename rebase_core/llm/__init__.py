"""The LLM layer: one protocol, four providers, and a runner written once over them.

    llm = get_llm("anthropic:claude-haiku-4-5", settings)   # or openai:…, local:…, fake
    llm.complete([Message("user", "Hi")], max_tokens=50)      # -> Completion
    complete_many(llm, requests, concurrency=8, cache=ResponseCache(settings.llm_cache_db))
    calls = RunCalls(llm, concurrency=8, cache=cache); calls.complete(requests); calls.usage()

Specs: `anthropic:<model>`, `openai:<model>` (any OpenAI-compatible server through `base_url` or
`settings.openai_base_url`), `local:<name or .gguf path>` (llama.cpp), `fake` (tests). Providers
are a dict of factories that import their SDK only when called, so importing this package is
light. Keys come from `Settings` and go only into the SDK client: never into logs, errors or the
cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rebase_core.errors import InputError, ProviderError
from rebase_core.llm.base import (
    ERROR_KINDS,
    LLM,
    BaseLLM,
    Completion,
    Message,
    ProviderTimeoutError,
    ProviderUnavailableError,
    Request,
    Result,
    Usage,
    error_kind,
    is_retryable,
)
from rebase_core.llm.cache import ResponseCache, cache_key, request_hash
from rebase_core.llm.pricing import (
    RunEstimate,
    UsageSummary,
    cost_text,
    estimate_cost,
    estimate_run,
    estimate_tokens,
    summarize_usage,
    usage_fields,
)
from rebase_core.llm.runner import RunCalls, complete_many
from rebase_core.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "ERROR_KINDS",
    "LLM",
    "PROVIDERS",
    "BaseLLM",
    "Completion",
    "Message",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "Request",
    "ResponseCache",
    "Result",
    "RunCalls",
    "RunEstimate",
    "Usage",
    "UsageSummary",
    "cache_key",
    "check_connection",
    "complete_many",
    "cost_text",
    "error_kind",
    "estimate_cost",
    "estimate_run",
    "estimate_tokens",
    "get_llm",
    "is_retryable",
    "key_status",
    "parse_spec",
    "request_hash",
    "summarize_usage",
    "usage_fields",
]

# (model, settings, base_url, timeout_s, options) -> LLM
ProviderFactory = Callable[[str, Settings, str | None, float, dict[str, Any]], LLM]


def _anthropic(
    model: str, settings: Settings, base_url: str | None, timeout_s: float, options: dict[str, Any]
) -> LLM:
    from rebase_core.llm.anthropic import AnthropicLLM

    return AnthropicLLM(
        model,
        api_key=settings.anthropic_api_key,
        base_url=base_url,
        timeout_s=timeout_s,
        **options,
    )


def _openai(
    model: str, settings: Settings, base_url: str | None, timeout_s: float, options: dict[str, Any]
) -> LLM:
    from rebase_core.llm.openai import OpenAILLM

    return OpenAILLM(
        model,
        api_key=settings.openai_api_key,
        base_url=base_url or settings.openai_base_url,
        timeout_s=timeout_s,
        **options,
    )


def _local(
    model: str, settings: Settings, base_url: str | None, timeout_s: float, options: dict[str, Any]
) -> LLM:
    from rebase_core.llm.local import LocalLLM

    return LocalLLM(model, settings, **options)


def _fake(
    model: str, settings: Settings, base_url: str | None, timeout_s: float, options: dict[str, Any]
) -> LLM:
    from rebase_core.llm.fake import FakeLLM

    return FakeLLM(spec=f"fake:{model}" if model else "fake", **options)


PROVIDERS: dict[str, ProviderFactory] = {
    "anthropic": _anthropic,
    "openai": _openai,
    "local": _local,
    "fake": _fake,
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `provider:model`; `fake` needs no model. Raises InputError naming the choices."""
    provider, _, model = spec.strip().partition(":")
    if provider not in PROVIDERS:
        raise InputError(
            f"Unknown LLM provider {provider!r} in {spec!r}; expected one of "
            f"{', '.join(PROVIDERS)} (e.g. anthropic:claude-haiku-4-5, openai:gpt-4o-mini, "
            "local:qwen2.5-coder-1.5b-instruct, fake)."
        )
    if not model and provider != "fake":
        raise InputError(f"LLM spec {spec!r} names no model; expected {provider}:<model>.")
    return provider, model.strip()


def get_llm(
    spec: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    **options: Any,
) -> LLM:
    """Build the LLM a spec names. `options` go to the provider (e.g. max_concurrency,
    api_version for anthropic, max_tokens_field for openai, n_ctx/n_threads for local,
    replies/latency_s for fake)."""
    provider, model = parse_spec(spec)
    if timeout_s <= 0:
        raise InputError(f"timeout_s must be positive, got {timeout_s}.")
    try:
        return PROVIDERS[provider](model, settings, base_url, float(timeout_s), dict(options))
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise InputError(
            f"{spec}: unknown option ({exc}); check the options passed to get_llm."
        ) from exc


def key_status(settings: Settings) -> dict[str, str]:
    """Whether each hosted provider has a key: "set" or "missing" (never the key itself)."""
    return {
        "anthropic": "set" if settings.anthropic_api_key else "missing",
        "openai": "set" if settings.openai_api_key else "missing",
    }


def check_connection(llm: LLM, *, max_tokens: int = 16) -> str:
    """Send one tiny request; return a one-line report or raise ProviderError saying why not."""
    started = time.monotonic()
    try:
        completion = llm.complete(
            [Message("user", "Reply with the single word: ok")],
            temperature=0.0,
            max_tokens=max_tokens,
        )
    except ProviderError:
        raise
    except InputError as exc:
        raise ProviderError(f"{llm.spec}: the connection test failed: {exc}") from exc
    elapsed = time.monotonic() - started
    reply = " ".join(completion.text.split())[:60]
    return (
        f"{llm.spec} answered {reply!r} in {elapsed:.1f}s "
        f"({completion.usage.input_tokens} tokens in, {completion.usage.output_tokens} out)"
    )
