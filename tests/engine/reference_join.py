"""The Python join the engine replaced, kept verbatim as the differential tests' oracle.

The one join: every CA certificate gets exactly one status, and Intune's leftovers are listed.

Checks run in a fixed order, so a certificate that is both revoked and never delivered is
``revoked``: out_of_scope, revoked, expired, delivered, within_grace, superseded,
not_installed, not_reported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconcile.identity import device_fold, fold, issuer_key, serial_hex
from reconcile.intune.side import Entry, IntuneSide
from reconcile.model import CaCertificate, IntuneCertificate, ManagedDevice, Status, Verdict
from reconcile.timeparse import iso_z


@dataclass(frozen=True)
class JoinOptions:
    as_of: datetime
    grace_hours: float = 24.0
    templates: tuple[str, ...] = ()
    device_pattern: re.Pattern[str] | None = None
    # The newest moment the inputs describe (a live fetch ends after as-of): a revocation
    # dated later had not happened then. None: as-of.
    revoked_by: datetime | None = None


@dataclass(frozen=True)
class JoinResult:
    verdicts: tuple[Verdict, ...]
    unknown_to_ca: tuple[IntuneCertificate, ...]
    dropped: dict[str, int]
    deferred: Deferred | None = None
    """With ``defer_records``: what was kept as references, its records not yet read."""


_Candidate = tuple[Status, CaCertificate, Entry | None]


class Deferred:
    """Records the join kept only as references: built once it has let go of its index.

    A full verdict costs about 2 KB (its Intune record read back, its device) and a 1M run
    keeps about 77,000 only for the views (revoked-installed, expiring), plus about 47,000
    unknown_to_ca records. Read back after the join (and after the run dropped its duplicate
    table), they never coexist with those.
    """

    def __init__(self, build: _Verdicts, candidates: list[_Candidate], unknown: list[Entry]):
        self._build = build
        self._candidates = candidates
        self._unknown = unknown

    def view_only(self) -> Iterator[Verdict]:
        """The view-only verdicts in join order, one at a time (so the caller can keep a lighter
        copy of each); the Intune side must still be open."""
        return (self._build(status, cert, entry) for status, cert, entry in self._candidates)

    def unknown_to_ca(self) -> tuple[IntuneCertificate, ...]:
        return tuple(self._build.side.certificate(entry) for entry in self._unknown)


_Key = tuple[str, str]
"""(device, profile): a device name or id, and a profile id or template."""


class _Index:
    """Intune entries by serial (and by thumbprint for records that carry no serial).

    Most serials have one record, so the first one sits in a plain dict and only the rare
    second or third goes to a list: a million one-element lists would cost 60 MB.
    """

    def __init__(self, entries: list[Entry]):
        self.first: dict[int, Entry] = {}
        self.more: dict[int, list[Entry]] = {}
        self.by_thumbprint: dict[str, list[Entry]] = {}
        for entry in entries:
            if entry.serial is not None:
                if entry.serial in self.first:
                    self.more.setdefault(entry.serial, []).append(entry)
                else:
                    self.first[entry.serial] = entry
            elif entry.thumbprint is not None:
                self.by_thumbprint.setdefault(entry.thumbprint, []).append(entry)

    def match(self, cert: CaCertificate, ca_issuer: str | None, keys: _IssuerKeys) -> list[Entry]:
        first = self.first.get(cert.serial)
        found = [first, *self.more.get(cert.serial, ())] if first is not None else []
        if found and ca_issuer is not None:
            found = [e for e in found if e.issuer is None or keys[e.issuer] == ca_issuer]
        if not found and cert.thumbprint is not None:
            found = self.by_thumbprint.get(cert.thumbprint, [])
        return found


class _IssuerKeys(dict[str, str]):
    """issuer_key per distinct issuer text: a handful of CAs, a million lookups."""

    def __missing__(self, issuer: str) -> str:
        key = self[issuer] = issuer_key(issuer)
        return key


def _best(entries: list[Entry]) -> Entry:
    """Prefer a delivered record; otherwise the one whose state changed last."""
    if len(entries) == 1:
        return entries[0]
    delivered = [e for e in entries if e.delivered]
    return max(delivered or entries, key=_last_change)


def _last_change(entry: Entry) -> float:
    when = entry.changed_at if entry.changed_at is not None else entry.issued_at
    return when if when is not None else float("-inf")


def _intune_link(entry: Entry | None) -> _Key | None:
    if entry is None:
        return None
    device = entry.device_id or device_fold(entry.device_name)
    return (device, entry.profile) if device and entry.profile else None


def _ca_device_name(cert: CaCertificate, pattern: re.Pattern[str] | None) -> str | None:
    """The device a CA certificate names: its CN, or the configured pattern's group."""
    if pattern is None:
        return cert.common_name
    for text in (cert.subject, cert.san, cert.common_name):
        if text and (match := pattern.search(text)):
            return str(match.group(1))
    return None


