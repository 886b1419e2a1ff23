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
from rebase_core.llm.base import (
    BaseLLM,
    Completion,
    Message,
    ProviderTimeoutError,
    ProviderUnavailableError,
    Usage,
    http_error,
    redact,
    strict_schema,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY_ENV_VAR = "ANTHROPIC_API_KEY"
# The first API version that rejects sampling parameters.
NO_SAMPLING_API_VERSION = "2026-10-21"


class AnthropicLLM(BaseLLM):
    """A Claude model over the Messages API."""

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
        self.spec = f"anthropic:{model}"
        self.model = model
        # Hosted APIs take many parallel calls; the account's rate limit shows up as 429s,
        # which the runner handles. The caller's `concurrency` is the real knob.
        self.max_concurrency = max(1, int(max_concurrency))
        self.endpoint = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.api_version = api_version
        self.sends_temperature = api_version is not None and api_version < NO_SAMPLING_API_VERSION
        if not api_key:
            raise ProviderError(
                f"{self.spec}: no API key. Set {KEY_ENV_VAR} in the environment or in "
                ".streamlit/secrets.toml, or pick a local model "
                "(local:qwen2.5-coder-1.5b-instruct)."
            )
        self._api_key = api_key
        try:
            import anthropic
        except ImportError as exc:
            raise ProviderError(
                f"{self.spec}: the anthropic package is not installed; run `make setup`."
            ) from exc
        self._sdk = anthropic
        # max_retries=0: retries, backoff and rate limits are the runner's job, written once.
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=self.endpoint,
            timeout=self.timeout_s,
            max_retries=0,
            default_headers={"anthropic-version": api_version} if api_version else None,
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
        try:
            reply = self._client.messages.create(**kwargs)
        except self._sdk.AnthropicError as exc:
            raise self._translate(exc) from exc
        return self._parse(reply)

    def _parse(self, reply: Any) -> Completion:
        content = getattr(reply, "content", None)
        if not isinstance(content, list):
            raise ProviderError(
                f"{self.spec}: the reply could not be read (expected a Messages API object with a "
                f"content list, got {redact(repr(reply)[:200], self._api_key)}). Check that "
                f"{self.endpoint} speaks the Anthropic Messages API."
            )
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

    def _translate(self, exc: Exception) -> ProviderError:
        sdk = self._sdk
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderTimeoutError(
                f"{self.spec}: no reply within {self.timeout_s:g}s. Raise the timeout, lower "
                "max_tokens or the concurrency, or try again later."
            )
        if isinstance(exc, sdk.APIConnectionError):
            cause = redact(str(exc.__cause__ or exc), self._api_key)
            return ProviderUnavailableError(
                f"{self.spec}: could not connect to {self.endpoint} ({cause}). Check the network "
                "connection and the base URL."
            )
        if isinstance(exc, sdk.APIStatusError):
            detail = exc.api_message or str(exc.body or exc.message)
            return http_error(
                self.spec,
                exc.status_code,
                redact(detail, self._api_key),
                headers=exc.response.headers,
                key_env_var=KEY_ENV_VAR,
            )
        if isinstance(exc, sdk.APIResponseValidationError):
            return ProviderError(
                f"{self.spec}: the reply did not match the Messages API schema "
                f"({redact(str(exc), self._api_key)}). Check that {self.endpoint} speaks the "
                "Anthropic API."
            )
        return ProviderError(f"{self.spec}: {redact(str(exc), self._api_key)}")
