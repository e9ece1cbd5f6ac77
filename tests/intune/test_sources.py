from __future__ import annotations

import io
import logging
import threading
import zipfile
from typing import Any

import httpx
import pytest

from reconcile.errors import GraphError, UpstreamError
from reconcile.intune.records import PROFILE_ID_KEY, PROFILE_NAME_KEY, PROFILE_TYPE_KEY
from reconcile.intune.sources import (
    CERTIFICATE_PROFILE_TYPES,
    EXPORT_BUDGET,
    ExportPolling,
    SharedSink,
    _Capped,
    certificate_profile_type,
    fetch_devices,
    fetch_profiles,
    fetch_report,
    fetch_states,
    read_export,
    run_all,
)
from tests.graph.fake import FakeClock, FakeCloud, export_zip, make_client, state


class ListSink:
    def __init__(self) -> None:
        self.data: dict[str, list[dict[str, Any]]] = {}

    def open_collection(self, name: str) -> None:
        self.data.setdefault(name, [])

    def write(self, name: str, obj: Any) -> None:
        self.data.setdefault(name, []).append(dict(obj))


def profile(pid: str, odata_type: str, name: str = "") -> dict[str, Any]:
    return {"@odata.type": f"#microsoft.graph.{odata_type}", "id": pid, "displayName": name or pid}


@pytest.mark.parametrize(
    "odata_type",
    [
        "windows81SCEPCertificateProfile",
        "windows10PkcsCertificateProfile",
        "windows10ImportedPFXCertificateProfile",
        "iosScepCertificateProfile",
        "macOSPkcsCertificateProfile",
        "androidScepCertificateProfile",
        "androidWorkProfilePkcsCertificateProfile",
        "androidDeviceOwnerScepCertificateProfile",
        "androidForWorkImportedPFXCertificateProfile",
        "aospDeviceOwnerPkcsCertificateProfile",
    ],
)
def test_certificate_profiles_are_kept_by_odata_type(odata_type: str) -> None:
    assert odata_type in CERTIFICATE_PROFILE_TYPES
    assert certificate_profile_type(profile("p", odata_type)) == odata_type


@pytest.mark.parametrize(
    "odata_type",
    [
        "windows10GeneralConfiguration",
        "iosTrustedRootCertificate",
        "windows81TrustedRootCertificate",
    ],
)
def test_other_configurations_are_skipped(odata_type: str) -> None:
    assert certificate_profile_type(profile("p", odata_type)) is None


def test_unknown_certificate_profile_type_is_kept_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="reconcile.intune"):
        kept = certificate_profile_type(profile("p9", "visionOSScepCertificateProfile"))
    assert kept == "visionOSScepCertificateProfile"
    assert "visionOSScepCertificateProfile" in caplog.text and "p9" in caplog.text


def test_states_are_read_per_profile_and_annotated() -> None:
    cloud = FakeCloud(
        profiles=[
            profile("p1", "windows81SCEPCertificateProfile", "Win SCEP"),
            profile("g1", "windows10GeneralConfiguration"),
            profile("p2", "iosPkcsCertificateProfile", "iOS PKCS"),
        ],
        states={"p1": [state("01"), state("02")], "p2": [state("03", "issued")]},
        max_page=1,
    )
    client, _, _ = make_client(cloud)
    sink = ListSink()
    shared = SharedSink(sink)
    profiles = fetch_profiles(client, shared)
    assert [p.id for p in profiles] == ["p1", "p2"]
    assert [p["id"] for p in sink.data["profiles"]] == ["p1", "p2"]
    stop = threading.Event()
    for p in profiles:
        fetch_states(client, shared, p, stop)
    states = sink.data["certificate_states"]
    assert [s["certificateSerialNumber"] for s in states] == ["01", "02", "03"]
    assert states[0][PROFILE_ID_KEY] == "p1"
    assert states[0][PROFILE_TYPE_KEY] == "windows81SCEPCertificateProfile"
    assert states[2][PROFILE_NAME_KEY] == "iOS PKCS"
    paths = [r.url.path for r in cloud.graph_requests()]
    assert (
        "/beta/deviceManagement/deviceConfigurations/p1/microsoft.graph."
        "windows81SCEPCertificateProfile/managedDeviceCertificateStates" in paths
    )
    select = cloud.graph_requests()[-1].url.params["$select"].split(",")
    assert "certificateSerialNumber" in select and "certificateIssuanceState" in select


def test_devices_are_selected_and_paged() -> None:
    cloud = FakeCloud(devices=[{"id": str(i)} for i in range(3)], max_page=2)
    client, _, _ = make_client(cloud)
    sink = ListSink()
    progress: list[tuple[str, int]] = []
    fetch_devices(client, SharedSink(sink, lambda n, c: progress.append((n, c))), threading.Event())
    assert len(sink.data["managed_devices"]) == 3
    assert progress == [("managed_devices", 2), ("managed_devices", 3)]
    params = cloud.graph_requests()[0].url.params
    assert params["$select"] == (
        "id,deviceName,azureADDeviceId,serialNumber,userPrincipalName,operatingSystem,"
        "lastSyncDateTime"
    )
    assert params["$top"] == "1000"


