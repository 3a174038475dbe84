"""POST /api/v1/task_sets/<name>/tasks: the uploading application registers the IDs it created.

Bodies: `application/json` `{"ids": ["123", 456]}` (strings or integers, nothing else) or
`text/plain`, one ID a line. Anything else is refused with a reason and nothing is stored:
415 for another type, 400 for the wrong shape, 413 past the size caps or the set's
`max_tasks`. The body is read with a bound on its bytes after gzip or deflate decoding
(aiohttp decodes a bounded chunk at a time, so a compression bomb stops at the cap), and
with a time bound. The route is authenticated by the set's bearer token only: basic
auth, when configured, does not guard it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from exporter.core.provider import IdSyntax
from exporter.core.state import StateStore

MAX_PUSH_BYTES = 4 * 1024 * 1024  # as sent and decoded: 100,000 IDs of 40 characters fit
MAX_PUSH_IDS = 100_000
READ_SECONDS = 30.0
TASK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces: IDs, tickets, URL-encoded URLs
EXAMPLE = 'expected Content-Type application/json with {"ids": ["id", ...]} or text/plain with one ID a line'


class Refused(Exception):
    """A push answered with `status` and `reason`; `counted` is the metric's reason label."""

    def __init__(self, status: int, reason: str, counted: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.counted = status, reason, counted


def authorised(request: web.Request, token: str) -> bool:
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode())


async def read_ids(request: web.Request) -> list[str]:
    """The posted IDs, checked; raises Refused."""
    if request.content_type not in ("application/json", "text/plain"):
        raise Refused(415, EXAMPLE, "unsupported_media_type")
    body = await _read_body(request)
    if body.count(b"," if request.content_type == "application/json" else b"\n") > MAX_PUSH_IDS:
        raise Refused(413, f"at most {MAX_PUSH_IDS:,} IDs a request", "too_large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8", "malformed") from None
    ids = _from_json(text) if request.content_type == "application/json" else _from_lines(text)
    if not ids:
        raise Refused(400, f"no IDs in the body; {EXAMPLE}", "malformed")
    if len(ids) > MAX_PUSH_IDS:
        raise Refused(413, f"at most {MAX_PUSH_IDS:,} IDs a request", "too_large")
    if not all(TASK_ID.match(i) for i in ids):
        raise Refused(400, "IDs are 1-256 printable ASCII characters without spaces", "malformed")
    return ids


def _from_json(text: str) -> list[str]:
    try:
        doc: Any = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deep enough to exhaust the stack
        raise Refused(400, f"not valid JSON; {EXAMPLE}", "malformed") from None
    if not isinstance(doc, dict) or set(doc) != {"ids"} or not isinstance(doc["ids"], list):
        raise Refused(400, EXAMPLE, "malformed")
    ids = doc["ids"]
    if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        raise Refused(400, f"each ID must be a string or an integer; {EXAMPLE}", "malformed")
    return [str(i) for i in ids]


def _from_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


async def _read_body(request: web.Request) -> bytes:
    """The decoded body: aiohttp undoes gzip and deflate a bounded chunk at a time; stop at the cap."""
    if (request.content_length or 0) > MAX_PUSH_BYTES:
        raise Refused(413, f"the body is larger than {MAX_PUSH_BYTES // (1024 * 1024)} MiB", "too_large")
    out = bytearray()
    try:
        async with asyncio.timeout(READ_SECONDS):
            async for chunk in request.content.iter_chunked(64 * 1024):
                out += chunk
                if len(out) > MAX_PUSH_BYTES:
                    raise Refused(
                        413, f"the body decodes to more than {MAX_PUSH_BYTES // (1024 * 1024)} MiB", "too_large"
                    )
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {READ_SECONDS:.0f} s", "too_large") from None
    except HttpProcessingError:  # aiohttp's decoder: a corrupt gzip or deflate stream
        raise Refused(400, "the body's Content-Encoding cannot be decoded", "malformed") from None
    return bytes(out)


def check_syntax(ids: list[str], syntax: IdSyntax | None) -> None:
    """Refuse (400) a push with an ID that is not in the provider's syntax."""
    bad = next((i for i in ids if syntax is not None and not syntax.accepts(i)), None)
    if bad is not None:
        what = syntax.description if syntax else "a task ID"
        raise Refused(400, f"expected each ID to be {what}, got {bad[:100]!r}", "malformed")


async def track(store: StateStore, name: str, ids: list[str], max_tasks: int) -> int:
    """Track `ids` in set `name` unless that would pass `max_tasks`; returns how many were new."""
    await store.restore(name)  # tombstones first: a forgotten ID pushed again stays forgotten
    st = store.sets[name]
    check_syntax(ids, st.id_syntax)
    new = len(set(ids).difference(st.tasks))
    if len(st.tasks) + new > max_tasks:
        raise Refused(
            413,
            f"task set {name!r} would track more than its max_tasks ({max_tasks:,}); {len(st.tasks):,} are tracked",
            "max_tasks",
        )
    added = store.track(name, ids, time.time(), "a push")
    await store.flush(name)  # saved before it is acknowledged
    return added
