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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reconcile import __version__
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.records import (
    decode_device,
    decode_profile,
    decode_report_row,
    decode_state,
)
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
COLLECTIONS = ("profiles", "certificate_states", "report_rows", "managed_devices")


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


def _lines(path: Path, digest: Any) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, bytes); hashes the file as it goes."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            yield number, raw


def read_snapshot(directory: Path, report_delivered: frozenset[str]) -> Snapshot:
    """Parse every collection; a count that does not match the metadata is incomplete data."""
    metadata = _read_metadata(directory)
    counts: dict[str, Any] = metadata["counts"]
    profiles: list[CertificateProfile] = []
    certificates: list[IntuneCertificate] = []
    devices: list[ManagedDevice] = []
    rejects: list[Reject] = []
    inputs: list[InputFile] = []
    for name in COLLECTIONS:
        path = directory / f"{name}.jsonl"
        if name not in counts:
            if path.exists():
                raise InputError(f"{path.name} present but not listed in counts", directory)
            continue
        if not path.exists():
            raise IncompleteDataError(f"{path}: listed in metadata but missing")
        digest = hashlib.sha256()
        lines = 0
        bad = 0
        for line, raw in _lines(path, digest):
            lines += 1
            try:
                if not raw.strip():
                    raise ValueError("blank line")
                if name == "certificate_states":
                    certificates.append(decode_state(raw))
                elif name == "report_rows":
                    certificates.append(decode_report_row(raw, report_delivered, f"report:{line}"))
                elif name == "managed_devices":
                    devices.append(decode_device(raw))
                else:
                    profiles.append(decode_profile(raw))
            except ValueError as exc:
                bad += 1
                rejects.append(Reject(str(path), line, str(exc)))
        if lines != counts[name]:
            raise IncompleteDataError(
                f"{path}: metadata promises {counts[name]} records, file holds {lines}"
            )
        inputs.append(InputFile(str(path), "snapshot", name, digest.hexdigest(), lines, bad))
    return Snapshot(
        path=directory,
        metadata=metadata,
        profiles=tuple(profiles),
        certificates=tuple(certificates),
        devices=tuple(devices),
        rejects=tuple(rejects),
        inputs=tuple(inputs),
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
