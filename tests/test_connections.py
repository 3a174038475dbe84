"""Clients that hold connections: slow headers, idle keep-alive, more connections than descriptors."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_server import free_port

REPO = Path(__file__).resolve().parent.parent
HELD = 1_100
DESCRIPTORS = 1_024


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@pytest.fixture
def descriptors_for_the_test() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = HELD + 400
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"this test needs {need} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(*flags: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}", *flags],
        cwd=REPO,
        env=dict(os.environ),
        stderr=subprocess.PIPE,
        preexec_fn=limit_descriptors,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded: 30 s
        try:
            if scrape(port, "/-/healthy") == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the exporter did not start")


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return err.decode()


def scrape(port: int, path: str = "/metrics") -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        r.read()
        return int(r.status)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_scraper_gets_in_past_1100_held_connections_with_1024_descriptors(descriptors_for_the_test) -> None:
    proc, port = start("--web.read-header-timeout=60")  # the cap, not the timeout, must save the scrape
    held: list[socket.socket] = []
    keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a scraper's reused connection
    try:
        keep_alive.request("GET", "/metrics")
        first = keep_alive.getresponse()
        assert first.status == 200 and first.read()
        for i in range(HELD):  # bounded
            s = socket.socket()
            s.settimeout(10)
            try:
                s.connect(("127.0.0.1", port))
                if i % 2:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # a header that never ends
            except OSError:
                s.close()  # the server shed it: fine
                continue
            held.append(s)
        assert len(held) > DESCRIPTORS - 200
        assert proc.poll() is None
        for _ in range(3):
            assert scrape(port) == 200
        keep_alive.request("GET", "/metrics")  # the same connection: the slow and silent ones went first
        response = keep_alive.getresponse()
        assert response.status == 200 and response.read()
        open_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        assert open_fds < DESCRIPTORS, open_fds
    finally:
        keep_alive.close()
        for s in held:
            s.close()
        err = stop(proc)
    assert "Traceback" not in err
    assert len(err) < 20_000, err[-2000:]  # the shedding is reported, rate-limited, not per connection
    assert "connection limit" in err


def test_slow_headers_and_idle_keep_alive_are_closed() -> None:
    proc, port = start("--web.read-header-timeout=1", "--web.idle-timeout=1")
    try:
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in idle.recv(4096)
        assert closed_by_server(slow, 10)
        assert closed_by_server(silent, 10)
        assert closed_by_server(idle, 10)
        for s in (slow, silent, idle):
            s.close()
        assert scrape(port) == 200
    finally:
        err = stop(proc)
    assert "Traceback" not in err


def test_accept_errors_are_logged_once_a_minute_without_traceback(descriptors_for_the_test) -> None:
    proc, port = start("--web.max-connections=5000", "--web.read-header-timeout=60")  # above the limit on purpose
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        for _ in range(HELD):  # bounded in count and time
            if time.monotonic() > deadline:
                break
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        time.sleep(3)  # the event loop retries accepting every second: several failures to report
        assert proc.poll() is None
    finally:
        for s in held:
            s.close()
        err = stop(proc)
    assert "Traceback" not in err
    reports = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(reports) == 1, err[-3000:]
