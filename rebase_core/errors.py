"""Errors that cross the library boundary.

Every message says what was expected, what was received and how to fix it. The CLI turns a
`RebaseError` into one line on stderr and exit code 2; the app turns it into `st.error` in one place
(`ui.shown_errors`). Anything else is a bug and is allowed to raise with its traceback.
"""

from __future__ import annotations


class RebaseError(Exception):
    """Base class for every error the user can act on."""


class InputError(RebaseError):
    """A file, spec or argument from the user is missing or malformed."""


class DatasetError(RebaseError):
    """A data source cannot be read or holds nothing usable."""


class ArchiveGoneError(DatasetError):
    """A package archive the project pins is no longer served by the package index."""


class StoreError(RebaseError):
    """The datastore is missing, inconsistent or was built with other settings."""


class ProviderError(RebaseError):
    """An LLM provider failed (auth, network, bad reply) after retries."""


class RateLimitError(ProviderError):
    """The provider asked us to slow down (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ParseError(RebaseError):
    """An LLM reply could not be turned into the expected structure."""


class JobError(RebaseError):
    """A background job could not be started, found or resumed."""


class OfflineError(RebaseError):
    """Something needed the network (Hugging Face Hub, a hosted API) and it is unreachable."""
