"""Read a tenant's Intune certificate records from Graph into a snapshot directory.

The snapshot is published only when every collection was read to its end; any failure leaves
no snapshot behind (SnapshotWriter discards its work unless committed), so no report can be
built from partial data.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from reconcile.ca.cloudpki import SOURCE as CLOUD_PKI
from reconcile.graph.client import GraphClient
from reconcile.graph.session import open_graph
from reconcile.intune import cloudpki
from reconcile.intune.connectors import DETAILS_PATH, NDES_PATH, fetch_connectors
from reconcile.intune.options import FetchOptions, SourceChoice
from reconcile.intune.snapshot import SnapshotWriter
from reconcile.intune.sources import (
    DEVICES_PATH,
    EXPORT_PATH,
    PROFILES_PATH,
    STATES_PATH,
    ExportPolling,
    Progress,
    SharedSink,
    Sink,
    fetch_devices,
    fetch_profiles,
    fetch_report,
    fetch_states,
    run_all,
)
from reconcile.model import IntuneSource
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile.intune")


def sources_of(source: SourceChoice) -> tuple[IntuneSource, ...]:
    return SourceChoice(source).collections


def endpoints_used(source: SourceChoice, ca_sources: tuple[str, ...] = ()) -> list[str]:
    used: list[str] = []
    if IntuneSource.STATES in sources_of(source):
        used += [f"GET {PROFILES_PATH}", f"GET {STATES_PATH}"]
    if IntuneSource.REPORT in sources_of(source):
        used += [f"POST {EXPORT_PATH}", f"GET {EXPORT_PATH}('{{id}}')", "GET <export url>"]
    used.append(f"GET {DEVICES_PATH}")
    used += [f"GET {NDES_PATH} (optional)", f"GET {DETAILS_PATH} (optional)"]
    if CLOUD_PKI in ca_sources:
        used += cloudpki.endpoints()
    return used


def fetch_into(
    sink: Sink,
    client: GraphClient,
    options: FetchOptions,
    *,
    progress: Progress | None = None,
    polling: ExportPolling | None = None,
) -> None:
    """Every collection the options ask for, streamed into ``sink``; raises if any is partial."""
    shared = SharedSink(sink, progress)
    sources = sources_of(options.source)
    tasks: list[Callable[[threading.Event], None]] = []
    if IntuneSource.REPORT in sources:
        # Started first: the export job spends minutes server-side while the rest is read.
        tasks.append(
            functools.partial(
                fetch_report,
                client,
                shared,
                polling or ExportPolling(options.export_timeout),
                workers=options.max_concurrency,
                raw_rows=options.report_raw_rows,
            )
        )
    if IntuneSource.STATES in sources:
        profiles = fetch_profiles(client, shared)
        shared.open_collection("certificate_states")
        shared.in_parts("certificate_states")
        tasks += [
            functools.partial(fetch_states, client, shared, p, part=n)
            for n, p in enumerate(profiles)
        ]
    tasks.append(functools.partial(fetch_devices, client, shared))
    if CLOUD_PKI in options.ca_sources:
        tasks.append(functools.partial(cloudpki.fetch_cloud_pki, client, shared))
    run_all(tasks, options.max_concurrency)


def fetch_snapshot(
    options: FetchOptions,
    out: Path,
    *,
    transport: httpx.BaseTransport | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Path:
    """Fetch and publish the snapshot at ``out`` atomically; returns ``out``.

    ``transport`` replaces the network for token and Graph traffic alike (cassette recording,
    tests); it then owns TLS and proxies.
    """
    started = time.monotonic()
    with open_graph(options.graph, transport) as graph:
        metadata = {
            "tenant_id": options.graph.tenant_id,
            "cloud": graph.endpoints.cloud,
            "graph_url": graph.endpoints.graph_url,
            "authority_host": graph.endpoints.authority_host,
            "auth_method": graph.tokens.method,
            "endpoints": endpoints_used(options.source, options.ca_sources),
            "fetched_at": iso_z(options.fetched_at or datetime.now(UTC)),
            "intune_source": str(options.source),
            "sources": [str(s) for s in sources_of(options.source)],
            "ca_sources": list(options.ca_sources),
        }
        with SnapshotWriter(out, metadata, options.max_snapshot_bytes) as writer:
            fetch_into(writer, graph.client, options, progress=progress)
            fetch_connectors(graph.client, writer)
            path = writer.commit()
            counts = writer.counts()
        log.info(
            "fetched %s in %d Graph requests, %.1f s",
            ", ".join(f"{n} {name}" for name, n in sorted(counts.items())),
            graph.client.requests,
            time.monotonic() - started,
        )
    return path
