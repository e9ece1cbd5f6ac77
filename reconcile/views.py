"""Views of one run no single tool gives: revoked but still installed, expiring without a
renewal, and a revocation plan for the findings.

They come from the same join as the findings: a revoked or delivered certificate is kept only
when it belongs to a view (``wanted``), so a million-row run stays small. The plan only ever
*describes* a revocation; reconcile never calls a CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import PurePath
from typing import TYPE_CHECKING

from reconcile.ca import cloudpki
from reconcile.engine import renewal
from reconcile.engine.db import Database
from reconcile.identity import serial_hex
from reconcile.join import ViewKeep
from reconcile.model import (
    CaCertificate,
    InputFile,
    Status,
    Verdict,
)
from reconcile.spool import Records, Sorter, Spool

if TYPE_CHECKING:
    from reconcile.intune.connectors import ConnectorHealth


class View(StrEnum):
    """The views; the values are their file stems in a bundle."""

    REVOKED_INSTALLED = "revoked-installed"
    EXPIRING = "expiring"
    REVOCATION_PLAN = "revocation-plan"


class RevocationReason(StrEnum):
    """RFC 5280 CRLReason names, as ``openssl ca -crl_reason`` spells them."""

    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"


REASON_CODES = {RevocationReason.SUPERSEDED: 4, RevocationReason.CESSATION_OF_OPERATION: 5}

NEXT_STEPS = {
    View.REVOKED_INSTALLED: (
        "remove it from the device (profile change, or retire/wipe the device) and check that "
        "relying parties fetch the CA's CRL"
    ),
    View.EXPIRING: (
        "check that the device checks in and that the Certificate Connector can issue "
        "(renewal starts at the profile's renewal threshold)"
    ),
}
PLAN_NEXT_STEPS = {
    RevocationReason.SUPERSEDED: "review, then revoke: a delivered renewal replaced it",
    RevocationReason.CESSATION_OF_OPERATION: "review, then revoke: its device is gone from Intune",
}

AD_CS_FORMATS = frozenset({"certutil", "certutil-text", "pspki"})


@dataclass(frozen=True, slots=True)
class ViewRow:
    """One certificate in one view; ``verdict`` is the run's verdict for it."""

    view: View
    verdict: Verdict
    next_step: str
    days_left: int | None = None
    reason: RevocationReason | None = None
    command: str = ""
    ca_format: str = ""


@dataclass(frozen=True, slots=True)
class Views:
    """Every view of one run, each sorted by serial; empty views are still views. A run's
    views are spools (read by iterating); tuples do as well."""

    expiry_days: int
    revoked_installed: Sequence[ViewRow] = ()
    expiring: Sequence[ViewRow] = ()
    revocation_plan: Sequence[ViewRow] = ()
    connectors: ConnectorHealth | None = None

    def rows(self, view: View) -> Sequence[ViewRow]:
        match view:
            case View.REVOKED_INSTALLED:
                return self.revoked_installed
            case View.EXPIRING:
                return self.expiring
            case View.REVOCATION_PLAN:
                return self.revocation_plan

    def counts(self) -> dict[str, int]:
        """Count per view, keyed with underscores (history and run.json keys)."""
        return {v.value.replace("-", "_"): len(self.rows(v)) for v in View}

    def views_of(self, serial: int, issuer: str | None) -> tuple[View, ...]:
        """The views a CA certificate is in (for ``explain``)."""
        return tuple(
            view
            for view in View
            if any(
                r.verdict.ca.serial == serial and r.verdict.ca.issuer == issuer
                for r in self.rows(view)
            )
        )


@dataclass(frozen=True)
class ViewOptions:
    as_of: datetime
    expiry_days: int = 30
    ca_config: Mapping[str, str] = field(default_factory=dict)
    """CA config (``host\\CA name``) per CA export path, where known, for ``certutil -config``."""


def wanted(options: ViewOptions) -> ViewKeep:
    """Which decided (non-finding) certificates the join must keep for the views."""
    return ViewKeep(options.as_of, options.as_of + timedelta(days=options.expiry_days))


def _days_left(verdict: Verdict, as_of: datetime) -> int:
    assert verdict.ca.not_after is not None
    return (verdict.ca.not_after - as_of) // timedelta(days=1)


