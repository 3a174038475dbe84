"""Watching a running exporter from outside: scrapes on a schedule, a lag probe, poll ends.

Scrapes are open loop: one is due every SCRAPE_EVERY whether or not the last has answered,
and each is timed from when it was due, as Prometheus's would be (a scrape that waits behind
a stall waits from its due time). The lag probe asks one cheap URL at a time, every
PROBE_EVERY; an answer that took L also stands for the probes that schedule would have sent
meanwhile (L - 5 ms, L - 10 ms, ...), so its percentiles are those of probes sent on time.
A poll's end is seen as a new `upload_poll_last_success_timestamp_seconds` in a scrape; the
process's CPU time is noted then. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from benchmarks import common

SCRAPE_EVERY = 0.05
QUIET_SCRAPE_EVERY = 0.5  # while CPU is taken: enough to see polls end, little CPU of its own
SCRAPES_IN_FLIGHT = 32  # open-loop scrapes waiting at once, at most
PROBE_EVERY = 0.005
RSS_EVERY = 0.5
STALL = 0.05  # a probe answer this slow is a stall, placed in the report
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=120)

LAST_SUCCESS = re.compile(rb"^upload_poll_last_success_timestamp_seconds\{[^}]*\} (\S+)$", re.M)


class Watch:
    """Scrapes one exporter on a schedule; notes each new poll's end with the process's CPU then."""

    def __init__(self, session: aiohttp.ClientSession, url: str, pid: int) -> None:
        self.session, self.url, self.pid = session, url, pid
        self.scrapes: list[float] = []
        self.ends: list[tuple[float, float]] = []  # (monotonic time, CPU seconds) when a poll's end was seen
        self.last_success = -1.0
        self.rss: list[float] = []
        self.errors = 0
        self.every = SCRAPE_EVERY  # may be raised while running

    async def scrape(self, due: float, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                async with self.session.get(self.url) as resp:
                    body = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
                return
        self.scrapes.append(time.monotonic() - due)
        match = LAST_SUCCESS.search(body)
        value = float(match.group(1)) if match else -1.0
        if value > self.last_success:  # answers can arrive out of order: only a newer value is a new end
            if self.last_success > 0:
                self.ends.append((time.monotonic(), common.cpu_seconds(self.pid)))
            self.last_success = value

    async def run(self, stop: asyncio.Event, seconds: float) -> None:
        """Scrape every `self.every` until `stop` (or `seconds`), and sample RSS."""
        gate = asyncio.Semaphore(SCRAPES_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        due = time.monotonic()
        next_rss = due + 1.0
        for _ in range(int(seconds / SCRAPE_EVERY)):
            if stop.is_set():
                break
            pending.add(asyncio.create_task(self.scrape(due, gate)))
            pending = {t for t in pending if not t.done()}
            if due >= next_rss:
                self.rss.append(common.rss_mb(self.pid))
                next_rss = due + RSS_EVERY
            due += self.every
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        await asyncio.gather(*pending)

    async def polls(self, count: int, seconds: float) -> None:
        """Until `count` more poll ends were seen (bounded)."""
        want = len(self.ends) + count
        deadline = time.monotonic() + seconds
        while len(self.ends) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self.ends) - want + count} of {count} polls ended in {seconds:.0f} s")
            await asyncio.sleep(0.05)


@dataclass
class Probe:
    lags: list[float] = field(default_factory=list)  # with the probes held back, as sent on schedule
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (monotonic start, seconds) of slow answers


async def lag_probe(url: str, stop: asyncio.Event, seconds: float) -> Probe:
    """Answer times of `url`, asked every PROBE_EVERY, one at a time, until `stop` (or `seconds`)."""
    probe = Probe()
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=PROBE_TIMEOUT) as session:
        for _ in range(int(seconds / PROBE_EVERY)):
            if stop.is_set() or time.monotonic() > deadline:
                break
            started = time.monotonic()
            try:
                async with session.get(url) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                continue
            took = time.monotonic() - started
            probe.lags.append(took)
            if took >= STALL:
                probe.stalls.append((started, took))
            held = took - PROBE_EVERY
            for _ in range(int(took / PROBE_EVERY)):
                if held <= PROBE_EVERY:
                    break
                probe.lags.append(held)
                held -= PROBE_EVERY
            await asyncio.sleep(max(0.0, PROBE_EVERY - took))
    return probe


@dataclass
class Placement:
    """Where the stalls fell in their polls: while the poll was still asking, or after its last request."""

    fetching: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)

    def describe(self) -> str:
        def part(what: str, stalls: list[float]) -> str:
            if not stalls:
                return f"none {what}"
            return f"{len(stalls)} {what} (longest {max(stalls) * 1000:.0f} ms, {sum(stalls):.1f} s in all)"

        return f"{part('while fetching', self.fetching)}; {part('after the last request', self.after)}"


def place(stalls: Sequence[tuple[float, float]], ends: Sequence[float], asked: Sequence[float]) -> Placement:
    """Each stall falls in the poll whose end was seen next; it is 'fetching' if that poll's last
    request (as the simulator received it) came after the stall began, else 'after'."""
    placement = Placement()
    for start, took in stalls:
        end = next((e for e in ends if e > start), float("inf"))
        before = max((e for e in ends if e <= start), default=float("-inf"))
        last_request = max((a for a in asked if before < a <= end), default=float("-inf"))
        (placement.fetching if last_request > start else placement.after).append(took)
    return placement
