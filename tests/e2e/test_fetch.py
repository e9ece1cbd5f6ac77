"""reconcile's real Graph client (msal + httpx) against the emulator, source by source and fault
by fault. Transient faults must not change what is fetched; persistent ones must leave no
snapshot behind. Secrets and tokens must never surface."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from reconcile.emulator import Fault, FaultKind, GraphEmulator, parse_fault
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.errors import AuthError, UpstreamError
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.model import IntuneSource
from reconcile.settings import Settings, resolve
from tests.helpers import Snapshot, read_snapshot

DEMO_TENANT = "c0ffee00-5a1e-4d3e-9c7a-00000000c0de"


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real jobs take minutes, so the client waits 2 s before its first poll; not here."""
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(
        snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, page_size=4, max_page_size=6
    ) as e:
        yield e


@pytest.fixture
def fresh(emu: GraphEmulator) -> GraphEmulator:
    emu.faults.clear()
    emu.clear_requests()
    return emu


def settings_for(emu: GraphEmulator, source: str = "states", **env: str) -> Settings:
    values: dict[str, str] = {**demo_settings_env(emu), **env}
    return resolve({"intune_source": source}, values)


def _read(path: Path) -> Snapshot:
    return read_snapshot(path, frozenset(("installed", "issued", "active", "valid")))


EXPECTED = _read(DEMO_SNAPSHOT)


def _certificates(snapshot: Snapshot, source: str) -> set[object]:
    wanted = {IntuneSource.STATES, IntuneSource.REPORT}
    if source != "both":
        wanted = {IntuneSource(source)}
    return {c for c in snapshot.certificates if c.source in wanted}


def assert_same_as_demo(path: Path, source: str) -> None:
    got = _read(path)
    assert _certificates(got, source) == _certificates(EXPECTED, source)
    assert set(got.devices) == set(EXPECTED.devices)
    if source != "report":
        assert set(got.profiles) == set(EXPECTED.profiles)
    assert got.rejects == ()
    assert got.metadata["tenant_id"] == DEMO_TENANT


@pytest.mark.parametrize("source", ["states", "report", "both"])
def test_each_source_fetches_exactly_what_the_tenant_holds(
    fresh: GraphEmulator, tmp_path: Path, source: str
) -> None:
    out = fetch_snapshot(settings_for(fresh, source).fetch_options(), tmp_path / "snap")
    assert_same_as_demo(out, source)
    assert fresh.requests_for("unknown") == []
    downloads = fresh.requests_for("download")
    assert all(not r.had_authorization for r in downloads)
    assert len(downloads) == (0 if source == "states" else 1)
    graph = [r for r in fresh.requests if r.route not in ("openid", "token", "download")]
    assert all(r.had_bearer for r in graph)
    assert len({r.header("client-request-id") for r in graph}) == len(graph)
    assert all(str(r.header("User-Agent")).startswith("reconcile/") for r in graph)


def test_requests_are_the_minimum_pages_at_the_largest_page_size(tmp_path: Path) -> None:
    with GraphEmulator(generated=3000, page_size=100, max_page_size=1000) as emu:
        fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / "snap")
        graph = [r for r in emu.requests if r.route in ("profiles", "states", "devices")]
        assert len(graph) == emu.minimum_pages()
        assert all(r.params["$top"] == ["1000"] for r in graph)
        assert all("$select" in r.params for r in graph)
        states = _read(tmp_path / "snap")
        assert len(states.certificates) == 3000


TRANSIENT = [
    "throttle:route=states,retry_after=1",
    "throttle:route=devices,retry_after=1,retry_after_date=true",
    "throttle:route=profiles,retry_after=none",
    "unavailable:route=states,retry_after=1,times=2",
    "gateway-timeout:route=devices",
    "drop:route=states",
    "unavailable:route=export_status,retry_after=none",
    "throttle:route=download,retry_after=1",
    "drop:route=download",
]


@pytest.mark.parametrize("spec", TRANSIENT)
def test_transient_faults_change_nothing(fresh: GraphEmulator, tmp_path: Path, spec: str) -> None:
    fault = fresh.add_fault(parse_fault(spec))
    source = "both" if fault.route in ("export_status", "download") else "states"
    out = fetch_snapshot(settings_for(fresh, source).fetch_options(), tmp_path / "snap")
    assert fault.hits >= 1
    assert_same_as_demo(out, source)
    assert fresh.retry_after_violations() == []


def _assert_no_snapshot(parent: Path) -> None:
    assert not (parent / "snap").exists()
    assert [p.name for p in parent.iterdir()] == []


PERSISTENT = [
    ("server-error:route=states,times=forever", "states", UpstreamError),
    (
        "unavailable:route=devices,query=skiptoken,times=forever,retry_after=none",
        "states",
        UpstreamError,
    ),
    ("gateway-timeout:route=profiles,times=forever", "states", UpstreamError),
    ("export-failed", "report", UpstreamError),
    ("invalid-secret:times=forever", "states", AuthError),
]


