"""Diagnostics: text or JSON lines on stderr, with every known secret masked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from reconcile.logsetup import MASK, configure

SECRET = "s3cr3t~value"


@pytest.fixture
def stream():
    buffer = io.StringIO()
    yield buffer
    configure(0, "text", (), io.StringIO())


def test_json_lines_carry_fields_and_extras(stream):
    configure(1, "json", (), stream)
    logging.getLogger("reconcile.history").info("recorded %d findings", 3, extra={"run_id": "r1"})
    logging.getLogger("reconcile").debug("not shown at -v")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "reconcile.history"
    assert entry["message"] == "recorded 3 findings" and entry["run_id"] == "r1"
    assert entry["ts"].endswith("+00:00")


def test_text_format_by_default(stream):
    configure(0, "text", (), stream)
    logging.getLogger("reconcile").warning("careful")
    assert stream.getvalue() == "reconcile: WARNING: careful\n"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_are_masked_in_messages_args_extras_and_tracebacks(stream, log_format):
    configure(0, log_format, (SECRET,), stream)
    log = logging.getLogger("reconcile.graph")
    log.warning("token request with %s failed", SECRET, extra={"detail": f"x{SECRET}x"})
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        log.exception("unexpected")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count(MASK) >= (3 if log_format == "json" else 2)


def test_library_loggers_are_masked_too(stream, caplog):
    configure(0, "text", (SECRET,), stream)
    caplog.set_level(logging.INFO, logger="httpx")
    logging.getLogger("httpx").info("HTTP Request: POST https://hooks.example/%s", SECRET)
    assert SECRET not in caplog.text and MASK in caplog.text


def test_reconfiguring_replaces_the_handler(stream):
    configure(0, "text", (), io.StringIO())
    configure(0, "json", (), stream)
    handlers = [h for h in logging.getLogger("reconcile").handlers if h.get_name()]
    assert len(handlers) == 1
    logging.getLogger("reconcile").error("once")
    assert len(stream.getvalue().splitlines()) == 1
