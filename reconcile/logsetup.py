"""Diagnostics on stderr for people (text) or log shippers (one JSON object per line).

Only the ``reconcile`` logger is configured: libraries keep their own loggers, and stdout stays
free for reports. Every record passes a filter that replaces known secret values, so a secret
that slips into a message or an exception text is masked before any handler formats it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any

MASK = "***"
_HANDLER_NAME = "reconcile-stderr"
_LIBRARY_LOGGERS = ("httpx", "httpcore", "msal")
"""Libraries that may log URLs or tokens if an embedding application turns their logging on."""
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class SecretFilter(logging.Filter):
    """Replaces each secret value wherever it appears in the rendered record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, self.mask(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, then any ``extra=`` fields; one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_text or record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        from reconcile.terminal import json_safe

        return json_safe(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """One line per record for a person; CA and Graph text in messages is made terminal-safe."""

    def __init__(self) -> None:
        super().__init__("reconcile: %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        from reconcile.terminal import safe

        return safe(super().format(record), multiline=True)


_current = SecretFilter(())
_json = False


def json_configured() -> bool:
    """Whether the last :func:`configure` asked for JSON lines."""
    return _json


def error_line(message: str, as_json: bool = False, hint: str | None = None) -> str:
    """The final ``reconcile: error:`` line (and its hint line), or one JSON record holding
    both for log shippers; masked like every log record."""
    message = _current.mask(message)
    if not as_json:
        return f"reconcile: error: {message}" + (f"\n{hint}" if hint else "")
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "error",
        "logger": "reconcile",
        "message": message,
    }
    if hint:
        entry["hint"] = hint
    from reconcile.terminal import json_safe

    return json_safe(json.dumps(entry, ensure_ascii=False))


class _Stderr:
    """Whatever ``sys.stderr`` is at each write: while live progress is drawn, rich swaps in
    a proxy that prints log lines above the progress rows instead of through them."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def level_for(verbose: int) -> int:
    return logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG


class LogFormat(StrEnum):
    """Diagnostics for people (text) or for log shippers (one JSON object per line)."""

    TEXT = "text"
    JSON = "json"


def configure(
    verbose: int = 0,
    log_format: str = LogFormat.TEXT,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """(Re)configure the ``reconcile`` logger; safe to call again, e.g. once settings are known.

    ``verbose`` 0 shows warnings, 1 adds progress notes, 2 and more add debug detail.
    """
    logger = logging.getLogger("reconcile")
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else _Stderr())
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == LogFormat.JSON else TextFormatter())
    global _current, _json
    secret_filter = SecretFilter(secrets)
    _current, _json = secret_filter, log_format == LogFormat.JSON
    handler.addFilter(secret_filter)
    logger.addHandler(handler)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for old in [f for f in library.filters if isinstance(f, SecretFilter)]:
            library.removeFilter(old)
        library.addFilter(secret_filter)
    logger.setLevel(level_for(verbose))
    logger.propagate = False
    return handler
