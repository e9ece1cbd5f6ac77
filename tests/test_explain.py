from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile.enrich.advice import REPORTING, SUPERSEDED, with_next_steps
from reconcile.enrich.evidence import apply_evidence
from reconcile.errors import UsageError
from reconcile.evidence.add import add_logs, parse_options
from reconcile.evidence.store import EvidenceStore
from reconcile.explain import QueryKind, explain, render_explanation
from reconcile.history import store as history
from reconcile.model import RunResult, Status
from tests.factories import ca_cert, intune_cert, result_with, verdict
from tests.helpers import assert_fits, engine_of, record_run

EVIDENCE = Path(__file__).parent / "fixtures" / "evidence"
AS_OF = datetime(2024, 3, 20, 2, 0, tzinfo=UTC)
ISSUED = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.db") as store:
        add_logs([EVIDENCE / "android-certrep-failure.log"], store, parse_options("TAB-9"))
        add_logs([EVIDENCE / "windows-events.xml"], store, parse_options())
        yield store


def cert(serial: int, name: str, issued: datetime = ISSUED, **changes: object):  # type: ignore[no-untyped-def]
    return ca_cert(
        serial,
        subject=f"CN={name}",
        common_name=name,
        not_before=issued,
        not_after=issued + timedelta(days=365),
        **changes,
    )


@pytest.fixture
def result(store: EvidenceStore) -> RunResult:
    delivered = verdict(
        Status.DELIVERED,
        ca=cert(0x1A2B, "PC-01"),
        intune=intune_cert(
            0x1A2B,
            device_name="PC-01",
            issued_at=ISSUED,
            state_changed_at=ISSUED + timedelta(minutes=5),
        ),
        reason="Intune reports it installed (states, Windows SCEP)",
    )
    failed = verdict(
        Status.NOT_INSTALLED,
        ca=cert(0x2C3D, "TAB-9"),
        intune=intune_cert(
            0x2C3D,
            state="issueFailed",
            device_name="TAB-9",
            profile_id=None,
            issued_at=ISSUED,
            state_changed_at=ISSUED + timedelta(minutes=13),
        ),
        reason="Intune reports state 'issueFailed'",
    )
    reporting = verdict(
        Status.NOT_REPORTED,
        ca=cert(0x3E4F, "DESKTOP-7Q2K9LM", issued=datetime(2024, 3, 5, 14, 22, tzinfo=UTC)),
        reason="Intune has no record of serial 3E4F",
    )
    old = verdict(
        Status.SUPERSEDED,
        ca=cert(0x0A01, "LAPTOP-3", issued=ISSUED - timedelta(days=40)),
        reason="a newer certificate for the same device and profile is delivered",
    )
    renewal = verdict(
        Status.DELIVERED,
        ca=cert(0x0A02, "LAPTOP-3"),
        intune=intune_cert(0x0A02, device_name="LAPTOP-3", issued_at=ISSUED),
        reason="Intune reports it installed",
    )
    base = result_with(delivered, failed, reporting, old, renewal, as_of=AS_OF)
    return with_next_steps(apply_evidence(base, store))


def timeline(text: str) -> list[str]:
    section = text.split("   timeline:\n", 1)[1]
    return [line for line in section.splitlines() if line.startswith("     ")]


def assert_sorted(lines: list[str]) -> None:
    times = [line.split()[0] for line in lines if re.match(r"\s+\d{4}-", line)]
    assert times == sorted(times)


def test_delivered(result: RunResult, store: EvidenceStore) -> None:
    expl = explain("1a2b", result, store)
    text = render_explanation(expl)

    assert expl.kind is QueryKind.SERIAL
    assert text.startswith("serial 1a2b: 1 CA certificate (as of 2024-03-20T02:00:00Z)")
    assert "== 1A2B  delivered\n" in text
    assert "   next step: nothing: Intune reports it installed" in text
    lines = timeline(text)
    assert_sorted(lines)
    assert [line.split(None, 1)[1] for line in lines] == [
        "issued by the CA (request 42, template Intune-SCEP)",
        "Intune: issued to PC-01",
        "Intune: state installed (states)",
        "this run: delivered",
        "expires",
    ]


def test_failed_enrollment(result: RunResult, store: EvidenceStore) -> None:
    text = render_explanation(explain("00:2C:3D", result, store))

    assert "== 2C3D  not_installed (finding)" in text
    assert "   next step: check Certificate Connector / NDES challenge validation" in text
    assert "   evidence:  android log" in text
    lines = timeline(text)
    assert_sorted(lines)
    assert any(
        "device android log: enrollment requested [enrollment_requested]" in line for line in lines
    )
    assert any(
        "FAILED: CA refused the request: CertRep pkiStatus=FAILURE failInfo=badRequest" in line
        for line in lines
    )
    assert lines[-2].endswith("this run: not_installed")


def test_reporting_problem(result: RunResult, store: EvidenceStore) -> None:
    expl = explain("desktop-7q2k9lm.corp.contoso.com", result, store)
    text = render_explanation(expl)

    assert expl.kind is QueryKind.DEVICE
    (story,) = expl.certificates
    assert story.verdict.status is Status.INSTALLED_NOT_REPORTED
    assert "== 3E4F  installed_not_reported (finding)" in text
    assert f"   next step: {REPORTING}" in text
    assert "   Intune:    no record" in text
    lines = timeline(text)
    assert_sorted(lines)
    assert "event 39: SCEP: Certificate installed successfully. [cert_installed]" in lines[3]


