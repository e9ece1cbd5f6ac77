"""Header-driven rows (certutil, PSPKI, EJBCA, mapped) into CaCertificate records.

The four CSV formats differ only in their headers and in how a few cells are spelled: serial
base, date encoding, what marks a revoked row. A Dialect captures those differences; one
converter, specialised per file once the header is known, does the per-row work. A bad cell
raises ValueError naming its column; the reader turns that into a Reject for the row.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconcile.ca.columns import IGNORE, header_key
from reconcile.identity import common_name, parse_serial, parse_thumbprint
from reconcile.model import CaCertificate

Converter = Callable[[list[str], int], CaCertificate]
DateCell = Callable[[str], "datetime | None"]
StatusRule = Callable[[str], "bool | None"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# AD CS dispositions that are requests, not certificates: active, pending, error, denied.
_NOT_ISSUED = {8: "in process", 9: "pending", 30: "failed", 31: "denied"}
_REVOKED_DISPOSITION = 21
# Few distinct templates and dispositions exist; the bound only guards against hostile files.
_SMALL_CACHE = 4096
# AD CS templates for CA certificates and CA-to-CA trust: never issued to a device.
_CA_TEMPLATES = frozenset({"caexchange", "crossca", "subca", "ca"})
# EJBCA CertificateConstants.CERTTYPE_*: 1 end entity, 2 sub CA, 8 root CA.
_EJBCA_CA_TYPES = {"2": "a sub CA", "8": "a root CA"}
# `1.3.6.1.4.1.311.21.8.1.2 Name` (csv) or `"1.3.6.1.4.1.311.21.8.1.2" Name` (text output).
_OID = re.compile(r"(\d+(?:\.\d+){2,})\"?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Dialect:
    """What one export format means by its cells."""

    name: str
    columns: Mapping[str, str]
    nulls: frozenset[str]
    serial_base: int
    dates: DateCell
    status_rule: StatusRule | None = None
    request_id: Callable[[str], str] | None = None
    trailers: bool = False
    delimiter: str | None = None

    def fields_of(self, header: Sequence[str]) -> dict[str, int]:
        """Field -> column position; the first column mapped to a field wins."""
        index: dict[str, int] = {}
        for position, name in enumerate(header):
            target = self.columns.get(header_key(name))
            if target is not None and target != IGNORE and target not in index:
                index[target] = position
        return index


class _Templates:
    """Splits certutil's `<OID> Name` cell; a handful of values repeat millions of times."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str | None, str | None]] = {}

    def __call__(self, text: str) -> tuple[str | None, str | None]:
        hit = self._cache.get(text)
        if hit is None:
            value = text.strip().strip('"')
            match = _OID.match(value)
            if match:
                name = (match.group(2) or "").strip().strip('"').strip()
                hit = (sys.intern(match.group(1)), sys.intern(name) if name else None)
            else:
                hit = (None, sys.intern(value) if value else None)
            if len(self._cache) < _SMALL_CACHE:
                self._cache[text] = hit
        return hit


def _disposition(text: str) -> int:
    """`0x15 (21) -- Revoked`, `21 -- Revoked` and plain `21` all mean 21."""
    value = text.strip()
    if "(" in value and ")" in value:
        inner = value[value.index("(") + 1 : value.index(")")].strip()
        if inner.isdigit() and inner.isascii():
            return int(inner)
    token = value.split(maxsplit=1)[0] if value else ""
    try:
        if token[:2] in ("0x", "0X"):
            return int(token[2:], 16)
        if token.isdigit() and token.isascii():
            return int(token)
    except ValueError:
        pass
    raise ValueError(f"{value[:40]!r} is not a disposition code")


def disposition_revoked(text: str) -> bool:
    """Whether a (non-null) disposition cell means revoked; a request that is no certificate
    (pending, failed, denied...) raises ValueError."""
    code = _disposition(text)
    if code in _NOT_ISSUED:
        raise ValueError(f"{code} ({_NOT_ISSUED[code]}) is a request, not an issued certificate")
    return code == _REVOKED_DISPOSITION