def _ca_device(cert: CaCertificate, pattern: re.Pattern[str] | None) -> str | None:
    """The device key of the CA-side renewal link: the managed device id the CA itself knows
    (Cloud PKI), else the folded name."""
    if cert.managed_device_id is not None:
        return cert.managed_device_id
    return device_fold(_ca_device_name(cert, pattern))


def _ca_link(cert: CaCertificate, pattern: re.Pattern[str] | None) -> _Key | None:
    template = cert.template_oid or fold(cert.template_name)
    device = _ca_device(cert, pattern)
    return (device, template) if device and template else None


def _in_scope(cert: CaCertificate, wanted: frozenset[str]) -> bool:
    if not wanted:
        return True
    return (cert.template_oid is not None and cert.template_oid.casefold() in wanted) or (
        cert.template_name is not None and cert.template_name.casefold() in wanted
    )


def wanted_templates(templates: Iterable[str]) -> frozenset[str]:
    return frozenset(t.casefold() for t in templates)


def in_scope(cert: CaCertificate, wanted: frozenset[str]) -> bool:
    """Whether the join will classify ``cert`` as anything but out_of_scope (``wanted`` from
    wanted_templates)."""
    return cert.out_of_scope is None and _in_scope(cert, wanted)


class _Devices:
    """Managed devices, and every device name Intune's certificate records still mention.

    A name Intune's records mention but no managed device carries is a retired device: its
    certificates are revocation candidates.
    """

    def __init__(self, side: IntuneSide):
        self.devices = side.devices
        self.mentioned = {device_fold(e.device_name) for e in side.entries if e.device_name}

    def state(
        self, entry: Entry | None, ca_device: str | None, managed_id: str | None = None
    ) -> tuple[ManagedDevice | None, bool, tuple[ManagedDevice, ...]]:
        """(the managed device, whether it is gone, the candidates when a name is shared);
        unknown gives (None, False, ()).

        A managed device id the CA itself recorded (Cloud PKI) is exact and wins over names.
        """
        devices = self.devices
        if devices is None:
            return None, False, ()
        if managed_id is not None:
            where = devices.by_id.get(managed_id)
            return (None, True, ()) if where is None else (devices.get(where), False, ())
        if entry is not None and entry.device_id is not None:
            where = devices.by_id.get(entry.device_id)
            return (None, True, ()) if where is None else (devices.get(where), False, ())
        by_record = entry is not None and entry.device_name is not None
        name = device_fold(entry.device_name) if entry is not None and by_record else ca_device
        if not name:
            return None, False, ()
        found = devices.named(name)
        if len(found) > 1:
            return None, False, tuple(devices.get(n) for n in found)
        if found:
            return devices.get(found[0]), False, ()
        return None, by_record or name in self.mentioned, ()


def _collection_sizes(entries: list[Entry]) -> dict[int, int]:
    """Entries are numbered by line within their collection; the flags need the largest."""
    sizes: dict[int, int] = {}
    for entry in entries:
        if entry.where > sizes.get(entry.collection, 0):
            sizes[entry.collection] = entry.where
    return sizes


