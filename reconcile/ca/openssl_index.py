"""OpenSSL `ca` database, `index.txt`: one tab-separated line per certificate, no header.

    V	251120150245Z		1000	unknown	/C=ZZ/CN=Herong Yang
    R	251121030239Z	240101120000Z,keyCompromise	1001	unknown	/C=ZZ/CN=host

Status V (valid), R (revoked) or E (expired: kept, classification uses not_after). No issuer
column and no thumbprint: the issuer comes from the options.
"""

from __future__ import annotations

import sys

from reconcile.ca.dates import asn1_time
from reconcile.ca.formats import CaFormat
from reconcile.identity import common_name, parse_serial
from reconcile.model import CaCertificate

NAME = CaFormat.OPENSSL_INDEX
_FIELDS = 6
_STATUSES = frozenset({"V", "R", "E"})


def _is_time(text: str) -> bool:
    return text.endswith("Z") and len(text) in (13, 15) and text[:-1].isdigit()


def looks_like(line: str) -> bool:
    """A first line is an index.txt row when it starts with a status and an expiry time."""
    fields = line.rstrip("\r\n").split("\t")
    return len(fields) >= 4 and fields[0] in _STATUSES and _is_time(fields[1])


class LineConverter:
    """One index.txt line to a record; ValueError names what is wrong with it."""

    def __init__(self, *, source: str, issuer: str | None) -> None:
        self._source = sys.intern(source)
        self._issuer = sys.intern(issuer) if issuer else None

    def __call__(self, line: str, number: int) -> CaCertificate:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < _FIELDS:
            raise ValueError(f"{len(fields)} tab-separated fields where index.txt has {_FIELDS}")
        status, expiry, revocation, serial_text = fields[0], fields[1], fields[2], fields[3]
        subject = "\t".join(fields[5:]).strip() or None
        if status not in _STATUSES:
            raise ValueError(f"status {status[:10]!r} is not V, R or E")
        try:
            not_after = asn1_time(expiry)
        except ValueError as exc:
            raise ValueError(f"expiry: {exc}") from None
        revoked_at = None
        if status == "R":
            when = revocation.partition(",")[0]
            if not when.strip():
                raise ValueError("status R without a revocation time")
            try:
                revoked_at = asn1_time(when)
            except ValueError as exc:
                raise ValueError(f"revocation: {exc}") from None
        try:
            serial = parse_serial(serial_text, 16)
        except ValueError as exc:
            raise ValueError(f"serial: {exc}") from None
        return CaCertificate(
            serial=serial,
            thumbprint=None,
            issuer=self._issuer,
            subject=subject,
            common_name=common_name(subject) if subject else None,
            requester=None,
            template_oid=None,
            template_name=None,
            request_id=None,
            not_before=None,
            not_after=not_after,
            revoked_at=revoked_at,
            source=self._source,
            line=number,
        )
