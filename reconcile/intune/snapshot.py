"""The snapshot: what one fetch read from Graph, kept as raw Graph JSON for replay and audit.

A snapshot is a directory::

    metadata.json               format, version, tenant, cloud, endpoints, fetched_at, counts,
                                sha256 (per collection file), tool version, sources, complete
    profiles.jsonl              certificate profiles (deviceConfigurations), one object a line
    certificate_states.jsonl    managedDeviceCertificateState objects, each annotated with
                                "@reconcile.profileId", "@reconcile.profileType" and
                                "@reconcile.profileName" (Graph omits the parent)
    report_rows.jsonl           CertificatesByRAPolicy export rows, {column: value}, compact:
                                only records.REPORT_ROW_KEYS (plus "@reconcile.raw", the whole
                                CSV row, when intune.report_raw_rows asks)
    managed_devices.jsonl       managedDevice objects
    connectors.jsonl            ndesConnector and certificateConnectorDetails objects, each
                                annotated with "@reconcile.connectorType" (optional; a 403/404
                                is a warning under "connectors" in metadata.json)
    cloud_pki_cas.jsonl         Cloud PKI cloudCertificationAuthority objects (--ca-source
                                cloud-pki)
    cloud_pki_leaf_certificates.jsonl
                                cloudCertificationAuthorityLeafCertificate objects; read as
                                CA certificates by reconcile/ca/cloudpki.py

Collections that were not fetched are absent and not listed in ``counts``. The writer streams
pages straight to disk and publishes the directory by renaming it into place only when every
collection was read completely, so a snapshot that exists is a complete one. The reader checks
that promise: a collection listed but missing, a collection the fetch read but not listed, a
line cut off, a line count or sha256 that differs from metadata.json is incomplete data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Self

from reconcile import __version__
from reconcile.ca import cloudpki
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.records import (
    ReportStatuses,
    decode_profile,
)
from reconcile.model import (
    CertificateProfile,
    InputFile,
    Reject,
)
from reconcile.timeparse import parse_iso

FORMAT = "reconcile-snapshot"
VERSION = 1
METADATA = "metadata.json"
# Order matters: a collection's index is its Entry.collection value (records.STATES, REPORT).
COLLECTIONS = (
    "certificate_states",
    "report_rows",
    "managed_devices",
    "profiles",
    cloudpki.CAS,
    cloudpki.LEAVES,
)
DEVICES = COLLECTIONS.index("managed_devices")
PKI_CAS = COLLECTIONS.index(cloudpki.CAS)
PKI_LEAVES = COLLECTIONS.index(cloudpki.LEAVES)


def _regular(path: Path) -> bool:
    """False for a FIFO, device or directory: opening a FIFO would block the run forever."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


def _read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA
    if not path.exists():
        raise InputError(f"not a snapshot directory: {METADATA} is missing", directory)
    if not _regular(path):
        raise InputError("not a regular file", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", path) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} metadata file", path)
    if data.get("version") != VERSION:
        raise InputError(f"unsupported snapshot version {data.get('version')!r}", path)
    if data.get("complete") is not True:
        raise IncompleteDataError(f"{path}: snapshot is marked incomplete; fetch again")
    counts = data.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in counts.values()
    ):
        raise InputError("metadata has no counts (a number per collection)", path)
    digests = data.get("sha256", {})
    if not isinstance(digests, dict) or not all(isinstance(d, str) for d in digests.values()):
        raise InputError("metadata sha256 must map each collection to a hex digest", path)
    for needed in _needed(data):
        if needed not in counts:
            raise IncompleteDataError(
                f"{path}: the snapshot was fetched with {needed} but it is not listed in "
                "counts; the snapshot is incomplete"
            )
    if not {"certificate_states", "report_rows"} & counts.keys():
        raise IncompleteDataError(f"{path}: the snapshot holds no certificate collection")
    return data


_SOURCE_COLLECTIONS = {"states": "certificate_states", "report": "report_rows"}


def _needed(metadata: Mapping[str, Any]) -> list[str]:
    """The collections the fetch recorded as read: its sources, else its intune_source."""
    sources = metadata.get("sources")
    if not isinstance(sources, list):
        chosen = metadata.get("intune_source")
        sources = ["states", "report"] if chosen == "both" else [chosen]
    return [_SOURCE_COLLECTIONS[s] for s in sources if s in _SOURCE_COLLECTIONS]


