"""Which forward proxy an account's calls go through, and with which credentials.

An account's own `proxy` wins. Otherwise HTTP_PROXY, HTTPS_PROXY and NO_PROXY (and their
lower-case forms) apply, read through the standard library as curl and aiohttp's `trust_env`
read them, once per account when the scheduler is built (at start and on reload) rather than
on every request; a `.netrc` is never read. Proxy credentials travel only in the
Proxy-Authorization header and are registered as secrets, so logs mask them.
"""

from __future__ import annotations

import base64
import urllib.request
from typing import Any

from yarl import URL

from exporter.core.config import AccountConfig
from exporter.core.secrets import Secret


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    Secret(token)  # masked wherever it might turn up
    return {"Proxy-Authorization": f"Basic {token}"}


def environment_proxy(endpoint: str) -> tuple[str, dict[str, str]] | None:
    """The proxy the environment names for `endpoint` (None when unset or NO_PROXY matches)."""
    url = URL(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme or "")
    if not proxy or not url.host or urllib.request.proxy_bypass(f"{url.host}:{url.port}"):
        return None
    parsed = URL(proxy if "://" in proxy else f"http://{proxy}")
    headers: dict[str, str] = {}
    if parsed.user is not None:
        Secret(parsed.password or "")
        headers = _basic(parsed.user, parsed.password or "")
        parsed = parsed.with_user(None)
    return str(parsed), headers


def proxy_settings(account: AccountConfig) -> dict[str, Any]:
    """HttpClient keywords for the account: its own proxy, else the environment's, else none."""
    if account.proxy is None:
        found = environment_proxy(account.endpoint)
        return {} if found is None else {"proxy": found[0], "proxy_headers": found[1]}
    headers: dict[str, str] = {}
    if account.proxy.username is not None:
        password = account.proxy.password.reveal() if account.proxy.password else ""
        headers = _basic(account.proxy.username, password)
    return {"proxy": account.proxy.url, "proxy_headers": headers}
