"""Content negotiation for /metrics: text 0.0.4 or OpenMetrics, plain or gzip, from cached bytes.

The task data is rendered once per state change and per format (prometheus-client's own
`choose_encoder` picks the format from `Accept`, `gzip_accepted` reads `Accept-Encoding`).
For gzip the compressed task data is cached together with the compressor's state after it,
so a scrape compresses only the small live part (reload, process, platform and GC metrics)
that is rendered at scrape time: `zlib` compressor objects can be copied. The live part
itself is reused for up to a second (reading /proc costs about 0.4 ms, and a burst of scrapes
needs no fresher memory figures), and rendered again at once after a configuration load.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter.core.collector import Exposition
from exporter.core.selfmetrics import ReloadStatus

EOF = b"# EOF\n"
GZIP_WBITS = 31  # a gzip header and trailer around the deflate stream
GZIP_LEVEL = 6
MAX_CACHED_FORMATS = 8  # content types come from client headers; keep the cache bounded
LIVE_TTL_SECONDS = 1.0


@dataclass(slots=True)
class _Cached:
    body: bytes  # the task data in this format, without OpenMetrics' closing `# EOF`
    gzip_prefix: bytes = b""
    gzip_state: zlib._Compress | None = None  # the compressor after `body`
    gzip_live: bytes | None = None  # the live part the last gzip body was finished with ...
    gzip_body: bytes = b""  # ... and that body: a scrape within the live part's second reuses it whole


class NegotiatedExposition:
    """What /metrics answers: the cached task data in the asked format, then the live metrics."""

    def __init__(
        self,
        exposition: Exposition,
        live: CollectorRegistry,
        reloads: ReloadStatus,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exposition = exposition
        self.live = live
        self.reloads = reloads
        self.clock = clock
        self._version = -1
        self._cache: dict[str, _Cached] = {}
        self._live: dict[str, tuple[float, int, bytes]] = {}  # content type -> (rendered at, reload version, bytes)

    def render(self, accept: str = "", accept_encoding: str = "") -> tuple[bytes, dict[str, str]]:
        """The body and its Content-Type (and Content-Encoding) headers for these request headers."""
        encoder, content_type = choose_encoder(accept)
        cached = self._task_data(content_type, encoder)
        live = self._live_part(content_type, encoder)
        headers = {"Content-Type": content_type}
        if not gzip_accepted(accept_encoding):
            return cached.body + live, headers
        if cached.gzip_state is None:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
            cached.gzip_prefix = compressor.compress(cached.body)
            cached.gzip_state = compressor
        headers["Content-Encoding"] = "gzip"
        if cached.gzip_live is not live:
            tail = cached.gzip_state.copy()  # ~0.15 ms: the deflate state is a few hundred KB
            cached.gzip_body = cached.gzip_prefix + tail.compress(live) + tail.flush()
            cached.gzip_live = live
        return cached.gzip_body, headers

    def _live_part(self, content_type: str, encoder: Callable[[CollectorRegistry], bytes]) -> bytes:
        now, version = self.clock(), self.reloads.version
        hit = self._live.get(content_type)
        if hit is not None and hit[1] == version and 0 <= now - hit[0] < LIVE_TTL_SECONDS:
            return hit[2]
        body = encoder(self.live)
        if hit is not None or len(self._live) < MAX_CACHED_FORMATS:
            self._live[content_type] = (now, version, body)
        return body

    def _task_data(self, content_type: str, encoder: Callable[[CollectorRegistry], bytes]) -> _Cached:
        version = self.exposition.store.version
        if version != self._version:
            self._cache.clear()
            self._version = version
        cached = self._cache.get(content_type)
        if cached is None:
            if encoder is choose_encoder("")[0]:
                body = self.exposition.render()  # the text format: the cache tests and benchmarks use
            else:
                body = encoder(self.exposition.registry)
                body = body.removesuffix(EOF)
            cached = _Cached(body)
            if len(self._cache) < MAX_CACHED_FORMATS:
                self._cache[content_type] = cached
        return cached
