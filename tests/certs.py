"""Test certificates made with the openssl command line."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed(folder: Path, name: str = "tls", *key: str) -> tuple[Path, Path]:
    """A one-day self-signed certificate for 127.0.0.1 and its key (RSA unless `key` says otherwise)."""
    crt, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    openssl(
        "req",
        "-x509",
        *(key or ("-newkey", "rsa:2048", "-nodes")),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        str(key_file),
        "-out",
        str(crt),
    )
    return crt, key_file
