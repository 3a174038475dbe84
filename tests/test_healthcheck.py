"""--healthcheck reads the flags the exporter runs with: any listen address, TLS, basic auth, mTLS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.test_server import free_port
from tests.test_tls_client_auth import pki  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parent.parent


def healthcheck(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--healthcheck", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def web_config(tmp_path: Path, certs: Path, client_auth: str | None) -> Path:
    hashed = bcrypt.hashpw(b"scrape", bcrypt.gensalt(rounds=4)).decode()
    text = f"tls_server_config:\n  cert_file: {certs / 'server.crt'}\n  key_file: {certs / 'server.key'}\n"
    if client_auth:
        text += f"  client_auth_type: {client_auth}\n"
    text += f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("listen", "tls"),
    [
        (":{port}", None),
        ("[::1]:{port}", None),
        ("127.0.0.1:{port}", None),
        (":{port}", "NoClientCert"),
        (":{port}", "RequireAnyClientCert"),
    ],
)
def test_healthcheck_follows_the_server_flags(tmp_path: Path, pki: Path, listen: str, tls: str | None) -> None:  # noqa: F811
    if listen.startswith("[::1]") and not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this machine")
    port = free_port()
    flags = [f"--web.listen-address={listen.format(port=port)}"]
    if tls:
        flags.append(f"--web.config.file={web_config(tmp_path, pki, tls)}")
    assert healthcheck(*flags).returncode == 1  # nothing listens yet
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", *flags], cwd=REPO, env=dict(os.environ), stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        result = healthcheck(*flags)
        while result.returncode != 0 and time.monotonic() < deadline:  # bounded: 30 s
            time.sleep(0.2)
            result = healthcheck(*flags)
        assert result.returncode == 0, result.stderr
        assert "healthy" in result.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_landing_page_security_headers() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        cwd=REPO,
        env=dict(os.environ),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: 30 s
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    headers = r.headers
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["Content-Type"].startswith("text/html")


def test_packaging_uses_the_healthcheck_and_raises_the_descriptor_limit() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    check = next(line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK"))
    assert '"--healthcheck"' in check and "9877" not in check  # the port comes from the same environment
    assert "ENV UPLOAD_EXPORTER_LISTEN_ADDRESS=" in dockerfile
    unit = (REPO / "systemd" / "upload-status-exporter.service").read_text()
    limit = next(line for line in unit.splitlines() if line.startswith("LimitNOFILE="))
    assert int(limit.split("=")[1]) >= 8192


def test_healthcheck_reads_the_listen_address_from_the_environment() -> None:
    port = free_port()
    env = {**os.environ, "UPLOAD_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--demo"], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: 30 s
            result = subprocess.run(
                [sys.executable, "-m", "exporter", "--healthcheck"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr
        assert f"127.0.0.1:{port}" in result.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
