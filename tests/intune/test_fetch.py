"""fetch_snapshot end to end: real msal, real GraphClient, in-process Entra/Graph/blob fakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.errors import AuthError, GraphError
from reconcile.intune.fetch import fetch_snapshot
from reconcile.settings import Settings
from tests.graph.fake import BLOB, CLIENT, SECRET, TENANT, FakeCloud, state
from tests.helpers import read_snapshot

CSV = "SerialNumber,CertificateStatus,DeviceId,PolicyId\r\n0C,Active,d1,p1\r\n"


def tenant(**changes: Any) -> FakeCloud:
    cloud = FakeCloud(
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
        export_csv=CSV,
        export_statuses=["completed"],
        max_page=2,
    )
    for key, value in changes.items():
        setattr(cloud, key, value)
    return cloud


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": SECRET,
        "graph_max_attempts": 2,
        **changes,
    }
    return Settings(**values)


def test_fetch_both_sources_writes_a_complete_snapshot(tmp_path: Path) -> None:
    cloud = tenant()
    progress: list[tuple[str, int]] = []
    out = fetch_snapshot(
        settings(intune_source="both").fetch_options(),
        tmp_path / "snap",
        transport=cloud.transport(),
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
    assert meta["graph_url"] == "https://graph.microsoft.com"
    assert meta["authority_host"] == "https://login.microsoftonline.com"
    assert meta["intune_source"] == "both" and meta["sources"] == ["states", "report"]
    assert meta["fetched_at"].endswith("Z") and meta["tool_version"]
    assert any("managedDeviceCertificateStates" in e for e in meta["endpoints"])
    assert {c.profile_id for c in snapshot.certificates} == {"p1", "p2"}
    assert len(snapshot.devices) == 3
    totals = dict(progress)  # the last report per collection wins
    assert totals == meta["counts"]
    # one token for the whole run; every Graph request carried it; the blob got none
    assert len(cloud.token_posts()) == 1
    assert all(r.headers["authorization"] == "Bearer token-1" for r in cloud.graph_requests())
    (blob,) = [r for r in cloud.requests if str(r.url) == BLOB]
    assert "authorization" not in blob.headers
    text = "".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    assert SECRET not in text and "token-1" not in text and "SAS-SIGNATURE" not in text


def test_states_source_skips_the_report(tmp_path: Path) -> None:
    cloud = tenant()
    out = fetch_snapshot(settings().fetch_options(), tmp_path / "snap", transport=cloud.transport())
    counts = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["counts"]
    assert set(counts) == {"profiles", "certificate_states", "managed_devices"}
    assert not any("exportJobs" in r.url.path for r in cloud.requests)


def test_a_page_that_keeps_failing_publishes_nothing(tmp_path: Path) -> None:
    cloud = tenant()

    def broken(request: httpx.Request) -> httpx.Response | None:
        if "/p2/" in request.url.path:
            return httpx.Response(503, headers={"Retry-After": "0", "request-id": "rid-p2"})
        return None

    cloud.before.append(broken)
    target = tmp_path / "snap"
    with pytest.raises(GraphError) as info:
        fetch_snapshot(settings().fetch_options(), target, transport=cloud.transport())
    assert info.value.request_id == "rid-p2"
    assert info.value.exit_code == 3
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_snapshot_survives_a_failed_fetch(tmp_path: Path) -> None:
    target = tmp_path / "snap"
    fetch_snapshot(settings().fetch_options(), target, transport=tenant().transport())
    before = (target / "metadata.json").read_text(encoding="utf-8")
    with pytest.raises(AuthError):
        fetch_snapshot(
            settings().fetch_options(),
            target,
            transport=tenant(
                token_error={"error": "invalid_client", "error_codes": [7000222]}
            ).transport(),
        )
    assert (target / "metadata.json").read_text(encoding="utf-8") == before
