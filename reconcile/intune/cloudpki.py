"""Read Microsoft Cloud PKI from Graph beta into the snapshot: issuing CAs, then leaf certificates.

The tenant-wide leaf collection is read, not one collection per CA and not the report action
(docs/graph.md says why): it is one paged pass with ``@odata.nextLink``, the documented JSON of
each leaf, and the same completeness rule as every collection (a page that fails fails the
fetch, so no snapshot and no report exist from part of it).
"""

from __future__ import annotations

import threading

from reconcile.ca.cloudpki import CAS, CAS_PATH, LEAVES, LEAVES_PATH
from reconcile.graph.client import GraphClient
from reconcile.intune.sources import SharedSink

# What the CA source reads; $select is documented on these leaf properties.
LEAF_FIELDS = (
    "id",
    "subjectName",
    "issuerId",
    "issuerName",
    "certificateStatus",
    "validityStartDateTime",
    "validityEndDateTime",
    "thumbprint",
    "serialNumber",
    "revocationDateTime",
    "deviceName",
    "userPrincipalName",
    "deviceId",
    "userId",
    "devicePlatform",
)


def endpoints() -> list[str]:
    return [f"GET {CAS_PATH}", f"GET {LEAVES_PATH}"]


def fetch_cloud_pki(client: GraphClient, sink: SharedSink, stop: threading.Event) -> None:
    """Every CA (a handful, so no $select), then every leaf certificate page by page."""
    sink.open_collection(CAS)
    for page in client.pages(CAS_PATH):
        if stop.is_set():
            return
        sink.write_page(CAS, page)
    sink.open_collection(LEAVES)
    for page in client.pages(LEAVES_PATH, {"$select": ",".join(LEAF_FIELDS)}):
        if stop.is_set():
            return
        sink.write_page(LEAVES, page)
