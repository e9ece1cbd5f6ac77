"""The emulator through real TLS, real msal and real httpx."""

from __future__ import annotations

import datetime as dt
import io
import json
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from reconcile.emulator import Fault, FaultKind, GraphEmulator, parse_fault
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.intune.records import PROFILE_ID_KEY

STATES = (
    "/beta/deviceManagement/deviceConfigurations/{id}/microsoft.graph.{type}"
    "/managedDeviceCertificateStates"
)


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(generated=450, page_size=100, max_page_size=200, export_polls=1) as e:
        yield e


@pytest.fixture
def fresh(emu: GraphEmulator) -> GraphEmulator:
    emu.faults.clear()
    emu.clear_requests()
    return emu


class _FormBytes(httpx.Client):
    """msal hands a certificate's client_assertion over as bytes; httpx would str() them."""

    def post(self, url: str, *, data: object = None, **kwargs: object) -> httpx.Response:  # type: ignore[override]
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return super().post(url, data=data, **kwargs)  # type: ignore[arg-type]


def _app(
    emu: GraphEmulator, http: httpx.Client, credential: object = None
) -> msal.ClientApplication:
    return msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=credential if credential is not None else emu.client_secret,
        authority=emu.authority,
        http_client=http,
        instance_discovery=False,
    )


def _token(emu: GraphEmulator) -> str:
    with httpx.Client(verify=emu.ssl_context()) as http:
        result = _app(emu, http).acquire_token_for_client([f"{emu.graph_url}/.default"])
    return str(result["access_token"])


def _graph(emu: GraphEmulator) -> httpx.Client:
    return httpx.Client(
        verify=emu.ssl_context(), headers={"Authorization": f"Bearer {_token(emu)}"}
    )


def _cert_profile(emu: GraphEmulator) -> dict[str, str]:
    profile = next(p for p in emu.data.profiles if p["@odata.type"].endswith("CertificateProfile"))
    return {"id": profile["id"], "type": profile["@odata.type"].removeprefix("#microsoft.graph.")}


def test_tls_verifies_with_the_generated_bundle_only(fresh: GraphEmulator) -> None:
    url = f"{fresh.base_url}/{fresh.tenant_id}/v2.0/.well-known/openid-configuration"
    assert httpx.get(url, verify=fresh.ssl_context()).status_code == 200
    localhost = url.replace("127.0.0.1", "localhost")
    assert httpx.get(localhost, verify=fresh.ssl_context()).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=ssl.create_default_context())


def test_msal_client_secret_gets_an_opaque_token_and_caches_it(fresh: GraphEmulator) -> None:
    with httpx.Client(verify=fresh.ssl_context()) as http:
        app = _app(fresh, http)
        first = app.acquire_token_for_client([f"{fresh.graph_url}/.default"])
        second = app.acquire_token_for_client([f"{fresh.graph_url}/.default"])
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert first["access_token"].startswith("emu_at_")
    assert "eyJ" not in first["access_token"]
    assert [r.route for r in fresh.requests] == ["openid", "token"]


def test_wrong_secret_is_refused_like_entra(fresh: GraphEmulator) -> None:
    with httpx.Client(verify=fresh.ssl_context()) as http:
        result = _app(fresh, http, "not-the-secret").acquire_token_for_client(["x/.default"])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret")
    assert {"trace_id", "correlation_id"} <= result.keys()
    assert fresh.requests_for("token")[0].status == 401


def test_invalid_secret_fault_refuses_the_right_secret(fresh: GraphEmulator) -> None:
    fresh.add_fault(Fault(FaultKind.INVALID_SECRET, times=None))
    with httpx.Client(verify=fresh.ssl_context()) as http:
        result = _app(fresh, http).acquire_token_for_client(["x/.default"])
    assert result["error_codes"] == [7000215]


