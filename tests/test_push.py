"""The push endpoint under bad input: only the documented shapes are stored; caps hold; memory stays flat."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.server import make_app
from exporter.providers import PROVIDERS
from tests.test_server import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
PUSH_TOKEN = "push-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {PUSH_TOKEN}"}
CONFIG = """
accounts:
  direct:
    provider: yandex_direct
    endpoint: http://127.0.0.1:9/
    token: {env: PUSH_TEST_TOKEN}
task_sets:
  - name: banners
    account: direct
    interval: 1h
    jitter: 0
    max_tasks: MAX_TASKS
    tasks: {push_token: {env: PUSH_TEST_PUSH}}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"PUSH_TEST_TOKEN": "push-test-api-token-0123", "PUSH_TEST_PUSH": PUSH_TOKEN}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def runtime(tmp_path: Path, max_tasks: int = 1000) -> Daemon:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("MAX_TASKS", str(max_tasks)))
    cfg = config_mod.load(path, PROVIDERS)
    return Daemon(lambda: cfg, PROVIDERS)


NESTED = "[" * 50_000 + "]" * 50_000
BAD_BODIES: list[tuple[str, bytes | str, dict[str, str], int]] = [
    ("ids-string", json.dumps({"ids": "12345"}), {"Content-Type": "application/json"}, 400),
    ("ids-object", json.dumps({"ids": {"x": 1}}), {"Content-Type": "application/json"}, 400),
    ("ids-null", json.dumps({"ids": [None]}), {"Content-Type": "application/json"}, 400),
    ("ids-bool-float", json.dumps({"ids": [True, 1.5]}), {"Content-Type": "application/json"}, 400),
    ("ids-nested", json.dumps({"ids": [["1"]]}), {"Content-Type": "application/json"}, 400),
    ("extra-key", json.dumps({"ids": ["1"], "x": 1}), {"Content-Type": "application/json"}, 400),
    ("top-list", json.dumps(["1"]), {"Content-Type": "application/json"}, 400),
    ("not-json", "ids=1,2", {"Content-Type": "application/json"}, 400),
    ("nesting-bomb", NESTED, {"Content-Type": "application/json"}, 400),
    ("nesting-bomb-in-ids", '{"ids": ' + NESTED + "}", {"Content-Type": "application/json"}, 400),
    ("form", "ids=1&ids=2", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("no-type", b"1\n2\n", {"Content-Type": "application/octet-stream"}, 415),
    ("xml", "<ids><id>1</id></ids>", {"Content-Type": "application/xml"}, 415),
    ("text-with-spaces", "bad id\n", {"Content-Type": "text/plain"}, 400),
    ("text-not-utf8", b"\xff\xfe\n", {"Content-Type": "text/plain"}, 400),
    ("too-many-ids", "\n".join(str(i) for i in range(100_001)), {"Content-Type": "text/plain"}, 413),
    ("too-many-json-ids", json.dumps({"ids": list(range(100_001))}), {"Content-Type": "application/json"}, 413),
    ("oversized", b"1\n" * (3 * 1024 * 1024), {"Content-Type": "text/plain"}, 413),
    (
        "gzip-bomb",
        gzip.compress(b"1" * (64 * 1024 * 1024)),
        {"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        413,
    ),
    (
        "deflate-bomb",
        zlib.compress(b" " * (64 * 1024 * 1024)),
        {"Content-Type": "application/json", "Content-Encoding": "deflate"},
        413,
    ),
    ("bad-gzip", b"\x1f\x8b\x08\x00garbage", {"Content-Type": "text/plain", "Content-Encoding": "gzip"}, 400),
]


@pytest.mark.parametrize(("body", "headers", "status"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_are_refused_with_a_reason_and_nothing_stored(env, tmp_path, body, headers, status) -> None:
    rt = runtime(tmp_path)
    async with TestServer(make_app(rt), host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/api/v1/task_sets/banners/tasks"))
        async with client.post(url, data=body, headers={**AUTH, **headers}) as r:
            assert r.status == status, await r.text()
            assert (await r.json())["error"]
        assert len(rt.store.sets["banners"].tasks) == 0


async def test_good_bodies_and_the_max_tasks_cap(env, tmp_path) -> None:
    rt = runtime(tmp_path, max_tasks=5)
    async with TestServer(make_app(rt), host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        url = str(server.make_url("/api/v1/task_sets/banners/tasks"))
        async with client.post(url, json={"ids": ["11", 2]}, headers=AUTH) as r:
            assert r.status == 200 and (await r.json())["added"] == 2
        async with client.post(
            url,
            data=gzip.compress(b"11\n13\n"),
            headers={**AUTH, "Content-Type": "text/plain", "Content-Encoding": "gzip"},
        ) as r:
            assert r.status == 200 and (await r.json()) == {"task_set": "banners", "added": 1, "tracked": 3}
        async with client.post(url, json={"ids": ["21", "22", "23"]}, headers=AUTH) as r:
            assert r.status == 413 and "max_tasks" in (await r.json())["error"]
        async with client.post(url, json={"ids": ["24", "not-a-yandex-id"]}, headers=AUTH) as r:
            assert r.status == 400 and "positive integer" in (await r.json())["error"]
        assert sorted(rt.store.sets["banners"].tasks) == ["11", "13", "2"]
        async with client.post(url, json={"ids": ["11", "21", "22"]}, headers=AUTH) as r:
            assert r.status == 200  # exactly at the cap
        async with client.get(str(server.make_url("/metrics"))) as r:
            text = await r.text()
        assert 'upload_push_refused_total{provider="yandex_direct",reason="max_tasks",task_set="banners"} 1.0' in text


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_rss_stays_flat_over_100_oversized_or_bomb_requests(env, tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("MAX_TASKS", "1000"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}"],
        cwd=REPO,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    bodies = [
        b
        for b in BAD_BODIES
        if b[0] in ("gzip-bomb", "deflate-bomb", "oversized", "too-many-ids", "too-many-json-ids", "nesting-bomb")
    ]
    try:
        await wait_for(f"http://127.0.0.1:{port}/-/healthy")
        url = f"http://127.0.0.1:{port}/api/v1/task_sets/banners/tasks"
        async with aiohttp.ClientSession() as client:
            for name, body, headers, status in bodies:  # warm-up: one of each
                async with client.post(url, data=body, headers={**AUTH, **headers}) as r:
                    assert r.status == status, name
            start = rss_mb(proc.pid)
            peak = start
            for i in range(100):
                name, body, headers, status = bodies[i % len(bodies)]
                async with client.post(url, data=body, headers={**AUTH, **headers}) as r:
                    assert r.status == status, name
                peak = max(peak, rss_mb(proc.pid))
            async with client.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert 'reason="too_large"' in await r.text()
    finally:
        proc.terminate()
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert peak - start < 50, (start, peak)
    assert "Traceback" not in err and PUSH_TOKEN not in err