@pytest.mark.parametrize(("spec", "source", "error"), PERSISTENT)
def test_persistent_faults_fail_and_write_nothing(
    fresh: GraphEmulator,
    tmp_path: Path,
    spec: str,
    source: str,
    error: type[Exception],
) -> None:
    fresh.add_fault(parse_fault(spec))
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    settings = settings_for(fresh, source, RECONCILE_GRAPH_MAX_ATTEMPTS="2")
    with pytest.raises(error) as caught:
        fetch_snapshot(settings.fetch_options(), out_parent / "snap")
    assert fresh.client_secret not in str(caught.value)
    _assert_no_snapshot(out_parent)


def test_wrong_secret_is_an_auth_error_naming_the_code_not_the_secret(
    fresh: GraphEmulator, tmp_path: Path
) -> None:
    wrong = "wrong~secret~value~1234567890"
    settings = settings_for(fresh, RECONCILE_CLIENT_SECRET=wrong)
    with pytest.raises(AuthError) as caught:
        fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    assert "AADSTS7000215" in str(caught.value)
    assert wrong not in str(caught.value)
    assert not (tmp_path / "snap").exists()


def _issued_tokens(emu: GraphEmulator) -> list[str]:
    return list(emu._session.access)


def test_secret_and_tokens_never_surface(
    fresh: GraphEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fresh.add_fault(Fault(FaultKind.THROTTLE, route="states", retry_after=0))
    fresh.add_fault(Fault(FaultKind.UNAVAILABLE, route="export_status", retry_after=0))
    caplog.set_level(logging.DEBUG)
    out = fetch_snapshot(settings_for(fresh, "both").fetch_options(), tmp_path / "snap")
    captured = capfd.readouterr()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("reconcile"))
    texts: Mapping[str, str] = {
        "all logs": caplog.text,
        "reconcile logs": ours,
        "stdout": captured.out,
        "stderr": captured.err,
        **{p.name: p.read_text(encoding="utf-8") for p in out.iterdir()},
    }
    secrets = [fresh.client_secret, *_issued_tokens(fresh)]
    assert len(secrets) >= 2
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"secret or token in {where}"
        if where != "all logs":  # httpx logs full URLs at INFO; reconcile keeps httpx quiet
            assert "sig=" not in text, f"SAS signature in {where}"


def test_certificate_sign_in(tmp_path: Path) -> None:
    from tests.emulator.test_server import _self_signed

    key, cert = _self_signed()
    pem = tmp_path / "app.pem"
    pem.write_text(key + cert.decode(), encoding="utf-8")
    with GraphEmulator(
        snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, client_certificate=cert
    ) as emu:
        settings = settings_for(
            emu,
            RECONCILE_AUTH="certificate",
            RECONCILE_CERTIFICATE=str(pem),
            RECONCILE_CLIENT_SECRET="",
        )
        assert_same_as_demo(fetch_snapshot(settings.fetch_options(), tmp_path / "snap"), "states")
        (token,) = emu.requests_for("token")
        assert token.status == 200


def test_managed_identity_sign_in(
    fresh: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fresh.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fresh.identity_header)
    settings = settings_for(fresh, RECONCILE_AUTH="managed-identity", RECONCILE_CLIENT_SECRET="")
    assert_same_as_demo(fetch_snapshot(settings.fetch_options(), tmp_path / "snap"), "states")
    assert [r.status for r in fresh.requests_for("msi")] == [200]


@pytest.mark.parametrize(
    "spec", ["throttle:route=token,retry_after=1", "unavailable:route=token,retry_after=1"]
)
def test_a_throttled_token_endpoint_is_waited_out(
    fresh: GraphEmulator, tmp_path: Path, spec: str
) -> None:
    """msal hands a 429/503 back as an error dict, not an exception; it is retried anyway."""
    fault = fresh.add_fault(parse_fault(spec))
    out = fetch_snapshot(settings_for(fresh).fetch_options(), tmp_path / "snap")
    assert fault.hits == 1
    assert [r.status for r in fresh.requests_for("token")][:2] == [_FAULT_CODE[fault.kind], 200]
    assert fresh.retry_after_violations() == []
    assert_same_as_demo(out, "states")


_FAULT_CODE = {FaultKind.THROTTLE: 429, FaultKind.UNAVAILABLE: 503}


def test_a_token_endpoint_that_stays_throttled_fails_in_one_line(
    fresh: GraphEmulator, tmp_path: Path
) -> None:
    fresh.add_fault(parse_fault("throttle:route=token,retry_after=1,times=forever"))
    settings = settings_for(fresh, RECONCILE_GRAPH_MAX_ATTEMPTS="2")
    with pytest.raises(AuthError) as caught:
        fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    message = str(caught.value)
    assert "HTTP 429" in message and "after 2 attempts" in message and "\n" not in message
    assert fresh.client_secret not in message
    assert len(fresh.requests_for("token")) == 2
    _assert_no_snapshot(tmp_path)


def test_a_next_link_with_a_control_character_in_its_host_is_refused_in_one_line(
    fresh: GraphEmulator, tmp_path: Path
) -> None:
    fresh.add_fault(parse_fault("next-link-control:route=devices"))
    with pytest.raises(UpstreamError) as caught:
        fetch_snapshot(settings_for(fresh).fetch_options(), tmp_path / "snap")
    message = str(caught.value)
    assert message == (
        "GET /v1.0/deviceManagement/managedDevices: @odata.nextLink holds a control "
        "character; refused"
    )
    _assert_no_snapshot(tmp_path)