def test_unknown_tenant_fails_discovery_with_aadsts90002(fresh: GraphEmulator) -> None:
    url = f"{fresh.base_url}/not-a-tenant/v2.0/.well-known/openid-configuration"
    response = httpx.get(url, verify=fresh.ssl_context())
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]
    with httpx.Client(verify=fresh.ssl_context()) as http, pytest.raises(ValueError):
        msal.ConfidentialClientApplication(
            fresh.client_id,
            client_credential=fresh.client_secret,
            authority=f"{fresh.base_url}/not-a-tenant",
            http_client=http,
            instance_discovery=False,
        )


def _self_signed() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconcile-test-app")])
    now = time.time()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(now - 60, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(now + 3600, dt.UTC))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM)


def test_client_assertion_signature_is_checked() -> None:
    key, cert = _self_signed()
    other_key, _ = _self_signed()
    with GraphEmulator(generated=1, client_certificate=cert) as emu:
        thumb = x509.load_pem_x509_certificate(cert).fingerprint(hashes.SHA1()).hex()
        with _FormBytes(verify=emu.ssl_context()) as http:
            good = _app(emu, http, {"private_key": key, "thumbprint": thumb})
            ok = good.acquire_token_for_client(["x/.default"])
            forged = _app(emu, http, {"private_key": other_key, "thumbprint": thumb})
            bad = forged.acquire_token_for_client(["x/.default"])
    assert ok["access_token"].startswith("emu_at_")
    assert bad["error_codes"] == [700027]
    assert "signature validation" in bad["error_description"]


def test_device_code_pending_once_then_token(fresh: GraphEmulator) -> None:
    fresh.device_code_interval = 0
    with httpx.Client(verify=fresh.ssl_context()) as http:
        app = msal.PublicClientApplication(
            fresh.client_id, authority=fresh.authority, http_client=http, instance_discovery=False
        )
        flow = app.initiate_device_flow(scopes=[f"{fresh.graph_url}/.default"])
        assert fresh.base_url in flow["message"]
        result = app.acquire_token_by_device_flow(flow)
        assert result["access_token"].startswith("emu_at_")
        account = app.get_accounts()[0]
        silent = app.acquire_token_silent([f"{fresh.graph_url}/.default"], account=account)
    assert silent is not None and silent["token_source"] == "cache"
    statuses = [r.status for r in fresh.requests_for("token")]
    assert statuses == [400, 200]


def test_expired_token_is_refused_so_refresh_is_exercised() -> None:
    with GraphEmulator(generated=1, token_lifetime=0) as emu:
        response = _graph(emu).get(f"{emu.graph_url}/beta/deviceManagement/deviceConfigurations")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_managed_identity_app_service(
    fresh: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fresh.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fresh.identity_header)
    with httpx.Client(verify=fresh.ssl_context()) as http:
        client = msal.ManagedIdentityClient(
            msal.SystemAssignedManagedIdentity(), http_client=http, token_cache=msal.TokenCache()
        )
        result = client.acquire_token_for_client(resource=fresh.graph_url)
    assert result["access_token"].startswith("emu_at_")
    token = result["access_token"]
    url = f"{fresh.graph_url}/v1.0/deviceManagement/managedDevices"
    response = httpx.get(
        url, headers={"Authorization": f"Bearer {token}"}, verify=fresh.ssl_context()
    )
    assert response.status_code == 200


def test_graph_requires_a_bearer_token(fresh: GraphEmulator) -> None:
    url = f"{fresh.graph_url}/beta/deviceManagement/deviceConfigurations"
    anonymous = httpx.get(url, verify=fresh.ssl_context())
    forged = httpx.get(url, verify=fresh.ssl_context(), headers={"Authorization": "Bearer x"})
    assert anonymous.status_code == forged.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    for response in (anonymous, forged):
        assert response.headers["request-id"] and response.headers["date"]


