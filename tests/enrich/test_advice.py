from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reconcile.enrich.advice import (
    GONE,
    REPORTING,
    SUPERSEDED,
    evidence_next_step,
    next_step,
    with_next_steps,
)
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import ParseOptions
from reconcile.model import Status
from tests.factories import device, intune_cert, result_with, verdict

EVIDENCE = Path(__file__).parent.parent / "fixtures" / "evidence"


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_short_next_step(status: Status) -> None:
    record = intune_cert(state="issued") if status is Status.NOT_INSTALLED else None
    step = next_step(verdict(status, intune=record))

    assert step
    assert len(step) <= 130
    assert "\n" not in step


def test_not_reported_device_gone_is_revoke() -> None:
    assert next_step(verdict(Status.NOT_REPORTED, device_gone=True)) == GONE


def test_not_reported_device_present_asks_for_the_device_log() -> None:
    assert next_step(verdict(Status.NOT_REPORTED)) == (
        "check the device's OMA-DM log / event log for the enrollment "
        "and run `reconcile evidence add`"
    )


def test_not_reported_names_the_log_of_a_known_platform() -> None:
    android = verdict(Status.NOT_REPORTED, device=device("PIXEL-7", operating_system="Android"))
    assert next_step(android).startswith("check the device's OMA-DM log for the enrollment")


@pytest.mark.parametrize(
    ("state", "start"),
    [
        ("challengeIssueFailed", "check Certificate Connector / NDES challenge validation"),
        ("challengeValidationFailed", "check Certificate Connector / NDES challenge validation"),
        ("issueFailed", "check the CA: template permissions"),
        ("requestSubmitFailed", "device could not reach NDES"),
        ("responseProcessingFailed", "check NDES and the Certificate Connector"),
        ("responsePending", "sync the device and re-run after the grace window"),
        ("issuePending", "sync the device and re-run after the grace window"),
        ("issued", "sync the device and re-run after the grace window"),
        ("revoked", "revoke at the CA: Intune shows it revoked"),
        ("somethingNew", "unfamiliar Intune state 'somethingNew'"),
    ],
)
def test_not_installed_action_follows_the_intune_state(state: str, start: str) -> None:
    step = next_step(verdict(Status.NOT_INSTALLED, intune=intune_cert(state=state)))

    assert step.startswith(start)


def test_install_failed_on_windows_is_usually_windows() -> None:
    windows = verdict(Status.NOT_INSTALLED, intune=intune_cert(state="installFailed"))
    android = verdict(
        Status.NOT_INSTALLED, intune=intune_cert(state="installFailed", platform="androidForWork")
    )

    assert "usually a Windows problem" in next_step(windows)
    assert next_step(android) == "device-side install failure: check the device's OMA-DM log"


def test_not_installed_on_a_gone_device_is_revoke() -> None:
    gone = verdict(Status.NOT_INSTALLED, intune=intune_cert(state="issued"), device_gone=True)
    assert next_step(gone) == GONE


def test_reporting_problem_and_superseded() -> None:
    assert next_step(verdict(Status.INSTALLED_NOT_REPORTED)) == REPORTING
    assert next_step(verdict(Status.SUPERSEDED)) == SUPERSEDED


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("android-certrep-failure.log", "check Certificate Connector / NDES challenge validation"),
        ("android-pkioperation-500.log", "check Certificate Connector / NDES challenge validation"),
        (
            "android-truncated.log",
            "sync the device and add a newer log: the enrollment stopped at cert_issued",
        ),
        ("windows-events-error.xml", "check the device can reach NDES"),
        ("android-omadm-article.log", REPORTING),
        ("ios-profiled-article.log", "add the device log again with --log-date"),
    ],
)
def test_evidence_next_step_follows_the_stage(name: str, start: str) -> None:
    (record,) = parse_log(EVIDENCE / name, ParseOptions(device="D")).records

    assert evidence_next_step(record).startswith(start)


def test_install_failure_stage_on_the_device() -> None:
    (record,) = parse_log(EVIDENCE / "android-truncated.log", ParseOptions(device="D")).records
    failed = replace(record, outcome=type(record.outcome).FAILED, detail="CERT_INSTALL_FAILED")

    assert evidence_next_step(failed).startswith("device-side install failure")


def test_with_next_steps_fills_every_verdict_and_keeps_set_ones() -> None:
    result = result_with(
        verdict(Status.DELIVERED),
        verdict(Status.NOT_REPORTED, next_step="already decided"),
    )

    filled = with_next_steps(result).verdicts

    assert filled[0].next_step == "nothing: Intune reports it installed"
    assert filled[1].next_step == "already decided"
