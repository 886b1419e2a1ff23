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
from rebase_core.llm.base import Completion, Message, Usage, redact, strict_schema
from rebase_core.llm.hosted import HostedLLM

logger = logging.getLogger(__name__)

NO_KEY_PLACEHOLDER = "not-needed"


class OpenAILLM(HostedLLM):
    """A chat model behind the OpenAI Chat Completions API."""

    provider = "openai"
    sdk_package, client_class, sdk_error = "openai", "OpenAI", "OpenAIError"
    default_base_url = "https://api.openai.com/v1"
    key_env_var = "OPENAI_API_KEY"
    api_name = "OpenAI Chat Completions API"
    reply_shape = "a chat.completion object"
    base_url_setting = "OPENAI_BASE_URL"

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
        super().__init__(
            model, base_url=base_url, timeout_s=timeout_s, max_concurrency=max_concurrency
        )
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
            raise self._no_key("point OPENAI_BASE_URL at an OpenAI-compatible server")
        self._connect(api_key or NO_KEY_PLACEHOLDER)

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
        return self._parse(self._send(self._client.chat.completions.create, **kwargs))

    def _parse(self, reply: Any) -> Completion:
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not choices:
            got = redact(repr(reply)[:200], self._api_key)
            raise self._unreadable(f"got {got}")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if text is None:
            refusal = getattr(message, "refusal", None)
            if refusal:
                raise ProviderError(
                    f"{self.spec}: the model refused ({str(refusal)[:200]}); rephrase the prompt "
                    "or skip the row."
                )
            raise self._unreadable("got a choice without message content")
        if not isinstance(text, str):
            raise self._unreadable(f"got content of type {type(text).__name__}")
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

    def _status_detail(self, exc: Any) -> str:
        body = exc.body
        detail = body.get("message") if isinstance(body, dict) else None
        return str(detail or body or exc.message)
