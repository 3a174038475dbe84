"""Outbound proxies: HTTP_PROXY/NO_PROXY from the environment and a `proxy` per account.

A small forward proxy runs on 127.0.0.1 in the test. The exporter's endpoint names a
loopback port where nothing listens; only the proxy knows that this port stands for the
simulator, so a poll succeeds only when its requests went through the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from exporter.core import config as config_mod
from exporter.core.daemon import Daemon
from exporter.core.errors import ConfigError
from exporter.core.server import make_app
from exporter.providers import PROVIDERS
from exporter.simulator.yandex_direct import YandexDirectSimulator
from tests.test_server import TOKEN, free_port

PROXY_USER, PROXY_PASSWORD = "exporter", "proxy-pa55word-0123"
STEP_TIMEOUT = 10.0  # every read and connect of the proxy is bounded


class ForwardProxy:
    """An HTTP/1.1 forward proxy for absolute-form requests, one request per connection."""

    def __init__(self, routes: dict[int, int], credentials: tuple[str, str] | None = None) -> None:
        self.routes = routes  # port asked for -> port really used (all on 127.0.0.1)
        self.expected = (
            None if credentials is None else "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        )
        self.forwarded: list[str] = []
        self.refused = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)).decode("latin-1")
            request_line, *header_lines = [line for line in head.split("\r\n") if line]
            method, target, version = request_line.split(" ")
            headers = dict(line.split(":", 1) for line in header_lines)
            auth = next((v.strip() for k, v in headers.items() if k.lower() == "proxy-authorization"), None)
            url = URL(target)
            if self.expected is not None and auth != self.expected:
                self.refused += 1
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            assert url.host == "127.0.0.1" and url.port is not None, target  # loopback only
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.routes.get(url.port, url.port)), STEP_TIMEOUT
            )
            self.forwarded.append(f"{method} {target}")
            kept = [
                f"{k}:{v}"
                for k, v in headers.items()
                if not k.lower().startswith("proxy-") and k.lower() not in ("connection", "keep-alive")
            ]
            lines = [f"{method} {url.raw_path_qs} {version}", *kept, "Connection: close", "Via: 1.1 test-proxy", "", ""]
            up_writer.write("\r\n".join(lines).encode("latin-1"))
            body = asyncio.create_task(self._pipe(reader, up_writer))
            try:
                await self._pipe(up_reader, writer)  # the answer, until the server closes
            finally:
                body.cancel()
                await asyncio.gather(body, return_exceptions=True)
                up_writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await asyncio.wait_for(source.read(1 << 16), STEP_TIMEOUT):
            sink.write(chunk)
            await sink.drain()


@pytest.fixture
async def sim():
    s = YandexDirectSimulator(token=TOKEN)
    s.add_random_tasks(30, min_s=0, max_s=1, backdate_s=5)
    await s.start()
    yield s
    await s.stop()


def raw_config(endpoint: str, **account: object) -> dict[str, object]:
    return {
        "accounts": {
            "direct": {
                "provider": "yandex_direct",
                "endpoint": endpoint,
                "token": {"env": "PROXY_TEST_TOKEN"},
                **account,
            }
        },
        "task_sets": [
            {
                "name": "banners",
                "account": "direct",
                "interval": 60,
                "jitter": 0,
                "max_tries": 1,
                "tasks": {"discover": True},
            }
        ],
    }


async def poll_through(raw: dict[str, object]) -> tuple[str, dict[str, object]]:
    """Run the exporter app with this config until the first poll; returns /metrics and the status."""
    cfg = config_mod.parse(raw, PROVIDERS, "proxy-test.yaml")
    runtime = Daemon(lambda: cfg, PROVIDERS)
    async with TestServer(make_app(runtime), host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        for _ in range(200):  # bounded: the first poll comes within the jitter (0 here)
            async with client.get(server.make_url("/-/ready")) as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.05)
        async with client.get(server.make_url("/metrics")) as r:
            text = await r.text()
        async with client.get(server.make_url("/api/v1/status")) as r:
            status = await r.json()
    return text, status


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_TEST_TOKEN", TOKEN)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def test_http_proxy_from_the_environment(sim, monkeypatch):
    hidden = free_port()  # nothing listens here: only the proxy reaches the simulator
    proxy = ForwardProxy({hidden: URL(sim.url).port})
    await proxy.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        text, status = await poll_through(raw_config(f"http://127.0.0.1:{hidden}/live/v4/json/"))
    finally:
        await proxy.stop()
    assert 'upload_poll_up{provider="yandex_direct",task_set="banners"} 1.0' in text, status
    assert proxy.forwarded and all(f"127.0.0.1:{hidden}/live/v4/json/" in r for r in proxy.forwarded)
    assert len(proxy.forwarded) == len(sim.calls)  # every call the simulator answered came through the proxy


async def test_credentials_in_the_environment_proxy_url_are_used_and_never_shown(sim, monkeypatch, caplog):
    hidden = free_port()
    proxy = ForwardProxy({hidden: URL(sim.url).port}, credentials=(PROXY_USER, PROXY_PASSWORD))
    await proxy.start()
    caplog.set_level(logging.DEBUG)
    try:
        monkeypatch.setenv("http_proxy", proxy.url.replace("://", f"://{PROXY_USER}:{PROXY_PASSWORD}@"))
        text, status = await poll_through(raw_config(f"http://127.0.0.1:{hidden}/live/v4/json/"))
    finally:
        await proxy.stop()
    assert 'upload_poll_up{provider="yandex_direct",task_set="banners"} 1.0' in text, status
    assert proxy.refused == 0 and len(proxy.forwarded) == len(sim.calls) > 0
    assert PROXY_PASSWORD not in text + str(status) + caplog.text


async def test_no_proxy_bypasses_the_environment_proxy(sim, monkeypatch):
    proxy = ForwardProxy({})
    await proxy.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        text, _ = await poll_through(raw_config(sim.url))
    finally:
        await proxy.stop()
    assert 'upload_poll_up{provider="yandex_direct",task_set="banners"} 1.0' in text
    assert proxy.forwarded == [] and sim.calls


async def test_proxy_per_account_with_secret_credentials(sim, monkeypatch, tmp_path, caplog):
    hidden = free_port()
    proxy = ForwardProxy({hidden: URL(sim.url).port}, credentials=(PROXY_USER, PROXY_PASSWORD))
    decoy = ForwardProxy({})  # the environment's proxy: the account's own one wins
    await proxy.start()
    await decoy.start()
    password_file = tmp_path / "proxy-password"
    password_file.write_text(PROXY_PASSWORD + "\n")
    monkeypatch.setenv("PROXY_TEST_USER", PROXY_USER)
    monkeypatch.setenv("HTTP_PROXY", decoy.url)
    endpoint = f"http://127.0.0.1:{hidden}/live/v4/json/"
    caplog.set_level(logging.DEBUG)
    try:
        good = {"url": proxy.url, "username": {"env": "PROXY_TEST_USER"}, "password": {"file": str(password_file)}}
        text, status = await poll_through(raw_config(endpoint, proxy=good))
        forwarded = len(proxy.forwarded)
        bad_file = tmp_path / "wrong-password"
        bad_file.write_text("wrong-password-0123")
        wrong = {**good, "password": {"file": str(bad_file)}}
        down_text, down_status = await poll_through(raw_config(endpoint, proxy=wrong))
    finally:
        await proxy.stop()
        await decoy.stop()
    assert 'upload_poll_up{provider="yandex_direct",task_set="banners"} 1.0' in text, status
    assert forwarded == len(sim.calls) > 0 and decoy.forwarded == []
    # Refused by the proxy: the set is down and says so, with no credential anywhere.
    assert 'upload_poll_up{provider="yandex_direct",task_set="banners"} 0.0' in down_text
    assert proxy.refused > 0 and len(proxy.forwarded) == forwarded
    shown = " ".join([text, down_text, str(status), str(down_status), caplog.text])
    for secret in (PROXY_PASSWORD, "wrong-password-0123", base64.b64encode(f"{PROXY_USER}:".encode()).decode()[:8]):
        assert secret not in shown


def test_proxy_credentials_are_never_written_in_the_url():
    with pytest.raises(ConfigError) as err:
        config_mod.parse(
            raw_config("http://127.0.0.1:1/", proxy=f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy:3128"), PROVIDERS
        )
    assert PROXY_PASSWORD not in str(err.value) and "http://***@proxy:3128" in str(err.value)
    assert "proxy.username" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_mod.parse(raw_config("http://127.0.0.1:1/", proxy={"url": "ftp://proxy", "pasword": "x"}), PROVIDERS)
    assert "accounts.direct.proxy.url" in str(err.value) and "did you mean 'password'" in str(err.value)
    cfg = config_mod.parse(raw_config("http://127.0.0.1:1/", proxy="http://proxy.internal:3128/"), PROVIDERS)
    assert cfg.accounts["direct"].proxy == config_mod.ProxyConfig("http://proxy.internal:3128")
