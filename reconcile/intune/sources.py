"""The three Intune collections reconcile reads, streamed page by page into a snapshot.

* states (beta): certificate profiles from deviceConfigurations, then each profile's
  managedDeviceCertificateStates; least privilege, one request per 1,000 records.
* report (beta): the CertificatesByRAPolicy export job (one per certificate profile when a
  tenant-wide job is refused), a zipped CSV downloaded without a token.
* managed devices (v1.0): whether a certificate's device still exists and when it last synced.

Raw Graph JSON goes to the sink unchanged (plus the profile annotations); report rows are kept
compact (the columns records.py reads). records.py parses both.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

import tenacity

from reconcile import progress
from reconcile.errors import GraphError, UpstreamError
from reconcile.graph.client import GraphClient, RateLimiter
from reconcile.intune.records import (
    PROFILE_ID_KEY,
    PROFILE_NAME_KEY,
    PROFILE_TYPE_KEY,
    RAW_ROW_KEY,
    REPORT_COLUMNS,
    REPORT_MINIMAL_COLUMNS,
    REPORT_ROW_KEYS,
)

log = logging.getLogger("reconcile.intune")

# Intune collections page at most 1,000 items (the default page size is also 1,000 on most of
# them); asking for it explicitly keeps a smaller server default from multiplying requests.
PAGE_SIZE = 1000

PROFILES_PATH = "/beta/deviceManagement/deviceConfigurations"
STATES_PATH = (
    "/beta/deviceManagement/deviceConfigurations/{id}/microsoft.graph.{type}"
    "/managedDeviceCertificateStates"
)
DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"
EXPORT_PATH = "/beta/deviceManagement/reports/exportJobs"
REPORT_NAME = "CertificatesByRAPolicy"
# Sent explicitly although it is the default: enum columns then hold numeric codes and a
# "<Column>_loc" column holds the text (export-graph-apis docs); records.py reads both.
EXPORT_LOCALIZATION = "LocalizedValuesAsAdditionalColumn"
# exportJobs allow 48 requests per app per minute (docs); one fetch's creates and polls stay
# under this many, so per-profile jobs polled side by side do not throttle themselves.
EXPORT_BUDGET = 40
# How Graph may refuse a tenant-wide job of a report that wants a PolicyId filter (undocumented).
REFUSED_STATUSES = frozenset({400, 422})

# Only what records.py reads; @odata.type is returned without being selected.
PROFILE_FIELDS = ("id", "displayName")
STATE_FIELDS = (
    "id",
    "devicePlatform",
    "certificateIssuanceState",
    "certificateProfileDisplayName",
    "deviceDisplayName",
    "userDisplayName",
    "certificateSerialNumber",
    "certificateThumbprint",
    "certificateIssuer",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateLastIssuanceStateChangedDateTime",
    "lastCertificateStateChangeDateTime",
    "certificateErrorCode",
)
DEVICE_FIELDS = (
    "id",
    "deviceName",
    "azureADDeviceId",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "lastSyncDateTime",
)

# Concrete profile types that carry managedDeviceCertificateStates (Graph beta resources).
CERTIFICATE_PROFILE_TYPES = frozenset(
    {
        # Windows
        "windows81SCEPCertificateProfile",
        "windows10PkcsCertificateProfile",
        "windows10ImportedPFXCertificateProfile",
        "windowsPhone81SCEPCertificateProfile",
        "windowsPhone81ImportedPFXCertificateProfile",
        # iOS/iPadOS and macOS
        "iosScepCertificateProfile",
        "iosPkcsCertificateProfile",
        "iosImportedPFXCertificateProfile",
        "macOSScepCertificateProfile",
        "macOSPkcsCertificateProfile",
        "macOSImportedPFXCertificateProfile",
        # Android device administrator, for work, work profile, fully managed, AOSP
        "androidScepCertificateProfile",
        "androidPkcsCertificateProfile",
        "androidImportedPFXCertificateProfile",
        "androidForWorkScepCertificateProfile",
        "androidForWorkPkcsCertificateProfile",
        "androidForWorkImportedPFXCertificateProfile",
        "androidWorkProfileScepCertificateProfile",
        "androidWorkProfilePkcsCertificateProfile",
        "androidDeviceOwnerScepCertificateProfile",
        "androidDeviceOwnerPkcsCertificateProfile",
        "androidDeviceOwnerImportedPFXCertificateProfile",
        "aospDeviceOwnerScepCertificateProfile",
        "aospDeviceOwnerPkcsCertificateProfile",
    }
)

MAX_EXPORT_ZIP = 512 * 1024 * 1024
MAX_EXPORT_CSV = 2 * 1024 * 1024 * 1024
_REQUIRED_REPORT_COLUMNS = ("SerialNumber",)


class Sink(Protocol):
    """What the sources write to; SnapshotWriter is one."""

    def open_collection(self, name: str) -> None: ...

    def write(self, name: str, obj: Mapping[str, Any]) -> None: ...


Progress = Callable[[str, int], None]


class _Parts:
    """Pages of one collection from several workers, landed in part order: the part being
    written goes straight through, later parts wait in spool files (not memory) until every
    part before them has ended."""

    SPOOL_BYTES = 1 << 20
    """What a waiting part keeps in memory before its spool goes to disk. Every profile but the
    one being written can wait, so this times the workers bounds the fetch's extra memory: at
    8 MiB a 100,000-record fetch peaked 46 % above a 20,000-record one (109 against 75 MB,
    ``benchmarks/bench_fetch.py``); at 1 MiB 16 % (86 against 74 MB), in the same time."""

    def __init__(self) -> None:
        self.current = 0
        self.ended: set[int] = set()
        self.held: dict[int, IO[bytes]] = {}

    def hold(self, part: int, objects: Iterable[Mapping[str, Any]]) -> None:
        spool = self.held.get(part)
        if spool is None:
            # Closed by take(), or with the file object when a failed fetch drops the sink.
            spool = self.held[part] = tempfile.SpooledTemporaryFile(self.SPOOL_BYTES)  # noqa: SIM115
        for obj in objects:
            spool.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")

    def take(self, part: int) -> Iterable[Mapping[str, Any]]:
        spool = self.held.pop(part, None)
        if spool is None:
            return
        with spool:
            spool.seek(0)
            for line in spool:
                yield json.loads(line)


class SharedSink:
    """Serialises writes from worker threads; a page is written as one block."""

    def __init__(self, sink: Sink, progress: Progress | None = None):
        self._sink = sink
        self._progress = progress
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._parts: dict[str, _Parts] = {}

    def open_collection(self, name: str) -> None:
        with self._lock:
            self._sink.open_collection(name)
            self._counts.setdefault(name, 0)

    def in_parts(self, name: str) -> None:
        """``name`` is written by numbered parts (one per profile) whose pages must land in
        part order, so the same tenant gives the same bytes, sha256 and run id whatever the
        thread timing."""
        with self._lock:
            self._parts[name] = _Parts()

    def write_page(
        self, name: str, objects: Iterable[Mapping[str, Any]], part: int | None = None
    ) -> None:
        with self._lock:
            self._sink.open_collection(name)
            objects = list(objects)
            parts = self._parts.get(name)
            if parts is None or part is None or part == parts.current:
                for obj in objects:
                    self._sink.write(name, obj)
            else:
                parts.hold(part, objects)
            total = self._counts.get(name, 0) + len(objects)
            self._counts[name] = total
            if self._progress is not None:
                self._progress(name, total)

    def end_part(self, name: str, part: int) -> None:
        """Every page of ``part`` is written; the parts after it that waited land now."""
        with self._lock:
            parts = self._parts.get(name)
            if parts is None:
                return
            parts.ended.add(part)
            while parts.current in parts.ended:
                parts.current += 1
                for obj in parts.take(parts.current):
                    self._sink.write(name, obj)


@dataclass(frozen=True)
class Profile:
    id: str
    odata_type: str
    display_name: str | None


def certificate_profile_type(obj: Mapping[str, Any]) -> str | None:
    """The profile's type if it holds certificate states; unknown *CertificateProfile is kept."""
    odata_type = (
        str(obj.get("@odata.type") or "").removeprefix("#").removeprefix("microsoft.graph.")
    )
    if odata_type in CERTIFICATE_PROFILE_TYPES:
        return odata_type
    if odata_type.endswith("CertificateProfile"):
        log.warning(
            "deviceConfiguration %s has the unknown type %s; reading its certificate states anyway",
            obj.get("id"),
            odata_type,
        )
        return odata_type
    return None


