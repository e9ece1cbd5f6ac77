"""The snapshot: what one fetch read from Graph, kept as raw Graph JSON for replay and audit.

A snapshot is a directory::

    metadata.json               format, version, tenant, cloud, endpoints, fetched_at, counts,
                                tool version, sources, complete
    profiles.jsonl              certificate profiles (deviceConfigurations), one object a line
    certificate_states.jsonl    managedDeviceCertificateState objects, each annotated with
                                "@reconcile.profileId", "@reconcile.profileType" and
                                "@reconcile.profileName" (Graph omits the parent)
    report_rows.jsonl           CertificatesByRAPolicy export rows, {column: value}
    managed_devices.jsonl       managedDevice objects

Collections that were not fetched are absent and not listed in ``counts``. The writer streams
pages straight to disk and publishes the directory by renaming it into place only when every
collection was read completely, so a snapshot that exists is a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reconcile import __version__
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.records import (
    REPORT,
    STATES,
    decode_device,
    decode_profile,
    decode_report_row,
    decode_state,
    scan_report_row,
    scan_state,
)
from reconcile.intune.side import Devices, Entry, IntuneSide, fold
from reconcile.model import (
    CertificateProfile,
    InputFile,
    IntuneCertificate,
    ManagedDevice,
    Reject,
)

FORMAT = "reconcile-snapshot"
VERSION = 1
METADATA = "metadata.json"
# Order matters: a collection's index is its Entry.collection value (records.STATES, REPORT).
COLLECTIONS = ("certificate_states", "report_rows", "managed_devices", "profiles")
DEVICES = COLLECTIONS.index("managed_devices")


@dataclass(frozen=True)
class Snapshot:
    """The Intune side of a run, parsed."""

    path: Path
    metadata: Mapping[str, Any]
    profiles: tuple[CertificateProfile, ...]
    certificates: tuple[IntuneCertificate, ...]
    devices: tuple[ManagedDevice, ...]
    rejects: tuple[Reject, ...]
    inputs: tuple[InputFile, ...]

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None


def _read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"not a snapshot directory: {METADATA} is missing", directory) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} metadata file", path)
    if data.get("version") != VERSION:
        raise InputError(f"unsupported snapshot version {data.get('version')!r}", path)
    if data.get("complete") is not True:
        raise IncompleteDataError(f"{path}: snapshot is marked incomplete; fetch again")
    if not isinstance(data.get("counts"), dict):
        raise InputError("metadata has no counts", path)
    return data


class SnapshotSource:
    """An opened snapshot: the join's compact view (``side``) plus the open files that full
    records are read back from, by line, when the join keeps a verdict.

    Every collection is scanned once when opened: each line is validated exactly as the full
    decoder would, so a record that scanned cleanly always decodes later. A line that does not
    is a Reject; a file whose line count differs from the metadata is incomplete data.
    """

    def __init__(self, directory: Path, report_delivered: frozenset[str]):
        self.path = directory
        self.metadata = _read_metadata(directory)
        self.report_delivered = report_delivered
        self.rejects: list[Reject] = []
        self.inputs: list[InputFile] = []
        self.profiles: list[CertificateProfile] = []
        self.device_lines = array("q")
        self._handles: dict[int, IO[bytes]] = {}
        self._offsets: dict[int, array[int]] = {}
        self._by_id: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        entries: list[Entry] = []
        counts: dict[str, Any] = self.metadata["counts"]
        try:
            for name in COLLECTIONS:
                self._scan(name, counts, entries)
        except BaseException:
            self.close()
            raise
        devices = None
        if "managed_devices" in counts:
            devices = Devices(self._by_id, self._by_name, self._device)
        self.side = IntuneSide(entries, self._certificate, devices)

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None

    def _scan(self, name: str, counts: dict[str, Any], entries: list[Entry]) -> None:
        path = self.path / f"{name}.jsonl"
        if name not in counts:
            if path.exists():
                raise InputError(f"{path.name} present but not listed in counts", self.path)
            return
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise IncompleteDataError(f"{path}: listed in metadata but missing") from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path) from None
        collection = COLLECTIONS.index(name)
        self._handles[collection] = handle
        offsets = self._offsets[collection] = array("q")
        digest = hashlib.sha256()
        offset = 0
        bad = 0
        for line, raw in enumerate(handle, start=1):
            digest.update(raw)
            offsets.append(offset)
            offset += len(raw)
            try:
                if not raw.strip():
                    raise ValueError("blank line")
                if collection == STATES:
                    entries.append(scan_state(raw, line))
                elif collection == REPORT:
                    entries.append(scan_report_row(raw, self.report_delivered, line))
                elif collection == DEVICES:
                    self._index_device(decode_device(raw), line)
                else:
                    self.profiles.append(decode_profile(raw))
            except ValueError as exc:
                bad += 1
                self.rejects.append(Reject(str(path), line, str(exc)))
        if len(offsets) != counts[name]:
            raise IncompleteDataError(
                f"{path}: metadata promises {counts[name]} records, file holds {len(offsets)}"
            )
        self.inputs.append(
            InputFile(str(path), "snapshot", name, digest.hexdigest(), len(offsets), bad)
        )

    def _index_device(self, device: ManagedDevice, line: int) -> None:
        self._by_id[device.id] = line
        if device.device_name:
            self._by_name[fold(device.device_name) or ""] = line
        self.device_lines.append(line)

    def _line(self, collection: int, line: int) -> bytes:
        handle = self._handles[collection]
        handle.seek(self._offsets[collection][line - 1])
        return handle.readline()

    def _certificate(self, entry: Entry) -> IntuneCertificate:
        raw = self._line(entry.collection, entry.where)
        if entry.collection == STATES:
            return decode_state(raw)
        return decode_report_row(raw, self.report_delivered, f"report:{entry.where}")

    def _device(self, line: int) -> ManagedDevice:
        return decode_device(self._line(DEVICES, line))

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()

    def __enter__(self) -> SnapshotSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_snapshot(directory: Path, report_delivered: frozenset[str]) -> Snapshot:
    """Every record decoded, for tools and tests; a run uses ``SnapshotSource`` instead."""
    with SnapshotSource(directory, report_delivered) as source:
        side = source.side
        devices = side.devices
        return Snapshot(
            path=directory,
            metadata=source.metadata,
            profiles=tuple(source.profiles),
            certificates=tuple(side.certificate(e) for e in side.entries),
            devices=tuple(devices.get(n) for n in source.device_lines) if devices else (),
            rejects=tuple(source.rejects),
            inputs=tuple(source.inputs),
        )


class SnapshotWriter:
    """Stream collections to a hidden directory; ``commit`` publishes it atomically.

    Use as a context manager: leaving the block without ``commit`` removes everything written.
    """

    def __init__(self, target: Path, metadata: Mapping[str, Any]):
        self.target = target
        self._metadata = dict(metadata)
        self._counts: dict[str, int] = {}
        self._files: dict[str, IO[bytes]] = {}
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)

    def open_collection(self, name: str) -> None:
        """Declare a collection as fetched, even if it turns out empty."""
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name}")
        if name not in self._files:
            self._files[name] = (self._tmp / f"{name}.jsonl").open("wb")
            self._counts[name] = 0

    def write(self, name: str, obj: Mapping[str, Any]) -> None:
        self.open_collection(name)
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        self._files[name].write(line.encode("utf-8") + b"\n")
        self._counts[name] += 1

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def close(self) -> None:
        for handle in self._files.values():
            if not handle.closed:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()

    def commit(self) -> Path:
        """Write metadata last, then rename into place (replacing an older snapshot)."""
        self.close()
        metadata = {
            "format": FORMAT,
            "version": VERSION,
            "tool_version": __version__,
            **self._metadata,
            "counts": self._counts,
            "complete": True,
        }
        (self._tmp / METADATA).write_text(
            json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if self.target.exists():
            if not (self.target / METADATA).exists() and any(self.target.iterdir()):
                raise InputError("exists and is not a snapshot; refusing to replace", self.target)
            old = self.target.with_name(f".{self.target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
            os.replace(self._tmp, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.target)
        return self.target
