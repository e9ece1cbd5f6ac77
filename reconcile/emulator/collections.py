"""The emulator's Graph collections: Intune profiles, certificate states, managed devices,
Cloud PKI and certificate connectors, each paged with ``$top``, ``$select`` and an opaque
``$skiptoken`` in ``@odata.nextLink`` as Graph pages them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlencode

from reconcile.emulator import cloudpki
from reconcile.emulator import connectors as connector_routes
from reconcile.emulator.connectors import ConnectorSwitch
from reconcile.emulator.faults import FaultKind
from reconcile.emulator.httpserver import GRAPH_JSON, Answered, Exchange, b64url, b64url_decode
from reconcile.emulator.tenant import (
    DEVICE_PROPERTIES,
    PROFILE_PROPERTIES,
    STATE_PROPERTIES,
    Tenant,
)

ROUTES = (
    ("GET", "profiles", r"^/beta/deviceManagement/deviceConfigurations$"),
    (
        "GET",
        "states",
        r"^/beta/deviceManagement/deviceConfigurations/(?P<id>[^/]+)"
        r"/microsoft\.graph\.(?P<type>[^/]+)/managedDeviceCertificateStates$",
    ),
    ("GET", "devices", r"^/(v1\.0|beta)/deviceManagement/managedDevices$"),
)


class Estate(Protocol):
    """What the collections serve; tests swap ``cloud_pki`` on a running emulator."""

    data: Tenant
    cloud_pki: cloudpki.CloudPki
    connectors: ConnectorSwitch


def page_size(ex: Exchange, default: int, maximum: int) -> int:
    """``$top`` capped at ``maximum``; a non-positive or non-numeric one is Graph's 400."""
    raw = ex.params.get("$top")
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if top < 1:
        ex.graph_error(400, "BadRequest", f"Invalid value '{raw}' for $top.")
        raise Answered
    return min(top, maximum)