def _profile_of(obj: Mapping[str, Any]) -> Profile | None:
    odata_type = certificate_profile_type(obj)
    if odata_type is None or not obj.get("id"):
        return None
    name = obj.get("displayName")
    return Profile(str(obj["id"]), odata_type, str(name) if name else None)


def fetch_profiles(client: GraphClient, sink: SharedSink) -> list[Profile]:
    """Certificate profiles only; the list is small enough to keep (one entry per profile)."""
    sink.open_collection("profiles")
    params = {"$select": ",".join(PROFILE_FIELDS), "$top": str(PAGE_SIZE)}
    profiles: list[Profile] = []
    for page in client.pages(PROFILES_PATH, params):
        kept = []
        for obj in page:
            profile = _profile_of(obj)
            if profile is not None:
                kept.append(obj)
                profiles.append(profile)
        sink.write_page("profiles", kept)
    return profiles


def fetch_states(
    client: GraphClient,
    sink: SharedSink,
    profile: Profile,
    stop: threading.Event,
    *,
    part: int | None = None,
) -> None:
    """One profile's states; ``part`` is its place in the profile list (see ``in_parts``)."""
    path = STATES_PATH.format(id=profile.id, type=profile.odata_type)
    params = {"$select": ",".join(STATE_FIELDS), "$top": str(PAGE_SIZE)}
    for page in client.pages(path, params):
        if stop.is_set():
            return
        for obj in page:
            obj[PROFILE_ID_KEY] = profile.id
            obj[PROFILE_TYPE_KEY] = profile.odata_type
            obj[PROFILE_NAME_KEY] = profile.display_name
        sink.write_page("certificate_states", page, part)
    if part is not None:
        sink.end_part("certificate_states", part)
    progress.report("states_done", 1, profile.display_name or profile.id)


