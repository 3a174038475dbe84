"""The one place where aiohttp, timeout and parse failures become ProviderError.

A provider calls `HttpClient.call` with a `parse` function that turns the response into
what it needs or raises a ProviderError; every HTTP request is paced by the account's
limiter and counted exactly once by result (one cut short by the poll's deadline counts as
a timeout). A server's Retry-After holds the whole account. Bodies are read with a cap and
a refused body's partial data is freed at once. Error messages name the host and path only:
never a query string, a body or a header, which may carry credentials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from xml.etree.ElementTree import Element

import aiohttp
import defusedxml.ElementTree
import msgspec
from defusedxml import DefusedXmlException
from yarl import URL

from exporter.core.errors import (
    AuthFailed,
    BadResponse,
    ProviderError,
    Rejected,
    Throttled,
    Unavailable,
)
from exporter.core.ratelimit import Limiter

T = TypeVar("T")

# The default cap of one answer; each provider declares its own (`Provider.max_body_bytes`).
MAX_BODY_BYTES = 32 * 1024 * 1024
RETRY_AFTER_CAP_SECONDS = 300.0
READ_CHUNK = 1 << 16
# A larger answer is parsed on a worker thread: a 10,000-task page takes tens of milliseconds,
# which on the event loop would hold up every scrape; off it, the loop gets the interpreter
# back every few milliseconds.
PARSE_OFF_LOOP_BYTES = 256 * 1024
# One thread parses them all, one at a time: the event loop then waits for the interpreter
# behind one parse at most, not behind every batch in flight.
_PARSER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")

Observer = Callable[[str, "str | None"], None]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A fully read response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    where: str  # host and path, safe to log

    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (Retry-After as seconds or HTTP date), capped."""
        value = self.headers.get("Retry-After")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is None:
                return None
            seconds = parsed.timestamp() - time.time()
        return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)

    def raise_for_status(self) -> None:
        """Map an HTTP error status to its ProviderError; do nothing on 2xx."""
        if self.status < 300:
            return
        message = f"HTTP {self.status} from {self.where}"
        if self.status == 429:
            raise Throttled(message, retry_after=self.retry_after())
        if self.status in (401, 403):
            raise AuthFailed(f"{message}: check the account's credentials and permissions")
        if self.status >= 500:
            raise Unavailable(message, retry_after=self.retry_after())
        raise Rejected(message)

    def json(self) -> Any:
        """The body as JSON, or BadResponse."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadResponse(f"malformed JSON from {self.where}: {err.__class__.__name__}") from err

    def decode(self, decoder: msgspec.json.Decoder[T]) -> T:
        """The body decoded into a provider's types (msgspec): only the fields they name are built."""
        try:
            return decoder.decode(self.body)
        except msgspec.ValidationError as err:
            raise BadResponse(f"unexpected response shape from {self.where}: {str(err)[:160]}") from None
        except msgspec.DecodeError:
            raise BadResponse(f"malformed JSON from {self.where}") from None

    def xml(self) -> Element:
        """The body as XML parsed by defusedxml: entity expansion and external entities refused."""
        try:
            root: Element = defusedxml.ElementTree.fromstring(self.body, forbid_dtd=True)
        except DefusedXmlException as err:
            raise BadResponse(f"refused XML from {self.where}: {err.__class__.__name__}") from err
        except Exception as err:  # ParseError and expat errors
            raise BadResponse(f"malformed XML from {self.where}: {err.__class__.__name__}") from err
        return root


def safe_where(url: str | URL) -> str:
    """Host and path of a URL, without userinfo or query: safe for logs and errors."""
    u = URL(url)
    return f"{u.host or ''}{':' + str(u.explicit_port) if u.explicit_port else ''}{u.path}"


class HttpClient:
    """HTTP for one task set's provider: paced by its account, counted for its set."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        limiter: Limiter,
        *,
        timeout: float,
        observe: Observer,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
        proxy: str | None = None,
        proxy_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.clock = clock  # the core's clock, for providers that turn relative times into unix times
        self._session = session
        self._limiter = limiter
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._observe = observe
        self._max_body = max_body_bytes
        # The account's proxy: its own, or the one HTTP(S)_PROXY/NO_PROXY give for its endpoint (core.proxy).
        self._proxy = proxy
        self._proxy_headers = dict(proxy_headers) if proxy_headers else None

    async def call(
        self,
        method: str,
        url: str,
        parse: Callable[[HttpResponse], T],
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,  # a form, or a body encoded by the provider
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Send one request and return `parse(response)`; raises ProviderError only."""
        where = safe_where(url)
        try:
            response = await self._send(method, url, where, params, data, json_body, headers)
            if len(response.body) > PARSE_OFF_LOOP_BYTES:
                result = await asyncio.get_running_loop().run_in_executor(_PARSER, parse, response)
            else:
                result = parse(response)
        except ProviderError as err:
            self._observe(err.result, err.api_code)
            if isinstance(err, Throttled):
                self._limiter.throttled()
            if err.retry_after is not None:
                self._limiter.hold(err.retry_after)
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            self._observe(BadResponse.result, None)
            raise BadResponse(f"unexpected response shape from {where}: {err.__class__.__name__}") from err
        self._observe("ok", None)
        self._limiter.succeeded()
        return result

    async def _send(
        self,
        method: str,
        url: str,
        where: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | bytes | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> HttpResponse:
        proxy_headers = self._proxy_headers
        if proxy_headers and url.startswith("http://"):
            # A plain-HTTP request goes to the proxy whole, so its Proxy-Authorization travels with it
            # (the proxy strips it); for HTTPS it goes with the CONNECT, never to the provider.
            headers, proxy_headers = {**(headers or {}), **proxy_headers}, None
        async with self._limiter.slot():
            try:
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    json=json_body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    proxy=self._proxy,
                    proxy_headers=proxy_headers,
                ) as resp:
                    body = await self._read(resp, where)
                    return HttpResponse(resp.status, dict(resp.headers), body, where)
            except TimeoutError as err:
                raise Unavailable(f"timed out calling {where}", result="timeout") from err
            except aiohttp.ClientError as err:
                # str(err) of aiohttp errors may include the full URL; name the class only.
                raise Unavailable(f"cannot reach {where}: {err.__class__.__name__}") from None
            except asyncio.CancelledError:
                self._observe("timeout", None)  # sent, and cut short by the poll's deadline or a stop
                raise

    async def _read(self, resp: aiohttp.ClientResponse, where: str) -> bytes:
        """The body, or BadResponse as soon as it passes the cap, declared or streamed."""
        cap = self._max_body
        if resp.content_length is not None and resp.content_length > cap:
            raise BadResponse(f"body of {resp.content_length} bytes from {where} is over the limit of {cap}")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                size += len(chunk)
                if size > cap:
                    break
                chunks.append(chunk)
            else:
                return b"".join(chunks)
        finally:
            # A traceback keeps this frame alive; the partial body must not live on with it.
            chunks.clear()
        raise BadResponse(f"body from {where} is over the limit of {cap} bytes") from None