class Collections:
    def __init__(
        self,
        estate: Estate,
        *,
        page_size: int,
        max_page_size: int,
        connector_snapshot: Path | None,
    ):
        self._estate = estate
        self.page_size_default = page_size
        self.max_page_size = max_page_size
        self.connector_snapshot = connector_snapshot

    def handlers(self) -> dict[str, Callable[[Exchange], None]]:
        routes: dict[str, Callable[[Exchange], None]] = {
            "profiles": self.profiles,
            "states": self.states,
            "devices": self.devices,
        }
        routes.update(dict.fromkeys(cloudpki.ROUTES, self.cloud_pki))
        routes.update(dict.fromkeys(connector_routes.CONTEXTS, self.connectors))
        return routes

    def _selection(
        self, ex: Exchange, known: frozenset[str], sample: list[dict[str, Any]]
    ) -> list[str] | None:
        """The ``$select``ed properties, or None for all; unknown names are a 400 as in Graph."""
        raw = ex.params.get("$select")
        if raw is None:
            return None
        names = [n.strip().rsplit("/", 1)[-1] for n in raw.split(",") if n.strip()]
        allowed = known | {k for item in sample for k in item}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            ex.graph_error(
                400, "BadRequest", f"Could not find a property named '{unknown[0]}' on type."
            )
            raise Answered
        return names

    def _page(
        self,
        ex: Exchange,
        total: int,
        fetch: Any,
        known: frozenset[str],
        context: str,
    ) -> None:
        try:
            size = self.page_size(ex)
            offset = self._offset(ex)
            items: list[dict[str, Any]] = fetch(offset, offset + size)
            names = self._selection(ex, known, items)
        except Answered:
            return
        if names is not None:
            keep = set(names) | {"@odata.type"}
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        payload: dict[str, Any] = {"@odata.context": f"{ex.base}/{context}", "value": items}
        if offset + size < total:
            pairs = [(k, v) for k, v in parse_qs(ex.query).items() if k != "$skiptoken"]
            flat = [(k, v[-1]) for k, v in pairs]
            flat.append(("$skiptoken", b64url(f"emulator:{offset + size}".encode())))
            query = urlencode(flat, quote_via=quote, safe="$,'()")
            base = ex.base
            if ex.fault == FaultKind.NEXT_LINK_CONTROL.value:
                base = base.replace("://", "://graph\t", 1)
            elif ex.fault == FaultKind.NEXT_LINK_FOREIGN.value:
                base = "https://graph.attacker.example"
            payload["@odata.nextLink"] = f"{base}{ex.path}?{query}"
        ex.json(200, payload, GRAPH_JSON)

    def page_size(self, ex: Exchange) -> int:
        return page_size(ex, self.page_size_default, self.max_page_size)

    def _offset(self, ex: Exchange) -> int:
        token = ex.params.get("$skiptoken")
        if token is None:
            return 0
        try:
            prefix, _, number = b64url_decode(token).decode("ascii").partition(":")
            if prefix != "emulator":
                raise ValueError(token)
            return int(number)
        except ValueError:
            ex.graph_error(400, "BadRequest", "The $skiptoken is invalid.")
            raise Answered from None

    def profiles(self, ex: Exchange) -> None:
        profiles = self._estate.data.profiles
        self._page(
            ex,
            len(profiles),
            lambda start, stop: profiles[start:stop],
            PROFILE_PROPERTIES,
            "beta/$metadata#deviceManagement/deviceConfigurations",
        )

    def states(self, ex: Exchange) -> None:
        assert ex.match is not None
        profile_id, cast = ex.match.group("id"), ex.match.group("type")
        profile = self._estate.data.profile(profile_id)
        if profile is None:
            ex.graph_error(
                404, "ResourceNotFound", f"Resource with id '{profile_id}' was not found."
            )
            return
        if profile.get("@odata.type") != f"#microsoft.graph.{cast}":
            ex.graph_error(
                400,
                "BadRequest",
                f"The type 'microsoft.graph.{cast}' does not match the type of the resource.",
            )
            return
        self._page(
            ex,
            self._estate.data.state_count(profile_id),
            lambda start, stop: self._estate.data.states(profile_id, start, stop),
            STATE_PROPERTIES,
            f"beta/$metadata#deviceManagement/deviceConfigurations('{profile_id}')"
            f"/microsoft.graph.{cast}/managedDeviceCertificateStates",
        )

    def devices(self, ex: Exchange) -> None:
        version = ex.path.split("/")[1]
        self._page(
            ex,
            self._estate.data.device_count(),
            self._estate.data.devices,
            DEVICE_PROPERTIES,
            f"{version}/$metadata#deviceManagement/managedDevices",
        )

    def cloud_pki(self, ex: Exchange) -> None:
        pki = self._estate.cloud_pki
        if pki.forbidden is not None:
            ex.graph_error(403, "Forbidden", pki.forbidden_message())
            return
        if ex.route == "cloud_pki_cas":
            items, known, context = pki.cas, cloudpki.CA_PROPERTIES, "cloudCertificationAuthority"
        else:
            items, known = pki.leaves, cloudpki.LEAF_PROPERTIES
            context = "cloudCertificationAuthorityLeafCertificate"
            if ex.route == "cloud_pki_ca_leaves":
                assert ex.match is not None
                ca_id = ex.match.group("id")
                if pki.ca(ca_id) is None:
                    ex.graph_error(
                        404, "ResourceNotFound", f"Resource with id '{ca_id}' was not found."
                    )
                    return
                items = pki.leaves_of(ca_id)
                context = f"cloudCertificationAuthority('{ca_id}')/{context}"
        self._page(
            ex,
            len(items),
            lambda start, stop: items[start:stop],
            known,
            cloudpki.CONTEXT + context,
        )

    def connectors(self, ex: Exchange) -> None:
        status = self._estate.connectors.status
        if status != 200:
            code = "Forbidden" if status == 403 else "ResourceNotFound"
            ex.graph_error(status, code, f"{code} for the connector list.")
            return
        now = self._estate.connectors.now()
        served = None
        if self.connector_snapshot is not None:
            served = connector_routes.from_snapshot(self.connector_snapshot, now)
        if served is None:
            served = connector_routes.generated(now, stale=False)
        items = list(served[ex.route])
        if self._estate.connectors.stale and ex.route == connector_routes.NDES_ROUTE:
            items += connector_routes.generated(now, stale=True)[ex.route][1:]
        self._page(
            ex,
            len(items),
            lambda start, stop: items[start:stop],
            frozenset(k for item in items for k in item),
            connector_routes.CONTEXTS[ex.route],
        )

    # --- report export ------------------------------------------------------------------------
