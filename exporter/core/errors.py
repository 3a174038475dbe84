"""The exporter's error hierarchy.

Transport and parse failures become one of the ProviderError subclasses at the edge
(`core.http` and the provider modules); the scheduler decides what to do from the class
alone: retry, slow down, or mark the set down until the next interval.
"""

from __future__ import annotations

from typing import ClassVar

from exporter.core.secrets import redact


class ExporterError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(ExporterError):
    """The configuration is invalid; `problems` lists every finding as one line each."""

    def __init__(self, problems: list[str]) -> None:
        # A value quoted back may be a URL with credentials in it, or a secret read elsewhere.
        problems = [redact(p) for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


class StateFileError(ExporterError):
    """The state file cannot be used; the message names it and says what to do, in one line."""


class StoreUnavailable(ExporterError):
    """A shared state store cannot be reached, or refused a save because this replica no longer
    holds the set: the set's runner stops, and runs again (from the shared state) when it holds
    the set again. The message names no address or password."""


class ProviderError(ExporterError):
    """A provider call failed. Messages never carry secrets, URLs with query strings or bodies.

    `result` is the `upload_provider_requests_total` label; `api_code` is the provider's own
    error code when the API answered with one; `retry_after` is what the server asked for
    (Retry-After: every set on the account waits); `pause` is the least wait a provider
    documents for this answer (only this call's retries wait).
    """

    result: ClassVar[str] = "http_error"
    retryable: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        api_code: str | None = None,
        retry_after: float | None = None,
        pause: float | None = None,
        result: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.api_code = api_code
        self.retry_after = retry_after
        self.pause = pause
        if result is not None:
            self.result = result  # type: ignore[misc]
        elif api_code is not None:
            self.result = "api_error"  # type: ignore[misc]


class Unavailable(ProviderError):
    """Transient: connection refused, timeout, 5xx, maintenance. Retried with backoff."""


class Throttled(ProviderError):
    """The API asked us to slow down. Retried after Retry-After, and the account slows down."""


class AuthFailed(ProviderError):
    """Credentials, signature or permissions were refused. Not retried until the next interval."""

    retryable = False


class Rejected(ProviderError):
    """The API refused the request for a reason a retry will not fix (bad parameter, bad method)."""

    retryable = False


class BadResponse(ProviderError):
    """The body could not be parsed or did not have the documented shape."""

    result = "invalid_response"
