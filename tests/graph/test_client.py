from __future__ import annotations

import email.utils
import threading
from typing import Any

import httpx
import pytest

from reconcile.errors import GraphError
from reconcile.graph.client import (
    RateLimiter,
    RetryPolicy,
    parse_retry_after,
    required_permission,
)
from tests.graph.fake import FakeClock, FakeCloud, make_client

PATH = "/v1.0/deviceManagement/managedDevices"


def failing(status: int, times: int, headers: dict[str, str] | None = None) -> Any:
    left = {"n": times}

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "graph.microsoft.com" and left["n"] > 0:
            left["n"] -= 1
            return httpx.Response(
                status,
                headers={"request-id": f"rid-{status}", **(headers or {})},
                json={"error": {"code": "TooManyRequests", "message": "slow down"}},
            )
        return None

    return hook


def test_paging_follows_next_link_verbatim_and_selects() -> None:
    cloud = FakeCloud(devices=[{"id": str(i)} for i in range(25)], max_page=10)
    client, _, _ = make_client(cloud)
    pages = list(client.pages(PATH, {"$select": "id,deviceName", "$top": "1000"}))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [d["id"] for p in pages for d in p] == [str(i) for i in range(25)]
    sent = cloud.graph_requests()
    assert sent[0].url.params["$top"] == "1000"
    assert sent[0].url.params["$select"] == "id,deviceName"
    # the second request is exactly the nextLink the server gave
    assert sent[1].url.params["$skiptoken"] == "10"
    assert sent[1].url.params["$select"] == "id,deviceName"


def test_every_request_asks_for_a_token_and_carries_a_fresh_client_request_id() -> None:
    cloud = FakeCloud(devices=[{"id": str(i)} for i in range(5)], max_page=2)
    client, _, tokens = make_client(cloud)
    list(client.pages(PATH))
    sent = cloud.graph_requests()
    assert tokens.calls == len(sent) == 3
    assert [r.headers["Authorization"] for r in sent] == [
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-3",
    ]
    ids = {r.headers["client-request-id"] for r in sent}
    assert len(ids) == 3


def test_next_link_to_another_host_is_refused() -> None:
    cloud = FakeCloud()
    cloud.before.append(
        lambda r: httpx.Response(
            200, json={"value": [], "@odata.nextLink": "https://evil.example/steal"}
        )
    )
    client, _, _ = make_client(cloud)
    with pytest.raises(GraphError, match="points away"):
        list(client.pages(PATH))


def test_retry_after_seconds_is_honoured_never_earlier() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    cloud.before.append(failing(429, 2, {"Retry-After": "7"}))
    client, clock, _ = make_client(cloud)
    assert list(client.pages(PATH)) == [[{"id": "1"}]]
    assert clock.sleeps == [7.0, 7.0]
    assert len(cloud.graph_requests()) == 3


def test_retry_after_http_date_is_measured_against_the_server_date() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    clock = FakeClock()
    server_now = clock.now + 3600  # the local clock is an hour behind the server
    headers = {
        "Date": email.utils.formatdate(server_now, usegmt=True),
        "Retry-After": email.utils.formatdate(server_now + 12, usegmt=True),
    }
    cloud.before.append(failing(503, 1, headers))
    client, clock, _ = make_client(cloud, clock)
    list(client.pages(PATH))
    assert clock.sleeps and clock.sleeps[0] >= 12.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3", None, 0) == 3.0
    assert parse_retry_after("-2", None, 0) == 0.0
    assert parse_retry_after(None, None, 0) is None
    assert parse_retry_after("soon", None, 0) is None
    date = email.utils.formatdate(1000.0 + 30, usegmt=True)
    assert parse_retry_after(date, None, 1000.0) == pytest.approx(30.0)


def test_backoff_without_retry_after_grows_exponentially() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    cloud.before.append(failing(504, 3))
    client, clock, _ = make_client(cloud)
    list(client.pages(PATH))
    # jitter pinned to 0.5: ceiling * 0.75 with ceilings 1, 2, 4
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_bounded_attempts_raise_with_request_id() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    cloud.before.append(failing(503, 99))
    client, clock, _ = make_client(cloud, retry=RetryPolicy(max_attempts=3, max_time=600))
    with pytest.raises(GraphError) as info:
        list(client.pages(PATH))
    assert info.value.request_id == "rid-503"
    assert info.value.status == 503
    assert "after 3 attempts" in str(info.value)
    assert "request-id rid-503" in str(info.value)
    assert len(cloud.graph_requests()) == 3


def test_total_retry_time_is_bounded_even_when_retry_after_is_long() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    cloud.before.append(failing(429, 99, {"Retry-After": "500"}))
    client, clock, _ = make_client(cloud, retry=RetryPolicy(max_attempts=10, max_time=120))
    with pytest.raises(GraphError, match="Retry-After 500 s exceeds"):
        list(client.pages(PATH))
    assert clock.sleeps == []  # never retried earlier than allowed: gave up instead


def test_connection_errors_and_read_timeouts_are_retried_for_get() -> None:
    cloud = FakeCloud(devices=[{"id": "1"}])
    errors = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]

    def hook(request: httpx.Request) -> httpx.Response | None:
        if errors:
            raise errors.pop(0)
        return None

    cloud.before.append(hook)
    client, clock, _ = make_client(cloud)
    assert list(client.pages(PATH)) == [[{"id": "1"}]]
    assert len(clock.sleeps) == 2


def test_read_timeout_on_post_is_not_repeated() -> None:
    cloud = FakeCloud()

    def hook(request: httpx.Request) -> httpx.Response | None:
        raise httpx.ReadTimeout("slow")

    cloud.before.append(hook)
    client, _, _ = make_client(cloud)
    with pytest.raises(GraphError, match="client-request-id"):
        client.post("/beta/deviceManagement/reports/exportJobs", {"reportName": "x"})
    assert len(cloud.requests) == 1


def test_forbidden_names_the_permission_and_request_id() -> None:
    cloud = FakeCloud()
    cloud.before.append(failing(403, 1))
    client, _, _ = make_client(cloud)
    with pytest.raises(GraphError) as info:
        client.get(PATH)
    message = str(info.value)
    assert "HTTP 403" in message
    assert "DeviceManagementManagedDevices.Read.All" in message
    assert "request-id rid-403" in message
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
    cloud = FakeCloud(export_csv="SerialNumber\n" + "01\n" * 1000)
    client, _, tokens = make_client(cloud)
    url = "https://exports.blob.core.windows.net/r/job.zip?sv=1&sig=SAS-SIGNATURE"
    with (tmp_path / "a.zip").open("w+b") as sink:
        size = client.download(url, sink, 10_000_000)
    assert size > 0
    (request,) = cloud.requests
    assert "authorization" not in request.headers
    assert tokens.calls == 0
    with (tmp_path / "b.zip").open("w+b") as sink, pytest.raises(GraphError) as info:
        client.download(url, sink, 10)
    assert "SAS-SIGNATURE" not in str(info.value)