class _Classifier:
    """The state one classification needs; ``classify`` is its only user."""

    def __init__(self, side: IntuneSide, options: JoinOptions):
        self.side = side
        self.options = options
        self.index = _Index(side.entries)
        self.devices = _Devices(side)
        self.build = _Verdicts(side, options, self.devices)
        self.wanted = wanted_templates(options.templates)
        self.grace_start = options.as_of - timedelta(hours=options.grace_hours)
        self.revoked_by = max(options.as_of, options.revoked_by or options.as_of)
        self.issuer_keys = _IssuerKeys()
        # profile -> device -> newest delivered issuance; nested so that a million links cost
        # no tuple each.
        self.newest_delivered: dict[str, dict[str, float]] = {}
        self.matched = {c: bytearray(n) for c, n in _collection_sizes(side.entries).items()}
        for entry in side.entries:
            link = _intune_link(entry)
            if entry.delivered and link and entry.issued_at is not None:
                self._keep_newest(link, entry.issued_at)

    def _keep_newest(self, key: _Key, when: float) -> None:
        device, profile = key
        devices = self.newest_delivered.setdefault(profile, {})
        current = devices.get(device)
        if current is None or when > current:
            devices[device] = when

    def newest(self, key: _Key) -> float | None:
        device, profile = key
        devices = self.newest_delivered.get(profile)
        return devices.get(device) if devices is not None else None

    def mark_matched(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.matched[entry.collection][entry.where - 1] = 1

    def was_matched(self, entry: Entry) -> bool:
        return bool(self.matched[entry.collection][entry.where - 1])

    def decide(self, cert: CaCertificate, entry: Entry | None) -> Status | None:
        """The status if it does not depend on the rest of the export, else None."""
        if cert.out_of_scope is not None or not _in_scope(cert, self.wanted):
            return Status.OUT_OF_SCOPE
        if cert.revoked_at is not None and cert.revoked_at <= self.revoked_by:
            return Status.REVOKED
        if cert.not_after is not None and cert.not_after < self.options.as_of:
            return Status.EXPIRED
        if entry is not None and entry.delivered:
            when = cert.not_before.timestamp() if cert.not_before else entry.issued_at
            if when is not None:
                # The Intune link already holds the record's own issuance time, unless it had none.
                link = _intune_link(entry) if entry.issued_at is None else None
                if link:
                    self._keep_newest(link, when)
                link = _ca_link(cert, self.options.device_pattern)
                if link:
                    self._keep_newest(link, when)
            return Status.DELIVERED
        if cert.not_before is not None and cert.not_before > self.grace_start:
            return Status.WITHIN_GRACE
        return None

    def settle(self, cert: CaCertificate, entry: Entry | None) -> tuple[Status, datetime | None]:
        """Once every delivered certificate is known: superseded, not_installed or not_reported."""
        if cert.not_before is not None:
            mine = cert.not_before.timestamp()
            for link in (_intune_link(entry), _ca_link(cert, self.options.device_pattern)):
                if link and (when := self.newest(link)) is not None and when > mine:
                    return Status.SUPERSEDED, datetime.fromtimestamp(when, UTC)
        return (Status.NOT_REPORTED if entry is None else Status.NOT_INSTALLED), None

    def verdict(
        self,
        status: Status,
        cert: CaCertificate,
        entry: Entry | None,
        superseded_at: datetime | None = None,
    ) -> Verdict:
        return self.build(status, cert, entry, superseded_at)


class _Verdicts:
    """Builds full verdicts; holds only what that needs, not the join's index."""

    def __init__(self, side: IntuneSide, options: JoinOptions, devices: _Devices):
        self.side = side
        self.options = options
        self.devices = devices

    def __call__(
        self,
        status: Status,
        cert: CaCertificate,
        entry: Entry | None,
        superseded_at: datetime | None = None,
    ) -> Verdict:
        record = self.side.certificate(entry) if entry is not None else None
        name = _ca_device_name(cert, self.options.device_pattern)
        device, gone, candidates = self.devices.state(
            entry, device_fold(name), cert.managed_device_id
        )
        return Verdict(
            ca=cert,
            status=status,
            reason=_reason(status, cert, record, self.options, superseded_at),
            intune=record,
            device=device,
            device_gone=gone,
            device_candidates=candidates,
            ca_device=name or None,
        )


def classify(
    certificates: Iterable[CaCertificate],
    side: IntuneSide,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
    keep_cert: Callable[[Status, CaCertificate, bool], bool] | None = None,
    defer_records: bool = False,
) -> JoinResult:
    """Classify every CA certificate as it streams past.

    Statuses up to within_grace are decided on the spot; the rest (the only ones that can be
    findings) wait until every delivered certificate is known, because a renewal later in the
    export can supersede them. Without ``keep_all`` the decided ones are only counted, unless
    ``keep_if`` asks for them (device evidence needs a device's delivered renewals too) or
    ``keep_cert`` does from the status, the certificate and whether Intune reports it delivered,
    before a verdict is built (the views: revoked but installed, expiring). With
    ``defer_records`` the unknown_to_ca records, and those view-only certificates (unless
    ``keep_if`` needs their verdicts), go into ``deferred`` unread instead.
    """
    work = _Classifier(side, options)
    ca_issuers: dict[str | None, str | None] = {}
    kept: list[Verdict | None] = []
    pending: list[tuple[int, CaCertificate, Entry | None]] = []
    dropped: Counter[str] = Counter()
    deferred: list[_Candidate] | None = None
    if defer_records and not keep_all and keep_if is None:
        deferred = []

    for cert in certificates:
        if cert.issuer not in ca_issuers:
            ca_issuers[cert.issuer] = work.issuer_keys[cert.issuer] if cert.issuer else None
        found = work.index.match(cert, ca_issuers[cert.issuer], work.issuer_keys)
        work.mark_matched(found)
        entry = _best(found) if found else None
        status = work.decide(cert, entry)
        if status is None:
            pending.append((len(kept), cert, entry))
            kept.append(None)
        elif keep_all:
            kept.append(work.verdict(status, cert, entry))
        elif keep_cert is not None and keep_cert(
            status, cert, entry is not None and entry.delivered
        ):
            if deferred is None:
                kept.append(work.verdict(status, cert, entry))
            else:
                deferred.append((status, cert, entry))
        elif keep_if is not None and keep_if(verdict := work.verdict(status, cert, entry)):
            kept.append(verdict)
        else:
            dropped[status.value] += 1

    for position, cert, entry in pending:
        status, superseded_at = work.settle(cert, entry)
        kept[position] = work.verdict(status, cert, entry, superseded_at)

    covered = {k for k in ca_issuers.values() if k is not None}
    # An export without issuer could be from any CA, so every Intune issuer counts as covered.
    unknown = _unknown_to_ca(work, covered, every_issuer=None in ca_issuers)
    verdicts = tuple(v for v in kept if v is not None)
    if defer_records:
        later = Deferred(work.build, deferred or [], unknown)
        return JoinResult(verdicts, (), dict(dropped), later)
    records = tuple(work.side.certificate(entry) for entry in unknown)
    return JoinResult(verdicts, records, dict(dropped))


def _unknown_to_ca(work: _Classifier, covered: set[str], every_issuer: bool) -> list[Entry]:
    """Intune records the exports should contain but do not, one per (issuer, serial)."""
    seen: set[tuple[str | None, int | str | None]] = set()
    unknown = []
    for entry in work.side.entries:
        if work.was_matched(entry) or (entry.serial is None and entry.thumbprint is None):
            continue
        key = work.issuer_keys[entry.issuer] if entry.issuer else None
        if not every_issuer and key not in covered:
            continue
        identity = (key, entry.serial if entry.serial is not None else entry.thumbprint)
        if identity in seen:
            continue
        seen.add(identity)
        unknown.append(entry)
    return unknown


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
        case Status.OUT_OF_SCOPE if cert.out_of_scope is not None:
            return cert.out_of_scope
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
