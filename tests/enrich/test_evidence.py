from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile.enrich.advice import GONE, with_next_steps
from reconcile.enrich.evidence import apply_evidence, apply_stored_evidence
from reconcile.evidence.add import add_logs, parse_options
from reconcile.evidence.store import EvidenceStore
from reconcile.model import Status, Verdict
from reconcile.settings import Settings
from tests.factories import ca_cert, device, intune_cert, result_with, verdict

# android-omadm-article.log installs at 2018-02-27T05:18:45Z.
ARTICLE_INSTALL = datetime(2018, 2, 27, 5, 18, 45, tzinfo=UTC)
# android-certrep-failure.log fails at 2024-03-05T09:12:09Z; windows-events.xml installs on
# DESKTOP-7Q2K9LM at 2024-03-05T14:22:41Z; both for profile 5e2b7a10-….
PROFILE_ID = "5e2b7a10-4c1d-4f8e-9a3b-2d6c8e0f1a2b"


@pytest.fixture
def store(tmp_path: Path, logs: Path) -> Iterator[EvidenceStore]:
    with EvidenceStore(tmp_path / "evidence.db") as store:
        add_logs([logs / "android-omadm-article.log"], store, parse_options("PIXEL-7"))
        add_logs([logs / "android-certrep-failure.log"], store, parse_options("TAB-9"))
        add_logs([logs / "windows-events.xml"], store, parse_options())
        yield store


def pixel(status: Status, issued: datetime, serial: int = 0x1000, **changes: object) -> Verdict:
    cert = ca_cert(serial, subject="CN=PIXEL-7", common_name="PIXEL-7", not_before=issued)
    return verdict(status, ca=cert, **changes)


def test_without_evidence_nothing_changes(tmp_path: Path) -> None:
    result = result_with(pixel(Status.NOT_REPORTED, ARTICLE_INSTALL - timedelta(minutes=3)))
    with EvidenceStore(tmp_path / "empty.db") as empty:
        assert apply_evidence(result, empty) is result


def test_installed_on_the_device_is_a_reporting_problem(store: EvidenceStore) -> None:
    result = result_with(pixel(Status.NOT_REPORTED, ARTICLE_INSTALL - timedelta(minutes=3)))

    (after,) = apply_evidence(result, store).verdicts

    assert after.status is Status.INSTALLED_NOT_REPORTED
    assert after.is_finding
    assert after.reason == (
        "installed on PIXEL-7 at 2018-02-27T05:18:45Z per its android log, "
        "but Intune has no record of it"
    )
    assert after.evidence is not None and "installed at access_granted" in after.evidence


def test_not_installed_with_device_proof_names_intune_state(store: EvidenceStore) -> None:
    record = intune_cert(state="issued", device_name="pixel-7", profile_id=None)
    before = pixel(Status.NOT_INSTALLED, ARTICLE_INSTALL - timedelta(hours=1), intune=record)

    (after,) = apply_evidence(result_with(before), store).verdicts

    assert after.status is Status.INSTALLED_NOT_REPORTED
    assert "Intune reports state 'issued'" in after.reason


def test_an_install_before_issue_proves_nothing(store: EvidenceStore) -> None:
    later = pixel(Status.NOT_REPORTED, ARTICLE_INSTALL + timedelta(hours=2))

    (after,) = apply_evidence(result_with(later), store).verdicts

    assert after == later


def test_an_install_proves_only_the_newest_certificate_before_it(store: EvidenceStore) -> None:
    old = pixel(Status.NOT_REPORTED, ARTICLE_INSTALL - timedelta(days=30), serial=0x1)
    new = pixel(Status.NOT_REPORTED, ARTICLE_INSTALL - timedelta(minutes=3), serial=0x2)

    old_after, new_after = apply_evidence(result_with(old, new), store).verdicts

    assert old_after == old
    assert new_after.status is Status.INSTALLED_NOT_REPORTED


