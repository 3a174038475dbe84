"""Sustained faults a simulator can be switched into: broken transports, bodies and answers.

`Simulator.set_fault(kind, **opts)` keeps answering every request with the fault until
`clear_fault()`. The kinds that only damage the transport or the body are built here, the
same for every provider; the ones that need the API's own words (its throttling and auth
answers, a partial answer, an XML bomb) come from the simulator's methods.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Every kind a simulator knows; a simulator may support fewer (`Simulator.fault_kinds`).
HTTP_STATUS_KINDS = {"http_500": 500, "http_502": 502, "http_503": 503}
COMMON_KINDS = frozenset(
    {
        *HTTP_STATUS_KINDS,
        "hang",
        "reset",
        "truncated",
        "malformed",
        "wrong_content_type",
        "oversized",
        "oversized_chunked",
        "throttle",
        "auth",
        "partial",
    }
)
XML_KINDS = frozenset({"xml_bomb", "external_entity"})  # only for APIs that answer XML
OPTIONS: Mapping[str, frozenset[str]] = {
    "http_503": frozenset({"retry_after"}),  # seconds, sent as Retry-After
    "hang": frozenset({"seconds"}),  # at most this long; clear_fault ends every hang at once
    "oversized": frozenset({"size"}),  # bytes announced in Content-Length and sent
    "oversized_chunked": frozenset({"size"}),  # bytes sent chunked, no Content-Length
    "partial": frozenset({"ids", "times"}),  # which IDs to leave out, and how many answers each
}
HANG_SECONDS = 30.0
CHUNK = 1 << 16
FILLER = b" " * CHUNK  # whitespace: still a valid continuation of a JSON or XML document
POLL_SECONDS = 0.05  # how often a hang looks whether its fault was cleared
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)
ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service temporarily unavailable</title></head>\n"
    b"<body><h1>We'll be back soon</h1><p>Maintenance in progress.</p></body></html>\n"
)


@dataclass
class Fault:
    """The fault in force: its kind, options, and how often each ID was left out so far."""

    kind: str
    opts: dict[str, Any]
    generation: int  # bumped by every set_fault/clear_fault, so a hang sees it was cleared
    omitted: dict[str, int] = field(default_factory=dict)

    def left_out(self, asked: list[str]) -> set[str]:
        """For `partial`: the asked IDs this answer leaves out (each counted once more)."""
        wanted = self.opts.get("ids")
        candidates = asked[1::2] if wanted is None else [i for i in asked if i in wanted]
        times = self.opts.get("times")
        out = {i for i in candidates if times is None or self.omitted.get(i, 0) < times}
        for task_id in out:
            self.omitted[task_id] = self.omitted.get(task_id, 0) + 1
        return out


def check(kind: str, opts: Mapping[str, Any], supported: frozenset[str]) -> None:
    """Refuse a kind this simulator cannot play or an option the kind does not take."""
    if kind not in supported:
        raise ValueError(f"unknown or unsupported fault {kind!r}; expected one of {', '.join(sorted(supported))}")
    unknown = set(opts) - OPTIONS.get(kind, frozenset())
    if unknown:
        raise ValueError(f"fault {kind!r} takes no option {', '.join(sorted(unknown))}")
    if kind.startswith("oversized") and int(opts.get("size", 0)) <= 0:
        raise ValueError(f"fault {kind!r} needs size=<bytes>")


def http_status(kind: str, opts: Mapping[str, Any]) -> web.Response:
    status = HTTP_STATUS_KINDS[kind]
    headers = {"Retry-After": str(opts["retry_after"])} if opts.get("retry_after") is not None else {}
    if status == 502:
        return web.Response(status=status, body=HTML_PAGE, content_type="text/html", headers=headers)
    return web.Response(
        status=status, text="Service Unavailable" if status == 503 else "Internal Server Error", headers=headers
    )


def wrong_content_type() -> web.Response:
    """A maintenance page served with 200, as a misconfigured proxy or CDN does."""
    return web.Response(status=200, body=ERROR_PAGE, content_type="text/html")


async def hang(opts: Mapping[str, Any], still: Callable[[], bool]) -> bool:
    """Keep the request open until the fault is cleared (True) or `seconds` pass (False).

    The client should give up first; one that waited is answered normally once the fault is
    cleared, as a slow server would, so clearing a hang adds no failure of its own.
    """
    deadline = time.monotonic() + float(opts.get("seconds", HANG_SECONDS))
    while still():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


async def cut_body(
    request: web.Request, status: int, body: bytes, content_type: str, *, reset: bool
) -> web.StreamResponse:
    """Announce the real answer's length, send half of it, then reset (RST) or close (FIN)."""
    response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    response.content_length = max(len(body), 2)
    await response.prepare(request)
    await response.write(body[: len(body) // 2] or b"{")
    transport = request.transport
    if transport is not None:
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    return response


async def oversized(
    request: web.Request, prefix: bytes, content_type: str, size: int, *, with_length: bool
) -> web.StreamResponse:
    """`size` bytes that start like an answer, with or without Content-Length, until the client hangs up."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    if with_length:
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0
    try:
        await response.write(prefix)
        sent = len(prefix)
        while sent < size:
            chunk = FILLER if size - sent >= CHUNK else FILLER[: size - sent]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
    except (ConnectionError, RuntimeError):  # the client refused the rest: what it should do
        pass
    return response