def _collect(client: httpx.Client, url: str) -> tuple[list[dict[str, object]], int]:
    items: list[dict[str, object]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        page = client.get(next_url)
        page.raise_for_status()
        body = page.json()
        items += body["value"]
        next_url = body.get("@odata.nextLink")
        pages += 1
    return items, pages


def test_paging_default_size_top_cap_and_select(fresh: GraphEmulator) -> None:
    profile = _cert_profile(fresh)
    url = fresh.graph_url + STATES.format(**profile)
    expected = fresh.data.state_count(profile["id"])
    with _graph(fresh) as graph:
        default, default_pages = _collect(graph, url)
        capped, capped_pages = _collect(
            graph, url + "?$top=5000&$select=id,certificateSerialNumber"
        )
        headers = graph.get(url, headers={"client-request-id": "abc-123"}).headers
        bad = graph.get(url + "?$select=noSuchProperty")
    assert len(default) == len(capped) == expected == 45
    assert default_pages == 1 and capped_pages == 1
    assert set(capped[0]) == {"@odata.type", "id", "certificateSerialNumber"}
    assert headers["client-request-id"] == "abc-123"
    assert bad.status_code == 400


def test_next_links_are_absolute_and_keep_the_query(fresh: GraphEmulator) -> None:
    url = f"{fresh.graph_url}/v1.0/deviceManagement/managedDevices"
    with _graph(fresh) as graph:
        devices, pages = _collect(graph, url)
        first = graph.get(url + "?$top=200&$select=id,deviceName").json()
    assert len(devices) == fresh.data.device_count() == 225
    assert pages == 3
    assert first["@odata.nextLink"].startswith(f"{fresh.graph_url}/v1.0/deviceManagement/")
    assert (
        "$top=200" in first["@odata.nextLink"]
        and "$select=id,deviceName" in first["@odata.nextLink"]
    )


def test_throttle_records_retry_after_and_violations(fresh: GraphEmulator) -> None:
    fresh.add_fault(Fault(FaultKind.THROTTLE, route="profiles", retry_after=1))
    url = f"{fresh.graph_url}/beta/deviceManagement/deviceConfigurations"
    with _graph(fresh) as graph:
        throttled = graph.get(url)
        too_soon = graph.get(url)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert too_soon.status_code == 200
    assert fresh.retry_after_violations() == [fresh.requests_for("profiles")[1]]


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ("throttle:route=devices,retry_after=none", 429),
        ("unavailable:route=devices", 503),
        ("gateway-timeout:route=devices", 504),
        ("server-error:route=devices", 500),
    ],
)
def test_status_faults_fire_once(fresh: GraphEmulator, spec: str, status: int) -> None:
    fault = fresh.add_fault(parse_fault(spec))
    url = f"{fresh.graph_url}/v1.0/deviceManagement/managedDevices"
    with _graph(fresh) as graph:
        assert graph.get(url).status_code == status
        assert graph.get(url).status_code == 200
    assert fault.hits == 1
    if spec.endswith("none"):
        assert "Retry-After" not in fresh.requests_for("devices")[0].headers


def test_persistent_page_fault_and_drop(fresh: GraphEmulator) -> None:
    fresh.add_fault(parse_fault("unavailable:route=devices,query=skiptoken,times=forever"))
    url = f"{fresh.graph_url}/v1.0/deviceManagement/managedDevices"
    with _graph(fresh) as graph:
        first = graph.get(url).json()
        for _ in range(3):
            assert graph.get(first["@odata.nextLink"]).status_code == 503
        fresh.faults.clear()
        fresh.add_fault(Fault(FaultKind.DROP, route="devices"))
        with pytest.raises(httpx.RemoteProtocolError):
            graph.get(url)
        assert graph.get(url).status_code == 200


