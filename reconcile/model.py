"""The records that flow through a run: CA certificates in, Intune records in, verdicts out.

Raw Graph JSON and raw CSV cells stop at the readers; everything past them is one of these
frozen records.
"""

from __future__ import annotations

import dataclasses
import operator
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from reconcile.spool import Filtered, Spool

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from reconcile.views import Views

_Record = TypeVar("_Record", bound="DataclassInstance")


def _slot_init(cls: type[_Record]) -> type[_Record]:
    """Give a frozen, slotted dataclass an ``__init__`` that sets each slot through its own
    descriptor: the same parameters and defaults, the record as frozen after it as before.

    The generated one calls ``object.__setattr__`` per field, which looks the field up on the
    class each time: 6.6 µs against 2.9 µs for a ``CaCertificate``. A 1M-row run builds about
    half a million of these records (py-spy: 3.6 s in their ``__init__``)."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ would not run")
    params, body = [], []
    scope: dict[str, object] = {}
    for n, f in enumerate(dataclasses.fields(cls)):
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields and defaults")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"default_{n}"] = f.default
            params.append(f"{f.name}=default_{n}")
        scope[f"set_{n}"] = getattr(cls, f.name).__set__
        body.append(f"    set_{n}(self, {f.name})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body), scope)
    init = scope["__init__"]
    assert isinstance(init, types.FunctionType)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = cls.__init__.__annotations__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


class Status(StrEnum):
    """Exactly one per CA certificate; the order of checks lives in join.py."""

    DELIVERED = "delivered"
    NOT_INSTALLED = "not_installed"
    NOT_REPORTED = "not_reported"
    SUPERSEDED = "superseded"
    WITHIN_GRACE = "within_grace"
    REVOKED = "revoked"
    EXPIRED = "expired"
    OUT_OF_SCOPE = "out_of_scope"
    INSTALLED_NOT_REPORTED = "installed_not_reported"
    ACCEPTED = "accepted"


FINDING_STATUSES = frozenset(
    {
        Status.NOT_INSTALLED,
        Status.NOT_REPORTED,
        Status.SUPERSEDED,
        Status.INSTALLED_NOT_REPORTED,
    }
)

DELIVERED_ISSUANCE_STATE = "installed"


class IntuneSource(StrEnum):
    """Where an Intune record came from."""

    STATES = "states"
    REPORT = "report"


@_slot_init
@dataclass(frozen=True, slots=True)
class CaCertificate:
    """One issued certificate as the CA export states it."""

    serial: int
    thumbprint: str | None
    issuer: str | None
    subject: str | None
    common_name: str | None
    requester: str | None
    template_oid: str | None
    template_name: str | None
    request_id: str | None
    not_before: datetime | None
    not_after: datetime | None
    revoked_at: datetime | None
    source: str
    line: int
    san: str | None = None
    # Why the certificate is never a finding whatever Intune says (a CA certificate, say).
    out_of_scope: str | None = None
    managed_device_id: str | None = None
    """Intune's managed device id when the CA itself knows it (Cloud PKI's deviceId)."""
    cloud_pki_leaf_id: str | None = None
    """The Cloud PKI leaf certificate id (revocation is addressed by it); None for exports."""

    def light(self) -> CaCertificate:
        """Without what no view reads (``Verdict.light``): subject, requester, template
        name, request id, SAN."""
        return CaCertificate(
            serial=self.serial,
            thumbprint=self.thumbprint,
            issuer=self.issuer,
            subject=None,
            common_name=self.common_name,
            requester=None,
            template_oid=self.template_oid,
            template_name=None,
            request_id=None,
            not_before=self.not_before,
            not_after=self.not_after,
            revoked_at=self.revoked_at,
            source=self.source,
            line=self.line,
            san=None,
            out_of_scope=self.out_of_scope,
            managed_device_id=self.managed_device_id,
            cloud_pki_leaf_id=self.cloud_pki_leaf_id,
        )


CA_LIGHT_EMPTIES = frozenset({"subject", "requester", "template_name", "request_id", "san"})
"""The fields ``CaCertificate.light`` empties; the engine reads those columns as NULL to build
light records straight from its rows."""


@_slot_init
@dataclass(frozen=True, slots=True)
class IntuneCertificate:
    """One certificate Intune knows about, from a certificate-state record or a report row."""

    source: IntuneSource
    record_id: str
    serial: int | None
    thumbprint: str | None
    issuer: str | None
    state: str
    delivered: bool
    device_name: str | None
    device_id: str | None
    user: str | None
    profile_id: str | None
    profile_name: str | None
    platform: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    state_changed_at: datetime | None
    error_code: int | None
    subject: str | None = None

    def light(self) -> IntuneCertificate:
        """Without what no view reads (``Verdict.light``): the record's id, serial,
        thumbprint, issuer, platform, expiry, last change, error code and subject."""
        return IntuneCertificate(
            source=self.source,
            record_id="",
            serial=None,
            thumbprint=None,
            issuer=None,
            state=self.state,
            delivered=self.delivered,
            device_name=self.device_name,
            device_id=self.device_id,
            user=self.user,
            profile_id=self.profile_id,
            profile_name=self.profile_name,
            platform=None,
            issued_at=self.issued_at,
            expires_at=None,
            state_changed_at=None,
            error_code=None,
            subject=None,
        )


@_slot_init
@dataclass(frozen=True, slots=True)
class ManagedDevice:
    """An Intune managed device, used to say whether a certificate's device still exists."""

    id: str
    device_name: str | None
    azure_ad_device_id: str | None
    serial_number: str | None
    user_principal_name: str | None
    operating_system: str | None
    last_sync: datetime | None

    def light(self) -> ManagedDevice:
        """Without what no view reads (``Verdict.light``): the Entra id, the hardware serial,
        the system and the last sync."""
        return ManagedDevice(
            id=self.id,
            device_name=self.device_name,
            azure_ad_device_id=None,
            serial_number=None,
            user_principal_name=self.user_principal_name,
            operating_system=None,
            last_sync=None,
        )


