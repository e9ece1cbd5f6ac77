"""Fetching Microsoft Cloud PKI into a snapshot: real msal + httpx against the emulator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.ca.cloudpki import LEAVES_PATH
from reconcile.emulator import GraphEmulator, parse_fault
from reconcile.errors import UpstreamError
from reconcile.intune.fetch import fetch_snapshot
from tests.cloudpki import SNAPSHOT, lines, serve, settings_for


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    with serve(monkeypatch) as e:
        yield e


def test_fetch_pages_through_cas_and_leaves_into_the_snapshot(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    out = fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / "snap")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["counts"]["cloud_pki_cas"] == 2
    assert meta["counts"]["cloud_pki_leaf_certificates"] == 9
    assert meta["ca_sources"] == ["cloud-pki"]
    for name in ("cloud_pki_cas", "cloud_pki_leaf_certificates"):
        assert (
            meta["sha256"][name] == hashlib.sha256((out / f"{name}.jsonl").read_bytes()).hexdigest()
        )
    assert f"GET {LEAVES_PATH}" in meta["endpoints"]
    leaves = lines(out / "cloud_pki_leaf_certificates.jsonl")
    expected = lines(SNAPSHOT / "cloud_pki_leaf_certificates.jsonl")
    assert [leaf["serialNumber"] for leaf in leaves] == [e["serialNumber"] for e in expected]
    assert leaves[3]["revocationDateTime"] == "2026-11-10T08:00:00Z"
    assert "crlDistributionPointUrl" not in leaves[0], "only the $select-ed properties"
    # Two per page: 5 leaf pages, 1 CA page, every one followed through @odata.nextLink.
    assert len(emu.requests_for("cloud_pki_leaves")) == 5
    assert len(emu.requests_for("cloud_pki_cas")) == 1
    assert all(r.status == 200 and r.had_bearer for r in emu.requests_for("cloud_pki_leaves"))


def test_a_partial_leaf_read_leaves_no_snapshot(emu: GraphEmulator, tmp_path: Path) -> None:
    emu.add_fault(parse_fault("server-error:route=cloud_pki_leaves,after=2,times=forever"))
    with pytest.raises(UpstreamError, match="cloudCertificationAuthorityLeafCertificate"):
        fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / "snap")
    assert not (tmp_path / "snap").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_transient_throttle_on_the_cas_changes_nothing(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    emu.add_fault(parse_fault("throttle:route=cloud_pki_cas,times=1,retry_after=0"))
    out = fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / "snap")
    assert lines(out / "cloud_pki_cas.jsonl") == lines(SNAPSHOT / "cloud_pki_cas.jsonl")
