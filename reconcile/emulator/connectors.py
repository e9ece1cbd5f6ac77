"""The emulator's certificate connectors: ``ndesConnectors`` and ``certificateConnectorDetails``.

A snapshot tenant serves the connectors its snapshot holds; any other tenant serves one healthy
connector of each kind, last seen an hour ago. ``ConnectorSwitch.stale`` adds a connector that
has been silent for three days (its certificate expired, its service stopped); ``status`` 403
or 404 answers both endpoints as a tenant or app without access does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconcile.timeparse import parse_utc

NDES_ROUTE = "ndes_connectors"
DETAILS_ROUTE = "connector_details"
ROUTES = (
    ("GET", NDES_ROUTE, r"^/beta/deviceManagement/ndesConnectors$"),
    ("GET", DETAILS_ROUTE, r"^/beta/deviceManagement/certificateConnectorDetails$"),
)
CONTEXTS = {
    NDES_ROUTE: "beta/$metadata#deviceManagement/ndesConnectors",
    DETAILS_ROUTE: "beta/$metadata#deviceManagement/certificateConnectorDetails",
}
TYPES = {NDES_ROUTE: "ndesConnector", DETAILS_ROUTE: "certificateConnectorDetails"}
STALE_ID = "3c1b0d1e-5a7f-4e0b-9c2d-57a1e0c0ffee"


@dataclass(frozen=True)
class ConnectorSwitch:
    """How the emulator answers the connector endpoints.

    ``clock`` is the emulator's "now" for connector times (None: the real clock). A snapshot's
    connectors are served as seen that long after the snapshot was fetched, so a replayed
    tenant's connectors are as fresh (or as silent) as they were when it was fetched.
    """

    stale: bool = False
    status: int = 200
    clock: datetime | None = None

    def now(self) -> datetime:
        return self.clock if self.clock is not None else datetime.now(UTC)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _ndes(connector_id: str, name: str, machine: str, seen: datetime, state: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.ndesConnector",
        "id": connector_id,
        "lastConnectionDateTime": _time(seen),
        "state": state,
        "displayName": name,
        "machineName": machine,
        "enrolledDateTime": _time(seen - timedelta(days=400)),
        "roleScopeTagIds": ["0"],
        "connectorVersion": "6.2301.1.0",
    }


def _details(connector_id: str, name: str, machine: str, seen: datetime) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.certificateConnectorDetails",
        "id": connector_id,
        "connectorName": name,
        "machineName": machine,
        "enrollmentDateTime": _time(seen - timedelta(days=400)),
        "lastCheckinDateTime": _time(seen),
        "connectorVersion": "6.2301.1.0",
    }


def generated(now: datetime, stale: bool) -> dict[str, list[dict[str, Any]]]:
    """One healthy connector per endpoint; with ``stale`` also one silent for three days."""
    seen = now - timedelta(hours=1)
    ndes = [
        _ndes(
            "9d8e7f60-0000-4000-8000-000000000001",
            "PKI-CONN-01",
            "pki-conn-01.contoso.com",
            seen,
            "active",
        )
    ]
    details = [
        _details(
            "9d8e7f60-0000-4000-8000-000000000002", "PKI-CONN-02", "pki-conn-02.contoso.com", seen
        )
    ]
    if stale:
        ndes.append(
            _ndes(
                STALE_ID,
                "PKI-CONN-OLD",
                "pki-conn-old.contoso.com",
                now - timedelta(days=3),
                "inactive",
            )
        )
    return {NDES_ROUTE: ndes, DETAILS_ROUTE: details}


_TIMES = ("lastConnectionDateTime", "enrolledDateTime", "lastCheckinDateTime", "enrollmentDateTime")


def _shifted(value: Any, by: timedelta) -> Any:
    if not isinstance(value, str) or not value:
        return value
    return _time(parse_utc(value).replace(microsecond=0) + by)


def from_snapshot(directory: Path, now: datetime) -> dict[str, list[dict[str, Any]]] | None:
    """The connectors a snapshot holds, split by endpoint and moved in time so that ``now``
    is as long after each contact as the snapshot's fetch was; None when it holds none."""
    path = directory / "connectors.jsonl"
    if not path.exists():
        return None
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    fetched = parse_utc(str(metadata["fetched_at"]))
    by = now - fetched
    served: dict[str, list[dict[str, Any]]] = {NDES_ROUTE: [], DETAILS_ROUTE: []}
    by_type = {kind: route for route, kind in TYPES.items()}
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            obj = json.loads(raw)
            route = by_type[obj.pop("@reconcile.connectorType")]
            served[route].append({k: _shifted(v, by) if k in _TIMES else v for k, v in obj.items()})
    return served