def test_export_flow_and_download_refuses_bearer(fresh: GraphEmulator) -> None:
    select = ["DeviceName", "SerialNumber", "CertificateStatus"]
    base = f"{fresh.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(fresh) as graph:
        job = graph.post(base, json={"reportName": "CertificatesByRAPolicy", "select": select})
        assert job.status_code == 201 and job.json()["status"] == "notStarted"
        status_url = f"{base}('{job.json()['id']}')"
        assert graph.get(status_url).json()["status"] == "inProgress"
        done = graph.get(status_url).json()
        assert done["status"] == "completed"
        assert graph.get(done["url"]).status_code == 403
    archive = httpx.get(done["url"], verify=fresh.ssl_context())
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        (name,) = z.namelist()
        lines = z.read(name).decode("utf-8").splitlines()
    # The documented default, LocalizedValuesAsAdditionalColumn: code plus "_loc" text.
    assert lines[0] == "DeviceName,SerialNumber,CertificateStatus,CertificateStatus_loc"
    assert {tuple(line.rsplit(",", 2)[1:]) for line in lines[1:]} <= {
        ("1", "Active"),
        ("2", "Revoked"),
    }
    assert len(lines) - 1 == sum(1 for _ in fresh.data.report_rows())
    downloads = fresh.requests_for("download")
    assert [(r.had_bearer, r.status) for r in downloads] == [(True, 403), (False, 200)]
    tampered = httpx.get(done["url"].replace("sig=", "sig=x"), verify=fresh.ssl_context())
    assert tampered.status_code == 403


def _export_csv(emu: GraphEmulator, body: dict[str, object]) -> list[str]:
    base = f"{emu.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(emu) as graph:
        job = graph.post(base, json=body)
        assert job.status_code == 201, job.text
        while (done := graph.get(f"{base}('{job.json()['id']}')").json())["status"] != "completed":
            pass
    archive = httpx.get(done["url"], verify=emu.ssl_context())
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        return z.read(z.namelist()[0]).decode("utf-8").splitlines()


def test_replace_localizable_values_serves_text(fresh: GraphEmulator) -> None:
    lines = _export_csv(
        fresh,
        {
            "reportName": "CertificatesByRAPolicy",
            "localizationType": "ReplaceLocalizableValues",
            "select": ["SerialNumber", "CertificateStatus"],
        },
    )
    assert lines[0] == "SerialNumber,CertificateStatus"
    assert {line.split(",")[1] for line in lines[1:]} <= {"Active", "Revoked"}


def test_policy_filter_narrows_rows_and_the_fault_demands_it(fresh: GraphEmulator) -> None:
    rows = list(fresh.data.report_rows())
    policy = str(rows[0]["PolicyId"])
    fault = fresh.add_fault(Fault(FaultKind.POLICY_FILTER_REQUIRED, times=None))
    base = f"{fresh.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(fresh) as graph:
        refused = graph.post(base, json={"reportName": "CertificatesByRAPolicy"})
        assert refused.status_code == 400 and "PolicyId" in refused.text
    lines = _export_csv(
        fresh,
        {
            "reportName": "CertificatesByRAPolicy",
            "filter": f"(PolicyId eq '{policy}')",
            "select": ["PolicyId", "SerialNumber"],
        },
    )
    assert fault.hits == 2  # it sees every create and refuses only the unfiltered one
    assert [r.status for r in fresh.requests_for("export_create")] == [400, 201]
    assert len(lines) - 1 == sum(1 for r in rows if r["PolicyId"] == policy) < len(rows)
    assert {line.split(",")[0] for line in lines[1:]} == {policy}


