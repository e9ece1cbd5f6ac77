"""A local HTTPS stand-in for Entra ID and Microsoft Graph (demo, end-to-end tests, benchmark)."""

from reconcile.emulator.faults import Fault, FaultKind, parse_fault
from reconcile.emulator.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_TENANT_ID,
    GraphEmulator,
    RecordedRequest,
    retry_after_violations,
)
from reconcile.emulator.tenant import GeneratedTenant, ListTenant, SnapshotTenant, Tenant

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_TENANT_ID",
    "Fault",
    "FaultKind",
    "GeneratedTenant",
    "GraphEmulator",
    "ListTenant",
    "RecordedRequest",
    "SnapshotTenant",
    "Tenant",
    "parse_fault",
    "retry_after_violations",
]
