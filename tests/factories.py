"""Small builders for records, so tests state only what matters to them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from reconcile.model import (
    CaCertificate,
    IntuneCertificate,
    IntuneSource,
    ManagedDevice,
    RunResult,
    Status,
    Verdict,
)

AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def ca_cert(serial: int = 0x1000, **changes: Any) -> CaCertificate:
    cert = CaCertificate(
        serial=serial,
        thumbprint=None,
        issuer="Contoso Issuing CA",
        subject="CN=PC-01",
        common_name="PC-01",
        requester="CONTOSO\\svc-ndes",
        template_oid="1.3.6.1.4.1.311.21.8.1.2",
        template_name="Intune-SCEP",
        request_id="42",
        not_before=AS_OF - timedelta(days=10),
        not_after=AS_OF + timedelta(days=355),
        revoked_at=None,
        source="ca.csv",
        line=2,
    )
    return replace(cert, **changes)


def intune_cert(
    serial: int | None = 0x1000, state: str = "installed", **changes: Any
) -> IntuneCertificate:
    record = IntuneCertificate(
        source=IntuneSource.STATES,
        record_id=f"state-{serial}",
        serial=serial,
        thumbprint=None,
        issuer="CN=Contoso Issuing CA, DC=contoso, DC=com",
        state=state,
        delivered=state == "installed",
        device_name="PC-01",
        device_id=None,
        user="Alex Wilber",
        profile_id="profile-1",
        profile_name="Windows SCEP",
        platform="windows10AndLater",
        issued_at=AS_OF - timedelta(days=10),
        expires_at=AS_OF + timedelta(days=355),
        state_changed_at=AS_OF - timedelta(days=9),
        error_code=None,
    )
    return replace(record, **changes)


def device(name: str = "PC-01", **changes: Any) -> ManagedDevice:
    return replace(
        ManagedDevice(
            id=f"dev-{name}",
            device_name=name,
            azure_ad_device_id=None,
            serial_number=None,
            user_principal_name="alex@contoso.com",
            operating_system="Windows",
            last_sync=AS_OF - timedelta(hours=3),
        ),
        **changes,
    )


def result_with(*verdicts: Verdict, **changes: Any) -> RunResult:
    return replace(
        RunResult(
            run_id="20261120T020000Z-test",
            as_of=AS_OF,
            grace_hours=24.0,
            verdicts=verdicts,
            unknown_to_ca=(),
            rejects=(),
            inputs=(),
        ),
        **changes,
    )


def verdict(status: Status = Status.NOT_REPORTED, **changes: Any) -> Verdict:
    return replace(Verdict(ca=ca_cert(), status=status, reason="test"), **changes)