def run_report(cloud: FakeCloud, timeout: float = 600) -> tuple[ListSink, FakeClock]:
    client, clock, tokens = make_client(cloud)
    sink = ListSink()
    polling = ExportPolling(timeout, clock=clock, sleep=clock.sleep)
    fetch_report(client, SharedSink(sink), polling, threading.Event())
    return sink, clock


def test_report_job_is_polled_with_backoff_and_downloaded_without_a_token() -> None:
    csv_text = "SerialNumber,CertificateStatus,DeviceName\r\n0A,Active,PC-ü\r\n0B,Revoked,\r\n"
    cloud = FakeCloud(export_csv=csv_text)
    sink, clock = run_report(cloud)
    assert sink.data["report_rows"] == [
        {"SerialNumber": "0A", "CertificateStatus": "Active", "DeviceName": "PC-ü"},
        {"SerialNumber": "0B", "CertificateStatus": "Revoked", "DeviceName": ""},
    ]
    assert clock.sleeps == [2.0, 3.0]
    post = cloud.requests[0]
    assert post.method == "POST"
    assert b'"select":["DeviceId"' in post.content.replace(b" ", b"")
    (download,) = [r for r in cloud.requests if r.url.host.endswith("blob.core.windows.net")]
    assert "authorization" not in download.headers
    assert all("authorization" in r.headers for r in cloud.graph_requests())


def test_failed_report_job_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="failed"):
        run_report(FakeCloud(export_statuses=["notStarted", "failed"]))


def test_report_job_timeout_is_an_upstream_error() -> None:
    cloud = FakeCloud(export_statuses=["inProgress"])
    client, clock, _ = make_client(cloud)
    polling = ExportPolling(60, clock=clock, sleep=clock.sleep)
    start = clock.now
    with pytest.raises(UpstreamError, match="still inProgress after 60 s"):
        fetch_report(client, SharedSink(ListSink()), polling, threading.Event())
    # growing delays, the last one cut to the deadline, one last look at the job there
    assert clock.sleeps[:3] == [2.0, 3.0, 4.5]
    assert clock.now - start == pytest.approx(60.0)
    polls = [r for r in cloud.requests if r.method == "GET"]
    assert len(polls) == len(clock.sleeps)


def read(data: bytes, max_csv: int = 1 << 20) -> list[dict[str, Any]]:
    sink = ListSink()
    read_export(io.BytesIO(data), SharedSink(sink), max_csv)
    return sink.data.get("report_rows", [])


def test_export_zip_must_hold_exactly_one_file() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("a.csv", "SerialNumber\n1\n")
        bundle.writestr("b.csv", "SerialNumber\n2\n")
    with pytest.raises(UpstreamError, match="holds 2 files"):
        read(buffer.getvalue())
    with pytest.raises(UpstreamError, match="not a valid zip"):
        read(b"<html>expired</html>")


def test_export_size_caps() -> None:
    data = export_zip("SerialNumber\n" + "0A\n" * 5000)
    with pytest.raises(UpstreamError, match="larger than 100 bytes"):
        read(data, max_csv=100)
    capped = _Capped(io.BytesIO(b"x" * 50), 10)
    with pytest.raises(UpstreamError, match="larger than 10 bytes"):
        io.BufferedReader(capped).read()


def test_export_rows_must_fit_the_header() -> None:
    with pytest.raises(UpstreamError, match="line 3: 3 fields, header has 2"):
        read(export_zip("SerialNumber,CertificateStatus\n0A,Active\n0B,Active,extra\n"))
    with pytest.raises(UpstreamError, match="lacks the column"):
        read(export_zip("Thumbprint\nAB\n"))
    with pytest.raises(UpstreamError, match="empty"):
        read(export_zip(""))


def test_download_failure_is_incomplete_data() -> None:
    cloud = FakeCloud()
    cloud.before.append(
        lambda r: (
            httpx.Response(403, text="AuthenticationFailed")
            if r.url.host.endswith("blob.core.windows.net")
            else None
        )
    )
    with pytest.raises(GraphError, match="download failed with HTTP 403") as info:
        run_report(cloud)
    assert "sig=" not in str(info.value)


def test_run_all_stops_the_others_on_first_failure() -> None:
    started = threading.Event()
    seen_stop: list[bool] = []

    def slow(stop: threading.Event) -> None:
        started.set()
        seen_stop.append(stop.wait(5))

    def broken(stop: threading.Event) -> None:
        started.wait(5)
        raise GraphError("page failed", request_id="rid-x")

    with pytest.raises(GraphError, match="page failed"):
        run_all([slow, broken], workers=2)
    assert seen_stop == [True]


def test_export_polls_stay_within_the_exportjobs_budget() -> None:
    """exportJobs allow 48 requests per app per minute; a long job is polled within 40."""
    cloud = FakeCloud(export_statuses=["inProgress"] * 120 + ["completed"])
    client, clock, _ = make_client(cloud)
    polling = ExportPolling(3600, first_delay=0.1, max_delay=0.1, clock=clock, sleep=clock.sleep)
    stamps: list[float] = []

    def seen(request: httpx.Request) -> None:
        if "exportJobs" in request.url.path:
            stamps.append(clock())

    cloud.before.append(seen)
    fetch_report(client, SharedSink(ListSink()), polling, threading.Event())
    assert len(stamps) == 121  # the create and 120 polls, the last one completed
    assert max(sum(1 for t in stamps if s <= t < s + 60) for s in stamps) <= EXPORT_BUDGET