def test_unknown_select_column_and_bad_localization_are_400(fresh: GraphEmulator) -> None:
    base = f"{fresh.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(fresh) as graph:
        for body in (
            {"reportName": "CertificatesByRAPolicy", "select": ["SerialNumber", "PolicyName"]},
            {"reportName": "CertificatesByRAPolicy", "localizationType": "Klingon"},
            {"reportName": "CertificatesByRAPolicy", "filter": "DeviceName eq 'x'"},
        ):
            answer = graph.post(base, json=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"]["code"] == "BadRequest"


def test_listing_export_jobs_is_not_a_create(fresh: GraphEmulator) -> None:
    base = f"{fresh.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(fresh) as graph:
        graph.post(base, json={"reportName": "CertificatesByRAPolicy"})
        listed = graph.get(base, params={"$top": "1"})
    assert listed.status_code == 200
    assert [job["reportName"] for job in listed.json()["value"]] == ["CertificatesByRAPolicy"]


def test_failed_export_job(fresh: GraphEmulator) -> None:
    fresh.add_fault(Fault(FaultKind.EXPORT_FAILED))
    base = f"{fresh.graph_url}/beta/deviceManagement/reports/exportJobs"
    with _graph(fresh) as graph:
        job = graph.post(base, json={"reportName": "CertificatesByRAPolicy"}).json()
        assert graph.get(f"{base}/{job['id']}").json()["status"] == "failed"


def test_latency_is_added_per_request() -> None:
    with GraphEmulator(generated=1, latency=0.05) as emu:
        url = f"{emu.base_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration"
        with httpx.Client(verify=emu.ssl_context()) as http:
            started = time.monotonic()
            for _ in range(3):
                http.get(url)
            assert time.monotonic() - started >= 0.15


def test_serves_a_snapshot_without_annotations(tmp_path: Path) -> None:
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT) as emu, _graph(emu) as graph:
        profiles, _ = _collect(graph, f"{emu.graph_url}/beta/deviceManagement/deviceConfigurations")
        served = []
        for p in profiles:
            cast = str(p["@odata.type"]).removeprefix("#microsoft.graph.")
            items, _ = _collect(graph, emu.graph_url + STATES.format(id=p["id"], type=cast))
            served += items
    raw = [json.loads(line) for line in (DEMO_SNAPSHOT / "certificate_states.jsonl").open()]
    assert len(served) == len(raw)
    assert not any(k.startswith("@reconcile.") for item in served for k in item)
    assert {s["id"] for s in served} == {r["id"] for r in raw}
    assert all(PROFILE_ID_KEY in r for r in raw)


def test_demo_settings_env_points_at_the_emulator(fresh: GraphEmulator) -> None:
    env = demo_settings_env(fresh)
    assert env["RECONCILE_GRAPH_URL"] == env["RECONCILE_AUTHORITY_HOST"] == fresh.base_url
    assert Path(env["RECONCILE_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE")
    assert env["RECONCILE_CLIENT_SECRET"] == fresh.client_secret


def test_parse_fault_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault("explode")
    with pytest.raises(ValueError, match="unknown route"):
        parse_fault("throttle:route=nowhere")
    fault = parse_fault("throttle:route=states,times=forever,retry_after=1,after=2")
    assert (fault.times, fault.after, fault.retry_after) == (None, 2, 1)


def test_command_line_report_switches(tmp_path: Path) -> None:
    """`python -m reconcile.emulator --report-without-loc --report-columns ...` as a process."""
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "reconcile.emulator",
            "--generated", "20",
            "--report-without-loc",
            "--report-columns", "SerialNumber,CertificateStatus",
            "--export-polls", "0",
            "--ready-file", str(ready),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        env = json.loads(ready.read_text(encoding="utf-8"))["env"]
        verify = ssl.create_default_context(cafile=env["RECONCILE_CA_BUNDLE"])
        token = httpx.post(
            f"{env['RECONCILE_AUTHORITY_HOST']}/{env['RECONCILE_TENANT_ID']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env["RECONCILE_CLIENT_ID"],
                "client_secret": env["RECONCILE_CLIENT_SECRET"],
                "scope": f"{env['RECONCILE_GRAPH_URL']}/.default",
            },
            verify=verify,
        ).json()["access_token"]
        base = f"{env['RECONCILE_GRAPH_URL']}/beta/deviceManagement/reports/exportJobs"
        with httpx.Client(verify=verify, headers={"Authorization": f"Bearer {token}"}) as graph:
            refused = graph.post(
                base,
                json={"reportName": "CertificatesByRAPolicy", "select": ["SerialNumber", "UPN"]},
            )
            job = graph.post(
                base,
                json={
                    "reportName": "CertificatesByRAPolicy",
                    "select": ["SerialNumber", "CertificateStatus"],
                },
            ).json()
            done = graph.get(f"{base}('{job['id']}')").json()
        archive = httpx.get(done["url"], verify=verify)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert refused.status_code == 400
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        lines = z.read(z.namelist()[0]).decode("utf-8").splitlines()
    assert lines[0] == "SerialNumber,CertificateStatus"
    assert {line.split(",")[1] for line in lines[1:]} <= {"1", "2"}