def template_scope(template_name: str) -> str | None:
    """Why a template's certificates are out of scope (a CA template), or None."""
    if template_name.casefold() in _CA_TEMPLATES:
        return f"template {template_name} issues CA certificates, not a device's"
    return None


def certutil_request_id(text: str) -> str:
    """`0xb (11)` and `0xb` become `11`; certutil's text mode prints ids that way."""
    value = text.strip()
    if "(" in value and value.endswith(")"):
        inner = value[value.index("(") + 1 : -1].strip()
        if inner.isdigit() and inner.isascii():
            return inner
    if value[:2] in ("0x", "0X"):
        digits = value[2:]
        if digits and all(c in "0123456789abcdefABCDEF" for c in digits) and len(digits) <= 16:
            return str(int(digits, 16))
    return value


def _ca_name(config_string: str) -> str | None:
    """`ca01.corp\\Contoso Issuing CA` -> `Contoso Issuing CA` (PSPKI's ConfigString)."""
    name = config_string.rpartition("\\")[2].strip()
    return name or None


def build_converter(
    dialect: Dialect, header: Sequence[str], *, source: str, issuer: str | None
) -> Converter:
    """Specialise the row converter to this file's columns (the caller checked 'serial')."""
    index = dialect.fields_of(header)
    label = {f: header[i].strip() or f for f, i in index.items()}
    width = len(header)
    nulls = dialect.nulls
    dates = dialect.dates
    base = dialect.serial_base
    status_rule = dialect.status_rule
    normalise_id = dialect.request_id
    templates = _Templates()
    dispositions: dict[str, bool] = {}
    intern = sys.intern
    source = intern(source)
    default_issuer = intern(issuer) if issuer else None

    def at(name: str) -> int:
        return index.get(name, -1)

    i_serial = index["serial"]
    i_thumb, i_issuer, i_subject, i_cn = (
        at("thumbprint"),
        at("issuer"),
        at("subject"),
        at("common_name"),
    )
    i_requester, i_template, i_oid, i_tname = (
        at("requester"),
        at("template"),
        at("template_oid"),
        at("template_name"),
    )
    i_request, i_nb, i_na, i_revoked = (
        at("request_id"),
        at("not_before"),
        at("not_after"),
        at("revoked_at"),
    )
    i_disp, i_status, i_san, i_upn, i_config = (
        at("disposition"),
        at("status"),
        at("san"),
        at("upn"),
        at("config_string"),
    )
    i_type = at("cert_type")

    def text(row: list[str], position: int) -> str | None:
        if position < 0:
            return None
        value = row[position].strip()
        return None if value in nulls else value

    def when(row: list[str], position: int, name: str) -> datetime | None:
        if position < 0:
            return None
        value = row[position].strip()
        if value in nulls:
            return None
        try:
            return dates(value)
        except ValueError as exc:
            raise ValueError(f"{label[name]}: {exc}") from None

    def revocation(row: list[str], not_before: datetime | None) -> datetime | None:
        revoked_at = when(row, i_revoked, "revoked_at")
        revoked: bool | None = None
        if i_disp >= 0:
            disposition = row[i_disp]
            revoked = dispositions.get(disposition)
            if revoked is None and disposition.strip() not in nulls:
                try:
                    revoked = disposition_revoked(disposition)
                except ValueError as exc:
                    raise ValueError(f"{label['disposition']}: {exc}") from None
                if len(dispositions) < _SMALL_CACHE:
                    dispositions[disposition] = revoked
        status = text(row, i_status)
        if status is not None and status_rule is not None:
            try:
                verdict = status_rule(status)
            except ValueError as exc:
                raise ValueError(f"{label['status']}: {exc}") from None
            if verdict is not None:
                revoked = verdict
        if revoked is True and revoked_at is None:
            return not_before or EPOCH
        return None if revoked is False else revoked_at

    def names(row: list[str]) -> tuple[str | None, str | None, str | None]:
        template_oid = template_name = None
        template = text(row, i_template)
        if template is not None:
            template_oid, template_name = templates(template)
        value = text(row, i_oid)
        if value is not None:
            template_oid = intern(value)
        value = text(row, i_tname)
        if value is not None:
            template_name = intern(value)
        value = text(row, i_issuer)
        if value is not None:
            return template_oid, template_name, intern(value)
        if default_issuer is not None:
            return template_oid, template_name, default_issuer
        config = text(row, i_config)
        name = _ca_name(config) if config is not None else None
        return template_oid, template_name, intern(name) if name else None

    has_revocation = i_revoked >= 0 or i_disp >= 0 or i_status >= 0
    has_names = i_template >= 0 or i_oid >= 0 or i_tname >= 0 or i_issuer >= 0 or i_config >= 0
    has_san = i_san >= 0 or i_upn >= 0

    def scope(row: list[str], template_name: str | None) -> str | None:
        if i_type >= 0:
            kind = row[i_type].strip()
            if kind in _EJBCA_CA_TYPES:
                return f"EJBCA type {kind}: {_EJBCA_CA_TYPES[kind]} certificate, not a device's"
        return template_scope(template_name) if template_name is not None else None

    def convert(row: list[str], line: int) -> CaCertificate:
        # The hot loop of a million-row export: columns the file lacks cost one comparison.
        if len(row) != width:
            raise ValueError(f"{len(row)} columns where the header has {width}")
        value = row[i_serial].strip()
        if value in nulls:
            raise ValueError(f"{label['serial']}: no serial number")
        try:
            serial = parse_serial(value, base)
        except ValueError as exc:
            raise ValueError(f"{label['serial']}: {exc}") from None
        thumbprint = None
        if i_thumb >= 0:
            value = row[i_thumb].strip()
            if value not in nulls:
                try:
                    thumbprint = parse_thumbprint(value)
                except ValueError as exc:
                    raise ValueError(f"{label['thumbprint']}: {exc}") from None
        not_before = not_after = revoked_at = None
        if i_nb >= 0:
            value = row[i_nb].strip()
            if value not in nulls:
                try:
                    not_before = dates(value)
                except ValueError as exc:
                    raise ValueError(f"{label['not_before']}: {exc}") from None
        if i_na >= 0:
            value = row[i_na].strip()
            if value not in nulls:
                try:
                    not_after = dates(value)
                except ValueError as exc:
                    raise ValueError(f"{label['not_after']}: {exc}") from None
        if has_revocation:
            revoked_at = revocation(row, not_before)
        if has_names:
            template_oid, template_name, row_issuer = names(row)
        else:
            template_oid = template_name = None
            row_issuer = default_issuer
        subject = cn = request_id = requester = san = None
        if i_subject >= 0:
            value = row[i_subject].strip()
            if value not in nulls:
                subject = value
        if i_cn >= 0:
            value = row[i_cn].strip()
            if value not in nulls:
                cn = value
        if cn is None and subject is not None:
            cn = common_name(subject)
        if i_request >= 0:
            value = row[i_request].strip()
            if value not in nulls:
                request_id = normalise_id(value) if normalise_id is not None else value
        if i_requester >= 0:
            value = row[i_requester].strip()
            if value not in nulls:
                requester = intern(value)
        if has_san:
            san = text(row, i_san)
            if san is None:
                upn = text(row, i_upn)
                san = f"UPN={upn}" if upn is not None else None
        return CaCertificate(
            serial,
            thumbprint,
            row_issuer,
            subject,
            cn,
            requester,
            template_oid,
            template_name,
            request_id,
            not_before,
            not_after,
            revoked_at,
            source,
            line,
            san,
            scope(row, template_name),
        )

    return convert
