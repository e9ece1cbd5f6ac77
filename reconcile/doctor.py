"""`reconcile doctor`: what works against this tenant, and the fix for what does not.

Each check is one small call shaped like the run's own (same paths, $select, export body and
fallbacks), so what fails here is what would fail the nightly run, named precisely. Checks
never raise; a check that cannot run is reported as skipped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from reconcile.ca import cloudpki
from reconcile.errors import ConfigError, GraphError, ReconcileError
from reconcile.graph.client import GraphClient, required_permission
from reconcile.graph.clouds import resolve_endpoints
from reconcile.graph.config import GraphConfig
from reconcile.graph.credentials import choose_method
from reconcile.graph.session import GraphSession, open_graph
from reconcile.graph.transport import ssl_trust
from reconcile.intune.connectors import ConnectorHealth, decode, fetch_connectors
from reconcile.intune.options import SourceChoice
from reconcile.intune.sources import (
    DEVICE_FIELDS,
    DEVICES_PATH,
    EXPORT_PATH,
    PAGE_SIZE,
    PROFILE_FIELDS,
    PROFILES_PATH,
    REFUSED_STATUSES,
    REPORT_NAME,
    STATE_FIELDS,
    STATES_PATH,
    ExportJobs,
    certificate_profile_type,
    list_certificate_profiles,
)
from reconcile.model import IntuneSource
from reconcile.report.text import fit_table, printable

MAX_SKEW_SECONDS = 300.0


@dataclass(frozen=True)
class Check:
    """ok is None when the check did not apply or could not run."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def _failed(name: str, exc: Exception, fix: str = "") -> Check:
    """Split "what happened; fix: what to do" and keep a Graph request-id with what happened."""
    text = str(exc)
    suffix = ""
    if isinstance(exc, GraphError) and exc.request_id:
        suffix = f" (request-id {exc.request_id})"
        text = text.removesuffix(suffix)
    detail, _, own_fix = text.partition("; fix: ")
    return Check(name, False, detail + suffix, own_fix or fix)


_MARKS = {True: "ok", False: "FAIL", None: "-"}


def render_checks(checks: Iterable[Check], width: int | None = None) -> str:
    """The checks as a table fitted to ``width``: detail and fix wrap at whole words and are
    never shortened; on a narrow terminal each check is a block with its fix in full."""
    rows = [(_MARKS[c.ok], c.name, printable(c.detail), printable(c.fix)) for c in checks]
    return fit_table(rows, ("", "check", "detail", "fix"), width, title=2, wrapped=(2, 3))


def _skipped(names: tuple[str, ...], why: str) -> list[Check]:
    return [Check(name, None, why) for name in names]


GRAPH_CHECKS = (
    "deviceConfigurations",
    "managedDeviceCertificateStates",
    "managedDevices",
    "exportJobs",
    "clock skew",
)


@dataclass(frozen=True)
class DoctorOptions:
    """What doctor checks: the Graph connection, the source a run would read, connector age."""

    graph: GraphConfig = field(default_factory=GraphConfig)
    source: SourceChoice = SourceChoice.STATES
    ca_sources: tuple[str, ...] = ()
    connector_stale_hours: float = 24.0


