"""EJBCA `CertificateData` table exports (a database dump or query result as CSV).

The database keeps the serial in DECIMAL, the SHA-1 fingerprint in lowercase hex, times as epoch
milliseconds (-1 = never) and the revocation state in `status`. Database tools may fold column
names to lower case and print NULL as `NULL` or `\\N`, so both are accepted.
"""

from __future__ import annotations

from datetime import datetime

from reconcile.ca.dates import CultureDates, epoch_millis
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import DateCell, Dialect

NAME = CaFormat.EJBCA
COLUMNS = {
    "fingerprint": "thumbprint",
    "issuerdn": "issuer",
    "subjectdn": "subject",
    "subjectaltname": "san",
    "serialnumber": "serial",
    "notbefore": "not_before",
    "expiredate": "not_after",
    "revocationdate": "revoked_at",
    "status": "status",
    "username": "requester",
    "certificateprofileid": "template_name",
    "cafingerprint": "ignore",
    "type": "cert_type",
    "revocationreason": "ignore",
    "base64cert": "ignore",
    "tag": "ignore",
    "endentityprofileid": "ignore",
    "updatetime": "ignore",
    "subjectkeyid": "ignore",
    "rowversion": "ignore",
    "rowprotection": "ignore",
    "crlpartitionindex": "ignore",
    "certificaterequest": "ignore",
    "invaliditydate": "ignore",
    "accountbindingid": "ignore",
}
SIGNATURE = frozenset(COLUMNS) - {"serialnumber", "notbefore", "status", "type", "tag"}
# CertificateConstants: 20 active, 21 notified about expiration (both valid), 40 revoked
# (on hold included), 30 temporarily revoked (old versions), 60 archived = expired, whose
# revocation date still tells whether it had been revoked first.
_REVOKED = frozenset({30, 40})
_VALID = frozenset({0, 10, 11, 20, 21})


def status_rule(text: str) -> bool | None:
    value = text.strip()
    if not (value.lstrip("-").isdigit() and value.isascii()):
        raise ValueError(f"{value[:20]!r} is not an EJBCA status code")
    code = int(value)
    if code in _REVOKED:
        return True
    if code in _VALID:
        return False
    return None


def _times(culture: CultureDates) -> DateCell:
    """Epoch milliseconds, or a formatted time when the dump tool rendered the column."""

    def parse(text: str) -> datetime | None:
        value = text.strip()
        if value.lstrip("-").isdigit() and value.isascii():
            return epoch_millis(value)
        return culture(value)

    return parse


def dialect(culture: CultureDates) -> Dialect:
    return Dialect(
        name=NAME,
        columns=COLUMNS,
        nulls=frozenset({"", "NULL", "null", "\\N"}),
        serial_base=10,
        dates=_times(culture),
        status_rule=status_rule,
    )
