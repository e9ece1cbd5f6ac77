from __future__ import annotations

import csv
import io

import pytest

from reconcile.model import Status
from reconcile.report import csvout
from tests.factories import ca_cert, intune_cert, verdict

HOSTILE = '=HYPERLINK("http://evil.example","x")'


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r", "\n", "\0"])
def test_formula_prefixes_get_an_apostrophe(prefix):
    assert csvout.neutralised([prefix + "x", prefix]) == ["'" + prefix + "x", "'" + prefix]


def test_harmless_values_pass_unchanged():
    assert csvout.neutralised(["PC-01", 7, None, "", "a=b"]) == ["PC-01", 7, "", "", "a=b"]


def _write(*verdicts):
    buffer = io.StringIO(newline="")
    csvout.write_verdicts(buffer, verdicts, "run-1")
    return buffer.getvalue()


# The findings CSV's columns in their published order: a contract, so spelled out here rather
# than read back from reconcile.report.columns.
GOLDEN_HEADER = (
    "status,serial_number,thumbprint,issuer,subject,template,template_oid,request_id,requester,"
    "issued_at,expires_at,revoked_at,intune_state,intune_source,device_id,device_name,user,"
    "profile,device_in_intune,device_last_sync,reason,next_step,evidence,first_seen,age_days,"
    "new_since_last_run,source,run_id"
)
GOLDEN_UNKNOWN_HEADER = (
    "serial_number,thumbprint,issuer,intune_state,intune_source,device_id,device_name,user,"
    "profile,issued_at,expires_at,run_id"
)


def test_rows_are_rfc4180_with_crlf_and_the_golden_header():
    text = _write(verdict(Status.NOT_REPORTED))
    lines = text.split("\r\n")
    assert lines[0] == GOLDEN_HEADER
    assert len(lines) == 3 and lines[-1] == ""
    assert "\n" not in text.replace("\r\n", "")


def test_unknown_to_ca_rows_have_the_golden_header():
    buffer = io.StringIO(newline="")
    csvout.write_unknown(buffer, [intune_cert()], "run-1")
    assert buffer.getvalue().split("\r\n")[0] == GOLDEN_UNKNOWN_HEADER


def test_hostile_device_and_user_names_are_neutralised_and_quoted():
    record = intune_cert(state="installFailed", device_name=HOSTILE, user="@SUM(1+1)")
    text = _write(verdict(Status.NOT_INSTALLED, intune=record, ca=ca_cert(subject="-2+3")))
    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert row["device_name"] == "'" + HOSTILE
    assert row["user"] == "'@SUM(1+1)"
    assert row["subject"] == "'-2+3"
    assert row["serial_number"] == "1000"
    assert row["issued_at"] == "2026-11-10T02:00:00Z"
    assert row["source"] == "ca.csv:2"
    assert row["run_id"] == "run-1"


def test_embedded_newlines_and_quotes_survive_round_trip():
    record = intune_cert(state="installFailed", device_name='line1\nline2 "q", x')
    text = _write(verdict(Status.NOT_INSTALLED, intune=record))
    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert row["device_name"] == 'line1\nline2 "q", x'
