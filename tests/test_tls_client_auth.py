"""TLS client_auth_type as the exporter-toolkit documents it (Go's crypto/tls ClientAuthType),
each with no client certificate, a self-signed one and one signed by client_ca_file."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.core import config as config_mod
from exporter.core import webconfig
from exporter.core.daemon import Daemon
from exporter.core.listener import GuardedSite
from exporter.core.server import make_app
from exporter.providers import PROVIDERS
from tests.certs import openssl
from tests.test_server import free_port

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        *EC,
        "-days",
        "1",
        "-subj",
        "/CN=server",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        str(d / "server.key"),
        "-out",
        str(d / "server.crt"),
    )
    openssl(
        "req",
        "-x509",
        *EC,
        "-days",
        "1",
        "-subj",
        "/CN=client-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    openssl("req", *EC, "-subj", "/CN=signed-client", "-keyout", str(d / "signed.key"), "-out", str(d / "signed.csr"))
    (d / "ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(d / "signed.csr"),
        "-CA",
        str(d / "ca.crt"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(d / "ext.cnf"),
        "-out",
        str(d / "signed.crt"),
    )
    openssl(
        "req",
        "-x509",
        *EC,
        "-days",
        "1",
        "-subj",
        "/CN=self-signed-client",
        "-keyout",
        str(d / "self.key"),
        "-out",
        str(d / "self.crt"),
    )
    return d


# client_auth_type -> accepted? for (no certificate, self-signed, CA-signed)
EXPECTED = {
    "NoClientCert": (True, True, True),
    "RequestClientCert": (True, True, True),
    "RequireAnyClientCert": (False, True, True),
    "VerifyClientCertIfGiven": (True, False, True),
    "RequireAndVerifyClientCert": (False, False, True),
}


async def connects(port: int, pki: Path, client_cert: str | None) -> bool:
    context = ssl.create_default_context(cafile=str(pki / "server.crt"))
    if client_cert:
        context.load_cert_chain(pki / f"{client_cert}.crt", pki / f"{client_cert}.key")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client,
            client.get(f"https://127.0.0.1:{port}/-/healthy", ssl=context) as r,
        ):
            return r.status == 200
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return False


@pytest.mark.parametrize("auth_type", list(EXPECTED))
async def test_client_auth_type(pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_type: str) -> None:
    verifies = auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    web_yml = tmp_path / "web.yml"
    ca = f"  client_ca_file: {pki / 'ca.crt'}\n" if verifies else ""
    web_yml.write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
        f"  client_auth_type: {auth_type}\n{ca}"
    )
    web_config = webconfig.load(str(web_yml))
    monkeypatch.setenv("TLS_TEST_TOKEN", "tls-test-token-0123456789")
    cfg = config_mod.parse(
        {
            "accounts": {
                "a": {
                    "provider": "yandex_direct",
                    "endpoint": "http://127.0.0.1:9/",
                    "token": {"env": "TLS_TEST_TOKEN"},
                }
            },
            "task_sets": [{"name": "s", "account": "a", "interval": 3600, "tasks": {"ids": [1]}}],
        },
        PROVIDERS,
        "tls.yaml",
    )
    runner = web.AppRunner(make_app(Daemon(lambda: cfg, PROVIDERS), web_config=web_config))
    await runner.setup()
    port = free_port()
    try:
        await GuardedSite(runner, "127.0.0.1", port, ssl_context=web_config.ssl_context, max_connections=64).start()
        seen = tuple([await connects(port, pki, cert) for cert in (None, "self", "signed")])
        assert await connects(port, pki, "signed")  # the server still serves after refusing
    finally:
        await runner.cleanup()
    assert seen == EXPECTED[auth_type], seen
