"""Replay the recorded cassettes through reconcile's real Graph client (no emulator, no
network), and make sure no cassette in the repository holds a credential."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Any

import pytest

from reconcile.emulator import GeneratedTenant
from reconcile.graph.session import open_graph
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.intune.sources import DEVICES_PATH
from reconcile.model import IntuneSource
from tests.e2e.record_cassettes import (
    CASSETTES,
    PAGE,
    RECORDING_SECRET,
    TENANT,
    cassette_settings,
)
from tests.helpers import read_snapshot

EXPECTED = GeneratedTenant(**TENANT)
TENANT_ID = "8d3f0e7c-5b1a-4c2e-9f6d-0a1b2c3d4e5f"
CLIENT_ID = "3c9a7b51-2e4d-4f8a-b6c1-9d0e1f2a3b4c"


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, object]:
    return {"record_mode": "none"}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.01, max_delay=0.01)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


def _expected_state_ids() -> set[str]:
    ids: set[str] = set()
    for profile in EXPECTED.profiles:
        count = EXPECTED.state_count(str(profile["id"]))
        ids |= {str(s["id"]) for s in EXPECTED.states(str(profile["id"]), 0, count)}
    return ids


def _fetch(tmp_path: Path, source: str) -> set[str]:
    settings = cassette_settings(TENANT_ID, CLIENT_ID, source)
    out = fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    snapshot = read_snapshot(out, frozenset(settings.report_delivered))
    assert len(snapshot.devices) == EXPECTED.device_count()
    assert snapshot.rejects == ()
    return {c.record_id for c in snapshot.certificates if c.source is IntuneSource.STATES}


@pytest.mark.vcr
@pytest.mark.default_cassette("fetch_states.yaml")
def test_replay_states_with_paging(tmp_path: Path) -> None:
    assert _fetch(tmp_path, "states") == _expected_state_ids()


@pytest.mark.vcr
@pytest.mark.default_cassette("throttled_states.yaml")
def test_replay_429_then_200_waits_and_completes(tmp_path: Path) -> None:
    started = time.monotonic()
    assert _fetch(tmp_path, "states") == _expected_state_ids()
    assert time.monotonic() - started >= 1.0  # the recorded Retry-After: 1


@pytest.mark.vcr
@pytest.mark.default_cassette("fetch_report.yaml")
def test_replay_report_export(tmp_path: Path) -> None:
    _fetch(tmp_path, "report")
    snapshot = read_snapshot(tmp_path / "snap", frozenset(("active",)))
    rows = list(EXPECTED.report_rows())
    assert len(snapshot.certificates) == len(rows)
    assert {c.serial for c in snapshot.certificates} == {int(r["SerialNumber"], 16) for r in rows}


@pytest.mark.vcr
@pytest.mark.default_cassette("managed_devices.yaml")
def test_replay_managed_device_pages() -> None:
    settings = cassette_settings(TENANT_ID, CLIENT_ID)
    with open_graph(settings.graph_config()) as graph:
        pages = list(graph.client.pages(DEVICES_PATH, {"$select": "id,deviceName"}))
    sizes = [len(p) for p in pages]  # no $top asked: the default page size
    assert sum(sizes) == EXPECTED.device_count()
    assert sizes[:-1] == [PAGE["page_size"]] * (len(sizes) - 1) and len(sizes) == 3


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")
_FORBIDDEN = [
    (re.compile(r"(?i)bearer\s+(?!REDACTED)[A-Za-z0-9._~+/=-]{6,}"), "bearer token"),
    (_JWT, "JWT"),
    (re.compile(re.escape(RECORDING_SECRET)), "client secret"),
    (re.compile(r"emu_(at|rt|dc)_[0-9a-f]"), "emulator token"),
    (re.compile(r'(?i)(access|refresh|id)_token\\?"\s*:\s*\\?"(?!REDACTED)'), "token value"),
    (re.compile(r"(?i)(access|refresh|id)_token=(?!REDACTED)"), "token value"),
    (re.compile(r"(?i)client_(secret|assertion)\W*="), "client credential"),
    (re.compile(r"(?i)authorization:"), "Authorization header"),
    (re.compile(r"(?i)[?&]sig=(?!REDACTED)"), "SAS signature"),
    (re.compile(r"(?i)set-cookie"), "cookie"),
]


def test_no_cassette_holds_a_credential() -> None:
    files = [p for p in CASSETTES.rglob("*") if p.is_file()]
    assert files, "no cassettes found"
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern, what in _FORBIDDEN:
            match = pattern.search(text)
            assert match is None, f"{path.name}: {what} at offset {match.start() if match else 0}"


def test_the_scanner_catches_what_it_looks_for() -> None:
    leaks = [
        "Authorization: Bearer abcdef123456",
        # Assembled at run time so the repository itself holds no JWT-shaped string.
        "eyJhbGciOiJub25lIn0" + "." + "eyJzdWIiOiJ4In0.",
        f"client_secret={RECORDING_SECRET}",
        '"refresh_token":"0.AAAA"',
        "https://x.blob.core.windows.net/r.zip?sv=1&sig=abc",
    ]
    for leak in leaks:
        assert any(p.search(leak) for p, _ in _FORBIDDEN), leak


@pytest.mark.vcr
@pytest.mark.default_cassette("fetch_report.yaml")
def test_replay_report_export_reads_codes_through_loc(tmp_path: Path) -> None:
    """The recorded export is the documented default: numeric codes plus CertificateStatus_loc."""
    _fetch(tmp_path, "report")
    lines = (tmp_path / "snap" / "report_rows.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines and all('"CertificateStatus_loc":' in line for line in lines)
    snapshot = read_snapshot(tmp_path / "snap", frozenset(("active",)))
    delivered = {c.serial for c in snapshot.certificates if c.delivered}
    expected = {int(r["SerialNumber"], 16) for r in EXPECTED.report_rows()}
    active = {
        int(r["SerialNumber"], 16)
        for r in EXPECTED.report_rows()
        if r["CertificateStatus"] == "Active"
    }
    assert delivered == active and active < expected


@pytest.mark.vcr
@pytest.mark.default_cassette("fetch_report_per_profile.yaml")
def test_replay_per_profile_fallback(tmp_path: Path) -> None:
    _fetch(tmp_path, "report")
    snapshot = read_snapshot(tmp_path / "snap", frozenset(("active",)))
    rows = list(EXPECTED.report_rows())
    assert sorted(c.serial or 0 for c in snapshot.certificates) == sorted(
        int(r["SerialNumber"], 16) for r in rows
    )


@pytest.mark.vcr
@pytest.mark.default_cassette("throttled_token.yaml")
def test_replay_throttled_token_endpoint(tmp_path: Path, vcr: Any) -> None:
    assert _fetch(tmp_path, "states") == _expected_state_ids()
    token = [r for r in vcr.responses if r["status"]["code"] == 429]
    assert len(token) == 1 and vcr.all_played  # the 429 was answered, then retried
