"""The Cloud PKI test tenant: a snapshot fixture served by the HTTPS emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconcile.emulator import GraphEmulator
from reconcile.emulator.demo import demo_settings_env
from reconcile.settings import Settings, resolve

FIXTURES = Path(__file__).parent / "fixtures" / "cloudpki"
SNAPSHOT = FIXTURES / "snapshot"
TENANT = "00000000-0000-4000-8000-000000000001"
AS_OF = "2026-11-20T02:00:00Z"
CA_ID = "5f2b6c1e-3d4a-4b8e-9c7f-1a2b3c4d5e6f"


def serial(n: int) -> str:
    """The fixture's leaf serials: 4A, then n as 15 bytes of hex."""
    return f"4A{n:030X}"


@contextmanager
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """Two items a page, so every collection takes several pages; RECONCILE_* point at it."""
    with GraphEmulator(snapshot_dir=SNAPSHOT, tenant=TENANT, page_size=2, max_page_size=4) as e:
        for name, value in demo_settings_env(e).items():
            monkeypatch.setenv(name, value)
        yield e


def settings_for(emu: GraphEmulator) -> Settings:
    return resolve({"ca_sources": ("cloud-pki",)}, demo_settings_env(emu))


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