def fetch_devices(client: GraphClient, sink: SharedSink, stop: threading.Event) -> None:
    sink.open_collection("managed_devices")
    params = {"$select": ",".join(DEVICE_FIELDS), "$top": str(PAGE_SIZE)}
    for page in client.pages(DEVICES_PATH, params):
        if stop.is_set():
            return
        sink.write_page("managed_devices", page)


@dataclass(frozen=True)
class ExportPolling:
    """How long and how often to ask whether the export job is done (exportJobs allows 48/min)."""

    timeout: float
    first_delay: float = 2.0
    max_delay: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class _Stop(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class _Either:
    """Stopped when either the whole fetch or the per-profile pool is stopped."""

    first: _Stop
    second: _Stop

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


class ExportJobs:
    """Creates CertificatesByRAPolicy jobs exactly as a fetch does; shared by fetch and doctor.

    The selection is narrowed at most once (to ``REPORT_MINIMAL_COLUMNS``) when Graph refuses
    it, and the narrowed one is kept for every later job of the same fetch.
    """

    def __init__(self, client: GraphClient, budget: RateLimiter | None = None):
        self._client = client
        self._budget = budget
        self._lock = threading.Lock()
        self.select: tuple[str, ...] = REPORT_COLUMNS

    @property
    def dropped(self) -> list[str]:
        return [c for c in REPORT_COLUMNS if c not in self.select]

    def _post(self, select: tuple[str, ...], policy_filter: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reportName": REPORT_NAME,
            "format": "csv",
            "localizationType": EXPORT_LOCALIZATION,
            "select": list(select),
        }
        if policy_filter is not None:
            body["filter"] = policy_filter
        if self._budget is not None:
            self._budget.acquire()
        return self._client.post(EXPORT_PATH, body)

    def create(self, policy_filter: str | None = None) -> dict[str, Any]:
        select = self.select
        try:
            return self._post(select, policy_filter)
        except GraphError as exc:
            if exc.status != 400 or select == REPORT_MINIMAL_COLUMNS:
                raise
            first = exc
        try:
            job = self._post(REPORT_MINIMAL_COLUMNS, policy_filter)
        except GraphError as exc:
            if exc.status == 400:
                raise first from None
            raise
        with self._lock:
            if self.select != REPORT_MINIMAL_COLUMNS:
                self.select = REPORT_MINIMAL_COLUMNS
                log.warning(
                    "report export: Graph refused the column selection (%s); using only the "
                    "columns the join needs, dropped: %s",
                    first,
                    ", ".join(self.dropped),
                )
        return job

    def create_for(self, profile: Profile) -> dict[str, Any]:
        quoted = profile.id.replace("'", "''")
        return self.create(f"(PolicyId eq '{quoted}')")


class ReportExporter:
    """One CertificatesByRAPolicy export: a tenant-wide job, else one job per profile."""

    def __init__(
        self,
        client: GraphClient,
        sink: SharedSink,
        polling: ExportPolling,
        *,
        workers: int = 1,
        raw_rows: bool = False,
    ):
        self._client = client
        self._sink = sink
        self._polling = polling
        self._workers = workers
        self._raw_rows = raw_rows
        self._budget = RateLimiter(EXPORT_BUDGET, 60.0, clock=polling.clock, sleep=polling.sleep)
        self.jobs = ExportJobs(client, self._budget)

    def run(self, stop: _Stop) -> None:
        self._sink.open_collection("report_rows")
        try:
            job = self.jobs.create()
        except GraphError as exc:
            if exc.status not in REFUSED_STATUSES:
                raise
            log.warning(
                "report export: Graph refused a tenant-wide %s job (%s); running one job per "
                "certificate profile instead",
                REPORT_NAME,
                exc,
            )
            self._per_profile(stop)
            return
        self._finish(job, None, stop)

    def _per_profile(self, stop: _Stop) -> None:
        profiles = list_certificate_profiles(self._client)
        if not profiles:
            log.warning("report export: the tenant has no certificate profile to export")
            return
        # Each task gets the pool's own stop event last, so one failing job stops the rest.
        self._sink.in_parts("report_rows")
        tasks: list[Callable[[threading.Event], None]] = [
            functools.partial(self._one_profile, profile, n, stop)
            for n, profile in enumerate(profiles)
        ]
        run_all(tasks, self._workers)

    def _one_profile(
        self, profile: Profile, part: int, outer: _Stop, inner: threading.Event
    ) -> None:
        stop = _Either(outer, inner)
        if stop.is_set():
            return
        self._finish(self.jobs.create_for(profile), profile.id, stop, part)

    def _finish(
        self, job: Mapping[str, Any], policy_id: str | None, stop: _Stop, part: int | None = None
    ) -> None:
        url = poll_export(self._client, job, self._polling, stop, self._budget)
        if url is None:
            return
        with tempfile.TemporaryFile() as archive:
            self._client.download(url, cast(IO[bytes], _Counted(archive)), MAX_EXPORT_ZIP)
            archive.seek(0)
            read_export(
                archive,
                self._sink,
                MAX_EXPORT_CSV,
                raw_rows=self._raw_rows,
                policy_id=policy_id,
                requested=self.jobs.select,
                part=part,
            )
        if part is not None:
            self._sink.end_part("report_rows", part)


def fetch_report(
    client: GraphClient,
    sink: SharedSink,
    polling: ExportPolling,
    stop: threading.Event,
    *,
    workers: int = 1,
    raw_rows: bool = False,
) -> None:
    ReportExporter(client, sink, polling, workers=workers, raw_rows=raw_rows).run(stop)


def list_certificate_profiles(client: GraphClient) -> list[Profile]:
    """The certificate profiles, without writing them anywhere (the per-profile export)."""
    params = {"$select": ",".join(PROFILE_FIELDS), "$top": str(PAGE_SIZE)}
    found = (_profile_of(obj) for page in client.pages(PROFILES_PATH, params) for obj in page)
    return [profile for profile in found if profile is not None]


class _Pending(Exception):
    """The export job is not done yet: tenacity polls again."""

    def __init__(self, status: str):
        self.status = status


def poll_export(
    client: GraphClient,
    job: Mapping[str, Any],
    polling: ExportPolling,
    stop: _Stop,
    budget: RateLimiter | None = None,
) -> str | None:
    """The download url once the job completed (None when stopped); backoff, then a timeout."""
    job_id = str(job.get("id") or "")
    if not job_id:
        raise UpstreamError("report export: Graph created a job without an id")
    deadline = polling.clock() + polling.timeout
    backoff = tenacity.wait_exponential(
        multiplier=polling.first_delay, exp_base=1.5, max=polling.max_delay
    )
    current = job
    polls = -1

    def look() -> Mapping[str, Any] | None:
        nonlocal current, polls
        polls += 1
        if polls:
            if budget is not None:
                budget.acquire()
            current = client.get(f"{EXPORT_PATH}('{job_id.replace(chr(39), chr(39) * 2)}')")
        status = str(current.get("status") or "unknown")
        if status == "completed":
            return current
        progress.report("export", polls, status)
        if status == "failed":
            raise UpstreamError(
                f"report export job {job_id} failed in Intune; run again later or use "
                "--intune-source states"
            )
        if stop.is_set():
            return None
        raise _Pending(status)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Pending),
        # Growing delays, the last one cut to the deadline, one last look at the job there.
        wait=lambda state: min(backoff(state), deadline - polling.clock()),
        stop=lambda _state: deadline - polling.clock() <= 0,
        sleep=polling.sleep,
        reraise=True,
    )
    try:
        done = retrying(look)
    except _Pending as exc:
        raise UpstreamError(
            f"report export job {job_id} still {exc.status} after {polling.timeout:.0f} s; "
            "raise intune.export_timeout (RECONCILE_EXPORT_TIMEOUT)"
        ) from None
    if done is None:
        return None
    url = done.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise UpstreamError(f"report export job {job_id} completed without an https download url")
    progress.report("export", polls, "completed")
    return url


