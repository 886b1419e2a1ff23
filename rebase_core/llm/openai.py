"""OpenAI Chat Completions through the official SDK; any OpenAI-compatible server via `base_url`.

vLLM, Ollama (`http://localhost:11434/v1`) and llama.cpp's server speak this API. Choices:
- The token limit goes out as `max_completion_tokens` to api.openai.com (its newer models reject
  `max_tokens`) and as `max_tokens` to other servers (which widely know only that one);
  `max_tokens_field` overrides.
- `json_schema` becomes `response_format={"type": "json_schema", ...}` with `strict: true`, using
  the strict form of the schema (`strict_schema`).
- A compatible server at a custom base URL usually needs no key; a placeholder is sent then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rebase_core.errors import ProviderError
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV_VAR = "OPENAI_API_KEY"
NO_KEY_PLACEHOLDER = "not-needed"


class OpenAILLM(BaseLLM):
    """A chat model behind the OpenAI Chat Completions API."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_concurrency: int = 64,
        max_tokens_field: str | None = None,
    ) -> None:
        self.spec = f"openai:{model}"
        self.model = model
        # Hosted APIs take many parallel calls; the account's rate limit shows up as 429s,
        # which the runner handles. The caller's `concurrency` is the real knob.
        self.max_concurrency = max(1, int(max_concurrency))
        self.endpoint = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = float(timeout_s)
        official = "api.openai.com" in self.endpoint
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if official else "max_tokens"
        )
        if self.max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ProviderError(
                f"{self.spec}: max_tokens_field must be 'max_tokens' or 'max_completion_tokens', "
                f"got {self.max_tokens_field!r}."
            )
        if not api_key and official:
            raise ProviderError(
                f"{self.spec}: no API key. Set {KEY_ENV_VAR} in the environment or in "
                ".streamlit/secrets.toml, or point OPENAI_BASE_URL at an OpenAI-compatible server."
            )
        self._api_key = api_key or NO_KEY_PLACEHOLDER
        try:
            import openai
        except ImportError as exc:
            raise ProviderError(
                f"{self.spec}: the openai package is not installed; run `make setup`."
            ) from exc
        self._sdk = openai
        # max_retries=0: retries, backoff and rate limits are the runner's job, written once.
        self._client = openai.OpenAI(
            api_key=self._api_key,
            base_url=self.endpoint,
            timeout=self.timeout_s,
            max_retries=0,
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
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": temperature,
            self.max_tokens_field: max_tokens,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "response",
                    "schema": strict_schema(json_schema),
                    "strict": True,
                },
            }
        try:
            reply = self._client.chat.completions.create(**kwargs)
        except self._sdk.OpenAIError as exc:
            raise self._translate(exc) from exc
        return self._parse(reply)

    def _malformed(self, what: str) -> ProviderError:
        return ProviderError(
            f"{self.spec}: the reply could not be read (expected a chat.completion object, "
            f"{what}). Check that {self.endpoint} speaks the OpenAI Chat Completions API."
        )

    def _parse(self, reply: Any) -> Completion:
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not choices:
            got = redact(repr(reply)[:200], self._api_key)
            raise self._malformed(f"got {got}")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if text is None:
            refusal = getattr(message, "refusal", None)
            if refusal:
                raise ProviderError(
                    f"{self.spec}: the model refused ({str(refusal)[:200]}); rephrase the prompt "
                    "or skip the row."
                )
            raise self._malformed("got a choice without message content")
        if not isinstance(text, str):
            raise self._malformed(f"got content of type {type(text).__name__}")
        usage = getattr(reply, "usage", None)
        return Completion(
            text=text,
            usage=Usage(
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            model=str(getattr(reply, "model", None) or self.model),
            finish_reason=str(getattr(choices[0], "finish_reason", "") or ""),
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
                "connection and the base URL (OPENAI_BASE_URL)."
            )
        if isinstance(exc, sdk.APIStatusError):
            body = exc.body
            detail = body.get("message") if isinstance(body, dict) else None
            return http_error(
                self.spec,
                exc.status_code,
                redact(str(detail or body or exc.message), self._api_key),
                headers=exc.response.headers,
                key_env_var=KEY_ENV_VAR,
            )
        if isinstance(exc, sdk.APIResponseValidationError):
            return self._malformed(f"got {redact(str(exc), self._api_key)}")
        return ProviderError(f"{self.spec}: {redact(str(exc), self._api_key)}")
