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


def test_article_excerpt_proves_the_certificate_installed(logs: Path, pixel: ParseOptions) -> None:
    parsed = parse_log(logs / "android-omadm-article.log", pixel)

    assert parsed.platform is Platform.ANDROID
    assert (parsed.units, parsed.skipped, parsed.unit) == (14, 0, "lines")
    (record,) = parsed.records
    assert record.device == "PIXEL-7"
    assert record.profile == "ModelName=AC_51…/LogicalName_39907…;Hash=1677525787"
    assert record.profile_id is None  # the article truncates the GUID
    assert record.outcome is Outcome.INSTALLED
    assert record.stage is Stage.ACCESS_GRANTED
    assert record.installed_at == datetime(2018, 2, 27, 5, 18, 45, 346000, tzinfo=UTC)
    reached = [s.stage for s in record.steps if s.stage is not None]
    assert reached == [
        Stage.ENROLLMENT_REQUESTED,
        Stage.CA_CERT_FETCHED,
        Stage.CERT_ISSUED,
        Stage.CERT_INSTALLED,
        Stage.ACCESS_GRANTED,
    ]


def test_root_certificate_alone_is_only_the_first_stage(logs: Path, pixel: ParseOptions) -> None:
    (record,) = parse_log(logs / "android-root-article.log", pixel).records

    assert record.stage is Stage.ROOT_INSTALLED
    assert record.outcome is Outcome.IN_PROGRESS
    assert record.installed_at is None
    assert "no SCEP enrollment" in record.detail


def test_certrep_failure_keeps_fail_info(logs: Path, pixel: ParseOptions) -> None:
    parsed = parse_log(logs / "android-certrep-failure.log", pixel)

    (record,) = parsed.records
    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.PKI_OPERATION_SENT
    assert "pkiStatus=FAILURE failInfo=badRequest" in record.detail
    assert record.profile_id == PROFILE_ID
    assert parsed.skipped == 2  # the OMA-DM session start and end lines


def test_http_500_on_pki_operation(logs: Path, pixel: ParseOptions) -> None:
    parsed = parse_log(logs / "android-pkioperation-500.log", pixel)

    (record,) = parsed.records
    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.PKI_OPERATION_SENT
    assert record.detail == "HTTP 500 Internal Server Error on PKIOperation"
    assert (parsed.units, parsed.skipped) == (8, 2)  # a pasted line and a policy line


def test_truncated_after_installing_is_in_progress(logs: Path, pixel: ParseOptions) -> None:
    (record,) = parse_log(logs / "android-truncated.log", pixel).records

    assert record.outcome is Outcome.IN_PROGRESS
    assert record.stage is Stage.CERT_ISSUED
    assert "CERT_INSTALLING" in record.detail


def test_retry_after_a_failure_clears_it(tmp_path: Path, logs: Path, pixel: ParseOptions) -> None:
    failing = (logs / "android-pkioperation-500.log").read_text(encoding="utf-8")
    success = (logs / "android-truncated.log").read_text(encoding="utf-8").splitlines()[2:5]
    log = tmp_path / "omadm.log"
    log.write_text(failing + "\n".join(success) + "\n", encoding="utf-8")

    (record,) = parse_log(log, pixel).records

    assert record.outcome is Outcome.IN_PROGRESS
    assert record.stage is Stage.CERT_ISSUED


def test_failed_state_machine_state(tmp_path: Path, logs: Path, pixel: ParseOptions) -> None:
    lines = (logs / "android-truncated.log").read_text(encoding="utf-8").splitlines()
    failed = lines[-1].replace("to CERT_INSTALLING", "to CERT_INSTALL_FAILED")
    log = tmp_path / "omadm.log"
    log.write_text("\n".join([*lines[:-1], failed]) + "\n", encoding="utf-8")

    (record,) = parse_log(log, pixel).records

    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.CERT_ISSUED
    assert "CERT_INSTALL_FAILED" in record.detail


def test_device_must_be_named(logs: Path) -> None:
    with pytest.raises(InputError, match="--device NAME"):
        parse_log(logs / "android-omadm-article.log", ParseOptions())


def test_times_without_offset_are_in_the_given_zone(logs: Path) -> None:
    options = ParseOptions(device="PIXEL-7", timezone=ZoneInfo("America/New_York"))
    (record,) = parse_log(logs / "android-omadm-article.log", options).records

    assert record.installed_at == datetime(2018, 2, 27, 10, 18, 45, 346000, tzinfo=UTC)


def test_utf16_export_reads_the_same(tmp_path: Path, logs: Path, pixel: ParseOptions) -> None:
    text = (logs / "android-certrep-failure.log").read_text(encoding="utf-8")
    copy = tmp_path / "omadm.log"
    copy.write_bytes(text.replace("\n", "\r\n").encode("utf-16"))

    parsed = parse_log(copy, pixel)

    assert (
        parsed.records[0].detail
        == parse_log(logs / "android-certrep-failure.log", pixel).records[0].detail
    )