class _Counted(io.RawIOBase):
    """The download's file, reporting the bytes received so far as progress."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._written = 0

    def writable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._written = 0
        return self._raw.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        return self._raw.truncate(size)

    def write(self, data: Any) -> int:
        written = self._raw.write(data)
        self._written += written
        progress.report("download", self._written)
        return written


class _Capped(io.RawIOBase):
    """Stops a zip bomb: counts the bytes actually inflated, not the size the zip claims."""

    def __init__(self, raw: IO[bytes], limit: int):
        self._raw = raw
        self._left = limit
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise UpstreamError(f"report export CSV is larger than {self._limit} bytes")
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def read_export(
    archive: IO[bytes],
    sink: SharedSink,
    max_csv: int,
    *,
    raw_rows: bool = False,
    policy_id: str | None = None,
    requested: tuple[str, ...] = REPORT_COLUMNS,
    part: int | None = None,
) -> None:
    """The zip must hold exactly one CSV (UTF-8, maybe with BOM); every row must fit its header.

    Rows are kept compact: only the columns records.py reads, plus (``raw_rows``) the whole
    row; a per-profile job's rows get its PolicyId when the CSV has none.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [info for info in bundle.infolist() if not info.is_dir()]
            if len(members) != 1:
                raise UpstreamError(f"report export zip holds {len(members)} files, expected 1")
            (member,) = members
            if member.file_size > max_csv:
                raise UpstreamError(f"report export CSV is larger than {max_csv} bytes")
            with bundle.open(member) as raw:
                text = io.TextIOWrapper(
                    io.BufferedReader(_Capped(raw, max_csv), 1 << 16),
                    encoding="utf-8-sig",
                    newline="",
                )
                _read_rows(csv.reader(text), sink, raw_rows, policy_id, requested, part)
    except zipfile.BadZipFile as exc:
        raise UpstreamError(f"report export download is not a valid zip: {exc}") from None
    except UnicodeDecodeError:
        raise UpstreamError("report export CSV is not UTF-8") from None
    except csv.Error as exc:
        raise UpstreamError(f"report export CSV is malformed: {exc}") from None