class SnapshotFiles:
    """An opened snapshot without its certificate records: metadata, provenance, rejects,
    profiles and Cloud PKI, and the open files records are read back from.

    The engine (``reconcile.engine.snapshot``) loads the records into its tables (the tests'
    Python oracle, ``tests/engine/reference_snapshot.py``, into entries instead). Both read every
    collection in ``COLLECTIONS`` order through ``_collection``, so the same snapshot gives the
    same rejects, inputs and integrity errors either way.
    """

    def __init__(self, directory: Path, report_delivered: ReportStatuses | Iterable[str]):
        self.path = directory
        self.metadata = _read_metadata(directory)
        self.report_delivered = ReportStatuses.coerce(report_delivered)
        self.rejects: list[Reject] = []
        self.inputs: list[InputFile] = []
        self.profiles: list[CertificateProfile] = []
        self.cloud_pki_cas: dict[str, str | None] = {}
        # The leaf file holds CA data, not Intune data: its rejects go with the CA source.
        self.cloud_pki_input: InputFile | None = None
        self.cloud_pki_rejects: list[Reject] = []
        self._handles: dict[int, IO[bytes]] = {}
        self._offsets: dict[int, array[int]] = {}

    def _read_all(self) -> None:
        """Read every listed collection in order; closes the files on any failure."""
        counts: dict[str, Any] = self.metadata["counts"]
        try:
            for name in COLLECTIONS:
                path = self._listed(name, counts)
                if path is not None:
                    self._collection(COLLECTIONS.index(name), path, counts[name])
            states = counts.get("certificate_states", 0)
            if "managed_devices" in counts and not self._has_devices() and states:
                # Every device would look gone from Intune, its certificates planned for revocation.
                raise IncompleteDataError(
                    f"{self.path}: no managed device while {states} certificate states name "
                    "devices: the device list is incomplete (DeviceManagementManagedDevices."
                    "Read.All missing, or a partial fetch); fetch again"
                )
        except BaseException:
            self.close()
            raise
        self.report_delivered.warn_unknown()

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None

    @property
    def fetched_at(self) -> datetime | None:
        return parse_iso(str(self.metadata.get("fetched_at") or "")) or None

    @property
    def devices_read(self) -> bool:
        """Whether the managed devices were fetched (else no certificate can be orphaned)."""
        return "managed_devices" in self.metadata["counts"]

    def _listed(self, name: str, counts: Mapping[str, Any]) -> Path | None:
        """The collection's file, None when it was not fetched; raises when the listing and
        the directory disagree."""
        path = self.path / f"{name}.jsonl"
        if name not in counts:
            if path.exists():
                raise InputError(f"{path.name} present but not listed in counts", self.path)
            return None
        if not path.exists():
            raise IncompleteDataError(f"{path}: listed in metadata but missing")
        if not _regular(path):
            raise InputError("not a regular file", path)
        return path

    def _collection(self, collection: int, path: Path, promised: int) -> None:
        """Read one collection line by line in Python (``_record`` per line)."""
        rejects = self.cloud_pki_rejects if collection == PKI_LEAVES else self.rejects
        bad = 0
        scan = self._lines(collection, path)
        for line, raw in scan:
            try:
                if not raw.strip():
                    raise ValueError("blank line")
                self._record(collection, raw, line)
            except ValueError as exc:
                bad += 1
                rejects.append(Reject(str(path), line, str(exc)))
        self._finish(collection, path, promised, scan.digest, len(self._offsets[collection]), bad)

    def _lines(self, collection: int, path: Path) -> _Lines:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path) from None
        self._handles[collection] = handle
        offsets = self._offsets[collection] = array("q")
        return _Lines(path, handle, offsets)

    def _record(self, collection: int, raw: bytes, line: int) -> None:
        """One line of a collection other than the certificate records and devices."""
        if collection == PKI_CAS:
            ca_id, ca_name = cloudpki.decode_ca(raw)
            self.cloud_pki_cas[ca_id] = ca_name
        elif collection == PKI_LEAVES:
            cloudpki.check_leaf(raw)
        elif collection == COLLECTIONS.index("profiles"):
            self.profiles.append(decode_profile(raw))
        else:
            raise AssertionError(f"collection {collection} has no Python reader here")

    def _finish(
        self, collection: int, path: Path, promised: int, sha256: str, lines: int, bad: int
    ) -> None:
        """The count and hash checks every collection passes, then its provenance."""
        name = COLLECTIONS[collection]
        if lines != promised:
            raise IncompleteDataError(
                f"{path}: metadata promises {promised} records, file holds {lines}"
            )
        recorded = self.metadata.get("sha256", {}).get(name)
        if recorded is not None and recorded != sha256:
            raise IncompleteDataError(
                f"{path}: sha256 differs from the one {METADATA} recorded at fetch time; the "
                "file changed after the fetch"
            )
        item = InputFile(str(path), "snapshot", name, sha256, lines, bad)
        if collection == PKI_LEAVES:
            self.cloud_pki_input = item
        self.inputs.append(item)

    def _has_devices(self) -> bool:
        raise NotImplementedError

    def cloud_pki(self) -> cloudpki.CloudPkiSource:
        """The Cloud PKI leaves as a CA source; an input error if this snapshot has none."""
        counts = self.metadata["counts"]
        missing = [n for n in (cloudpki.CAS, cloudpki.LEAVES) if n not in counts]
        if missing:
            raise InputError(
                f"the snapshot holds no {', '.join(missing)}: fetch it with --ca-source "
                "cloud-pki to read Cloud PKI",
                self.path,
            )
        assert self.cloud_pki_input is not None
        return cloudpki.CloudPkiSource(
            self.path,
            self.cloud_pki_cas,
            self.fetched_at,
            self.cloud_pki_input,
            self.cloud_pki_rejects,
        )

    def _line(self, collection: int, line: int) -> bytes:
        """Line ``line`` as it was indexed: one pread of its bytes (a seek and a buffered
        readline cost about three times as much, for each of a run's kept records)."""
        handle = self._handles[collection]
        offsets = self._offsets[collection]
        start = offsets[line - 1]
        if line == len(offsets):
            handle.seek(start)
            return handle.readline()
        size = offsets[line] - start
        raw = os.pread(handle.fileno(), size, start)
        if len(raw) != size:
            raise IncompleteDataError(f"{handle.name}:{line}: the file changed while it was read")
        return raw

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Lines:
    """A collection's lines with their numbers, hashed and indexed by offset as they pass;
    a last line without its line end is incomplete data."""

    def __init__(self, path: Path, handle: IO[bytes], offsets: array[int]):
        self._path = path
        self._handle = handle
        self._offsets = offsets
        self._digest = hashlib.sha256()

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        offset = 0
        for line, raw in enumerate(self._handle, start=1):
            if not raw.endswith(b"\n"):
                raise IncompleteDataError(
                    f"{self._path}:{line}: the last line is cut off (no line end); the "
                    "snapshot is incomplete"
                )
            self._digest.update(raw)
            self._offsets.append(offset)
            offset += len(raw)
            yield line, raw