def plan_reason(verdict: Verdict) -> RevocationReason | None:
    """Why a finding belongs in the revocation plan, or None.

    Only findings qualify, and never one a device holds: ``installed_not_reported`` is on a
    device by its own log, so revoking it could break a working device.
    """
    if not verdict.is_finding or verdict.status is Status.INSTALLED_NOT_REPORTED:
        return None
    if verdict.intune is not None and verdict.intune.delivered:
        return None
    if verdict.status is Status.SUPERSEDED:
        return RevocationReason.SUPERSEDED
    if verdict.device_gone:
        return RevocationReason.CESSATION_OF_OPERATION
    return None


# --- revocation commands, one builder per CA kind -------------------------------------------


@dataclass(frozen=True)
class PlanTarget:
    """What a revocation command needs to know about one certificate."""

    serial: int
    issuer: str | None
    reason: RevocationReason
    export_path: str
    ca_config: str | None
    cloud_pki_ca_id: str | None = None
    cloud_pki_leaf_id: str | None = None

    @classmethod
    def of(cls, ca: CaCertificate, reason: RevocationReason, ca_config: str | None) -> PlanTarget:
        """The target for a CA certificate, named by the export (or snapshot) it came from."""
        leaf = ca.cloud_pki_leaf_id
        return cls(
            ca.serial,
            ca.issuer,
            reason,
            ca.source,
            ca_config,
            ca.template_oid if leaf else None,
            leaf,
        )

    @property
    def code(self) -> int:
        return REASON_CODES[self.reason]


CommandBuilder = Callable[[PlanTarget], str]


_UNSAFE_IN_QUOTES = str.maketrans({'"': "?", "$": "?", "`": "?"})


def _quoted(text: str) -> str:
    """Double-quoted for both PowerShell and sh: characters either would expand are replaced,
    since issuer names and paths come from the CA export."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return '"' + clean.translate(_UNSAFE_IN_QUOTES) + '"'


def _certutil(target: PlanTarget) -> str:
    serial = serial_hex(target.serial)
    if target.ca_config:
        return f"certutil -config {_quoted(target.ca_config)} -revoke {serial} {target.code}"
    return (
        f"certutil -revoke {serial} {target.code}  "
        '# CA config unknown: run on the CA, or add -config "host\\CA name" (ca.config)'
    )


def _openssl(target: PlanTarget) -> str:
    newcerts = PurePath(target.export_path).parent / "newcerts" / f"{serial_hex(target.serial)}.pem"
    return f"openssl ca -revoke {_quoted(str(newcerts))} -crl_reason {target.reason.value}"


def _ejbca(target: PlanTarget) -> str:
    issuer = target.issuer or "<issuer DN>"
    return (
        f"ejbca.sh ra revokecert --dn {_quoted(issuer)} -s {serial_hex(target.serial)} "
        f"-r {target.code}"
    )


def _cloud_pki(target: PlanTarget) -> str:
    """Graph's revokeLeafCertificate, through the Azure CLI (``az login`` as an Intune admin)."""
    if target.cloud_pki_ca_id is None or target.cloud_pki_leaf_id is None:
        return _manual(target)
    safe = {
        k: "".join(ch if ch.isalnum() or ch == "-" else "?" for ch in v)
        for k, v in (("ca", target.cloud_pki_ca_id), ("leaf", target.cloud_pki_leaf_id))
    }
    url, body = cloudpki.revoke_request(safe["ca"], safe["leaf"])
    return f"az rest --method POST --url {_quoted(url)} --body '{body}'"


def _manual(target: PlanTarget) -> str:
    return (
        f"# no revocation command known for this CA: revoke serial {serial_hex(target.serial)} "
        f"with reason {target.reason.value} ({target.code}) in the CA's own console"
    )


COMMANDS: dict[str, CommandBuilder] = {
    "certutil": _certutil,
    "certutil-text": _certutil,
    "pspki": _certutil,
    "openssl-index": _openssl,
    "ejbca": _ejbca,
    cloudpki.LEAVES: _cloud_pki,
}
"""CA export format -> revocation command; a new CA kind registers its builder here."""


def revoke_command(ca_format: str, target: PlanTarget) -> str:
    return COMMANDS.get(ca_format, _manual)(target)


