"""--web.config.file: TLS and basic auth in the Prometheus exporter-toolkit format.

    tls_server_config:
      cert_file: /etc/upload-status-exporter/tls.crt
      key_file: /etc/upload-status-exporter/tls.key
      client_ca_file: /etc/upload-status-exporter/ca.crt        # with a verifying client_auth_type
      client_auth_type: RequireAndVerifyClientCert              # optional, default NoClientCert
      min_version: TLS12                                        # optional: TLS12 or TLS13
    basic_auth_users:
      prometheus: $2y$10$...                                    # bcrypt hash

Strict like the main config: unknown keys (with a did-you-mean), duplicate keys, hashes
bcrypt cannot parse and client-auth types that cannot work are refused at load, one line
each naming the file and the key path. Relative paths are taken from the file's folder.
"""

from __future__ import annotations

import difflib
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.core import yamlfile
from exporter.core.configcheck import brief, keyname, kind
from exporter.core.errors import ConfigError
from exporter.core.tlsverify import accept_any_certificate

TOP_KEYS = ("tls_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version")
# exporter-toolkit keys this exporter does not implement: refused, so nobody believes them on.
UNSUPPORTED = frozenset(
    {
        "http_server_config",
        "rate_limit",
        "cipher_suites",
        "curve_preferences",
        "max_version",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
        "cert",
        "key",
    }
)
# Go's crypto/tls ClientAuthType: (asks for a certificate, requires one, verifies it against client_ca_file)
CLIENT_AUTH = {
    "NoClientCert": (False, False, False),
    "RequestClientCert": (True, False, False),
    "RequireAnyClientCert": (True, True, False),
    "VerifyClientCertIfGiven": (True, False, True),
    "RequireAndVerifyClientCert": (True, True, True),
}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# A bcrypt hash: $2a$/$2b$/$2y$, a cost of 04 to 31, 22 salt and 31 hash characters.
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
MAX_COST = 16  # each step doubles a check: 16 is seconds a check, 31 would be days


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    cert_file: Path | None = None  # the server's own certificate and key: the health check presents them
    key_file: Path | None = None


def load(path: str) -> WebConfig:
    """Read and check the web config; raises ConfigError naming file and key path."""
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{path}: {key}: {message}")

    raw = yamlfile.load(path)
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        expected = " and/or ".join(TOP_KEYS)
        raise ConfigError([f"{path}: (top level): expected a mapping with {expected}, got {kind(raw)}"])
    _known_keys(raw, "", TOP_KEYS, bad)
    base = Path(path).parent
    tls = raw.get("tls_server_config")
    context = _tls(tls, base, bad)
    users = _users(raw.get("basic_auth_users"), bad)
    if problems:
        raise ConfigError(problems)
    if context is None or not isinstance(tls, dict):
        return WebConfig(None, users)
    return WebConfig(context, users, base / str(tls["cert_file"]), base / str(tls["key_file"]))


def _known_keys(raw: Mapping[Any, Any], where: str, allowed: tuple[str, ...], bad: Callable[[str, str], None]) -> None:
    for key in raw:
        name = keyname(key)
        if key in allowed:
            continue
        if key in UNSUPPORTED:
            bad(f"{where}{name}", f"not supported by this exporter (supported: {', '.join(allowed)})")
            continue
        hint = difflib.get_close_matches(name, allowed, n=1)
        bad(
            f"{where}{name}",
            f"unknown key{f'; did you mean {hint[0]!r}' if hint else ''} (allowed: {', '.join(allowed)})",
        )


def _users(raw: Any, bad: Callable[[str, str], None]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        bad("basic_auth_users", f"expected a mapping of user names to bcrypt hashes, got {kind(raw)}")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        key = f"basic_auth_users.{keyname(user)}"
        if not isinstance(user, str) or not user or ":" in user:
            bad(key, "expected a user name: a non-empty string without ':'")
        elif not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            # Never echo the value: it may be a clear password written by mistake.
            bad(key, "expected a bcrypt hash ($2y$<cost>$ and 53 characters), never a clear password")
        elif int(hashed[4:6]) > MAX_COST:
            bad(
                key,
                f"expected a bcrypt cost of at most {MAX_COST}, got {int(hashed[4:6])} (each check would take "
                "minutes or more)",
            )
        else:
            users[user] = hashed.encode()
    return users


def _tls(raw: Any, base: Path, bad: Callable[[str, str], None]) -> ssl.SSLContext | None:
    if raw is None:
        return None
    key = "tls_server_config"
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("cert_file"), str)
        or not isinstance(raw.get("key_file"), str)
    ):
        bad(key, "expected a mapping with cert_file and key_file")
        return None
    _known_keys(raw, f"{key}.", TLS_KEYS, bad)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(base / raw["cert_file"], base / raw["key_file"])
    except (OSError, ssl.SSLError, ValueError) as err:
        bad(f"{key}.cert_file", f"cannot load the certificate and key: {getattr(err, 'strerror', None) or err}")
        return None
    version = raw.get("min_version", "TLS12")
    if version not in TLS_VERSIONS:
        bad(f"{key}.min_version", f"expected TLS12 or TLS13, got {brief(version)}")
    else:
        context.minimum_version = TLS_VERSIONS[version]
    auth = raw.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        bad(f"{key}.client_auth_type", f"expected one of {', '.join(CLIENT_AUTH)}, got {brief(auth)}")
        return None
    asks, requires, verifies = CLIENT_AUTH[auth]
    ca = raw.get("client_ca_file")
    if verifies and ca is None:
        bad(f"{key}.client_ca_file", f"required with client_auth_type {auth}: the CA that signs client certificates")
        return None
    if ca is not None and not verifies:
        bad(
            f"{key}.client_ca_file",
            f"set, but client_auth_type {auth} does not verify client certificates "
            "(use VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
        )
        return None
    if verifies:
        try:
            context.load_verify_locations(base / str(ca))
        except (OSError, ssl.SSLError, ValueError) as err:
            bad(f"{key}.client_ca_file", f"cannot load: {getattr(err, 'strerror', None) or err}")
            return None
        context.verify_mode = ssl.CERT_REQUIRED if requires else ssl.CERT_OPTIONAL
    elif asks and not accept_any_certificate(context, requires):
        bad(f"{key}.client_auth_type", f"{auth} is not available with this Python's ssl module")
    return context