class SnapshotWriter:
    """Stream collections to a hidden directory; ``commit`` publishes it atomically.

    Use as a context manager: leaving the block without ``commit`` removes everything written,
    whatever the failure (a full disk while flushing included). ``max_bytes`` bounds the whole
    snapshot: a tenant or an export larger than that fails the fetch instead of the disk.
    """

    def __init__(self, target: Path, metadata: Mapping[str, Any], max_bytes: int | None = None):
        self.target = target
        self._metadata = dict(metadata)
        self._counts: dict[str, int] = {}
        self._digests: dict[str, Any] = {}
        self._files: dict[str, IO[bytes]] = {}
        self._max_bytes = max_bytes
        self.bytes_written = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            if self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)

    def open_collection(self, name: str) -> None:
        """Declare a collection as fetched, even if it turns out empty."""
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name}")
        if name not in self._files:
            self._files[name] = (self._tmp / f"{name}.jsonl").open("wb")
            self._counts[name] = 0
            self._digests[name] = hashlib.sha256()

    def write(self, name: str, obj: Mapping[str, Any]) -> None:
        self.open_collection(name)
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        data = line.encode("utf-8") + b"\n"
        self.bytes_written += len(data)
        if self._max_bytes is not None and self.bytes_written > self._max_bytes:
            raise IncompleteDataError(
                f"snapshot would exceed {self._max_bytes} bytes (intune.max_snapshot_bytes, "
                f"RECONCILE_MAX_SNAPSHOT_BYTES) while writing {name} record "
                f"{self._counts[name] + 1}; raise the limit or fetch fewer sources"
            )
        self._files[name].write(data)
        self._digests[name].update(data)
        self._counts[name] += 1

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def add_file(self, name: str, objects: Iterable[Mapping[str, Any]], note: Any) -> None:
        """An optional file beside the collections (not in ``counts``: the join never reads
        it), described in metadata.json under its stem by ``note``."""
        digest = hashlib.sha256()
        with (self._tmp / name).open("wb") as handle:
            for obj in objects:
                line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
                data = line.encode("utf-8") + b"\n"
                digest.update(data)
                handle.write(data)
        if isinstance(note, dict):
            note = {**note, "sha256": digest.hexdigest()}
        self._metadata[name.partition(".")[0]] = note

    def close(self) -> None:
        """Flush and close every file; all are closed even when one of them fails."""
        failure: OSError | None = None
        for handle in self._files.values():
            if handle.closed:
                continue
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                failure = failure or exc
            finally:
                handle.close()
        if failure is not None:
            raise InputError(f"cannot write snapshot: {failure.strerror}", self.target)

    def commit(self) -> Path:
        """Write metadata last, then rename into place (replacing an older snapshot)."""
        self.close()
        metadata = {
            "format": FORMAT,
            "version": VERSION,
            "tool_version": __version__,
            **self._metadata,
            "counts": self._counts,
            "sha256": {name: digest.hexdigest() for name, digest in self._digests.items()},
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
            try:
                os.replace(self.target, old)
                try:
                    os.replace(self._tmp, self.target)
                except OSError:
                    os.replace(old, self.target)
                    raise
            except OSError as exc:
                raise InputError(f"cannot publish snapshot: {exc.strerror}", self.target) from None
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(self._tmp, self.target)
            except OSError as exc:
                raise InputError(f"cannot publish snapshot: {exc.strerror}", self.target) from None
        return self.target
