"""The Graph client against the HTTPS emulator: paging, retries, errors, the SAS download.

Waits run on a fake clock, so Retry-After and backoff are checked exactly without sleeping.
"""

from __future__ import annotations

import base64
import email.utils
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconcile.emulator import Fault, FaultKind, GraphEmulator, ListTenant
from reconcile.errors import GraphError
from reconcile.graph.client import (
    RateLimiter,
    RetryPolicy,
    parse_retry_after,
    required_permission,
)
from tests.emulation import FakeClock, graph_client

PATH = "/v1.0/deviceManagement/managedDevices"


def devices(count: int, page: int = 1000, **options: Any) -> GraphEmulator:
    data = ListTenant(devices=[{"id": str(i)} for i in range(count)])
    return GraphEmulator(data=data, page_size=min(page, 100), max_page_size=page, **options)


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with devices(1) as emulator:
        yield emulator


class FailingSends(httpx.BaseTransport):
    """The TLS transport to the emulator, raising ``errors`` on the first sends instead."""

    def __init__(self, emu: GraphEmulator, errors: list[Exception]):
        self._inner = httpx.HTTPTransport(verify=emu.ssl_context())
        self._errors = errors
        self.sends: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "/oauth2/" not in request.url.path:
            self.sends.append(request)
            if self._errors:
                raise self._errors.pop(0)
        return self._inner.handle_request(request)


def test_paging_follows_next_link_verbatim_and_selects() -> None:
    with devices(25, page=10) as emu:
        client, _, _ = graph_client(emu)
        pages = list(client.pages(PATH, {"$select": "id,deviceName", "$top": "1000"}))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [d["id"] for p in pages for d in p] == [str(i) for i in range(25)]
    sent = emu.requests_for("devices")
    assert sent[0].params["$top"] == ["1000"]
    assert sent[0].params["$select"] == ["id,deviceName"]
    # the second request is exactly the nextLink the emulator gave (its opaque skiptoken)
    skiptoken = base64.urlsafe_b64encode(b"emulator:10").rstrip(b"=").decode()
    assert sent[1].params["$skiptoken"] == [skiptoken]
    assert sent[1].params["$select"] == ["id,deviceName"]


def test_every_request_asks_for_a_token_and_carries_a_fresh_client_request_id() -> None:
    carried: list[str | None] = []

    def seen(request: httpx.Request) -> None:
        if "/oauth2/" not in request.url.path:
            carried.append(request.headers.get("Authorization"))

    with devices(5, page=2) as emu:
        client, _, tokens = graph_client(emu, on_request=seen, fresh_tokens=True)
        list(client.pages(PATH))
    sent = emu.requests_for("devices")
    assert tokens.calls == len(sent) == 3
    assert len(set(tokens.issued)) == 3
    assert carried == [f"Bearer {token}" for token in tokens.issued]
    ids = {r.header("client-request-id") for r in sent}
    assert len(ids) == 3 and None not in ids


def test_next_link_to_another_host_is_refused() -> None:
    with devices(3, page=2, faults=[Fault(FaultKind.NEXT_LINK_FOREIGN, route="devices")]) as emu:
        client, _, _ = graph_client(emu)
        with pytest.raises(GraphError, match="points away"):
            list(client.pages(PATH))
    assert len(emu.requests_for("devices")) == 1


def test_retry_after_seconds_is_honoured_never_earlier(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.THROTTLE, route="devices", times=2, retry_after=7))
    client, clock, _ = graph_client(emu)
    assert list(client.pages(PATH)) == [[{"id": "0"}]]
    assert clock.sleeps == [7.0, 7.0]
    assert len(emu.requests_for("devices")) == 3


def test_retry_after_http_date_is_measured_against_the_server_date(emu: GraphEmulator) -> None:
    clock = FakeClock(time.time() - 3600)  # the local clock is an hour behind the emulator
    emu.add_fault(
        Fault(FaultKind.UNAVAILABLE, route="devices", retry_after=12, retry_after_date=True)
    )
    client, clock, _ = graph_client(emu, clock)
    list(client.pages(PATH))
    assert clock.sleeps and clock.sleeps[0] >= 12.0
    (refused, _) = emu.requests_for("devices")
    assert refused.status == 503


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3", None, 0) == 3.0
    assert parse_retry_after("-2", None, 0) == 0.0
    assert parse_retry_after(None, None, 0) is None
    assert parse_retry_after("soon", None, 0) is None
    date = email.utils.formatdate(1000.0 + 30, usegmt=True)
    assert parse_retry_after(date, None, 1000.0) == pytest.approx(30.0)


