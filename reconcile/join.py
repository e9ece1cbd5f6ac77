"""The one join: every CA certificate gets exactly one status, and Intune's leftovers are listed.

Checks run in a fixed order, so a certificate that is both revoked and never delivered is
``revoked``: out_of_scope, revoked, expired, delivered, within_grace, superseded,
not_installed, not_reported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconcile.identity import issuer_key, serial_hex
from reconcile.model import (
    CaCertificate,
    IntuneCertificate,
    ManagedDevice,
    Status,
    Verdict,
)
from reconcile.timeparse import iso_z


@dataclass(frozen=True)
class JoinOptions:
    as_of: datetime
    grace_hours: float = 24.0
    templates: tuple[str, ...] = ()
    device_pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class JoinResult:
    verdicts: tuple[Verdict, ...]
    unknown_to_ca: tuple[IntuneCertificate, ...]
    dropped: dict[str, int]


_Key = tuple[str, str]


class _IntuneIndex:
    """Intune records by serial (and by thumbprint for records that carry no serial).

    Most serials have one record, so the first one sits in a plain dict and only the rare
    second or third goes to a list: a million one-element lists would cost 60 MB.
    """

    def __init__(self, records: Sequence[IntuneCertificate]):
        self.first: dict[int, IntuneCertificate] = {}
        self.more: dict[int, list[IntuneCertificate]] = {}
        self.by_thumbprint: dict[str, list[IntuneCertificate]] = {}
        for record in records:
            if record.serial is not None:
                if record.serial in self.first:
                    self.more.setdefault(record.serial, []).append(record)
                else:
                    self.first[record.serial] = record
            elif record.thumbprint is not None:
                self.by_thumbprint.setdefault(record.thumbprint, []).append(record)

    def match(self, cert: CaCertificate, ca_issuer: str | None) -> list[IntuneCertificate]:
        first = self.first.get(cert.serial)
        found = [first, *self.more.get(cert.serial, ())] if first is not None else []
        if found and ca_issuer is not None:
            found = [r for r in found if r.issuer is None or issuer_key(r.issuer) == ca_issuer]
        if not found and cert.thumbprint is not None:
            found = self.by_thumbprint.get(cert.thumbprint, [])
        return found


def _best(records: list[IntuneCertificate]) -> IntuneCertificate:
    """Prefer a delivered record; otherwise the one whose state changed last."""
    if len(records) == 1:
        return records[0]
    delivered = [r for r in records if r.delivered]
    return max(delivered or records, key=_last_change)


def _last_change(record: IntuneCertificate) -> float:
    when = record.state_changed_at or record.issued_at
    return when.timestamp() if when is not None else float("-inf")


def _fold(text: str | None) -> str | None:
    return text.casefold() if text else None


def _intune_link(record: IntuneCertificate | None) -> _Key | None:
    if record is None:
        return None
    device = record.device_id or _fold(record.device_name)
    profile = record.profile_id or _fold(record.profile_name)
    return (device, profile) if device and profile else None


def _ca_device(cert: CaCertificate, pattern: re.Pattern[str] | None) -> str | None:
    """The device a CA certificate names: its CN, or the configured pattern's group."""
    if pattern is None:
        return _fold(cert.common_name)
    for text in (cert.subject, cert.san, cert.common_name):
        if text and (match := pattern.search(text)):
            return _fold(match.group(1))
    return None


def _ca_link(cert: CaCertificate, pattern: re.Pattern[str] | None) -> _Key | None:
    template = cert.template_oid or _fold(cert.template_name)
    device = _ca_device(cert, pattern)
    return (device, template) if device and template else None


def _in_scope(cert: CaCertificate, wanted: frozenset[str]) -> bool:
    if not wanted:
        return True
    return (cert.template_oid is not None and cert.template_oid.casefold() in wanted) or (
        cert.template_name is not None and cert.template_name.casefold() in wanted
    )


class _Devices:
    """Managed devices, and every device name Intune's certificate records still mention.

    A name Intune's records mention but no managed device carries is a retired device: its
    certificates are revocation candidates.
    """

    def __init__(
        self, devices: Sequence[ManagedDevice] | None, intune: Sequence[IntuneCertificate]
    ):
        self.read = devices is not None
        self.by_id = {d.id: d for d in devices or ()}
        self.by_name = {d.device_name.casefold(): d for d in devices or () if d.device_name}
        self.mentioned = {r.device_name.casefold() for r in intune if r.device_name}

    def state(
        self, record: IntuneCertificate | None, ca_device: str | None
    ) -> tuple[ManagedDevice | None, bool]:
        """(the managed device, whether it is gone); unknown gives (None, False)."""
        if not self.read:
            return None, False
        if record is not None and record.device_id is not None:
            device = self.by_id.get(record.device_id)
            return device, device is None
        if record is not None and record.device_name is not None:
            device = self.by_name.get(record.device_name.casefold())
            return device, device is None
        if ca_device is None:
            return None, False
        device = self.by_name.get(ca_device)
        return device, device is None and ca_device in self.mentioned


