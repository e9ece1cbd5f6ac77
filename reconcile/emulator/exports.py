"""The emulator's report export jobs: create, poll, and download the zipped CSV from a
blob-style URL signed with a SAS token, as Intune's ``deviceManagement/reports/exportJobs`` does.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from reconcile.emulator.faults import Fault, FaultKind
from reconcile.emulator.httpserver import GRAPH_JSON, Exchange
from reconcile.emulator.tenant import REPORT_ENUM_COLUMNS, REPORT_STATUS_CODES, Tenant

REPORT_NAMES = ("CertificatesByRAPolicy", "AllDeviceCertificates")
LOCALIZATION_TYPES = ("LocalizedValuesAsAdditionalColumn", "ReplaceLocalizableValues")
_POLICY_FILTER = re.compile(r"^\s*\(?\s*PolicyId\s+eq\s+'((?:[^']|'')*)'\s*\)?\s*$", re.IGNORECASE)
ROUTES = (
    ("POST", "export_create", r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs$"),
    ("GET", "export_list", r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs$"),
    (
        "GET",
        "export_status",
        r"^/(v1\.0|beta)/deviceManagement/reports/exportJobs"
        r"(\('(?P<id>[^']+)'\)|/(?P<id2>[^/]+))$",
    ),
    ("GET", "download", r"^/blob/reports/(?P<name>[^/]+)\.zip$"),
)
BODY_ROUTES = frozenset({"export_create"})
"""Routes whose body holds no credential, so the request log keeps it."""


class Rows(Protocol):
    """Where the report rows come from: the emulator's tenant data at export time."""

    data: Tenant


@dataclass
class ExportJob:
    id: str
    report_name: str
    select: list[str]
    filter: str | None
    localization: str
    requested: float
    polls: int
    signature: str
    failed: bool = False
    archive: bytes | None = None


