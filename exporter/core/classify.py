"""The one classifier of provider API error codes: what a provider's ErrorCodes table says a code means."""

from __future__ import annotations

from exporter.core.errors import AuthFailed, ProviderError, Rejected, Throttled, Unavailable
from exporter.core.provider import ErrorCodes


def api_error(
    codes: ErrorCodes, code: str, message: str, *, retry_after: float | None = None, server_error: bool = False
) -> ProviderError:
    """The one classifier of API error codes: what the provider's table says the code means.

    `server_error`: the answer came with a 5xx status, which is retried whatever the code.
    """
    if code in codes.auth:
        return AuthFailed(f"{message}; {codes.auth[code]}", api_code=code)
    if code in codes.throttling:
        return Throttled(message, api_code=code, retry_after=retry_after, pause=codes.throttling[code])
    if code in codes.retryable or server_error:
        return Unavailable(message, api_code=code, retry_after=retry_after, pause=codes.retryable.get(code))
    hint = codes.rejected.get(code)
    return Rejected(f"{message}; {hint}" if hint else message, api_code=code)