def test_a_different_profile_is_no_proof(store: EvidenceStore) -> None:
    cert = ca_cert(common_name="DESKTOP-7Q2K9LM", not_before=datetime(2024, 3, 5, 14, tzinfo=UTC))
    other = intune_cert(state="issued", device_name="DESKTOP-7Q2K9LM", profile_id="another")
    same = replace(other, profile_id=PROFILE_ID.upper())
    mismatch = verdict(Status.NOT_INSTALLED, ca=cert, intune=other)
    match = verdict(Status.NOT_INSTALLED, ca=replace(cert, serial=0x2), intune=same)

    after = apply_evidence(result_with(mismatch, match), store).verdicts

    assert [v.status for v in after] == [Status.NOT_INSTALLED, Status.INSTALLED_NOT_REPORTED]


def test_san_dns_name_links_the_device(store: EvidenceStore) -> None:
    cert = ca_cert(
        common_name=None,
        subject="CN=alex@contoso.com",
        san="DNS Name=desktop-7q2k9lm.corp.contoso.com, Other Name:Principal Name=alex@contoso.com",
        not_before=datetime(2024, 3, 5, 14, 22, tzinfo=UTC),
    )

    (after,) = apply_evidence(result_with(verdict(Status.NOT_REPORTED, ca=cert)), store).verdicts

    assert after.status is Status.INSTALLED_NOT_REPORTED


def test_a_failing_enrollment_keeps_its_status_and_says_where(store: EvidenceStore) -> None:
    cert = ca_cert(common_name="TAB-9", not_before=datetime(2024, 3, 5, 9, 0, tzinfo=UTC))
    before = verdict(Status.NOT_REPORTED, ca=cert)

    (after,) = apply_evidence(result_with(before), store).verdicts

    assert after.status is Status.NOT_REPORTED
    assert after.evidence is not None
    assert "failed at pki_operation_sent" in after.evidence
    assert "failInfo=badRequest" in after.evidence
    assert after.next_step.startswith("check Certificate Connector / NDES challenge validation")


def test_device_gone_still_says_revoke(store: EvidenceStore) -> None:
    cert = ca_cert(common_name="TAB-9", not_before=datetime(2024, 3, 5, 9, 0, tzinfo=UTC))
    record = intune_cert(state="issued", device_name="TAB-9", profile_id=None)
    before = verdict(Status.NOT_INSTALLED, ca=cert, intune=record, device_gone=True)

    (after,) = with_next_steps(apply_evidence(result_with(before), store)).verdicts

    assert after.evidence is not None
    assert after.next_step == GONE


@pytest.mark.parametrize("status", [Status.DELIVERED, Status.SUPERSEDED, Status.WITHIN_GRACE])
def test_other_statuses_are_left_alone(store: EvidenceStore, status: Status) -> None:
    before = pixel(status, ARTICLE_INSTALL - timedelta(minutes=3))

    (after,) = apply_evidence(result_with(before), store).verdicts

    assert after == before


def test_stored_evidence_is_only_read_when_it_exists(tmp_path: Path, logs: Path) -> None:
    path = tmp_path / "evidence.db"
    result = result_with(pixel(Status.NOT_REPORTED, ARTICLE_INSTALL - timedelta(minutes=3)))
    settings = Settings(evidence_db=path)

    assert apply_stored_evidence(result, settings.evidence_path()) is result
    assert not path.exists()

    with EvidenceStore(path) as store:
        add_logs([logs / "android-omadm-article.log"], store, parse_options("PIXEL-7"))
    (after,) = apply_stored_evidence(result, settings.evidence_path()).verdicts
    assert after.status is Status.INSTALLED_NOT_REPORTED


def test_managed_device_name_links_too(store: EvidenceStore) -> None:
    cert = ca_cert(common_name="user@contoso.com", not_before=ARTICLE_INSTALL - timedelta(hours=1))
    before = verdict(Status.NOT_REPORTED, ca=cert, device=device("Pixel-7"))

    (after,) = apply_evidence(result_with(before), store).verdicts

    assert after.status is Status.INSTALLED_NOT_REPORTED