def classify(
    certificates: Iterable[CaCertificate],
    intune: Sequence[IntuneCertificate],
    devices: Sequence[ManagedDevice] | None,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
) -> JoinResult:
    """Classify every CA certificate as it streams past; ``devices`` is None when not read.

    Statuses up to within_grace are decided on the spot; the rest (the only ones that can be
    findings) wait until every delivered certificate is known, because a renewal later in the
    export can supersede them. Without ``keep_all`` the decided ones are only counted, unless
    ``keep_if`` asks for them (device evidence needs a device's delivered renewals too).
    """
    index = _IntuneIndex(intune)
    lookup = _Devices(devices, intune)
    wanted = frozenset(t.casefold() for t in options.templates)
    grace_start = options.as_of - timedelta(hours=options.grace_hours)
    issuer_keys: dict[str | None, str | None] = {}
    newest_delivered: dict[_Key, datetime] = {}
    matched: set[int] = set()
    kept: list[Verdict | None] = []
    pending: list[tuple[int, CaCertificate, IntuneCertificate | None]] = []
    dropped: Counter[str] = Counter()

    for known in intune:
        link = _intune_link(known)
        if known.delivered and link and known.issued_at is not None:
            _keep_newest(newest_delivered, link, known.issued_at)

    for cert in certificates:
        if cert.issuer not in issuer_keys:
            issuer_keys[cert.issuer] = issuer_key(cert.issuer) if cert.issuer else None
        found = index.match(cert, issuer_keys[cert.issuer])
        matched.update(id(r) for r in found)
        record = _best(found) if found else None
        status: Status
        if not _in_scope(cert, wanted):
            status = Status.OUT_OF_SCOPE
        elif cert.revoked_at is not None:
            status = Status.REVOKED
        elif cert.not_after is not None and cert.not_after < options.as_of:
            status = Status.EXPIRED
        elif record is not None and record.delivered:
            status = Status.DELIVERED
            when = cert.not_before or record.issued_at
            if when is not None:
                for link in (_intune_link(record), _ca_link(cert, options.device_pattern)):
                    if link:
                        _keep_newest(newest_delivered, link, when)
        elif cert.not_before is not None and cert.not_before > grace_start:
            status = Status.WITHIN_GRACE
        else:
            pending.append((len(kept), cert, record))
            kept.append(None)
            continue
        if keep_all:
            kept.append(_verdict(status, cert, record, lookup, options, None))
        elif keep_if is not None and keep_if(
            verdict := _verdict(status, cert, record, lookup, options, None)
        ):
            kept.append(verdict)
        else:
            dropped[status.value] += 1

    for position, cert, record in pending:
        superseded_at = _newer_delivered(cert, record, newest_delivered, options)
        if superseded_at is not None:
            status = Status.SUPERSEDED
        elif record is not None:
            status = Status.NOT_INSTALLED
        else:
            status = Status.NOT_REPORTED
        kept[position] = _verdict(status, cert, record, lookup, options, superseded_at)

    covered = {k for k in issuer_keys.values() if k is not None}
    # An export without issuer could be from any CA, so every Intune issuer counts as covered.
    unknown = _unknown_to_ca(intune, matched, covered, every_issuer=None in issuer_keys)
    verdicts = tuple(v for v in kept if v is not None)
    return JoinResult(verdicts=verdicts, unknown_to_ca=unknown, dropped=dict(dropped))


def _verdict(
    status: Status,
    cert: CaCertificate,
    record: IntuneCertificate | None,
    lookup: _Devices,
    options: JoinOptions,
    superseded_at: datetime | None,
) -> Verdict:
    device, gone = lookup.state(record, _ca_device(cert, options.device_pattern))
    return Verdict(
        ca=cert,
        status=status,
        reason=_reason(status, cert, record, options, superseded_at),
        intune=record,
        device=device,
        device_gone=gone,
    )


def _keep_newest(table: dict[_Key, datetime], key: _Key, when: datetime) -> None:
    current = table.get(key)
    if current is None or when > current:
        table[key] = when


def _newer_delivered(
    cert: CaCertificate,
    record: IntuneCertificate | None,
    newest: dict[_Key, datetime],
    options: JoinOptions,
) -> datetime | None:
    if cert.not_before is None:
        return None
    for link in (_intune_link(record), _ca_link(cert, options.device_pattern)):
        if link and (when := newest.get(link)) is not None and when > cert.not_before:
            return when
    return None


def _unknown_to_ca(
    intune: Sequence[IntuneCertificate],
    matched: set[int],
    covered: set[str],
    every_issuer: bool,
) -> tuple[IntuneCertificate, ...]:
    """Intune records the exports should contain but do not, one per (issuer, serial)."""
    seen: set[tuple[str | None, int | str | None]] = set()
    unknown = []
    for record in intune:
        if id(record) in matched or (record.serial is None and record.thumbprint is None):
            continue
        key = issuer_key(record.issuer) if record.issuer else None
        if not every_issuer and key not in covered:
            continue
        identity = (key, record.serial if record.serial is not None else record.thumbprint)
        if identity in seen:
            continue
        seen.add(identity)
        unknown.append(record)
    return tuple(unknown)


def _reason(
    status: Status,
    cert: CaCertificate,
    record: IntuneCertificate | None,
    options: JoinOptions,
    superseded_at: datetime | None,
) -> str:
    where = ""
    if record is not None:
        profile = record.profile_name or record.profile_id or "unknown profile"
        where = f" ({record.source.value}, {profile})"
    match status:
        case Status.OUT_OF_SCOPE:
            template = cert.template_name or cert.template_oid or "no template"
            return f"template {template} is not selected"
        case Status.REVOKED:
            return f"revoked by the CA at {iso_z(cert.revoked_at)}"
        case Status.EXPIRED:
            return f"expired at {iso_z(cert.not_after)}"
        case Status.DELIVERED:
            return f"Intune reports it installed{where}"
        case Status.WITHIN_GRACE:
            return (
                f"issued {iso_z(cert.not_before)}, within the {options.grace_hours:g} h "
                "grace window for Intune's reporting lag"
            )
        case Status.SUPERSEDED:
            return (
                "a newer certificate for the same device and profile, issued "
                f"{iso_z(superseded_at)}, is delivered"
            )
        case Status.NOT_INSTALLED:
            assert record is not None
            return f"Intune reports state {record.state!r}{where}"
        case Status.NOT_REPORTED:
            return f"Intune has no record of serial {serial_hex(cert.serial)}"
    return status.value
