"""Client certificates that are requested (or required) but not verified, as Go's crypto/tls does.

Python's ssl module offers a server three client-certificate modes: none asked (CERT_NONE),
asked and verified if sent (CERT_OPTIONAL), required and verified (CERT_REQUIRED). The
exporter-toolkit's `RequestClientCert` and `RequireAnyClientCert` ask for a certificate and
accept any, which the module cannot say. OpenSSL can: a verify callback that accepts every
certificate. `_ssl` keeps whatever callback the context already has when its verify_mode is
set, so the callback is installed once on the context's SSL_CTX, through ctypes.

If this CPython's ssl module cannot be reached that way, `accept_any_certificate` returns
False and the web config is refused at load with a message, rather than served wrongly.
"""

from __future__ import annotations

import ctypes
import ssl
from typing import Any

SSL_VERIFY_PEER = 0x01
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(preverify_ok: int, store_ctx: int) -> int:
    return 1  # any certificate: RequestClientCert and RequireAnyClientCert do not verify


_ACCEPT = _VERIFY_CB(_accept)  # kept for the life of the process: OpenSSL holds a pointer to it


def _libssl() -> Any:
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)  # dlsym on it also searches the libssl it links
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    return lib


def accept_any_certificate(context: ssl.SSLContext, required: bool) -> bool:
    """Ask clients for a certificate and accept any (or none unless `required`); False if unsupported."""
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    expected = SSL_VERIFY_PEER | (SSL_VERIFY_FAIL_IF_NO_PEER_CERT if required else 0)
    try:
        lib = _libssl()
        # PySSLContext starts with PyObject_HEAD, then the SSL_CTX pointer.
        ctx_ptr = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        if not ctx_ptr or lib.SSL_CTX_get_verify_mode(ctx_ptr) != expected:
            return False  # not the layout we know: refuse rather than guess
        lib.SSL_CTX_set_verify(ctx_ptr, expected, _ACCEPT)
    except (OSError, AttributeError, ImportError):
        return False
    return True
