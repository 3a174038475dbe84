"""--web.config.file: TLS and basic auth, exporter-toolkit format, checked like the main config."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.core import webconfig
from exporter.core.errors import ConfigError
from tests.certs import self_signed
from tests.test_server import free_port

REPO = Path(__file__).resolve().parent.parent


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def test_bad_web_config_names_key(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  prometheus: plain-password\ntls_server_config: {cert_file: x}\n")
    with pytest.raises(ConfigError) as err:
        webconfig.load(str(path))
    text = str(err.value)
    assert "basic_auth_users.prometheus: expected a bcrypt hash" in text
    assert "tls_server_config: expected a mapping with cert_file and key_file" in text
    assert "plain-password" not in text


async def test_tls_and_basic_auth_protect_every_endpoint_but_liveness(tmp_path, cert):
    crt, key = cert
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode()
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(
        f"tls_server_config:\n  cert_file: {crt.name}\n  key_file: {key.name}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "--demo",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web_yml}",
        ],
        cwd=REPO,
        env=dict(os.environ),
        stderr=subprocess.PIPE,
        text=True,
    )
    context = ssl.create_default_context(cafile=str(crt))
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(150):  # bounded: 15 s
                try:
                    async with client.get(f"https://127.0.0.1:{port}/-/healthy", ssl=context) as r:
                        status = r.status
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            assert status == 200  # liveness is not guarded: it tells nothing
            async with client.get(f"https://127.0.0.1:{port}/metrics", ssl=context) as r:
                assert r.status == 401
            good = {"Authorization": basic("prometheus", "s3cret-scrape")}
            async with client.get(f"https://127.0.0.1:{port}/metrics", ssl=context, headers=good) as r:
                assert r.status == 200 and "upload_build_info" in await r.text()
            wrong = {"Authorization": basic("prometheus", "wrong")}
            async with client.get(f"https://127.0.0.1:{port}/metrics", ssl=context, headers=wrong) as r:
                assert r.status == 401
            with pytest.raises(aiohttp.ClientError):
                async with client.get(f"http://127.0.0.1:{port}/metrics"):
                    pass
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.communicate, timeout=15)
    assert proc.returncode == 0
