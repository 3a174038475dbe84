"""`--healthcheck`: ask a running exporter's /-/healthy, with the flags it was started with.

Works for every listen address (all interfaces are probed on loopback), with TLS (the
server's certificate is not verified: this is the host's own process; under a client-auth
type that requires a certificate, the probe presents the server's own certificate and key)
and with basic auth (/-/healthy is not guarded by it). Blocking on purpose: it runs alone
in its own short-lived process, e.g. a Docker HEALTHCHECK.
"""

from __future__ import annotations

import http.client
import ssl

from exporter.core.webconfig import WebConfig

TIMEOUT_SECONDS = 5.0


def probe_host(host: str | None) -> str:
    """The address to probe for a listen host: loopback for "all interfaces"."""
    if not host or host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def check(host: str | None, port: int, web: WebConfig, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, what was seen), after one GET of /-/healthy."""
    target = probe_host(host)
    conn: http.client.HTTPConnection
    if web.ssl_context is not None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if web.cert_file is not None and web.key_file is not None:
            context.load_cert_chain(web.cert_file, web.key_file)
        conn = http.client.HTTPSConnection(target, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(target, port, timeout=timeout)
    scheme = "https" if web.ssl_context is not None else "http"
    url = f"{scheme}://{target if ':' not in target else f'[{target}]'}:{port}/-/healthy"
    try:
        conn.request("GET", "/-/healthy", headers={"User-Agent": "upload-status-exporter-healthcheck"})
        response = conn.getresponse()
        response.read(1024)
    except (OSError, http.client.HTTPException) as err:
        return False, f"{url}: {err}"
    finally:
        conn.close()
    return response.status == 200, f"{url}: HTTP {response.status}"
