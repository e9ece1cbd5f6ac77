"""The snapshot read into Python entries, as runs read it before the engine loaded it into its
tables: the oracle tests/engine/test_snapshot.py holds ``engine.snapshot`` to, and the way tests
build a join's Intune side from a snapshot fixture."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import msgspec

from reconcile.engine.snapshot import _Facts as Facts
from reconcile.identity import device_fold
from reconcile.intune.records import (
    REPORT,
    STATES,
    ReportStatuses,
    decode_device,
    decode_report_row,
    decode_state,
    scan_report_row,
    scan_state,
)
from reconcile.intune.side import Devices, Entry, IntuneSide
from reconcile.intune.snapshot import DEVICES, SnapshotFiles
from reconcile.model import IntuneCertificate, ManagedDevice


class SnapshotSource(SnapshotFiles):
    """An opened snapshot: the join's compact view (``side``) plus the open files that full
    records are read back from, by line, when the join keeps a verdict.

    Every collection is scanned once when opened: each line is validated exactly as the full
    decoder would, so a record that scanned cleanly always decodes later. A line that does not
    is a Reject; a file whose line count differs from the metadata is incomplete data.
    """

    def __init__(self, directory: Path, report_delivered: ReportStatuses | Iterable[str]):
        super().__init__(directory, report_delivered)
        self.device_lines = array("q")
        self._by_id: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        self._shared_names: dict[str, list[int]] = {}
        self._entries: list[Entry] = []
        self._read_all()
        devices = None
        if self.devices_read:
            devices = Devices(self._by_id, self._by_name, self._device, self._shared_names)
        self.side = IntuneSide(self._entries, self._certificate, devices)
        del self._entries

    def _record(self, collection: int, raw: bytes, line: int) -> None:
        if collection == STATES:
            self._entries.append(scan_state(raw, line))
        elif collection == REPORT:
            self._entries.append(scan_report_row(raw, self.report_delivered, line))
        elif collection == DEVICES:
            self._index_device(decode_device(raw), line)
        else:
            super()._record(collection, raw, line)

    def _has_devices(self) -> bool:
        return bool(self._by_id)

    def _index_device(self, device: ManagedDevice, line: int) -> None:
        self._by_id[device.id] = line
        if device.device_name:
            Devices.index_name(
                self._by_name, self._shared_names, device_fold(device.device_name) or "", line
            )
        self.device_lines.append(line)

    def _certificate(self, entry: Entry) -> IntuneCertificate:
        raw = self._line(entry.collection, entry.where)
        if entry.collection == STATES:
            return decode_state(raw)
        return decode_report_row(raw, self.report_delivered, f"report:{entry.where}")

    def _device(self, line: int) -> ManagedDevice:
        return decode_device(self._line(DEVICES, line))


def scan_by_line(handle: IO[bytes], decoder: msgspec.json.Decoder[Any]) -> Facts:
    """``engine.snapshot._scan`` as a plain loop over the lines: the oracle of its block pass."""
    facts = Facts()
    digest = hashlib.sha256()
    offset = line = 0
    for line, raw in enumerate(handle, start=1):
        if not raw.endswith(b"\n"):
            facts.cut_off = True
            break
        digest.update(raw)
        facts.offsets.append(offset)
        offset += len(raw)
        if raw.count(b"\r") != raw.endswith(b"\r\n"):
            facts.untrusted = True
        try:
            decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            facts.odd.append(line)
            facts.untrusted = facts.untrusted or not raw.startswith(b"{")
            continue
        if b"\\" in raw:
            facts.odd.append(line)
    facts.lines = line
    facts.sha256 = digest.hexdigest()
    return facts
