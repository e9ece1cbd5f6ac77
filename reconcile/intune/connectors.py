"""Certificate connector health: the usual reason issuance stops silently.

An Intune Certificate Connector (or the older NDES connector) whose own certificate expired, or
whose service stopped, makes pending and not-installed findings pile up with nothing failing
loudly. Graph lists them under ``ndesConnectors`` and ``certificateConnectorDetails`` (beta).
Reading them is optional: a tenant or app without access gets a warning recorded in the
snapshot's metadata, never a failed run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconcile.errors import GraphError, IncompleteDataError, InputError
from reconcile.model import InputFile
from reconcile.timeparse import parse_iso

if TYPE_CHECKING:
    from reconcile.graph.client import GraphClient
    from reconcile.intune.snapshot import SnapshotFiles

log = logging.getLogger("reconcile.intune")

NDES_PATH = "/beta/deviceManagement/ndesConnectors"
DETAILS_PATH = "/beta/deviceManagement/certificateConnectorDetails"
COLLECTION = "connectors"
FILE = f"{COLLECTION}.jsonl"
TYPE_KEY = "@reconcile.connectorType"
OPTIONAL_STATUSES = (403, 404)
ENDPOINTS = ((NDES_PATH, "ndesConnector"), (DETAILS_PATH, "certificateConnectorDetails"))


class ConnectorSink(Protocol):
    def add_file(self, name: str, objects: Iterable[Mapping[str, Any]], note: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Connector:
    """One connector as Graph reports it."""

    kind: str
    id: str
    name: str | None
    machine: str | None
    state: str | None
    version: str | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    """The connectors of a snapshot, judged at the run's as-of."""

    connectors: tuple[Connector, ...]
    as_of: datetime
    stale_hours: float
    warnings: tuple[str, ...] = ()
    collected: bool = True
    input_file: InputFile | None = None

    def silent_hours(self, connector: Connector) -> float | None:
        if connector.last_seen is None:
            return None
        # A contact after as-of (a replayed snapshot, a clock ahead) is no silence at all.
        return max(0.0, (self.as_of - connector.last_seen) / timedelta(hours=1))

    def is_stale(self, connector: Connector) -> bool:
        hours = self.silent_hours(connector)
        return hours is None or hours > self.stale_hours

    @property
    def stale(self) -> tuple[Connector, ...]:
        return tuple(c for c in self.connectors if self.is_stale(c))

    def describe(self, connector: Connector) -> str:
        hours = self.silent_hours(connector)
        ago = "never connected" if hours is None else f"last connected {_ago(hours)} ago"
        name = connector.name or connector.machine or connector.id
        machine = f" on {connector.machine}" if connector.machine and connector.name else ""
        state = f", state {connector.state}" if connector.state else ""
        version = f", version {connector.version}" if connector.version else ""
        return f"{name}{machine} ({connector.kind}{state}{version}): {ago}"

    def stale_lines(self) -> list[str]:
        """One line per stale connector, saying what it causes."""
        return [
            f"connector {self.describe(c)}, silent for longer than {self.stale_hours:g} h: "
            "expect pending and not_installed findings to pile up until it connects again"
            for c in self.stale
        ]

    def warning_lines(self) -> list[str]:
        """The stale connectors, then the endpoints that could not be read."""
        return [*self.stale_lines(), *self.warnings]


def _ago(hours: float) -> str:
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} days"


def _parse_time(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) else None


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return str(value) if value not in (None, "") else None


def decode(obj: dict[str, Any]) -> Connector:
    """A snapshot line: a Graph object annotated with the endpoint's type."""
    kind = str(obj.get(TYPE_KEY) or "")
    if kind == "ndesConnector":
        return Connector(
            kind=kind,
            id=str(obj.get("id") or ""),
            name=_text(obj, "displayName"),
            machine=_text(obj, "machineName"),
            state=_text(obj, "state"),
            version=_text(obj, "connectorVersion"),
            last_seen=_parse_time(obj.get("lastConnectionDateTime")),
        )
    if kind == "certificateConnectorDetails":
        return Connector(
            kind=kind,
            id=str(obj.get("id") or ""),
            name=_text(obj, "connectorName"),
            machine=_text(obj, "machineName"),
            state=None,
            version=_text(obj, "connectorVersion"),
            last_seen=_parse_time(obj.get("lastCheckinDateTime")),
        )
    raise ValueError(f"unknown connector type {kind!r}")


def fetch_connectors(client: GraphClient, sink: ConnectorSink) -> list[str]:
    """Both connector lists into ``sink``; returns the warnings for endpoints Graph refused.

    Only 403 and 404 are optional: any other failure is the same upstream error as anywhere
    else, because a half-read list would hide a silent connector.
    """
    warnings: list[str] = []
    objects: list[dict[str, Any]] = []
    for path, kind in ENDPOINTS:
        found: list[dict[str, Any]] = []
        try:
            for page in client.pages(path):
                found += page
        except GraphError as exc:
            if exc.status not in OPTIONAL_STATUSES:
                raise
            warning = (
                f"GET {path}: HTTP {exc.status}; connector health not collected from it "
                "(grant DeviceManagementConfiguration.Read.All, or the tenant has none)"
            )
            log.warning("%s", warning)
            warnings.append(warning)
            continue
        objects += ({**obj, TYPE_KEY: kind} for obj in found)
    sink.add_file(FILE, objects, {"count": len(objects), "warnings": warnings})
    return warnings


def load_connectors(
    snapshot: SnapshotFiles, as_of: datetime, stale_hours: float
) -> ConnectorHealth | None:
    """The snapshot's connectors, or None for a snapshot taken before they were collected."""
    note = snapshot.metadata.get(COLLECTION)
    if not isinstance(note, dict):
        return None
    path: Path = snapshot.path / FILE
    warnings = tuple(str(w) for w in note.get("warnings", ()))
    connectors = []
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for line, raw in enumerate(handle, start=1):
                digest.update(raw)
                if not raw.endswith(b"\n"):
                    raise IncompleteDataError(f"{path}:{line}: cut off in the middle of a line")
                try:
                    obj = json.loads(raw)
                    if not isinstance(obj, dict):
                        raise ValueError("not a JSON object")
                    connectors.append(decode(obj))
                except ValueError as exc:
                    raise InputError(f"bad connector record: {exc}", path, line) from None
    except FileNotFoundError:
        raise IncompleteDataError(f"{path}: listed in metadata.json but missing") from None
    if len(connectors) != note.get("count"):
        raise IncompleteDataError(
            f"{path}: metadata.json promises {note.get('count')} connectors, "
            f"the file holds {len(connectors)}"
        )
    recorded = note.get("sha256")
    if recorded is not None and recorded != digest.hexdigest():
        raise IncompleteDataError(
            f"{path}: sha256 differs from the one metadata.json recorded at fetch time"
        )
    source = InputFile(str(path), "snapshot", COLLECTION, digest.hexdigest(), len(connectors), 0)
    return ConnectorHealth(
        connectors=tuple(sorted(connectors, key=lambda c: (c.kind, c.name or "", c.id))),
        as_of=as_of,
        stale_hours=stale_hours,
        input_file=source,
        warnings=warnings,
    )
