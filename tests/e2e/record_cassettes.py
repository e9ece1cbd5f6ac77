"""Re-record cassettes/ from the emulator (run by hand, never by CI):

    .venv/bin/python tests/e2e/record_cassettes.py

The client is configured for the fixed hosts login.emulator.test and graph.emulator.test and a
rewriting transport carries the traffic to the emulator's ephemeral port, so cassettes replay
whatever port the emulator had. Recording goes through reconcile.graph.cassette, the same
scrubbing transport users get from ``reconcile fetch --record-cassette``.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

import httpx

from reconcile.emulator import Fault, FaultKind, GeneratedTenant, GraphEmulator
from reconcile.graph.cassette import RecordingTransport
from reconcile.graph.session import open_graph
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.intune.sources import DEVICES_PATH
from reconcile.settings import Settings, resolve

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
AUTHORITY_HOST = "login.emulator.test"
GRAPH_HOST = "graph.emulator.test"
# Known to the cassette scanner test, which fails if it ever appears in a cassette.
RECORDING_SECRET = "cassette~recording~secret~0f5e2d"
TENANT: dict[str, int] = {"certificates": 40, "profiles": 3, "devices": 10}
PAGE: dict[str, int] = {"page_size": 4, "max_page_size": 8}


class RewriteTransport(httpx.BaseTransport):
    """Sends the fixed emulator hosts to 127.0.0.1:<port>, keeping the Host header."""

    def __init__(self, emu: GraphEmulator):
        self._port = emu.port
        self._inner = httpx.HTTPTransport(verify=emu.ssl_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in (AUTHORITY_HOST, GRAPH_HOST):
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1", port=self._port),
                headers=request.headers,
                content=request.read(),
                extensions=request.extensions,
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def cassette_settings(emu_tenant: str, client_id: str, source: str = "states") -> Settings:
    env = {
        "RECONCILE_TENANT_ID": emu_tenant,
        "RECONCILE_CLIENT_ID": client_id,
        "RECONCILE_CLIENT_SECRET": RECORDING_SECRET,
        "RECONCILE_AUTH": "secret",
        "RECONCILE_AUTHORITY_HOST": f"https://{AUTHORITY_HOST}",
        "RECONCILE_GRAPH_URL": f"https://{GRAPH_HOST}",
        "RECONCILE_MAX_CONCURRENCY": "1",
    }
    return resolve({"intune_source": source}, env)


def _emulator(*faults: Fault) -> GraphEmulator:
    secret = RECORDING_SECRET
    return GraphEmulator(
        data=GeneratedTenant(**TENANT),
        client_secret=secret,
        faults=faults,
        export_polls=1,
        **PAGE,
    )


def record_fetch(name: str, source: str, *faults: Fault) -> None:
    with _emulator(*faults) as emu, tempfile.TemporaryDirectory() as tmp:
        transport = RecordingTransport(RewriteTransport(emu), CASSETTES / f"{name}.yaml")
        settings = cassette_settings(emu.tenant_id, emu.client_id, source)
        fetch_snapshot(settings.fetch_options(), Path(tmp) / "snap", transport=transport)
        transport.close()
        print(f"{name}.yaml: {transport.interactions} interactions")


def record_devices() -> None:
    with _emulator() as emu:
        transport = RecordingTransport(RewriteTransport(emu), CASSETTES / "managed_devices.yaml")
        settings = cassette_settings(emu.tenant_id, emu.client_id)
        with open_graph(settings.graph_config(), transport) as graph:
            pages = list(graph.client.pages(DEVICES_PATH, {"$select": "id,deviceName"}))
        transport.close()
        print(f"managed_devices.yaml: {len(pages)} pages, {transport.interactions} interactions")


def main() -> int:
    CASSETTES.mkdir(exist_ok=True)
    fetch_module.ExportPolling = functools.partial(  # type: ignore[misc]
        fetch_module.ExportPolling, first_delay=0.2
    )
    record_fetch("fetch_states", "states")
    record_devices()
    record_fetch(
        "throttled_states",
        "states",
        Fault(FaultKind.THROTTLE, route="states", after=1, retry_after=1),
    )
    record_fetch("fetch_report", "report")
    record_fetch(
        "fetch_report_per_profile",
        "report",
        Fault(FaultKind.POLICY_FILTER_REQUIRED, times=None),
    )
    record_fetch(
        "throttled_token",
        "states",
        Fault(FaultKind.THROTTLE, route="token", retry_after=1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