@dataclass(frozen=True, slots=True)
class CertificateProfile:
    """An Intune SCEP, PKCS or imported-PFX certificate profile."""

    id: str
    display_name: str | None
    odata_type: str


@dataclass(frozen=True, slots=True)
class Reject:
    """An input row that could not be used; reported and counted, never dropped silently."""

    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class InputFile:
    """Provenance of one input file."""

    path: str
    kind: str
    format: str
    sha256: str
    rows: int
    rejected: int


@dataclass(frozen=True, slots=True)
class CaExtent:
    """How far one CA's rows in a run's exports reach, kept in the run history: a CA never
    un-issues a certificate, so an export whose newest row is older than the last run's lost
    rows (cut short, or an older copy)."""

    issuer_key: str
    """``issuer_key`` of the rows' issuer; "" for rows that name none."""
    issuer: str
    certificates: int
    newest_issued: datetime | None
    """The latest not-before among the rows."""
    highest_request_id: int | None
    """AD CS numbers requests in order; None where no row carries a numeric request id."""
    sources: tuple[str, ...] = ()
    """The exports the rows came from."""


@dataclass(frozen=True, slots=True)
class PastExtent:
    """The CAs' reach in the last recorded run before this one, from the history."""

    run_id: str
    as_of: datetime
    extents: tuple[CaExtent, ...]


@_slot_init
@dataclass(frozen=True, slots=True)
class Verdict:
    """A CA certificate with its status and why; the unit every formatter writes."""

    ca: CaCertificate
    status: Status
    reason: str
    intune: IntuneCertificate | None = None
    device: ManagedDevice | None = None
    device_gone: bool = False
    device_candidates: tuple[ManagedDevice, ...] = ()
    """Several managed devices carry the record's device name: none is picked."""
    next_step: str = ""
    first_seen: datetime | None = None
    age_days: int | None = None
    new_since_last_run: bool | None = None
    evidence: str | None = None
    ca_device: str | None = None
    """The device the CA certificate names (CN or --device-pattern), as the CA spells it."""

    @property
    def is_finding(self) -> bool:
        return self.status in FINDING_STATUSES

    def light(self) -> Verdict:
        """The verdict with only the fields the views read (``views.build``, the view files,
        the page, ``views.renamed``, ``Views.views_of``), for a certificate kept for the views
        alone: at a million rows about 79,000 of them are kept, and their subjects, reasons and
        Intune record ids, serials, thumbprints and timestamps were about a third of their
        memory; their devices' other ids, system and last sync another 180 of their 1,500
        bytes. The engine builds these straight from its rows (``Records.light_certificates``);
        tests check that every field not named in the records' ``light`` is kept.

        Built field by field: ``dataclasses.replace`` took about 10 µs a record."""
        return Verdict(
            ca=self.ca.light(),
            status=self.status,
            reason="",
            intune=None if self.intune is None else self.intune.light(),
            device=None if self.device is None else self.device.light(),
            device_gone=self.device_gone,
            device_candidates=self.device_candidates,
            next_step=self.next_step,
            first_seen=self.first_seen,
            age_days=self.age_days,
            new_since_last_run=self.new_since_last_run,
            evidence=self.evidence,
            ca_device=self.ca_device,
        )

    @property
    def managed_name(self) -> str | None:
        """The device as Intune names it (the certificate record's, else the managed device's):
        where every view that names the device starts before its own fallback."""
        if self.intune is not None and self.intune.device_name:
            return self.intune.device_name
        if self.device is not None and self.device.device_name:
            return self.device.device_name
        return None


