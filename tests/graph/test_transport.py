from __future__ import annotations

import ssl
import threading
from pathlib import Path

import httpx
import pytest

from reconcile.errors import ConfigError
from reconcile.graph.config import GraphConfig
from reconcile.graph.transport import (
    USER_AGENT,
    MsalHttpAdapter,
    build_http_client,
    describe_transport_error,
    ssl_trust,
)


def test_adapter_sends_dict_str_and_bytes_form_data_as_requests_would() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="{}")

    adapter = MsalHttpAdapter(httpx.Client(transport=httpx.MockTransport(handler)))
    adapter.post("https://x/token", data={"a": "1", "assertion": b"e.y.J"}, headers={"h": "v"})
    adapter.post("https://x/token", data="grant_type=x&b=2")
    response = adapter.get("https://x/meta", params={"q": "1"})
    assert seen[0].content == b"a=1&assertion=e.y.J"
    assert seen[0].headers["h"] == "v"
    assert seen[1].content == b"grant_type=x&b=2"
    assert seen[2].url.params["q"] == "1"
    assert response.status_code == 200 and response.text == "{}"


def test_adapter_remembers_the_last_answer_per_thread() -> None:
    """msal turns a throttled token answer into an error dict; the status must survive it."""
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}, text="{}"),
            httpx.Response(200, text="{}"),
        ]
    )
    adapter = MsalHttpAdapter(
        httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    )
    assert adapter.last is None
    adapter.post("https://x/token", data={"a": "1"})
    assert adapter.last is not None
    assert (adapter.last.status, adapter.last.retry_after) == (429, "7")
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(adapter.last))
    worker.start()
    worker.join()
    assert seen == [None]  # another thread has its own last answer
    adapter.get("https://x/meta")
    assert adapter.last.status == 200


def test_ca_bundle_becomes_the_trust_store(tmp_path: Path) -> None:
    assert ssl_trust(GraphConfig()) is True
    with pytest.raises(ConfigError, match="cannot read ca_bundle"):
        ssl_trust(GraphConfig(ca_bundle=tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        ssl_trust(GraphConfig(ca_bundle=junk))
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no system CA file to use as a bundle")
    context = ssl_trust(GraphConfig(ca_bundle=bundle))
    assert isinstance(context, ssl.SSLContext) and context.get_ca_certs()


def test_client_identifies_itself_and_injected_transport_skips_env_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    with build_http_client(GraphConfig(), transport) as client:
        client.get("https://graph.microsoft.com/v1.0/x")
    assert seen[0].headers["User-Agent"] == USER_AGENT


def test_transport_errors_name_the_fix() -> None:
    text = describe_transport_error(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] bad"))
    assert "RECONCILE_CA_BUNDLE" in text
    assert "timed out" in describe_transport_error(httpx.ReadTimeout("x"))
