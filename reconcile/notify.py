"""Optional webhook with the run's summary: the admin hears about new findings without logging in.

The payload is one JSON object with a ``text`` field (what Teams incoming webhooks and Slack
render) plus structured fields for anything else. A failed notification is logged and never
fails the run: the reports are written by then. The URL carries its own credential (Teams and
Slack put the token in the path), so it is never logged, not even its host.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from reconcile import __version__
from reconcile.model import RunDelta, RunResult
from reconcile.report.historytext import format_delta
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile.notify")


def payload(result: RunResult, delta: RunDelta | None, exit_code: int) -> dict[str, Any]:
    findings = len(result.findings)
    head = f"reconcile {result.run_id}: {findings} finding(s) as of {iso_z(result.as_of)}"
    if result.revoked_installed:
        head += f", {result.revoked_installed} revoked certificate(s) still installed"
    text = head if delta is None else f"{head}\n{format_delta(delta, limit=5)}"
    body: dict[str, Any] = {
        "text": text,
        "run_id": result.run_id,
        "as_of": iso_z(result.as_of),
        "tenant_id": result.tenant_id,
        "exit_code": exit_code,
        "findings": findings,
        "counts": result.counts(),
    }
    if result.views is not None:
        body["views"] = result.views.counts()
    if delta is not None:
        body["new"] = len(delta.new)
        body["resolved"] = len(delta.resolved)
        body["previous_run_id"] = delta.previous_run_id
    return body


def send(
    url: str,
    body: dict[str, Any],
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """POST the payload; True when the receiver accepted it (2xx). Never raises."""
    try:
        with httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"user-agent": f"reconcile/{__version__}"},
            follow_redirects=False,
        ) as client:
            response = client.post(url, json=body)
    except httpx.TimeoutException:
        log.warning("webhook notification failed: no answer within %g s", timeout)
        return False
    except Exception as exc:  # noqa: BLE001 - a notification never fails a run, whatever broke
        log.warning("webhook notification failed: %s", type(exc).__name__)
        return False
    if not 200 <= response.status_code < 300:
        log.warning("webhook notification failed: HTTP %d", response.status_code)
        return False
    log.info("webhook notified")
    return True


def notify(
    url: str | None,
    timeout: float,
    result: RunResult,
    delta: RunDelta | None,
    exit_code: int,
) -> bool:
    """Send the summary when a webhook is configured; False when none is or it failed."""
    if not url:
        return False
    try:
        body = payload(result, delta, exit_code)
    except Exception as exc:  # noqa: BLE001 - the reports are published; only warn
        log.warning("webhook notification failed: %s", type(exc).__name__)
        return False
    return send(url, body, timeout)