def run_doctor(
    options: DoctorOptions,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    # A doctor run should answer in seconds, not sit out a long throttling episode.
    config = dataclasses.replace(
        options.graph,
        max_attempts=min(options.graph.max_attempts, 3),
        retry_time=min(options.graph.retry_time, 60.0),
    )
    checks: list[Check] = []
    try:
        endpoints = resolve_endpoints(config)
        method = choose_method(config)
    except ConfigError as exc:
        checks.append(_failed("configuration", exc, "correct the setting named above"))
        return checks + _skipped(("CA bundle", "token", *GRAPH_CHECKS), "configuration invalid")
    checks.append(
        Check(
            "configuration",
            True,
            f"cloud {endpoints.cloud}, authority {endpoints.authority_host}, "
            f"Graph {endpoints.graph_url}, auth {method}, source {options.source}",
        )
    )
    if config.ca_bundle is None:
        checks.append(Check("CA bundle", None, "not set; the default public roots are trusted"))
    else:
        try:
            trust = ssl_trust(config)
        except ConfigError as exc:
            checks.append(
                _failed("CA bundle", exc, "point RECONCILE_CA_BUNDLE at a readable PEM bundle")
            )
            return checks + _skipped(("token", *GRAPH_CHECKS), "CA bundle unusable")
        count = len(trust.get_ca_certs()) if not isinstance(trust, bool) else 0
        checks.append(Check("CA bundle", True, f"{config.ca_bundle}: {count} CA certificate(s)"))
    try:
        with open_graph(config, transport) as graph:
            checks += _graph_checks(graph, options)
    except ConfigError as exc:
        checks.append(_failed("token", exc, "correct the setting named above"))
        checks += _skipped(GRAPH_CHECKS, "no token")
    return checks


def _graph_checks(graph: GraphSession, options: DoctorOptions) -> list[Check]:
    checks: list[Check] = []
    try:
        graph.tokens.token()
    except ReconcileError as exc:
        checks.append(_failed("token", exc))
        return checks + _skipped(GRAPH_CHECKS, "no token")
    source = f" (from {graph.tokens.last_source})" if graph.tokens.last_source else ""
    checks.append(Check("token", True, f"acquired with {graph.tokens.method}{source}"))
    client = graph.client

    def probe(name: str, method: str, path: str, call: Callable[[], str]) -> None:
        permission = required_permission(method, path) or "?"
        try:
            detail = call()
        except ReconcileError as exc:
            # Only a refusal of the token or of access is a permission problem.
            denied = isinstance(exc, GraphError) and exc.status in (401, 403)
            checks.append(
                _failed(name, exc, f"grant {permission} and admin consent" if denied else "")
            )
            return
        checks.append(Check(name, True, f"{detail} ({permission})"))

    def profiles() -> str:
        client.get(PROFILES_PATH, {"$top": "1", "$select": ",".join(PROFILE_FIELDS)})
        return "readable"

    def states() -> str:
        params = {"$select": ",".join(PROFILE_FIELDS), "$top": str(PAGE_SIZE)}
        for page in client.pages(PROFILES_PATH, params):
            for obj in page:
                odata_type = certificate_profile_type(obj)
                if odata_type is not None and obj.get("id"):
                    path = STATES_PATH.format(id=obj["id"], type=odata_type)
                    client.get(path, {"$top": "1", "$select": ",".join(STATE_FIELDS)})
                    return f"readable on profile {obj.get('displayName') or obj['id']}"
        return "no certificate profile in the tenant to try"

    def devices() -> str:
        client.get(DEVICES_PATH, {"$top": "1", "$select": ",".join(DEVICE_FIELDS)})
        return "readable"

    def export_jobs() -> str:
        """The job a run creates first, with the run's body and fallbacks; not downloaded."""
        jobs = ExportJobs(client)
        scope = "tenant-wide"
        try:
            job = jobs.create()
        except GraphError as exc:
            if exc.status not in REFUSED_STATUSES:
                raise
            profiles = list_certificate_profiles(client)
            if not profiles:
                return "tenant-wide job refused and no certificate profile to export per profile"
            job = jobs.create_for(profiles[0])
            scope = f"per certificate profile (tenant-wide refused; tried {profiles[0].id})"
        job_id = str(job.get("id") or "")
        status = client.get(f"{EXPORT_PATH}('{job_id.replace(chr(39), chr(39) * 2)}')")
        dropped = f"; columns Graph refused: {', '.join(jobs.dropped)}" if jobs.dropped else ""
        return (
            f"{REPORT_NAME} job accepted {scope}, status {status.get('status') or 'unknown'}"
            f"{dropped}"
        )

    probe("deviceConfigurations", "GET", PROFILES_PATH, profiles)
    if checks[-1].ok:
        probe("managedDeviceCertificateStates", "GET", STATES_PATH, states)
    else:
        checks.append(Check("managedDeviceCertificateStates", None, "needs deviceConfigurations"))
    probe("managedDevices", "GET", DEVICES_PATH, devices)
    if IntuneSource.REPORT in SourceChoice(options.source).collections:
        probe("exportJobs", "POST", EXPORT_PATH, export_jobs)
    else:
        checks.append(Check("exportJobs", None, "not used with intune_source states"))
    checks += connector_checks(client, options.connector_stale_hours)
    if cloudpki.SOURCE in options.ca_sources:
        checks.append(_cloud_pki_check(graph))
    checks.append(_clock_check(graph))
    return checks


# The Cloud PKI pages document either permission; Intune's 403 names the one it wants.
CLOUD_PKI_PERMISSIONS = (
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementCloudCA.Read.All",
)
_SCOPE = re.compile(r"DeviceManagement[A-Za-z]+\.(?:Read|ReadWrite)\.All")


def _cloud_pki_check(graph: GraphSession) -> Check:
    """Read one page of CAs and of leaves; on 403 say which permission this tenant wants."""
    name = "cloud PKI"
    try:
        cas = next(iter(graph.client.pages(cloudpki.CAS_PATH)), [])
        graph.client.get(cloudpki.LEAVES_PATH, {"$select": "id"})
    except GraphError as exc:
        if exc.status != 403:
            return _failed(name, exc)
        wanted = sorted(set(_SCOPE.findall(str(exc))), key=_least_privileged)
        read = [p for p in wanted if ".Read.All" in p]
        if read or wanted:
            fix = f"grant the app {(read or wanted)[0]} (application) and admin consent"
        else:
            fix = (
                f"grant the app {' or '.join(CLOUD_PKI_PERMISSIONS)} (application): the 403 "
                "names neither, so try the first, then the second"
            )
        return Check(name, False, "Graph refused the Cloud PKI collections (HTTP 403)", fix)
    except ReconcileError as exc:
        return _failed(name, exc)
    return Check(name, True, f"readable: {len(cas)} certification authorities on the first page")


def _least_privileged(permission: str) -> tuple[bool, str]:
    return (".ReadWrite." in permission, permission)


class _Collected:
    """A connector sink that keeps what it is given (doctor writes no snapshot)."""

    def __init__(self) -> None:
        self.objects: list[Mapping[str, Any]] = []

    def add_file(self, name: str, objects: Iterable[Mapping[str, Any]], note: Any) -> None:
        self.objects = list(objects)


def connector_checks(client: GraphClient, stale_hours: float) -> list[Check]:
    """One check per certificate connector: stale ones fail, an unreadable list is skipped."""
    sink = _Collected()
    try:
        warnings = fetch_connectors(client, sink)
    except ReconcileError as exc:
        return [_failed("certificate connectors", exc)]
    health = ConnectorHealth(
        connectors=tuple(decode(dict(o)) for o in sink.objects),
        as_of=datetime.now(UTC),
        stale_hours=stale_hours,
    )
    checks = [Check("certificate connectors", None, w) for w in warnings]
    if not health.connectors and not warnings:
        checks.append(Check("certificate connectors", None, "the tenant lists none"))
    for connector in health.connectors:
        if health.is_stale(connector):
            checks.append(
                Check(
                    "certificate connector",
                    False,
                    health.describe(connector),
                    f"silent for longer than {stale_hours:g} h: check the "
                    "connector service and its certificate on that server; until it connects, "
                    "issuance stalls (pending and not_installed findings pile up)",
                )
            )
        else:
            checks.append(Check("certificate connector", True, health.describe(connector)))
    return checks


def _clock_check(graph: GraphSession) -> Check:
    """The Date header of Graph's last answer against the local clock when it arrived."""
    if graph.client.server_time is None:
        return Check("clock skew", None, "no Graph response carried a Date header")
    server, local = graph.client.server_time
    skew = (local - server).total_seconds()
    detail = f"local clock {'ahead of' if skew >= 0 else 'behind'} Graph by {abs(skew):.0f} s"
    if abs(skew) > MAX_SKEW_SECONDS:
        return Check(
            "clock skew",
            False,
            detail,
            "synchronise the clock (NTP): tokens and the grace window depend on it",
        )
    return Check("clock skew", True, detail)
