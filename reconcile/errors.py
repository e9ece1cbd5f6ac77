"""The one exception tree of reconcile.

    ReconcileError                 exit 2 unless a subclass says otherwise
    ├── UsageError                 bad combination of options (2)
    ├── ConfigError                unreadable or invalid configuration (2)
    ├── InputError                 a CA export, snapshot or log that cannot be used (2)
    ├── LockHeldError              another run holds the lock (3)
    └── UpstreamError              Graph, Entra ID or the network failed (3)
        ├── AuthError              no token: wrong secret, no consent, unknown tenant
        ├── GraphError             Graph answered with an error we could not retry away
        └── IncompleteDataError    a collection could not be read completely

Only the CLI turns these into messages and exit codes; everything below it raises.
Messages are one line and never contain a secret.
"""

from __future__ import annotations

from pathlib import Path


class ReconcileError(Exception):
    """Base of every error reconcile reports to its user."""

    exit_code = 2


class UsageError(ReconcileError):
    """The options given do not make a run."""


class ConfigError(ReconcileError):
    """The configuration file, an environment variable or a setting is invalid."""


class InputError(ReconcileError):
    """An input file cannot be used; names the file and, where known, the line."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class LockHeldError(ReconcileError):
    """Another run holds the lock; overlapping runs would corrupt history."""

    exit_code = 3


class UpstreamError(ReconcileError):
    """Something outside reconcile failed; no report is written."""

    exit_code = 3


class AuthError(UpstreamError):
    """Entra ID refused to issue a token."""


class GraphError(UpstreamError):
    """Graph answered with an error; carries the request-id for a support case."""

    def __init__(self, message: str, request_id: str | None = None, status: int | None = None):
        self.request_id = request_id
        self.status = status
        suffix = f" (request-id {request_id})" if request_id else ""
        super().__init__(f"{message}{suffix}")


class IncompleteDataError(UpstreamError):
    """A collection could not be read completely; a report from it would lie."""
