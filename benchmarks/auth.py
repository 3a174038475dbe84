"""Basic auth under a wrong-password flood: an authorised scraper's /metrics latency.

The exporter runs as its real command line in a child process, with a web config holding
one bcrypt hash of cost 12. An authorised client scrapes /metrics SCRAPES times alone, then
again while FLOODERS clients send wrong passwords back to back (PACE_SECONDS between
scrapes, so that the flood phase spans many bcrypt checks). The baseline is what the
exporter did before: bcrypt checked on the event loop (successes cached), in a child process
serving the same kind of body; it is measured the same way, for at most BASELINE_SECONDS.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt

from benchmarks import common

SCRAPES = 400
PACE_SECONDS = 0.01  # between scrapes: a steady scraper, so the flood phase spans many bcrypt checks
FLOODERS = 4
COST = 12
BASELINE_SECONDS = 30.0
READY_SECONDS = 60.0
USER, PASSWORD = "prometheus", "right-password"


@dataclass(frozen=True)
class AuthFigure:
    quiet_p50: float
    quiet_p99: float
    flood_p50: float
    flood_p99: float
    wrong_per_second: float  # wrong passwords answered per second during the flood
    known_401: float  # median time of a 401 for a known user with a wrong password
    unknown_401: float  # ... and for an unknown user
    baseline_quiet_p99: float
    baseline_flood_p99: float
    baseline_scrapes: int


def header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def timed_get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


async def scrape_series(session: aiohttp.ClientSession, url: str, count: int, seconds: float) -> list[float]:
    times: list[float] = []
    deadline = time.monotonic() + seconds
    good = header(USER, PASSWORD)
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        status, took = await timed_get(session, url, good)
        assert status == 200, status
        times.append(took)
        await asyncio.sleep(PACE_SECONDS)
    return times


async def under_flood(
    session: aiohttp.ClientSession, url: str, count: int, seconds: float
) -> tuple[list[float], float]:
    """Scrape while FLOODERS clients send wrong passwords; returns scrape times and 401s a second."""
    stop = asyncio.Event()
    answered = 0
    counting = False

    async def flood(i: int) -> None:
        nonlocal answered
        async with aiohttp.ClientSession() as own:  # a connection of its own, like a separate client
            n = 0
            while not stop.is_set() and n < 100_000:  # bounded in count; stopped when the scrapes end
                async with own.get(url, headers=header(USER if i % 2 else f"guess-{n}", f"wrong-{i}-{n}")) as resp:
                    await resp.read()
                    assert resp.status == 401, resp.status
                answered += counting
                n += 1

    tasks = [asyncio.create_task(flood(i)) for i in range(FLOODERS)]
    await asyncio.sleep(1.0)  # let the flood fill the checkers
    counting = True
    started = time.monotonic()
    times = await scrape_series(session, url, count, seconds)
    elapsed = time.monotonic() - started
    counting = False
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return times, answered / max(elapsed, 1e-9)


async def measure() -> AuthFigure:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=COST)).decode()
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        folder = Path(tmp)
        web = folder / "web.yml"
        web.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        config = folder / "config.yaml"
        config.write_text(
            "accounts:\n  a:\n    provider: yandex_direct\n    endpoint: http://127.0.0.1:9/\n"
            "    token: {env: BENCH_AUTH_TOKEN}\ntask_sets:\n  - name: pushed\n    account: a\n"
            "    interval: 1h\n    tasks: {ids: ['1', '2', '3']}\n"
        )
        port = common.free_port()
        exporter = common.spawn(
            "-m",
            "exporter",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
            env={"BENCH_AUTH_TOKEN": "bench-auth-token"},
        )
        base_port = common.free_port()
        baseline = common.spawn("-m", "benchmarks.serve", "auth-baseline", "--port", str(base_port), "--hash", hashed)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/metrics"
                await wait_authorised(session, url)
                quiet = await scrape_series(session, url, SCRAPES, 60)
                flood, rate = await under_flood(session, url, SCRAPES, 120)
                known = [(await timed_get(session, url, header(USER, f"no-{i}")))[1] for i in range(5)]
                unknown = [(await timed_get(session, url, header(f"nobody-{i}", "no")))[1] for i in range(5)]
                assert common.read_line(baseline, READY_SECONDS) == "ready"
                base_url = f"http://127.0.0.1:{base_port}/metrics"
                await wait_authorised(session, base_url)
                base_quiet = await scrape_series(session, base_url, SCRAPES, BASELINE_SECONDS)
                base_flood, _ = await under_flood(session, base_url, SCRAPES, BASELINE_SECONDS)
        finally:
            common.stop(exporter)
            common.stop(baseline)
    p = common.percentile
    return AuthFigure(
        p(quiet, 0.5),
        p(quiet, 0.99),
        p(flood, 0.5),
        p(flood, 0.99),
        rate,
        common.median(known),
        common.median(unknown),
        p(base_quiet, 0.99),
        p(base_flood, 0.99),
        len(base_flood),
    )


async def wait_authorised(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if (await timed_get(session, url, header(USER, PASSWORD)))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer an authorised scrape within {READY_SECONDS}s")
