"""The LLM seam: the records (messages, completions, the runner's requests and results), the `LLM`
protocol, a one-method provider base.

Providers subclass `BaseLLM` and implement `_complete`; argument checks live here once. Errors a
provider raises are `rebase_core.errors.ProviderError` subclasses; the two retryable kinds that
`errors.py` lacks (timeouts, unavailable servers) are defined here so the runner can tell them
apart.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rebase_core.errors import InputError, ProviderError, RateLimitError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn."""

    role: str  # system | user | assistant
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"Message role must be one of {ROLES}, got {self.role!r}.")
        if not isinstance(self.content, str):
            raise InputError(
                f"Message content must be a string, got {type(self.content).__name__}."
            )


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """A reply. `cached` is True when it came from the response cache (it cost nothing)."""

    text: str
    usage: Usage
    model: str
    finish_reason: str = ""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt for the runner to complete. `sample` tells repeated samples of one prompt apart
    in the cache (self-consistency); `seed` is passed to backends that take one."""

    key: str
    messages: tuple[Message, ...]
    temperature: float = 0.7
    max_tokens: int = 1000
    json_schema: Mapping[str, Any] | None = None
    sample: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))


ERROR_KINDS = ("rate_limit", "timeout", "provider", "cancelled")


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one request: a completion, or an error with its kind (see ERROR_KINDS)."""

    key: str
    completion: Completion | None
    error: str = ""
    error_kind: str = ""
    attempts: int = 0  # calls made (0 for a cache hit or a request never started)

    @property
    def ok(self) -> bool:
        return self.completion is not None


@runtime_checkable
class LLM(Protocol):
    """Anything that completes a chat. `max_concurrency` is what the backend tolerates."""

    spec: str
    max_concurrency: int

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.7,
        max_tokens: int = 1000,
        json_schema: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> Completion: ...


class ProviderTimeoutError(ProviderError):
    """No reply within the timeout. Retryable."""


class ProviderUnavailableError(ProviderError):
    """A 5xx answer or a failed connection. Retryable."""


def error_kind(exc: BaseException) -> str:
    """The `Result.error_kind` of an exception: rate_limit, timeout or provider."""
    if isinstance(exc, RateLimitError):
        return "rate_limit"
    if isinstance(exc, ProviderTimeoutError):
        return "timeout"
    return "provider"


def is_retryable(exc: BaseException) -> bool:
    """429, timeouts, 5xx and connection failures are worth another try; auth and 4xx are not."""
    return isinstance(exc, (RateLimitError, ProviderTimeoutError, ProviderUnavailableError))


class BaseLLM:
    """A provider: set `spec` and `max_concurrency`, implement `_complete`.

    `complete` checks the arguments once for every provider, so a bad temperature is an
    `InputError` naming the value rather than a provider-specific 400.
    """

    spec: str = ""
    max_concurrency: int = 1
    # Where requests go (a base URL) when it changes the answers; part of the cache key.
    endpoint: str = ""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.7,
        max_tokens: int = 1000,
        json_schema: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> Completion:
        messages = tuple(messages)
        if not messages:
            raise InputError(f"{self.spec}: expected at least one message, got none.")
        if not all(isinstance(m, Message) for m in messages):
            raise InputError(f"{self.spec}: messages must be rebase_core.llm.Message records.")
        if not 0.0 <= float(temperature) <= 2.0:
            raise InputError(f"{self.spec}: temperature must lie in [0, 2], got {temperature}.")
        if int(max_tokens) < 1:
            raise InputError(f"{self.spec}: max_tokens must be at least 1, got {max_tokens}.")
        if json_schema is not None and not isinstance(json_schema, Mapping):
            raise InputError(
                f"{self.spec}: json_schema must be a JSON-schema mapping, "
                f"got {type(json_schema).__name__}."
            )
        return self._complete(
            messages,
            temperature=float(temperature),
            max_tokens=int(max_tokens),
            json_schema=json_schema,
            seed=seed,
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
        raise NotImplementedError

    def __repr__(self) -> str:  # never show a client (it holds the key)
        return f"<{type(self).__name__} {self.spec}>"


# --- helpers shared by the hosted providers ------------------------------------------------------

_SECRET_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+")


def redact(text: str, *secrets: str | None) -> str:
    """Remove keys from a message: the exact secrets given, and anything shaped like `sk-...`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PATTERN.sub(r"\1***", text)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
    except ValueError:
        pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def http_error(
    spec: str,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None,
    key_env_var: str,
) -> ProviderError:
    """Turn an HTTP error status into the right ProviderError, with a message that says the fix."""
    detail = detail.strip()[:300]
    if status == 429:
        wait = retry_after_s(headers)
        after = f", retry after {wait:g}s" if wait is not None else ""
        return RateLimitError(
            f"{spec}: rate limited (HTTP 429{after}): {detail}. The runner waits and retries; "
            "lower the concurrency if this keeps happening.",
            retry_after_s=wait,
        )
    if status in (401, 403):
        return ProviderError(
            f"{spec}: the API key was rejected (HTTP {status}): {detail}. Set a valid "
            f"{key_env_var} in the environment or in .streamlit/secrets.toml."
        )
    if status == 404:
        return ProviderError(
            f"{spec}: not found (HTTP 404): {detail}. Check the model name and the base URL."
        )
    if status in (408, 409) or status >= 500:
        return ProviderUnavailableError(
            f"{spec}: the server failed (HTTP {status}): {detail}. This is usually temporary; "
            "try again later or lower the concurrency."
        )
    return ProviderError(
        f"{spec}: the request was rejected (HTTP {status}): {detail}. Check the model name, "
        "max_tokens and the prompt."
    )


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema in the strict subset that OpenAI and Anthropic accept.

    Every object gets `additionalProperties: false` and all its properties required (unless the
    caller said otherwise), recursively. A schema that already meets the rules is unchanged.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, Mapping):
            out = {k: visit(v) for k, v in node.items()}
            if out.get("type") == "object" and isinstance(out.get("properties"), Mapping):
                out.setdefault("additionalProperties", False)
                out.setdefault("required", list(out["properties"]))
            return out
        if isinstance(node, list):
            return [visit(v) for v in node]
        return node

    return dict(visit(schema))
