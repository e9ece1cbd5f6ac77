"""Webhook: a real POST to a local server; failures are logged without the URL and never fatal."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from reconcile import notify
from reconcile.cli import app
from reconcile.history import store as history
from reconcile.model import RunDelta
from tests.factories import result_with, verdict
from tests.helpers import engine_of, record_run
from tests.test_cli import base_args

SECRET_PATH = "/webhookb2/s3cr3t-t0ken-0123456789"


class Receiver:
    def __init__(self, status: int = 200, delay: float = 0.0):
        self.status = status
        self.delay = delay
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("reconcile"), "propagate", True)
    caplog.set_level(logging.INFO, logger="reconcile")


@pytest.fixture
def result():
    return result_with(verdict(), tenant_id="tenant-1")


def _delta(tmp_path, result) -> RunDelta:
    db = history.open_db(tmp_path / "h.sqlite3")
    _, delta = record_run(db, result, 1, 1)
    db.close()
    return delta


def test_summary_is_posted_with_text_and_fields(tmp_path, result, caplog):
    delta = _delta(tmp_path, result)
    with Receiver() as receiver:
        assert notify.notify(receiver.url, 5.0, result, delta, 1) is True
    (body,) = receiver.bodies
    assert body["text"].startswith("reconcile 20261120T020000Z-test: 1 finding(s)")
    assert "First recorded run" in body["text"]
    assert body["findings"] == 1 and body["exit_code"] == 1 and body["new"] == 1
    assert body["counts"]["not_reported"] == 1 and body["tenant_id"] == "tenant-1"
    assert SECRET_PATH not in caplog.text and "127.0.0.1" not in caplog.text


def test_server_error_is_logged_without_url(result, caplog):
    with Receiver(status=500) as receiver:
        assert notify.notify(receiver.url, 5.0, result, None, 1) is False
    assert "webhook notification failed: HTTP 500" in caplog.text
    assert SECRET_PATH not in caplog.text and "127.0.0.1" not in caplog.text


def test_timeout_is_logged_and_returns(result, caplog):
    with Receiver(delay=1.0) as receiver:
        began = time.monotonic()
        assert notify.notify(receiver.url, 0.2, result, None, 1) is False
        assert time.monotonic() - began < 1.0
    assert "no answer within 0.2 s" in caplog.text
    assert SECRET_PATH not in caplog.text


def test_refused_connection_is_logged(result, caplog):
    with Receiver() as receiver:
        url = receiver.url
    assert notify.notify(url, 2.0, result, None, 1) is False
    assert "webhook notification failed: ConnectError" in caplog.text
    assert SECRET_PATH not in caplog.text


def test_no_url_sends_nothing(result):
    assert notify.notify(None, 1.0, result, None, 1) is False


def test_failing_webhook_never_fails_the_run(tmp_path, monkeypatch):
    with Receiver(status=503) as receiver:
        monkeypatch.setenv("RECONCILE_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("RECONCILE_HISTORY_DB", str(tmp_path / "h.sqlite3"))
        done = CliRunner().invoke(app, [*base_args("-v"), "--out-dir", str(tmp_path / "out")])
    assert done.exit_code == 1, done.output
    assert len(receiver.bodies) == 1
    assert "webhook notification failed: HTTP 503" in done.stderr
    assert SECRET_PATH not in done.stderr and SECRET_PATH not in done.stdout
    for name in ("run.json", "summary.txt", "report.html"):
        assert SECRET_PATH not in (tmp_path / "out" / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "url", ["ht!tp://[not a url", "http://[::1", "ftp://example.invalid/x", "no-scheme"]
)
def test_malformed_url_is_a_warning_after_the_report_is_published(tmp_path, monkeypatch, url):
    monkeypatch.setenv("RECONCILE_WEBHOOK_URL", url)
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app, [*base_args(), "--no-history", "--out-dir", str(out), "--csv", str(tmp_path / "f.csv")]
    )
    assert done.exit_code == 1, done.output
    assert "webhook notification failed:" in done.stderr
    assert "no report written" not in done.stderr
    assert (out / "manifest-sha256.txt").is_file() and (tmp_path / "f.csv").is_file()


def test_payload_names_revoked_certificates_still_installed():
    from datetime import timedelta

    from reconcile.model import Status
    from reconcile.views import ViewOptions, build
    from tests.factories import AS_OF, ca_cert, intune_cert, result_with, verdict

    revoked = verdict(
        Status.REVOKED,
        ca=ca_cert(0x51, revoked_at=AS_OF - timedelta(days=1)),
        intune=intune_cert(0x51),
    )
    with engine_of() as db:
        result = result_with(views=build((revoked,), db, (), ViewOptions(as_of=AS_OF)))
    body = notify.payload(result, None, 1)
    assert body["findings"] == 0 and body["exit_code"] == 1
    assert body["views"] == {"revoked_installed": 1, "expiring": 0, "revocation_plan": 0}
    assert body["text"].endswith("1 revoked certificate(s) still installed")