def _is_finding(verdict: Verdict) -> bool:
    return verdict.status in FINDING_STATUSES


_status = operator.attrgetter("status")


def verdict_spool(
    verdicts: Iterable[Verdict] | None = None, *, copy_of: Sequence[Verdict] | None = None
) -> Spool[Verdict]:
    """Verdicts spooled with their statuses counted, so counts and findings need no pass;
    frozen when ``verdicts`` are given, else empty and open for appending.

    ``copy_of``: the verdicts these are made from, sharing their records. A copy of verdicts in
    memory stays in memory: spilled, it pickled the records it shares and every read made
    copies of them (at 1M rows 50,000 findings, 0.7 s to spill and more to read back, for no
    memory saved)."""
    buffer = None
    if copy_of is not None and not (isinstance(copy_of, Spool) and copy_of.spilled):
        buffer = max(1, len(copy_of))
    spool: Spool[Verdict] = Spool(tally=_status, buffer=buffer)
    if verdicts is None:
        return spool
    spool.extend(verdicts)
    return spool.freeze()


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one run produced; formatters, history and the CLI read only this.

    ``verdicts`` holds every finding, and every other CA certificate only when the run was asked
    to keep them all (``--all``, explain, verify); the statuses of those not kept are counted in
    ``dropped``. At a million certificates that is the difference between fitting in memory
    or not. A run's verdicts and unknown_to_ca are spools (``verdict_spool``, ``Spool``): read
    them by iterating, as often as needed, never by index in a loop.
    """

    run_id: str
    as_of: datetime
    grace_hours: float
    verdicts: Sequence[Verdict]
    unknown_to_ca: Sequence[IntuneCertificate]
    rejects: tuple[Reject, ...]
    inputs: tuple[InputFile, ...]
    templates: tuple[str, ...] = ()
    intune_sources: tuple[str, ...] = ()
    tenant_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)
    # How the CA exports were read (date order and how it was chosen, zone, inferred issuer).
    notes: tuple[str, ...] = ()
    duplicate_rows: int = 0
    views: Views | None = None
    ca_extent: tuple[CaExtent, ...] = ()

    @property
    def findings(self) -> Sequence[Verdict]:
        """The verdicts that are findings, in order: a lazy view of a spool, counted from its
        tally (the spool itself when every verdict is a finding)."""
        verdicts = self.verdicts
        if isinstance(verdicts, tuple):
            return tuple(v for v in verdicts if v.is_finding)
        if isinstance(verdicts, Spool) and verdicts.tallied:
            count = sum(n for s, n in verdicts.tally().items() if s in FINDING_STATUSES)
            return verdicts if count == len(verdicts) else Filtered(verdicts, _is_finding, count)
        return Filtered(verdicts, _is_finding)

    @property
    def revoked_installed(self) -> int:
        """Certificates the CA revoked that Intune still reports installed: a security finding."""
        return len(self.views.revoked_installed) if self.views is not None else 0

    @property
    def clean(self) -> bool:
        """No finding and no revoked certificate still installed: the run's all-clear (exit 0);
        expiring certificates alone do not spoil it."""
        return not self.findings and not self.revoked_installed

    def counts(self) -> dict[str, int]:
        """Counts per status, every status present (zeros included) in a fixed order."""
        counts = dict.fromkeys((s.value for s in Status), 0)
        for status, count in self.dropped.items():
            counts[status] += count
        verdicts = self.verdicts
        if isinstance(verdicts, Spool) and verdicts.tallied:
            for key, count in verdicts.tally().items():
                counts[str(key)] += count
        else:
            for verdict in verdicts:
                counts[verdict.status.value] += 1
        counts["unknown_to_ca"] = len(self.unknown_to_ca)
        return counts


TREND_RUNS = 120
"""How many recorded runs a report's trend shows."""


@dataclass(frozen=True, slots=True)
class FindingRef:
    """A finding as history knows it, enough to name it in a summary."""

    issuer: str
    serial: str
    label: str | None
    status: str
    first_seen: datetime
    age_days: int


@dataclass(frozen=True, slots=True)
class RunDelta:
    """What changed since the previous recorded run."""

    previous_run_id: str | None
    new: tuple[FindingRef, ...]
    resolved: tuple[FindingRef, ...]
    longest_open: tuple[FindingRef, ...]
    open_count: int


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded run, as `reconcile history` lists it."""

    run_id: str
    as_of: datetime
    started_at: datetime
    tenant: str | None
    counts: dict[str, int]
    exit_code: int
    duration: float
    inputs: tuple[dict[str, str], ...]


@dataclass(frozen=True, slots=True)
class FindingDetail:
    """One finding open in a past run, as `reconcile history RUN_ID` lists it."""

    serial: str
    label: str | None
    status: str
    first_seen: datetime
    age_days: int
