"""Microsoft Cloud PKI as a CA source: Graph's leaf certificates become CaCertificate records.

Cloud PKI has no database to export. ``fetch`` stores its issuing CAs and leaf certificates in
the snapshot (``cloud_pki_cas.jsonl``, ``cloud_pki_leaf_certificates.jsonl``) under the same
completeness rules as every collection, and this source turns each leaf into the record an
export row becomes, so one join serves AD CS, Cloud PKI, or both in one estate.

The template of a leaf is its issuing CA (id as the OID, display name as the name), so
``--template`` picks Cloud PKI CAs by id or name. The leaf's ``deviceId`` is Intune's managed
device id: the join uses it to link the device exactly, where export rows only offer a CN.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

import msgspec

from reconcile.ca.formats import CaSource
from reconcile.errors import InputError
from reconcile.identity import common_name, parse_serial, parse_thumbprint
from reconcile.model import CaCertificate, InputFile, Reject
from reconcile.timeparse import parse_iso

__all__ = [
    "CAS",
    "LEAVES",
    "SOURCE",
    "CloudPkiSource",
    "LeafStatus",
    "check_leaf",
    "decode_ca",
    "leaf_certificate",
    "revoke_command",
]

CAS = "cloud_pki_cas"
LEAVES = "cloud_pki_leaf_certificates"
SOURCE = CaSource.CLOUD_PKI
"""The ``--ca-source`` / ``ca.sources`` value."""

CAS_PATH = "/beta/deviceManagement/cloudCertificationAuthority"
LEAVES_PATH = "/beta/deviceManagement/cloudCertificationAuthorityLeafCertificate"
REVOKE_PATH = CAS_PATH + "/{id}/revokeLeafCertificate"
GRAPH_URL = "https://graph.microsoft.com"

log = logging.getLogger("reconcile.ca")


class LeafStatus(StrEnum):
    """cloudCertificationAuthorityLeafCertificateStatus (Graph beta)."""

    UNKNOWN = "unknown"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class _Leaf(msgspec.Struct, rename="camel"):
    """cloudCertificationAuthorityLeafCertificate; only what the record needs."""

    id: str | None = None
    subject_name: str | None = None
    issuer_id: str | None = None
    issuer_name: str | None = None
    certificate_status: str | None = None
    validity_start_date_time: str | None = None
    validity_end_date_time: str | None = None
    thumbprint: str | None = None
    serial_number: str | None = None
    revocation_date_time: str | None = None
    device_name: str | None = None
    user_principal_name: str | None = None
    device_id: str | None = None


class _Ca(msgspec.Struct, rename="camel"):
    id: str | None = None
    display_name: str | None = None
    common_name: str | None = None


_LEAF = msgspec.json.Decoder(_Leaf)
_CA = msgspec.json.Decoder(_Ca)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return sys.intern(value) if value else None


def _decode_leaf(raw: bytes) -> _Leaf:
    try:
        return _LEAF.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def decode_ca(raw: bytes) -> tuple[str, str | None]:
    """(id, display name) of one cloudCertificationAuthority line; ValueError if unusable."""
    try:
        ca = _CA.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"not a cloudCertificationAuthority: {exc}") from None
    ca_id = _clean(ca.id)
    if ca_id is None:
        raise ValueError("cloudCertificationAuthority without an id")
    return ca_id, _clean(ca.display_name) or _clean(ca.common_name)


def _time(value: str | None, name: str) -> datetime | None:
    try:
        return parse_iso(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date and time") from None


def leaf_certificate(
    raw: bytes,
    line: int,
    source: str,
    cas: Mapping[str, str | None],
    fetched_at: datetime | None,
) -> tuple[CaCertificate, str]:
    """The record and the leaf's status text; raises ValueError naming what is unusable.

    Revoked means ``revocationDateTime`` set or status ``revoked``; a revoked leaf without a
    date is revoked at the latest when it was fetched, so that time stands in for it.
    """
    leaf = _decode_leaf(raw)
    serial_text = _clean(leaf.serial_number)
    if serial_text is None:
        raise ValueError("leaf certificate without serialNumber")
    serial = parse_serial(serial_text)
    thumbprint_text = _clean(leaf.thumbprint)
    thumbprint = parse_thumbprint(thumbprint_text) if thumbprint_text else None
    status = _clean(leaf.certificate_status) or LeafStatus.UNKNOWN.value
    revoked_at = _time(leaf.revocation_date_time, "revocationDateTime")
    if revoked_at is None and status == LeafStatus.REVOKED:
        revoked_at = fetched_at
    subject = _clean(leaf.subject_name)
    ca_id = _clean(leaf.issuer_id)
    ca_name = cas.get(ca_id) if ca_id else None
    # Without an issuer the join would treat every Intune issuer as covered by this CA.
    issuer = _clean(leaf.issuer_name) or ca_name
    record = CaCertificate(
        serial=serial,
        thumbprint=thumbprint,
        issuer=issuer,
        subject=subject,
        common_name=common_name(subject) if subject else _clean(leaf.device_name),
        requester=_clean(leaf.user_principal_name),
        template_oid=ca_id,
        template_name=ca_name or issuer,
        request_id=None,
        not_before=_time(leaf.validity_start_date_time, "validityStartDateTime"),
        not_after=_time(leaf.validity_end_date_time, "validityEndDateTime"),
        revoked_at=revoked_at,
        source=source,
        line=line,
        managed_device_id=_device_id(leaf.device_id),
        cloud_pki_leaf_id=_clean(leaf.id),
    )
    return record, status


def _device_id(value: str | None) -> str | None:
    """Intune writes the all-zero GUID for "no device"; it must not read as a gone device."""
    device = _clean(value)
    if device is None or not device.strip("0-"):
        return None
    return device


def check_leaf(raw: bytes) -> None:
    """Validate a leaf line exactly as ``leaf_certificate`` reads it (snapshot scan)."""
    leaf_certificate(raw, 0, "", {}, None)


_NOT_REVOKED_UNKNOWN = (LeafStatus.UNKNOWN.value, LeafStatus.UNKNOWN_FUTURE_VALUE.value)
_KNOWN = frozenset(s.value for s in LeafStatus)


class CloudPkiSource:
    """The snapshot's leaf certificates, streamed once as CaCertificate records.

    Lines the snapshot scan rejected are skipped here; ``rejects`` reports them, like an
    export's, once. Statuses Graph calls ``unknown`` or
    ``unknownFutureValue`` (or words not yet documented) are not revoked; that is said once
    per run, with the counts.
    """

    def __init__(
        self,
        directory: Path,
        cas: Mapping[str, str | None],
        fetched_at: datetime | None,
        input_file: InputFile,
        rejects: Sequence[Reject] = (),
    ):
        self.path = directory / f"{LEAVES}.jsonl"
        self._cas = cas
        self._fetched_at = fetched_at
        self.input_file = input_file
        """Provenance as a CA input: the snapshot scan's sha256, line count and rejects."""
        self.rejects = tuple(rejects)
        self._rejected = frozenset(r.line for r in rejects)
        self._said = False
        self.statuses: Counter[str] = Counter()
        self.vague: Counter[str] = Counter()
        self.unlisted: Counter[str] = Counter()
        """Leaves by issuerId that the CA list does not hold (deleted since, or read apart)."""
        """Leaves of a vague status and no revocation date: read as not revoked."""

    def __iter__(self) -> Iterator[CaCertificate]:
        """One pass over the file; a second pass (the join's replay) reads it again."""
        self.statuses.clear()
        self.vague.clear()
        self.unlisted.clear()
        source = str(self.path)
        log.info("reading Cloud PKI leaf certificates from %s", source)
        with self.path.open("rb") as handle:
            for line, raw in enumerate(handle, start=1):
                if line in self._rejected:
                    continue
                try:
                    record, status = leaf_certificate(
                        raw, line, source, self._cas, self._fetched_at
                    )
                except ValueError as exc:
                    # The snapshot scan read this line cleanly: the file changed since.
                    raise InputError(f"changed while being read: {exc}", source, line) from None
                self.statuses[status] += 1
                if record.template_oid not in self._cas:
                    self.unlisted[record.template_oid or ""] += 1
                if record.revoked_at is None and (
                    status in _NOT_REVOKED_UNKNOWN or status not in _KNOWN
                ):
                    self.vague[status] += 1
                yield record
        self._say_unknown()

    def _say_unknown(self) -> None:
        if self._said:
            return
        self._said = True
        if self.unlisted:
            log.warning(
                "Cloud PKI leaf certificates of CAs missing from the CA list (template is their "
                "issuerName): %s",
                ", ".join(
                    f"{n} of {ca_id or 'no issuerId'!r}"
                    for ca_id, n in sorted(self.unlisted.items())
                ),
            )
        if not self.vague:
            return
        # Undocumented words come from Graph: repr keeps control characters off the terminal.
        counts = ", ".join(
            f"{n} {s if s in _KNOWN else repr(s)}" for s, n in sorted(self.vague.items())
        )
        log.warning(
            "Cloud PKI leaf certificates with status %s: read as not revoked "
            "(revocationDateTime is not set on them)",
            counts,
        )


def revoke_request(ca_id: str, leaf_id: str, graph_url: str = GRAPH_URL) -> tuple[str, str]:
    """(url, JSON body) of the revokeLeafCertificate action for one leaf of one CA."""
    path = REVOKE_PATH.format(id=quote(ca_id, safe=""))
    body = msgspec.json.encode({"leafCertificateId": leaf_id}).decode()
    return f"{graph_url.rstrip('/')}{path}", body


def revoke_command(cert: CaCertificate, graph_url: str = GRAPH_URL) -> str | None:
    """The Graph call an admin would make to revoke a Cloud PKI leaf; printed, never sent.

    None for a certificate that did not come from Cloud PKI.
    """
    if cert.cloud_pki_leaf_id is None or cert.template_oid is None:
        return None
    url, body = revoke_request(cert.template_oid, cert.cloud_pki_leaf_id, graph_url)
    return f"POST {url} {body}"
