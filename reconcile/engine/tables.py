"""The engine's tables: one row per CA certificate, per Intune record and per managed device.

Serials are kept as canonical hex text (uppercase, no leading zeros), which compares exactly like
the integers reconcile defines serial equality by, without 160-bit integers. Times are UTC epoch
microseconds. ``seq`` orders CA rows as the exports list them; ``ord`` orders Intune records as
the join has always seen them (certificate states, then report rows, each by line).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from reconcile.intune.side import Entry
from reconcile.model import CaCertificate

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
ORDER_SPAN = 1 << 40
"""``seq`` and ``ord`` are ``group * ORDER_SPAN + position``: files and collections in order."""

CA_COLUMNS = {
    "seq": "BIGINT",
    "serial": "VARCHAR",
    "thumbprint": "VARCHAR",
    "issuer": "VARCHAR",
    "subject": "VARCHAR",
    "common_name": "VARCHAR",
    "requester": "VARCHAR",
    "template_oid": "VARCHAR",
    "template_name": "VARCHAR",
    "request_id": "VARCHAR",
    "not_before": "BIGINT",
    "not_after": "BIGINT",
    "revoked_at": "BIGINT",
    "source": "VARCHAR",
    "line": "BIGINT",
    "san": "VARCHAR",
}
INTUNE_COLUMNS = {
    "ord": "BIGINT",
    "collection": "INTEGER",
    "line": "BIGINT",
    "serial": "VARCHAR",
    "thumbprint": "VARCHAR",
    "issuer": "VARCHAR",
    "delivered": "BOOLEAN",
    "device_id": "VARCHAR",
    "device_name": "VARCHAR",
    "profile": "VARCHAR",
    "issued_at": "BIGINT",
    "changed_at": "BIGINT",
}
DEVICE_KEY_COLUMNS = {"key": "VARCHAR", "dev": "BIGINT"}


def create_statements() -> list[str]:
    def table(name: str, columns: dict[str, str]) -> str:
        body = ", ".join(f"{column} {kind}" for column, kind in columns.items())
        return f"CREATE TABLE {name} ({body})"

    return [
        table("ca", CA_COLUMNS),
        table("intune", INTUNE_COLUMNS),
        table("device_ids", DEVICE_KEY_COLUMNS),
        table("device_names", DEVICE_KEY_COLUMNS),
    ]


def micros(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // _MICRO


def stamp_micros(value: float | None) -> int | None:
    """An Entry's float timestamp back to the microsecond it was made from."""
    return None if value is None else round(value * 1_000_000)


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def serial_text(serial: int) -> str:
    return f"{serial:X}"


def ca_row(cert: CaCertificate, seq: int) -> tuple[object, ...]:
    return (
        seq,
        serial_text(cert.serial),
        cert.thumbprint,
        cert.issuer,
        cert.subject,
        cert.common_name,
        cert.requester,
        cert.template_oid,
        cert.template_name,
        cert.request_id,
        micros(cert.not_before),
        micros(cert.not_after),
        micros(cert.revoked_at),
        cert.source,
        cert.line,
        cert.san,
    )


def ca_rows(certificates: Iterable[CaCertificate], group: int = 0) -> Iterator[tuple[object, ...]]:
    """Records in the order given (their own line numbers need not be unique or sorted)."""
    base = group * ORDER_SPAN
    for position, cert in enumerate(certificates):
        yield ca_row(cert, base + position)


def ca_rows_in_file(
    certificates: Iterable[CaCertificate], group: int
) -> Iterator[tuple[object, ...]]:
    """Records of one export, ordered by their (unique) line numbers like natively read rows."""
    base = group * ORDER_SPAN
    for cert in certificates:
        yield ca_row(cert, base + cert.line)


def ca_record(row: tuple[object, ...]) -> CaCertificate:
    """The inverse of ``ca_row`` (without ``seq``): columns 1..15 of the ca table."""
    (
        serial,
        thumbprint,
        issuer,
        subject,
        common_name,
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
    ) = row
    assert isinstance(serial, str) and isinstance(source, str) and isinstance(line, int)
    return CaCertificate(
        serial=int(serial, 16),
        thumbprint=_text(thumbprint),
        issuer=_text(issuer),
        subject=_text(subject),
        common_name=_text(common_name),
        requester=_text(requester),
        template_oid=_text(template_oid),
        template_name=_text(template_name),
        request_id=_text(request_id),
        not_before=_time(not_before),
        not_after=_time(not_after),
        revoked_at=_time(revoked_at),
        source=source,
        line=line,
        san=_text(san),
    )


def _text(value: object) -> str | None:
    assert value is None or isinstance(value, str)
    return value


def _time(value: object) -> datetime | None:
    assert value is None or isinstance(value, int)
    return from_micros(value)


def intune_row(entry: Entry) -> tuple[object, ...]:
    return (
        entry.collection * ORDER_SPAN + entry.where,
        entry.collection,
        entry.where,
        None if entry.serial is None else serial_text(entry.serial),
        entry.thumbprint if entry.serial is None else None,
        entry.issuer,
        entry.delivered,
        entry.device_id,
        entry.device_name,
        entry.profile,
        stamp_micros(entry.issued_at),
        stamp_micros(entry.changed_at),
    )
