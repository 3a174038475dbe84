"""Errors of the state replicas share on Redis."""

from __future__ import annotations

from exporter.core.errors import ExporterError


class StoreUnavailable(ExporterError):
    """Redis could not be reached, timed out or refused us: nothing that needs it may go ahead.

    The message names the server (host, port, database) and the failure, never a password.
    """
