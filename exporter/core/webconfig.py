"""--web.config.file: TLS and basic auth in the Prometheus exporter-toolkit format.

    tls_server_config:
      cert_file: /etc/upload-status-exporter/tls.crt
      key_file: /etc/upload-status-exporter/tls.key
      client_ca_file: /etc/upload-status-exporter/ca.crt        # optional
      client_auth_type: RequireAndVerifyClientCert              # optional
      min_version: TLS12                                        # optional: TLS12 or TLS13
    basic_auth_users:
      prometheus: $2y$10$...                                    # bcrypt hash

Errors name the file and key path like the main config; every endpoint is protected.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.core.errors import ConfigError

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash


def load(path: str) -> WebConfig:
    """Read and check the web config; raises ConfigError naming file and key path."""
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{path}: {key}: {message}")

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError([f"{path}: cannot read: {getattr(err, 'strerror', None) or err}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: (top level): expected a mapping"])
    for key in raw:
        if key not in ("tls_server_config", "basic_auth_users"):
            bad(str(key), "unknown key (allowed: tls_server_config, basic_auth_users)")
    context = _tls(raw.get("tls_server_config"), Path(path).parent, bad)
    users: dict[str, bytes] = {}
    for user, hashed in (raw.get("basic_auth_users") or {}).items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            bad(f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$...), never a clear password")
        else:
            users[str(user)] = hashed.encode()
    if problems:
        raise ConfigError(problems)
    return WebConfig(context, users)


def _tls(raw: Any, base: Path, bad: Callable[[str, str], None]) -> ssl.SSLContext | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "cert_file" not in raw or "key_file" not in raw:
        bad("tls_server_config", "expected a mapping with cert_file and key_file")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(base / str(raw["cert_file"]), base / str(raw["key_file"]))
    except (OSError, ssl.SSLError) as err:
        bad("tls_server_config.cert_file", f"cannot load the certificate and key: {err}")
        return None
    version = raw.get("min_version", "TLS12")
    if version not in TLS_VERSIONS:
        bad("tls_server_config.min_version", f"expected TLS12 or TLS13, got {version!r}")
    else:
        context.minimum_version = TLS_VERSIONS[version]
    auth = raw.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        bad("tls_server_config.client_auth_type", f"expected one of {', '.join(CLIENT_AUTH)}, got {auth!r}")
        return context
    context.verify_mode = CLIENT_AUTH[auth]
    if "client_ca_file" in raw:
        try:
            context.load_verify_locations(base / str(raw["client_ca_file"]))
        except (OSError, ssl.SSLError) as err:
            bad("tls_server_config.client_ca_file", f"cannot load: {err}")
    return context


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def basic_auth_middleware(users: Mapping[str, bytes]) -> Middleware:
    """Require one of `users` on every request; bcrypt checks are cached per credential."""
    verified: set[tuple[str, bytes]] = set()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        user, password = "", b""
        if header.startswith("Basic "):
            try:
                user, _, clear = base64.b64decode(header[6:], validate=True).decode().partition(":")
                password = clear.encode()
            except (binascii.Error, UnicodeDecodeError):
                pass
        hashed = users.get(user)
        # A scrape every few seconds must not cost a bcrypt round each time.
        if hashed is not None and ((user, password) in verified or bcrypt.checkpw(password, hashed)):
            verified.add((user, password))
            return await handler(request)
        return web.Response(status=401, text="Unauthorized\n",
                            headers={"WWW-Authenticate": 'Basic realm="upload-status-exporter"'})

    return middleware