def test_backoff_without_retry_after_grows_exponentially(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.GATEWAY_TIMEOUT, route="devices", times=3))
    client, clock, _ = graph_client(emu)
    list(client.pages(PATH))
    # jitter pinned to 0.5: ceiling * 0.75 with ceilings 1, 2, 4
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_bounded_attempts_raise_with_request_id(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.UNAVAILABLE, route="devices", times=None, retry_after=None))
    client, _, _ = graph_client(emu, retry=RetryPolicy(max_attempts=3, max_time=600))
    with pytest.raises(GraphError) as info:
        list(client.pages(PATH))
    sent = emu.requests_for("devices")
    assert len(sent) == 3
    last = sent[-1].request_id
    assert last and info.value.request_id == last
    assert info.value.status == 503
    assert "after 3 attempts" in str(info.value)
    assert f"request-id {last}" in str(info.value)


def test_total_retry_time_is_bounded_even_when_retry_after_is_long(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.THROTTLE, route="devices", times=None, retry_after=500))
    client, clock, _ = graph_client(emu, retry=RetryPolicy(max_attempts=10, max_time=120))
    with pytest.raises(GraphError, match="Retry-After 500 s exceeds"):
        list(client.pages(PATH))
    assert clock.sleeps == []  # never retried earlier than allowed: gave up instead
    assert len(emu.requests_for("devices")) == 1


def test_connection_errors_and_read_timeouts_are_retried_for_get(emu: GraphEmulator) -> None:
    failing = FailingSends(emu, [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    client, clock, _ = graph_client(emu, transport=failing)
    assert list(client.pages(PATH)) == [[{"id": "0"}]]
    assert len(clock.sleeps) == 2
    assert len(failing.sends) == 3 and len(emu.requests_for("devices")) == 1


def test_a_dropped_connection_is_retried_for_get(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.DROP, route="devices"))
    client, clock, _ = graph_client(emu)
    assert list(client.pages(PATH)) == [[{"id": "0"}]]
    assert len(clock.sleeps) == 1
    assert len(emu.requests_for("devices")) == 2


def test_read_timeout_on_post_is_not_repeated(emu: GraphEmulator) -> None:
    failing = FailingSends(emu, [httpx.ReadTimeout("slow")] * 5)
    client, _, _ = graph_client(emu, transport=failing)
    with pytest.raises(GraphError, match="client-request-id"):
        client.post("/beta/deviceManagement/reports/exportJobs", {"reportName": "x"})
    assert len(failing.sends) == 1
    assert emu.requests_for("export_create") == []


def test_forbidden_names_the_permission_and_request_id(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.FORBIDDEN, route="devices"))
    client, _, _ = graph_client(emu)
    with pytest.raises(GraphError) as info:
        client.get(PATH)
    message = str(info.value)
    (refused,) = emu.requests_for("devices")
    assert "HTTP 403" in message
    assert "DeviceManagementManagedDevices.Read.All" in message
    assert f"request-id {refused.request_id}" in message
    assert required_permission("POST", "/beta/deviceManagement/reports/exportJobs") == (
        "DeviceManagementConfiguration.ReadWrite.All"
    )


def test_rate_limiter_keeps_a_sliding_window() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(3, 20.0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(7):
        limiter.acquire()
        times.append(clock.now)
    assert times == [0, 0, 0, 20, 20, 20, 40]
    for start in range(len(times)):
        window = [t for t in times if times[start] <= t < times[start] + 20]
        assert len(window) <= 3


def test_rate_limiter_is_shared_by_threads() -> None:
    lock = threading.Lock()
    now = [0.0]

    def clock() -> float:
        with lock:
            return now[0]

    def sleep(seconds: float) -> None:
        with lock:
            now[0] += seconds

    limiter = RateLimiter(10, 20.0, clock=clock, sleep=sleep)
    stamps: list[float] = []

    def worker() -> None:
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(now[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 40
    for t0 in stamps:
        assert len([t for t in stamps if t0 <= t < t0 + 20.0]) <= 10


def test_download_sends_no_authorization_and_caps_size(tmp_path: Any) -> None:
    rows = [{"SerialNumber": f"{i:02X}"} for i in range(1000)]
    with GraphEmulator(data=ListTenant(report=rows), export_polls=0) as emu:
        client, _, tokens = graph_client(emu)
        job = client.post(
            "/beta/deviceManagement/reports/exportJobs",
            {"reportName": "CertificatesByRAPolicy", "select": ["SerialNumber"]},
        )
        url = client.get(f"/beta/deviceManagement/reports/exportJobs('{job['id']}')")["url"]
        asked = tokens.calls
        with (tmp_path / "a.zip").open("w+b") as sink:
            size = client.download(url, sink, 10_000_000)
        assert size > 0
        (request,) = emu.requests_for("download")
        assert not request.had_authorization and request.status == 200
        assert tokens.calls == asked
        signature = request.params["sig"][0]
        with (tmp_path / "b.zip").open("w+b") as sink, pytest.raises(GraphError) as info:
            client.download(url, sink, 10)
    assert signature not in str(info.value)
