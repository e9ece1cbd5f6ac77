"""PSPKI `Get-IssuedRequest` / `Get-RevokedRequest | Export-Csv` exports.

PSPKI names each property after the AD CS schema column (`RequestID`, `Request.RequesterName`,
`SerialNumber`, ...), so the header is fixed whatever the CA's language; only the DateTime cells
follow the culture of the machine that ran Export-Csv.
"""

from __future__ import annotations

from reconcile.ca.dates import CultureDates
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import Dialect

NAME = CaFormat.PSPKI
COLUMNS = {
    "requestid": "request_id",
    "request.requestid": "request_id",
    "request.requestername": "requester",
    "requestername": "requester",
    "commonname": "common_name",
    "distinguishedname": "subject",
    "notbefore": "not_before",
    "notafter": "not_after",
    "serialnumber": "serial",
    "certificatetemplate": "template",
    "certificatehash": "thumbprint",
    "request.revokedwhen": "revoked_at",
    "request.disposition": "disposition",
    "disposition": "disposition",
    "upn": "upn",
    "configstring": "config_string",
    "rowid": "ignore",
    "table": "ignore",
    "properties": "ignore",
    "request.revokedreason": "ignore",
    "request.revokedeffectivewhen": "ignore",
    "request.submittedwhen": "ignore",
    "request.resolvedwhen": "ignore",
    "request.commonname": "ignore",
    "request.distinguishedname": "ignore",
    "request.statuscode": "ignore",
    "request.dispositionmessage": "ignore",
    "email": "ignore",
    "subjectkeyidentifier": "ignore",
    "rawcertificate": "ignore",
}
# Headers no other format uses; SerialNumber and NotBefore are shared with EJBCA.
SIGNATURE = frozenset(COLUMNS) - {"serialnumber", "notbefore", "table", "properties"}


def dialect(dates: CultureDates) -> Dialect:
    return Dialect(
        name=NAME,
        columns=COLUMNS,
        nulls=frozenset({""}),
        serial_base=16,
        dates=dates,
    )