class Exports:
    """Jobs finish after ``polls`` status reads; the archive is built once, on completion."""

    def __init__(
        self,
        source: Rows,
        *,
        page_size: Callable[[Exchange], int],
        polls: int,
        columns: frozenset[str],
        bom: bool,
        loc: bool,
    ):
        self._estate = source
        self._page_size = page_size
        self.export_polls = polls
        self.report_columns = columns
        self.report_bom = bom
        self.report_loc = loc
        self._lock = threading.Lock()
        self._jobs: dict[str, ExportJob] = {}

    def _job_json(self, base: str, job: ExportJob, status: str, url: str | None) -> dict[str, Any]:
        requested = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.requested))
        expires = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.requested + 3600))
            if url
            else "0001-01-01T00:00:00Z"
        )
        return {
            "@odata.context": f"{base}/beta/$metadata#deviceManagement/reports/exportJobs/$entity",
            "id": job.id,
            "reportName": job.report_name,
            "filter": job.filter,
            "select": job.select,
            "format": "csv",
            "snapshotId": None,
            "localizationType": job.localization,
            "status": status,
            "url": url,
            "requestDateTime": requested,
            "expirationDateTime": expires,
        }

    def create_job(self, ex: Exchange, fault: Fault | None) -> None:
        try:
            body = json.loads(ex.body or b"{}")
        except json.JSONDecodeError:
            ex.graph_error(400, "BadRequest", "The request body is not valid JSON.")
            return
        if not isinstance(body, dict):
            ex.graph_error(400, "BadRequest", "The request body must be an object.")
            return
        name = body.get("reportName")
        if name not in REPORT_NAMES:
            ex.graph_error(400, "BadRequest", f"Invalid report name '{name}'.")
            return
        select = body.get("select") or sorted(self.report_columns)
        if not isinstance(select, list):
            ex.graph_error(400, "BadRequest", "select must be an array of column names.")
            return
        unknown = [c for c in select if c not in self.report_columns]
        if unknown:
            ex.graph_error(400, "BadRequest", f"Invalid select column(s): {unknown}.")
            return
        if body.get("format", "csv") != "csv":
            ex.graph_error(400, "BadRequest", "The emulator only exports csv.")
            return
        localization = str(body.get("localizationType") or LOCALIZATION_TYPES[0])
        if localization not in LOCALIZATION_TYPES:
            ex.graph_error(400, "BadRequest", f"Invalid localizationType '{localization}'.")
            return
        policy_filter = body.get("filter")
        if policy_filter is not None and (
            not isinstance(policy_filter, str) or not _POLICY_FILTER.match(policy_filter)
        ):
            ex.graph_error(400, "BadRequest", f"Invalid filter '{policy_filter}'.")
            return
        required = fault is not None and fault.kind is FaultKind.POLICY_FILTER_REQUIRED
        if required and policy_filter is None:
            ex.graph_error(400, "BadRequest", f"Report '{name}' requires a filter on PolicyId.")
            return
        job = ExportJob(
            id=f"{name}_{uuid.uuid4()}",
            report_name=str(name),
            select=[str(c) for c in select],
            filter=policy_filter,
            localization=localization,
            requested=time.time(),
            polls=self.export_polls,
            signature=secrets.token_urlsafe(24),
        )
        with self._lock:
            self._jobs[job.id] = job
        ex.json(201, self._job_json(ex.base, job, "notStarted", None), GRAPH_JSON)

    def list_jobs(self, ex: Exchange) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        value = [self._job_json(ex.base, job, "inProgress", None) for job in jobs]
        payload = {
            "@odata.context": f"{ex.base}/beta/$metadata#deviceManagement/reports/exportJobs",
            "value": value[: self._page_size(ex)],
        }
        ex.json(200, payload, GRAPH_JSON)

    def job_status(self, ex: Exchange, fault: Fault | None) -> None:
        assert ex.match is not None
        job_id = ex.match.group("id") or ex.match.group("id2")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.polls -= 1
                if fault is not None and fault.kind is FaultKind.EXPORT_FAILED:
                    job.failed = True
        if job is None:
            ex.graph_error(404, "ResourceNotFound", f"Export job '{job_id}' not found.")
            return
        if job.failed:
            ex.json(200, self._job_json(ex.base, job, "failed", None), GRAPH_JSON)
            return
        if job.polls >= 0:
            ex.json(200, self._job_json(ex.base, job, "inProgress", None), GRAPH_JSON)
            return
        if job.archive is None:
            job.archive = self._archive(job)
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        query = urlencode(
            {"sv": "2019-02-02", "sr": "b", "sig": job.signature, "se": expiry, "sp": "r"}
        )
        url = f"{ex.base}/blob/reports/{job.id}.zip?{query}"
        ex.json(200, self._job_json(ex.base, job, "completed", url), GRAPH_JSON)

    def _archive(self, job: ExportJob) -> bytes:
        """The CSV as Graph shapes it: with LocalizedValuesAsAdditionalColumn (the default) an
        enum column holds its numeric code and ``<Column>_loc`` follows it with the text.
        ``report_loc=False`` leaves the ``_loc`` column out, as one public probe observed."""
        additional = job.localization == LOCALIZATION_TYPES[0]
        loc = additional and self.report_loc
        header: list[str] = []
        for column in job.select:
            header.append(column)
            if loc and column in REPORT_ENUM_COLUMNS:
                header.append(f"{column}_loc")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(header)
        for row in self._report_rows(job):
            cells: list[str] = []
            for column in job.select:
                value = "" if row.get(column) is None else str(row.get(column))
                if additional and column in REPORT_ENUM_COLUMNS:
                    cells.append(REPORT_STATUS_CODES.get(value, "0"))
                    cells += [value] if loc else []
                else:
                    cells.append(value)
            writer.writerow(cells)
        data = text.getvalue().encode("utf-8-sig" if self.report_bom else "utf-8")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{job.id}.csv", data)
        return buffer.getvalue()

    def _report_rows(self, job: ExportJob) -> Iterator[Mapping[str, Any]]:
        matched = _POLICY_FILTER.match(job.filter or "")
        if matched is None:
            return self._estate.data.report_rows()
        policy = matched.group(1).replace("''", "'")
        return (row for row in self._estate.data.report_rows() if row.get("PolicyId") == policy)

    def download(self, ex: Exchange) -> None:
        headers = {"x-ms-version": "2019-02-02"}
        if ex.header("Authorization") is not None:
            # Azure Blob refuses a SAS request that also carries a Graph bearer token.
            ex.send(
                403,
                _blob_error("AuthenticationFailed", "Authorization header and SAS both given."),
                "application/xml",
                headers,
            )
            return
        assert ex.match is not None
        with self._lock:
            job = self._jobs.get(ex.match.group("name"))
        if job is None or job.archive is None:
            ex.send(
                404,
                _blob_error("BlobNotFound", "The specified blob does not exist."),
                "application/xml",
                headers,
            )
            return
        if not secrets.compare_digest(ex.params.get("sig", ""), job.signature):
            ex.send(
                403,
                _blob_error("AuthenticationFailed", "Signature did not match."),
                "application/xml",
                headers,
            )
            return
        ex.send(200, job.archive, "application/x-zip-compressed", headers)


def _blob_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
