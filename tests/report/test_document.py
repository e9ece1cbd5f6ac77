"""One report, every format: each writes the rows of the same run via write(handle, report)."""

from __future__ import annotations

import csv
import io
import json

from reconcile.model import Status
from reconcile.report import csvout, html, jsonl, table
from reconcile.report.document import Report
from tests.factories import ca_cert, result_with, verdict


def _result():
    return result_with(
        verdict(Status.NOT_REPORTED, ca=ca_cert(0x0A01)),
        verdict(Status.NOT_INSTALLED, ca=ca_cert(0x0A02)),
        verdict(Status.DELIVERED, ca=ca_cert(0x0A03)),
    )


def _write(write, report: Report) -> str:
    handle = io.StringIO(newline="")
    write(handle, report)
    return handle.getvalue()


def test_every_format_writes_the_reports_rows():
    for all_rows, serials in ((False, ["0A01", "0A02"]), (True, ["0A01", "0A02", "0A03"])):
        report = Report(_result(), all_rows=all_rows)
        rows = list(csv.DictReader(io.StringIO(_write(csvout.write, report))))
        assert [r["serial_number"] for r in rows] == serials
        records = [json.loads(line) for line in _write(jsonl.write, report).splitlines()]
        assert [r["ca"]["serial"] for r in records] == serials
    # The terminal and the page list the findings whatever the data files hold.
    text = _write(table.write, Report(_result(), all_rows=True))
    page = _write(html.write, Report(_result(), all_rows=True))
    for serial in ("0A01", "0A02"):
        assert serial in text and f'<td class="mono">{serial}<br>' in page
    assert '<td class="mono">0A03<br>' not in page


def test_the_terminal_text_is_shaped_by_the_report_and_opens_with_the_delta():
    from reconcile.model import RunDelta

    delta = RunDelta("20261119T020000Z-abc", (), (), (), 2)
    report = Report(_result(), delta=delta, max_rows=1, width=100)
    text = _write(table.write, report)
    assert text.splitlines()[2] == "Since run 20261119T020000Z-abc: 0 new, 0 resolved, 2 open."
    assert "1 more finding(s) not shown" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert report.preamble in text and Report(_result()).preamble == ""