def renamed(views: Views, names: Mapping[str, str], ca_config: str | None) -> Views:
    """The same views with every row named by the path the run read (``verify`` recomputes
    from copies); plan commands that name the export's folder are rebuilt from that path."""

    def rename(row: ViewRow) -> ViewRow:
        original = names.get(row.verdict.ca.source)
        if original is None:
            return row
        ca = replace(row.verdict.ca, source=original)
        command = row.command
        if row.reason is not None:
            command = revoke_command(row.ca_format, PlanTarget.of(ca, row.reason, ca_config))
        return replace(row, verdict=replace(row.verdict, ca=ca), command=command)

    return replace(
        views,
        revoked_installed=tuple(map(rename, views.revoked_installed)),
        expiring=tuple(map(rename, views.expiring)),
        revocation_plan=tuple(map(rename, views.revocation_plan)),
    )


def script_suffix(ca_format: str) -> str:
    """AD CS commands go into a PowerShell script, every other CA's into a shell script."""
    return "ps1" if ca_format in AD_CS_FORMATS else "sh"


# --- building the views ----------------------------------------------------------------------


def _verdict_serial_key(verdict: Verdict) -> tuple[str, int]:
    return (verdict.ca.issuer or "", verdict.ca.serial)


def _serial_key(row: ViewRow) -> tuple[str, int]:
    return _verdict_serial_key(row.verdict)


def build(
    verdicts: Iterable[Verdict],
    db: Database,
    inputs: Sequence[InputFile],
    options: ViewOptions,
) -> Views:
    """The views of a run, from its kept verdicts (read once) and the engine's Intune records
    (``db``).

    Each view is sorted by (issuer, serial) with a bounded external sort (``Sorter``), so a
    view of a million certificates is never held whole.
    """
    formats = {i.path: i.format for i in inputs}
    keep = wanted(options)
    revoked: Sorter[ViewRow] = Sorter(_serial_key)
    plan: Sorter[ViewRow] = Sorter(_serial_key)
    # Sorted before the renewal check: dropping the renewed ones keeps the rest in order.
    candidates: Sorter[Verdict] = Sorter(_verdict_serial_key)
    for v in verdicts:
        delivered = v.intune is not None and v.intune.delivered
        if keep.revoked_installed(v.status, v.ca, delivered):
            revoked.append(ViewRow(View.REVOKED_INSTALLED, v, NEXT_STEPS[View.REVOKED_INSTALLED]))
        if delivered and keep.expiry_candidate(v.status, v.ca):
            candidates.append(v)
        reason = plan_reason(v)
        if reason is None:
            continue
        ca_format = formats.get(v.ca.source, "")
        target = PlanTarget.of(v.ca, reason, options.ca_config.get(v.ca.source))
        plan.append(
            ViewRow(
                View.REVOCATION_PLAN,
                v,
                PLAN_NEXT_STEPS[reason],
                reason=reason,
                command=revoke_command(ca_format, target),
                ca_format=ca_format,
            )
        )
    expiry = candidates.result()
    renewed = renewal.renewed(db, map(renewal.candidate_of, expiry))
    return Views(
        expiry_days=options.expiry_days,
        revoked_installed=revoked.result(),
        expiring=_Expiring(expiry, renewed, options.as_of),
        revocation_plan=plan.result(),
    )


class _Expiring(Records[ViewRow]):
    """The expiring view: the sorted candidates less the renewed ones, each made a row as it
    is read (so the candidates are spooled once, not again as rows)."""

    __slots__ = ("_as_of", "_candidates", "_renewed")

    def __init__(self, candidates: Spool[Verdict], renewed: set[int], as_of: datetime):
        self._candidates = candidates
        self._renewed = renewed
        self._as_of = as_of

    def __iter__(self) -> Iterator[ViewRow]:
        step = NEXT_STEPS[View.EXPIRING]
        for index, v in enumerate(self._candidates):
            if index not in self._renewed:
                yield ViewRow(View.EXPIRING, v, step, days_left=_days_left(v, self._as_of))

    def __len__(self) -> int:
        return len(self._candidates) - len(self._renewed)

    def __bool__(self) -> bool:
        return len(self) > 0
