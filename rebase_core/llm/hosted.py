"""What the two hosted providers share: the client's settings and the SDK errors' translation.

Both official SDKs (anthropic, openai) are generated from one template, so they raise the same
error classes (`APITimeoutError`, `APIConnectionError`, `APIStatusError`,
`APIResponseValidationError`) and build their clients from the same arguments. A provider names
its SDK and API in class attributes and keeps only the request and the reply, which differ.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from rebase_core.errors import InputError, ProviderError
from rebase_core.llm.base import (
    BaseLLM,
    ProviderTimeoutError,
    ProviderUnavailableError,
    http_error,
    redact,
)


class HostedLLM(BaseLLM):
    """A model behind a hosted API, called through its official SDK (imported when built)."""

    provider = ""  # the spec's prefix
    sdk_package = ""  # the SDK to import; its client class and root error are named below
    client_class = ""
    sdk_error = ""
    default_base_url = ""
    key_env_var = ""
    api_name = ""  # the API the server must speak, for error messages
    reply_shape = ""  # what a readable reply is, for error messages
    base_url_setting = ""  # where a user sets the base URL (shown in connection errors)
    _sdk: Any  # the imported SDK module, and its client (which holds the key)
    _client: Any

    def __init__(
        self, model: str, *, base_url: str | None, timeout_s: float, max_concurrency: int
    ) -> None:
        self.spec = f"{self.provider}:{model}"
        self.model = model
        # Hosted APIs take many parallel calls; the account's rate limit shows up as 429s,
        # which the runner handles. The caller's `concurrency` is the real knob.
        self.max_concurrency = max(1, int(max_concurrency))
        self.endpoint = (base_url or self.default_base_url).rstrip("/")
        parsed = urlparse(self.endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InputError(
                f"{self.spec}: the base URL {base_url!r} is not an http(s) URL; give one like "
                f"http://127.0.0.1:8000/v1, or none for {self.default_base_url}."
            )
        self.timeout_s = float(timeout_s)
        self._api_key = ""

    def _no_key(self, alternative: str) -> ProviderError:
        return ProviderError(
            f"{self.spec}: no API key. Set {self.key_env_var} in the environment or in "
            f".streamlit/secrets.toml, or {alternative}."
        )

    def _connect(self, api_key: str, **client_options: Any) -> None:
        """Import the SDK and build its client (`client_options` go to the client as given)."""
        self._api_key = api_key
        try:
            self._sdk = importlib.import_module(self.sdk_package)
        except ImportError as exc:
            raise ProviderError(
                f"{self.spec}: the {self.sdk_package} package is not installed; run `make setup`."
            ) from exc
        # max_retries=0: retries, backoff and rate limits are the runner's job, written once.
        self._client = getattr(self._sdk, self.client_class)(
            api_key=api_key,
            base_url=self.endpoint,
            timeout=self.timeout_s,
            max_retries=0,
            **client_options,
        )

    def _send(self, create: Callable[..., Any], **kwargs: Any) -> Any:
        """Call one SDK method; its errors become ProviderErrors that say the fix."""
        try:
            return create(**kwargs)
        except getattr(self._sdk, self.sdk_error) as exc:
            raise self._translate(exc) from exc

    def _unreadable(self, what: str) -> ProviderError:
        return ProviderError(
            f"{self.spec}: the reply could not be read (expected {self.reply_shape}, {what}). "
            f"Check that {self.endpoint} speaks the {self.api_name}."
        )

    def _status_detail(self, exc: Any) -> str:
        """The server's own words from an `APIStatusError` (where each API puts them differs)."""
        raise NotImplementedError

    def _translate(self, exc: Exception) -> ProviderError:
        sdk = self._sdk
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderTimeoutError(
                f"{self.spec}: no reply within {self.timeout_s:g}s. Raise the timeout, lower "
                "max_tokens or the concurrency, or try again later."
            )
        if isinstance(exc, sdk.APIConnectionError):
            cause = redact(str(exc.__cause__ or exc), self._api_key)
            setting = f" ({self.base_url_setting})" if self.base_url_setting else ""
            return ProviderUnavailableError(
                f"{self.spec}: could not connect to {self.endpoint} ({cause}). Check the network "
                f"connection and the base URL{setting}."
            )
        if isinstance(exc, sdk.APIStatusError):
            return http_error(
                self.spec,
                exc.status_code,
                redact(self._status_detail(exc), self._api_key),
                headers=exc.response.headers,
                key_env_var=self.key_env_var,
            )
        if isinstance(exc, sdk.APIResponseValidationError):
            return self._unreadable(f"got {redact(str(exc), self._api_key)}")
        return ProviderError(f"{self.spec}: {redact(str(exc), self._api_key)}")
