"""The CSV columns: a public contract for auditors' scripts. Add columns at the end only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconcile.identity import serial_hex
from reconcile.model import IntuneCertificate, Verdict
from reconcile.timeparse import iso_z


@dataclass(frozen=True)
class Column:
    name: str
    get: Callable[[Verdict], str | int | None]
    doc: str


def _intune(attr: str) -> Callable[[Verdict], str | None]:
    def get(v: Verdict) -> str | None:
        value = getattr(v.intune, attr) if v.intune is not None else None
        return None if value is None else str(value)

    return get


def _device_name(v: Verdict) -> str | None:
    """Intune's name for the device, else the device the CA certificate names."""
    return v.managed_name or v.ca_device


def _device_id(v: Verdict) -> str | None:
    if v.device is not None:
        return v.device.id
    if v.intune is not None and v.intune.device_id:
        return v.intune.device_id
    return v.ca.managed_device_id


def _user(v: Verdict) -> str | None:
    if v.intune is not None and v.intune.user:
        return v.intune.user
    return v.device.user_principal_name if v.device is not None else None


def _profile(v: Verdict) -> str | None:
    if v.intune is None:
        return None
    return v.intune.profile_name or v.intune.profile_id


def _device_present(v: Verdict) -> str:
    if v.device_candidates:
        return "ambiguous"
    if v.device_gone:
        return "no"
    return "yes" if v.device is not None else ""


def _bool(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


COLUMNS: tuple[Column, ...] = (
    Column("status", lambda v: v.status.value, "one status per CA certificate"),
    Column("serial_number", lambda v: serial_hex(v.ca.serial), "uppercase hex, whole bytes"),
    Column("thumbprint", lambda v: v.ca.thumbprint, "SHA-1 uppercase hex, from the CA export"),
    Column("issuer", lambda v: v.ca.issuer, "issuing CA as the export or config names it"),
    Column("subject", lambda v: v.ca.subject or v.ca.common_name, "subject DN or CN"),
    Column("template", lambda v: v.ca.template_name or v.ca.template_oid, "template name"),
    Column("template_oid", lambda v: v.ca.template_oid, "template OID where known"),
    Column("request_id", lambda v: v.ca.request_id, "CA request id"),
    Column("requester", lambda v: v.ca.requester, "CA requester account"),
    Column("issued_at", lambda v: iso_z(v.ca.not_before), "not-before, ISO-8601 UTC"),
    Column("expires_at", lambda v: iso_z(v.ca.not_after), "not-after, ISO-8601 UTC"),
    Column("revoked_at", lambda v: iso_z(v.ca.revoked_at), "revocation time, ISO-8601 UTC"),
    Column("intune_state", _intune("state"), "Intune's state for the matched record"),
    Column("intune_source", lambda v: v.intune.source.value if v.intune else None, "states|report"),
    Column("device_id", _device_id, "Intune managed device id where known"),
    Column(
        "device_name",
        _device_name,
        "device display name; without an Intune record, the device the CA certificate names"
        " (attacker-controlled)",
    ),
    Column("user", _user, "user display name or UPN (attacker-controlled)"),
    Column("profile", _profile, "Intune certificate profile"),
    Column(
        "device_in_intune",
        _device_present,
        "yes, no (gone: revocation candidate), ambiguous (several managed devices share the "
        "name; explain lists them), blank",
    ),
    Column(
        "device_last_sync",
        lambda v: iso_z(v.device.last_sync) if v.device else None,
        "device's last Intune sync",
    ),
    Column("reason", lambda v: v.reason, "why this status"),
    Column("next_step", lambda v: v.next_step, "what to do next"),
    Column("evidence", lambda v: v.evidence, "what device logs show"),
    Column("first_seen", lambda v: iso_z(v.first_seen), "first run that reported this finding"),
    Column("age_days", lambda v: v.age_days, "days since first_seen"),
    Column("new_since_last_run", lambda v: _bool(v.new_since_last_run), "yes/no"),
    Column("source", lambda v: f"{v.ca.source}:{v.ca.line}", "CA export file and line"),
)

GET = {c.name: c.get for c in COLUMNS}


def cell(verdict: Verdict, column: str) -> str:
    """One CSV column's value as text ("" when empty): the cells the terminal table and the
    HTML page show are these."""
    value = GET[column](verdict)
    return "" if value is None else str(value)


# run_id closes every row so a row copied out of its file still names its run.
CSV_HEADER = (*(c.name for c in COLUMNS), "run_id")


@dataclass(frozen=True)
class UnknownColumn:
    name: str
    get: Callable[[IntuneCertificate], str | None]


UNKNOWN_COLUMNS: tuple[UnknownColumn, ...] = (
    UnknownColumn(
        "serial_number", lambda r: serial_hex(r.serial) if r.serial is not None else None
    ),
    UnknownColumn("thumbprint", lambda r: r.thumbprint),
    UnknownColumn("issuer", lambda r: r.issuer),
    UnknownColumn("intune_state", lambda r: r.state),
    UnknownColumn("intune_source", lambda r: r.source.value),
    UnknownColumn("device_id", lambda r: r.device_id),
    UnknownColumn("device_name", lambda r: r.device_name),
    UnknownColumn("user", lambda r: r.user),
    UnknownColumn("profile", lambda r: r.profile_name or r.profile_id),
    UnknownColumn("issued_at", lambda r: iso_z(r.issued_at)),
    UnknownColumn("expires_at", lambda r: iso_z(r.expires_at)),
)

UNKNOWN_HEADER = (*(c.name for c in UNKNOWN_COLUMNS), "run_id")
