"""Anthropic's Messages API through the official SDK (imported when a client is built).

Choices, documented because they differ from the other providers:
- Sampling: SDK 2.x speaks API version 2026-10-21, which rejects `temperature` (HTTP 400), so it
  is not sent. Pass `api_version="2023-06-01"` to pin the older version, which still accepts it
  (needed to reproduce the paper's temperature 0.7); then temperature goes in the body.
- JSON: `json_schema` becomes structured output (`output_config.format`, type json_schema), in
  the strict form (`strict_schema`): the model can only answer with matching JSON.
- `seed` has no Anthropic equivalent and is ignored (it still separates cache entries).
- System messages are joined into the top-level `system` field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rebase_core.errors import InputError, ProviderError
from rebase_core.llm.base import Completion, Message, Usage, redact, strict_schema
from rebase_core.llm.hosted import HostedLLM

logger = logging.getLogger(__name__)

# The first API version that rejects sampling parameters.
NO_SAMPLING_API_VERSION = "2026-10-21"


class AnthropicLLM(HostedLLM):
    """A Claude model over the Messages API."""

    provider = "anthropic"
    sdk_package, client_class, sdk_error = "anthropic", "Anthropic", "AnthropicError"
    default_base_url = "https://api.anthropic.com"
    key_env_var = "ANTHROPIC_API_KEY"
    api_name = "Anthropic Messages API"
    reply_shape = "a Messages API object with a content list"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_concurrency: int = 64,
        api_version: str | None = None,
    ) -> None:
        super().__init__(
            model, base_url=base_url, timeout_s=timeout_s, max_concurrency=max_concurrency
        )
        self.api_version = api_version
        self.sends_temperature = api_version is not None and api_version < NO_SAMPLING_API_VERSION
        if not api_key:
            raise self._no_key("pick a local model (local:qwen2.5-coder-1.5b-instruct)")
        self._connect(
            api_key, default_headers={"anthropic-version": api_version} if api_version else None
        )

    def _complete(
        self,
        messages: tuple[Message, ...],
        *,
        temperature: float,
        max_tokens: int,
        json_schema: Mapping[str, Any] | None,
        seed: int | None,
    ) -> Completion:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        if not turns or turns[0]["role"] != "user":
            raise InputError(
                f"{self.spec}: the first non-system message must be from the user, got "
                f"{turns[0]['role'] if turns else 'none'}."
            )
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": turns}
        if system:
            kwargs["system"] = system
        if json_schema is not None:
            kwargs["output_config"] = {
                "format": {"type": "json_schema", "schema": strict_schema(json_schema)}
            }
        if self.sends_temperature:
            kwargs["extra_body"] = {"temperature": temperature}
        return self._parse(self._send(self._client.messages.create, **kwargs))

    def _parse(self, reply: Any) -> Completion:
        content = getattr(reply, "content", None)
        if not isinstance(content, list):
            raise self._unreadable(f"got {redact(repr(reply)[:200], self._api_key)}")
        texts = [getattr(b, "text", None) for b in content if getattr(b, "type", "") == "text"]
        stop_reason = str(getattr(reply, "stop_reason", "") or "")
        if not texts and stop_reason == "refusal":
            raise ProviderError(
                f"{self.spec}: the model refused to answer this prompt; rephrase it or skip "
                "the row."
            )
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ProviderError(
                f"{self.spec}: the reply held no text block (stop_reason {stop_reason!r}); check "
                "the prompt and max_tokens."
            )
        usage = getattr(reply, "usage", None)
        return Completion(
            text="".join(t for t in texts if isinstance(t, str)),
            usage=Usage(
                input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            ),
            model=str(getattr(reply, "model", None) or self.model),
            finish_reason=stop_reason,
        )

    def _status_detail(self, exc: Any) -> str:
        return str(exc.api_message or exc.body or exc.message)