def test_superseded(result: RunResult, store: EvidenceStore) -> None:
    text = render_explanation(explain("0A01", result, store))

    assert "== 0A01  superseded (finding)" in text
    assert f"   next step: {SUPERSEDED}" in text
    assert "   renewal:   0A02 (delivered)" in text
    lines = timeline(text)
    assert_sorted(lines)
    assert "renewal 0A02 issued; Intune reports it installed" in lines[1]


def test_a_device_lists_all_its_certificates(result: RunResult, store: EvidenceStore) -> None:
    expl = explain("laptop-3", result, store)

    assert [s.verdict.ca.serial for s in expl.certificates] == [0x0A01, 0x0A02]
    assert render_explanation(expl).startswith("device laptop-3: 2 CA certificates")


def test_device_known_only_from_evidence(result: RunResult, tmp_path: Path) -> None:
    with EvidenceStore(tmp_path / "other.db") as other:
        add_logs([EVIDENCE / "android-truncated.log"], other, parse_options("PHONE-2"))
        text = render_explanation(explain("PHONE-2", result, other))

    assert "device PHONE-2: 0 CA certificates" in text
    assert "Device evidence not tied to a certificate above:" in text
    assert "in_progress at cert_issued" in text


def test_unknown_serial_or_device_is_a_usage_error(result: RunResult) -> None:
    with pytest.raises(
        UsageError, match="nothing in this run matches serial FFEE or device 'ffee'"
    ):
        explain("ffee", result, None)
    with pytest.raises(UsageError, match="device 'nobody-here'"):
        explain("nobody-here", result, None)


def test_history_fills_first_seen_without_recording(
    result: RunResult, store: EvidenceStore, tmp_path: Path
) -> None:
    path = tmp_path / "history.sqlite3"
    db = history.open_db(path)
    try:
        earlier = replace(result, as_of=AS_OF - timedelta(days=6), run_id="earlier")
        record_run(db, earlier, 1, 1.0, started_at=AS_OF - timedelta(days=6))
        runs_before = len(history.list_runs(db))
    finally:
        db.close()

    text = render_explanation(explain("2C3D", result, store, path))

    assert "   history:   finding since 2024-03-14T02:00:00Z (6 days)" in text
    assert "2024-03-14T02:00:00Z  first reported as a finding by reconcile" in text
    assert_sorted(timeline(text))
    db = history.open_db(path)
    try:
        assert len(history.list_runs(db)) == runs_before
    finally:
        db.close()


def test_no_history_file_is_fine(result: RunResult, store: EvidenceStore, tmp_path: Path) -> None:
    text = render_explanation(explain("2C3D", result, store, tmp_path / "none.sqlite3"))

    assert "history:" not in text
    assert not (tmp_path / "none.sqlite3").exists()


def test_explain_names_the_views_a_certificate_is_in(result: RunResult) -> None:
    from dataclasses import replace

    from reconcile.views import ViewOptions, build

    with engine_of() as db:
        views = build(result.verdicts, db, result.inputs, ViewOptions(as_of=AS_OF))
    with_views = replace(result, views=views)
    text = render_explanation(explain("0A01", with_views, None))
    assert "   views:     revocation-plan" in text
    assert "   views:" not in render_explanation(explain("3E4F", with_views, None))


@pytest.mark.parametrize("query", ["1a2b", "2C3D", "desktop-7q2k9lm", "laptop-3", "TAB-9"])
@pytest.mark.parametrize("width", [80, 200])
def test_explanation_fits_the_width_and_keeps_next_steps_whole(
    result: RunResult, store: EvidenceStore, query: str, width: int
) -> None:
    expl = explain(query, result, store)
    whole = render_explanation(expl)
    text = render_explanation(expl, width)

    assert_fits(text, width)
    assert " ".join(text.split()) == " ".join(whole.split())
    for story in expl.certificates:
        assert f"   next step: {story.next_step.split()[0]}" in text
        assert " ".join(story.next_step.split()) in " ".join(text.split())


def test_a_wrapped_timeline_event_continues_under_its_text(
    result: RunResult, store: EvidenceStore
) -> None:
    text = render_explanation(explain("2C3D", result, store), 80)
    lines = text.split("   timeline:\n", 1)[1].splitlines()
    failed = next(i for i, line in enumerate(lines) if "FAILED: CA refused" in line)
    assert lines[failed + 1].startswith(" " * 27) and lines[failed + 1][27] != " "
    fields = text.split("   next step: ", 1)[1].splitlines()
    assert fields[1].startswith(" " * 14) and fields[1][14] != " "


@pytest.mark.parametrize("width", [None, 30, 80])
def test_hostile_names_are_sanitised_before_they_wrap(width: int | None) -> None:
    osc8 = "\x1b]8;;https://evil.example/ a b c\x1b\\click me\x1b]8;;\x1b\\"
    hostile = verdict(
        Status.NOT_REPORTED,
        ca=cert(0x5A5A, f"Room {osc8} Display"),
        intune=intune_cert(
            0x5A5A, device_name=f"Room {osc8} \x1b[31m red \x1b[0m", user="\u202eexe"
        ),
        reason=f"Intune reports {osc8} nothing",
    )
    text = render_explanation(explain("5A5A", result_with(hostile, as_of=AS_OF), None), width)
    for bad in ("\x1b", "\x9b", "\u202e", "evil.example"):
        assert bad not in text
    assert "click me" in " ".join(text.split())
