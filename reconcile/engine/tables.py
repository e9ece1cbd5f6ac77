"""The engine's tables: one row per CA certificate, per Intune record and per managed device.

Serials are canonical hex text (uppercase, no leading zeros), which compares exactly like the
integers reconcile defines serial equality by, without 160-bit integers. Times are UTC epoch
microseconds. ``seq`` orders CA rows as the run streams them; ``ord`` orders Intune records as
the join has always seen them (by collection, then by line).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from reconcile.engine.db import Database
from reconcile.intune.side import Devices, Entry, IntuneSide
from reconcile.model import CaCertificate

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
ORDER_SPAN = 1 << 40
"""``seq`` and ``ord`` may be ``group * ORDER_SPAN + position``: files and collections in order."""

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
    "out_of_scope": "VARCHAR",
    "managed_device_id": "VARCHAR",
    "cloud_pki_leaf_id": "VARCHAR",
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
"""``device_ids``: managed device id -> position; ``device_names``: device_key of the name ->
position, one row per device (a name several devices share has several rows)."""


def create_tables(db: Database) -> None:
    for name, columns in (
        ("ca", CA_COLUMNS),
        ("intune", INTUNE_COLUMNS),
        ("device_ids", DEVICE_KEY_COLUMNS),
        ("device_names", DEVICE_KEY_COLUMNS),
    ):
        body = ", ".join(f"{column} {kind}" for column, kind in columns.items())
        db.execute(f"CREATE TABLE {name} ({body})")


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
        cert.out_of_scope,
        cert.managed_device_id,
        cert.cloud_pki_leaf_id,
    )


def ca_record(row: tuple[object, ...]) -> CaCertificate:
    """The inverse of ``ca_row`` without ``seq``: the ca table's columns after it, in order."""
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
        out_of_scope,
        managed_device_id,
        cloud_pki_leaf_id,
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
        out_of_scope=_text(out_of_scope),
        managed_device_id=_text(managed_device_id),
        cloud_pki_leaf_id=_text(cloud_pki_leaf_id),
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


def load_certificates(db: Database, certificates: Iterable[CaCertificate], start: int = 0) -> int:
    """Append CA certificates in the order given (``seq`` from ``start``); returns the count."""
    rows: Iterator[tuple[object, ...]] = (
        ca_row(cert, seq) for seq, cert in enumerate(certificates, start=start)
    )
    return db.insert("ca", CA_COLUMNS, rows)


def load_side(db: Database, side: IntuneSide) -> None:
    """An Intune side already in Python memory (tests, explain, report rows) as tables."""
    db.insert("intune", INTUNE_COLUMNS, (intune_row(e) for e in side.entries))
    if side.devices is not None:
        load_devices(db, side.devices)


def load_devices(db: Database, devices: Devices) -> None:
    db.insert("device_ids", DEVICE_KEY_COLUMNS, devices.by_id.items())
    names = ((name, where) for name in devices.by_name for where in devices.named(name))
    db.insert("device_names", DEVICE_KEY_COLUMNS, names)
