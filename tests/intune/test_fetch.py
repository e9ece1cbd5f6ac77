"""fetch_snapshot end to end: real msal and the real GraphClient against the HTTPS emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.emulator import Fault, FaultKind, GraphEmulator, ListTenant
from reconcile.emulator.demo import demo_settings_env
from reconcile.errors import AuthError, GraphError
from reconcile.intune.fetch import fetch_snapshot
from reconcile.settings import Settings, resolve
from tests.emulation import state
from tests.helpers import read_snapshot

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~Value.With-Chars"
REPORT = [{"SerialNumber": "0C", "CertificateStatus": "Active", "DeviceId": "d1", "PolicyId": "p1"}]


def tenant() -> GraphEmulator:
    """Two certificate profiles beside a general one, three devices; two items a page."""
    data = ListTenant(
        profiles=[
            {
                "@odata.type": "#microsoft.graph.windows81SCEPCertificateProfile",
                "id": "p1",
                "displayName": "Win SCEP",
            },
            {
                "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
                "id": "g1",
                "displayName": "General",
            },
            {
                "@odata.type": "#microsoft.graph.androidWorkProfilePkcsCertificateProfile",
                "id": "p2",
                "displayName": "Android PKCS",
            },
        ],
        states={"p1": [state(f"{i:02X}") for i in range(5)], "p2": [state("AA", "issued")]},
        devices=[{"id": f"dev{i}", "deviceName": f"PC-{i}"} for i in range(3)],
        report=REPORT,
    )
    return GraphEmulator(
        tenant=TENANT,
        client_id=CLIENT,
        client_secret=SECRET,
        data=data,
        page_size=2,
        max_page_size=2,
        export_polls=0,
    )


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with tenant() as emulator:
        yield emulator


def settings(emu: GraphEmulator, **env: str) -> Settings:
    return resolve({}, {**demo_settings_env(emu), "RECONCILE_GRAPH_MAX_ATTEMPTS": "2", **env})


def test_fetch_both_sources_writes_a_complete_snapshot(emu: GraphEmulator, tmp_path: Path) -> None:
    progress: list[tuple[str, int]] = []
    out = fetch_snapshot(
        settings(emu, RECONCILE_INTUNE_SOURCE="both").fetch_options(),
        tmp_path / "snap",
        progress=lambda name, n: progress.append((name, n)),
    )
    snapshot = read_snapshot(out, frozenset({"active"}))
    meta = snapshot.metadata
    assert meta["counts"] == {
        "profiles": 2,
        "certificate_states": 6,
        "report_rows": 1,
        "managed_devices": 3,
    }
    assert meta["tenant_id"] == TENANT and meta["cloud"] == "global"
    assert meta["graph_url"] == emu.graph_url
    assert meta["authority_host"] == emu.authority_host
    assert meta["intune_source"] == "both" and meta["sources"] == ["states", "report"]
    assert meta["fetched_at"].endswith("Z") and meta["tool_version"]
    assert any("managedDeviceCertificateStates" in e for e in meta["endpoints"])
    assert {c.profile_id for c in snapshot.certificates} == {"p1", "p2"}
    assert len(snapshot.devices) == 3
    totals = dict(progress)  # the last report per collection wins
    assert totals == meta["counts"]
    # one token for the whole run; every Graph request carried it; the blob got none
    assert len(emu.requests_for("token")) == 1
    (token,) = emu.entra.issued_tokens()
    graph = [r for r in emu.requests if r.route not in ("openid", "token", "download")]
    assert graph and all(r.had_bearer and r.status < 400 for r in graph)
    (blob,) = emu.requests_for("download")
    assert not blob.had_authorization and blob.status == 200
    (signature,) = blob.params["sig"]
    text = "".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    assert SECRET not in text and token not in text and signature not in text


def test_states_source_skips_the_report(emu: GraphEmulator, tmp_path: Path) -> None:
    out = fetch_snapshot(settings(emu).fetch_options(), tmp_path / "snap")
    counts = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["counts"]
    assert set(counts) == {"profiles", "certificate_states", "managed_devices"}
    assert not any("exportJobs" in r.path for r in emu.requests)


def test_a_page_that_keeps_failing_publishes_nothing(emu: GraphEmulator, tmp_path: Path) -> None:
    emu.add_fault(Fault(FaultKind.UNAVAILABLE, path="/p2/", times=None, retry_after=0))
    target = tmp_path / "snap"
    with pytest.raises(GraphError) as info:
        fetch_snapshot(settings(emu).fetch_options(), target)
    failed = [r for r in emu.requests if "/p2/" in r.path]
    assert [r.status for r in failed] == [503, 503]
    assert info.value.request_id == failed[-1].request_id
    assert info.value.exit_code == 3
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_snapshot_survives_a_failed_fetch(emu: GraphEmulator, tmp_path: Path) -> None:
    target = tmp_path / "snap"
    fetch_snapshot(settings(emu).fetch_options(), target)
    before = (target / "metadata.json").read_text(encoding="utf-8")
    emu.add_fault(Fault(FaultKind.EXPIRED_SECRET, times=None))
    with pytest.raises(AuthError):
        fetch_snapshot(settings(emu).fetch_options(), target)
    assert (target / "metadata.json").read_text(encoding="utf-8") == before
