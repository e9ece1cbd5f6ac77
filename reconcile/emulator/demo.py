"""Settings that point reconcile at a running emulator, for ``reconcile demo`` and by hand."""

from __future__ import annotations

from pathlib import Path

from reconcile.emulator.server import GraphEmulator

DEMO_SNAPSHOT = Path(__file__).resolve().parent.parent / "demo" / "snapshot"


def demo_settings_env(emu: GraphEmulator) -> dict[str, str]:
    """RECONCILE_* variables for secret-based sign-in to ``emu``; merge them into the env."""
    return {
        "RECONCILE_TENANT_ID": emu.tenant_id,
        "RECONCILE_CLIENT_ID": emu.client_id,
        "RECONCILE_CLIENT_SECRET": emu.client_secret,
        "RECONCILE_AUTH": "secret",
        "RECONCILE_AUTHORITY_HOST": emu.authority_host,
        "RECONCILE_GRAPH_URL": emu.graph_url,
        "RECONCILE_CA_BUNDLE": str(emu.ca_bundle),
    }
