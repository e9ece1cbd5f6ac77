from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from reconcile.evidence.model import Outcome, Platform, Stage
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import ParseOptions

DATED = ParseOptions(device="Alex's iPhone", log_date=date(2020, 1, 30))


def test_article_excerpt_proves_the_profile_installed(logs: Path) -> None:
    parsed = parse_log(logs / "ios-profiled-article.log", DATED)

    assert parsed.platform is Platform.IOS
    assert (parsed.units, parsed.skipped, parsed.undated) == (5, 0, False)
    (record,) = parsed.records
    assert record.outcome is Outcome.INSTALLED
    assert record.stage is Stage.CERT_INSTALLED
    assert record.profile == "ModelName=AC_51bad41f.../LogicalName_1892fe4c...;Hash=-912418295"
    # 18:30:57.320616 -0500 on the given date
    assert record.installed_at == datetime(2020, 1, 30, 23, 30, 57, 320616, tzinfo=UTC)
    reached = [s.stage for s in record.steps if s.stage is not None]
    assert reached == [
        Stage.ENROLLMENT_REQUESTED,
        Stage.PKI_OPERATION_SENT,
        Stage.CERT_ISSUED,
        Stage.CERT_INSTALLED,
    ]


def test_console_copy_without_a_date_is_flagged(logs: Path) -> None:
    parsed = parse_log(logs / "ios-profiled-article.log", ParseOptions(device="iPhone"))

    assert parsed.undated
    (record,) = parsed.records
    assert record.outcome is Outcome.INSTALLED
    assert record.installed_at is None


def test_without_the_installed_line_it_is_in_progress(logs: Path) -> None:
    (record,) = parse_log(logs / "ios-not-installed.log", DATED).records

    assert record.outcome is Outcome.IN_PROGRESS
    assert record.stage is Stage.CERT_ISSUED


def test_log_show_format_with_a_failure(logs: Path) -> None:
    parsed = parse_log(logs / "ios-logshow-failed.log", ParseOptions(device="iPad-7"))

    assert parsed.skipped == 2  # the column header and a SpringBoard line
    (record,) = parsed.records
    assert record.outcome is Outcome.FAILED
    assert record.stage is Stage.PKI_OPERATION_SENT
    assert "The SCEP server returned an invalid response" in record.detail
    assert record.time == datetime(2024, 3, 8, 22, 5, 12, 310004, tzinfo=UTC)


def test_time_of_day_rolling_past_midnight_moves_the_date(tmp_path: Path) -> None:
    log = tmp_path / "console.txt"
    url = "https://ndes.contoso.com/certsrv/mscep/mscep.dll"
    log.write_text(
        f"Debug 23:59:58.000000 +0000 profiled Performing synchronous URL request: "
        f"{url}?operation=GetCACert&message=CA\n"
        "Default 00:00:03.000000 +0000 profiled Profile 'www.windowsintune.com.SCEP.ModelName="
        "AC_1/LogicalName_2;Hash=3' installed.\n",
        encoding="utf-8",
    )

    (record,) = parse_log(log, DATED).records

    assert record.installed_at == datetime(2020, 1, 31, 0, 0, 3, tzinfo=UTC)


def test_a_one_digit_hour_and_seven_fractional_digits_are_read(tmp_path: Path) -> None:
    log = tmp_path / "console.txt"
    log.write_text(
        "Default 9:05:03.1234567 +0100 profiled Profile 'www.windowsintune.com.SCEP.ModelName="
        "AC_1/LogicalName_2;Hash=3' installed.\n",
        encoding="utf-8",
    )

    (record,) = parse_log(log, DATED).records

    assert record.installed_at == datetime(2020, 1, 30, 8, 5, 3, 123456, tzinfo=UTC)
