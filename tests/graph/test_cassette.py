"""RecordingTransport: vcrpy-compatible, scrubbed, optionally pseudonymised."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import vcr
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from reconcile.emulator import GeneratedTenant, GraphEmulator
from reconcile.graph.cassette import RecordingTransport, render_interaction


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(data=GeneratedTenant(6, profiles=1), export_polls=0) as e:
        yield e


def _load(path: Path) -> tuple[list[vcr.request.Request], list[dict[str, object]]]:
    requests, responses = deserialize(path.read_text(encoding="utf-8"), yamlserializer)[:2]
    return requests, responses


def _exercise(emu: GraphEmulator, client: httpx.Client) -> None:
    token = client.post(
        f"{emu.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scope": "https://graph.emulator.test/.default",
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    client.get(
        f"{emu.graph_url}/v1.0/deviceManagement/managedDevices",
        params={"$top": "2"},
        headers=headers,
    )
    jobs = f"{emu.graph_url}/beta/deviceManagement/reports/exportJobs"
    job = client.post(
        jobs,
        json={"reportName": "CertificatesByRAPolicy", "select": ["DeviceName", "UPN"]},
        headers=headers,
    ).json()
    done = client.get(f"{jobs}('{job['id']}')", headers=headers).json()
    client.get(done["url"])


def test_matches_what_vcrpy_records(emu: GraphEmulator, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "vcrpy.yaml"
    with vcr.use_cassette(str(theirs), record_mode="all", decode_compressed_response=True):
        transport = RecordingTransport(httpx.HTTPTransport(verify=emu.ssl_context()), ours)
        with httpx.Client(transport=transport) as client:
            _exercise(emu, client)
    mine, reference = _load(ours), _load(theirs)
    assert len(mine[0]) == len(reference[0]) == 5
    for a, b in zip(mine[0], reference[0], strict=True):
        assert (a.method, a.uri.split("sig=")[0]) == (b.method, b.uri.split("sig=")[0])
        assert set(a.headers) == set(b.headers) - {"authorization"}
    for a, b in zip(mine[1], reference[1], strict=True):
        assert a["status"] == b["status"]
        assert set(a["headers"]) == set(b["headers"])  # type: ignore[arg-type]
        assert type(a["body"]["string"]) is type(b["body"]["string"])  # type: ignore[index]


def test_scrubs_credentials_and_replays(emu: GraphEmulator, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    transport = RecordingTransport(httpx.HTTPTransport(verify=emu.ssl_context()), path)
    with httpx.Client(transport=transport) as client:
        _exercise(emu, client)
    text = path.read_text(encoding="utf-8")
    assert emu.client_secret not in text
    assert "client_secret" not in text
    assert "emu_at_" not in text
    assert "authorization" not in text.lower()
    assert "sig=REDACTED" in text
    assert '"access_token":"REDACTED"' in text
    with (
        vcr.use_cassette(str(path), record_mode="none"),
        httpx.Client(verify=emu.ssl_context()) as client,
    ):
        emu.clear_requests()
        _exercise(emu, client)
    assert emu.requests == []  # everything came from the cassette


def test_pseudonymises_names_stably(emu: GraphEmulator, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    inner = httpx.HTTPTransport(verify=emu.ssl_context())
    with httpx.Client(transport=RecordingTransport(inner, path, pseudonymise=True)) as client:
        _exercise(emu, client)
    requests, responses = _load(path)
    devices = json.loads(responses[1]["body"]["string"])["value"]  # type: ignore[index]
    assert all(d["deviceName"].startswith("device-") for d in devices)
    assert all(d["userPrincipalName"].endswith("@pseudonym.invalid") for d in devices)
    archive = responses[4]["body"]["string"]
    with zipfile.ZipFile(io.BytesIO(archive)) as z:  # type: ignore[arg-type]
        rows = z.read(z.namelist()[0]).decode().splitlines()[1:]
    names = {row.split(",")[0] for row in rows}
    assert all(n.startswith("device-") for n in names)
    assert "DEV-" not in path.read_text(encoding="utf-8")


def test_yaml_strings_round_trip(tmp_path: Path) -> None:
    odd = "quote ' and \" \\ tab\t nl\n cr\r bell\x07 nel\x85 ls\u2028 bom\ufeff émoji 😀"
    item = {
        "request": {"body": odd, "headers": {"x-odd": [odd]}, "method": "GET", "uri": "https://h/"},
        "response": {
            "body": {"string": b"\x00\xff binary"},
            "headers": {},
            "status": {"code": 200, "message": "OK"},
        },
    }
    path = tmp_path / "odd.yaml"
    path.write_text("interactions:\n" + render_interaction(item) + "version: 1\n", encoding="utf-8")
    requests, responses = _load(path)
    assert requests[0].body == odd.encode()
    assert requests[0].headers["x-odd"] == odd
    assert responses[0]["body"]["string"] == b"\x00\xff binary"  # type: ignore[index]
    assert responses[0]["headers"] == {}


def test_empty_recording_is_a_valid_cassette(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    RecordingTransport(httpx.MockTransport(lambda r: httpx.Response(200)), path).close()
    assert _load(path) == ([], [])
