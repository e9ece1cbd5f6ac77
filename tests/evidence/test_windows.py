from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reconcile.errors import InputError
from reconcile.evidence.model import Outcome, Platform, Stage
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import ParseOptions

PROFILE_ID = "5e2b7a10-4c1d-4f8e-9a3b-2d6c8e0f1a2b"
NO_DEVICE = ParseOptions()


def test_xml_event_39_is_an_install(logs: Path) -> None:
    parsed = parse_log(logs / "windows-events.xml", NO_DEVICE)

    assert parsed.platform is Platform.WINDOWS
    assert (parsed.units, parsed.skipped, parsed.unit) == (4, 1, "events")  # 209 is not SCEP
    (record,) = parsed.records
    assert record.device == "DESKTOP-7Q2K9LM.corp.contoso.com"
    assert record.outcome is Outcome.INSTALLED
    assert record.stage is Stage.CERT_INSTALLED
    assert record.profile_id == PROFILE_ID
    assert record.installed_at == datetime(2024, 3, 5, 14, 22, 41, 379123, tzinfo=UTC)
    # exported newest first; read oldest first: 306, 36, then 39
    assert [s.text.split(":")[0] for s in record.steps] == ["event 306", "event 36", "event 39"]
    assert record.line == 4  # the line of event 306, where the attempt starts


def test_xml_error_events_are_a_failure(logs: Path) -> None:
    (record,) = parse_log(logs / "windows-events-error.xml", NO_DEVICE).records

    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.ENROLLMENT_REQUESTED
    assert "event 307: SCEP: Failed LogError Message" in record.detail
    assert "event 32: SCEP: Certificate enroll failed. Result: (Not found (404).)." in record.detail


def test_csv_event_39_is_an_install(logs: Path) -> None:
    parsed = parse_log(logs / "windows-events.csv", NO_DEVICE)

    assert (parsed.units, parsed.skipped) == (4, 1)
    (record,) = parsed.records
    assert record.device == "DESKTOP-7Q2K9LM"
    assert record.outcome is Outcome.INSTALLED
    assert record.installed_at == datetime(2024, 3, 5, 14, 22, 41, tzinfo=UTC)
    assert record.line == 6


def test_csv_local_times_use_the_given_zone(logs: Path) -> None:
    options = ParseOptions(timezone=ZoneInfo("Europe/Berlin"))
    (record,) = parse_log(logs / "windows-events.csv", options).records

    assert record.installed_at == datetime(2024, 3, 5, 13, 22, 41, tzinfo=UTC)


def test_csv_errors_keep_unknown_scep_events(logs: Path) -> None:
    parsed = parse_log(logs / "windows-events-error.csv", NO_DEVICE)

    assert (parsed.units, parsed.skipped) == (5, 1)  # the Application Error event
    (record,) = parsed.records
    assert record.device == "LAPTOP-FIN-042"
    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.ENROLLMENT_REQUESTED
    assert "The hash value is not correct" in record.detail
    assert "event 41: SCEP: something this parser has never seen" in record.detail
    # the multi-line LogError message is one event, read as one line of text
    assert "server certs ''. LogError 0x80091007" in record.detail


@pytest.mark.parametrize("name", ["windows-events.xml", "windows-events.csv"])
def test_utf16_exports_read_the_same(tmp_path: Path, logs: Path, name: str) -> None:
    text = (logs / name).read_text(encoding="utf-8")
    copy = tmp_path / name
    copy.write_bytes(text.replace("\n", "\r\n").encode("utf-16"))

    (record,) = parse_log(copy, NO_DEVICE).records

    assert record.outcome is Outcome.INSTALLED
    assert record.installed_at == parse_log(logs / name, NO_DEVICE).records[0].installed_at


def test_xml_cut_mid_event_keeps_what_was_read(tmp_path: Path, logs: Path) -> None:
    text = (logs / "windows-events-error.xml").read_text(encoding="utf-8")
    cut = tmp_path / "cut.xml"
    cut.write_text(text[: text.index("<EventID>32</EventID>")], encoding="utf-8")

    parsed = parse_log(cut, NO_DEVICE)

    (record,) = parsed.records
    assert record.outcome is Outcome.FAILED
    assert "event 307" in record.detail
    assert parsed.warnings and "ends early" in parsed.warnings[0]


def test_broken_xml_is_an_input_error_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<Event>\n<System><EventID>39</System>\n</Event>\n", encoding="utf-8")

    with pytest.raises(InputError, match=r"bad\.xml:2: not well-formed event XML"):
        parse_log(bad, NO_DEVICE)
