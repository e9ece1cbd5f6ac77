"""The Intune side of the join: compact entries for matching, full records only when needed.

A million certificate records as frozen dataclasses cost about 600 MB and 8 µs each to build,
yet the join needs only a few fields of each to match and classify; the full record is wanted
only for the verdicts a run keeps (findings) and for unknown_to_ca. So the join works on
``Entry`` tuples and asks ``IntuneSide`` for the full record when it keeps a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from reconcile.identity import device_fold, fold
from reconcile.model import IntuneCertificate, ManagedDevice


class Entry(NamedTuple):
    """What the join needs of one Intune certificate record."""

    serial: int | None
    thumbprint: str | None
    issuer: str | None
    delivered: bool
    device_id: str | None
    device_name: str | None
    profile: str | None
    issued_at: float | None
    changed_at: float | None
    collection: int
    where: int
    """1-based line (or position) of the record within its collection."""


def stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def entry_of(record: IntuneCertificate, collection: int, where: int) -> Entry:
    return Entry(
        serial=record.serial,
        thumbprint=record.thumbprint if record.serial is None else None,
        issuer=record.issuer,
        delivered=record.delivered,
        device_id=record.device_id,
        device_name=record.device_name,
        profile=record.profile_id or fold(record.profile_name),
        issued_at=stamp(record.issued_at),
        changed_at=stamp(record.state_changed_at),
        collection=collection,
        where=where,
    )


class Devices:
    """Managed devices by id and by device_key of their name; full records decoded on request.

    Display names are not unique: ``shared`` holds every name that several managed devices
    carry, with all of them, so a link by name can say it is ambiguous instead of guessing.
    """

    def __init__(
        self,
        by_id: dict[str, int],
        by_name: dict[str, int],
        load: Callable[[int], ManagedDevice],
        shared: dict[str, list[int]] | None = None,
    ):
        self.by_id = by_id
        self.by_name = by_name
        self.shared = shared or {}
        self._load = load
        self._cache: dict[int, ManagedDevice] = {}

    def get(self, where: int) -> ManagedDevice:
        device = self._cache.get(where)
        if device is None:
            device = self._cache[where] = self._load(where)
        return device

    def named(self, name: str) -> list[int]:
        """Every device whose name has the device_key ``name``."""
        shared = self.shared.get(name)
        if shared is not None:
            return shared
        where = self.by_name.get(name)
        return [] if where is None else [where]

    @staticmethod
    def index_name(
        by_name: dict[str, int], shared: dict[str, list[int]], name: str, where: int
    ) -> None:
        """Add one device to the name indexes (by_name keeps the last, shared all)."""
        previous = by_name.get(name)
        if previous is not None:
            shared.setdefault(name, [previous]).append(where)
        by_name[name] = where

    @classmethod
    def from_records(cls, devices: Sequence[ManagedDevice]) -> Devices:
        by_id = {d.id: n for n, d in enumerate(devices)}
        by_name: dict[str, int] = {}
        shared: dict[str, list[int]] = {}
        for n, d in enumerate(devices):
            if d.device_name:
                cls.index_name(by_name, shared, device_fold(d.device_name) or "", n)
        return cls(by_id, by_name, devices.__getitem__, shared)


class IntuneSide:
    """Entries in record order, a way back to each full record, and the managed devices
    (None when they were not read, so no certificate can be called orphaned)."""

    def __init__(
        self,
        entries: list[Entry],
        load: Callable[[Entry], IntuneCertificate],
        devices: Devices | None,
    ):
        self.entries = entries
        self._load = load
        self.devices = devices

    def certificate(self, entry: Entry) -> IntuneCertificate:
        return self._load(entry)

    @classmethod
    def from_records(
        cls,
        records: Sequence[IntuneCertificate],
        devices: Sequence[ManagedDevice] | None = None,
    ) -> IntuneSide:
        """For records already in memory (tests, explain on a handful of records)."""
        entries = [entry_of(r, 0, n) for n, r in enumerate(records, start=1)]
        return cls(
            entries,
            lambda entry: records[entry.where - 1],
            None if devices is None else Devices.from_records(devices),
        )