def _read_rows(
    reader: Any,
    sink: SharedSink,
    raw_rows: bool,
    policy_id: str | None,
    requested: tuple[str, ...],
    part: int | None,
) -> None:
    header = next(reader, None)
    if not header:
        raise UpstreamError("report export CSV is empty: no header row")
    missing = [c for c in _REQUIRED_REPORT_COLUMNS if c not in header]
    if missing:
        raise UpstreamError(f"report export CSV lacks the column(s) {', '.join(missing)}")
    absent = [c for c in requested if c not in header]
    if absent:
        log.warning("report export CSV lacks requested columns: %s", ", ".join(absent))
    keep = [(n, name) for n, name in enumerate(header) if name in REPORT_ROW_KEYS]
    batch: list[dict[str, Any]] = []
    for row in reader:
        if len(row) != len(header):
            raise UpstreamError(
                f"report export CSV line {reader.line_num}: {len(row)} fields, "
                f"header has {len(header)}"
            )
        compact: dict[str, Any] = {name: row[n] for n, name in keep}
        if policy_id is not None and "PolicyId" not in compact:
            compact["PolicyId"] = policy_id
        if raw_rows:
            compact[RAW_ROW_KEY] = dict(zip(header, row, strict=True))
        batch.append(compact)
        if len(batch) >= PAGE_SIZE:
            sink.write_page("report_rows", batch, part)
            batch = []
    sink.write_page("report_rows", batch, part)


def run_all(tasks: list[Callable[[threading.Event], None]], workers: int) -> None:
    """Run tasks on a bounded pool; the first failure stops the others and is raised.

    Every task has ended before this returns, so nothing writes to the sink after a failure.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile-graph") as pool:
        futures = [pool.submit(task, stop) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            stop.set()
            for future in futures:
                future.cancel()
    if failed is not None:
        exc = failed.exception()
        assert exc is not None
        raise exc
    for future in futures:
        future.result()
