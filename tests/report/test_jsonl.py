from __future__ import annotations

import io
import json

from reconcile.model import Status
from reconcile.report import jsonl
from tests.factories import intune_cert, verdict

HOSTILE = '=HYPERLINK("http://evil.example","x")'


def test_jsonl_is_lossless_and_keeps_hostile_names_raw():
    record = intune_cert(state="installFailed", device_name=HOSTILE, serial=0x00AB)
    buffer = io.StringIO()
    jsonl.write_verdicts(buffer, [verdict(Status.NOT_INSTALLED, intune=record)], "run-1")
    obj = json.loads(buffer.getvalue())
    assert obj["kind"] == "certificate"
    assert obj["status"] == "not_installed"
    assert obj["intune"]["device_name"] == HOSTILE
    assert obj["intune"]["serial"] == "AB"
    assert obj["ca"]["serial"] == "1000"
    assert obj["ca"]["not_before"] == "2026-11-10T02:00:00Z"
    assert obj["run_id"] == "run-1"
    assert obj["device"] is None
