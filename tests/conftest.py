"""Shared fixtures. Sockets are blocked by pytest-socket except loopback (see pyproject)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.emulator import GraphEmulator
from tests.cloudpki import serve

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer config, history or token cache leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("RECONCILE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def fresh(emu: GraphEmulator) -> GraphEmulator:
    """The test module's shared ``emu`` with no faults left and an empty request log."""
    emu.faults.clear()
    emu.clear_requests()
    return emu


@pytest.fixture
def pki_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """The Cloud PKI test tenant (``tests/cloudpki.py``), with RECONCILE_* pointing at it."""
    with serve(monkeypatch) as emulator:
        yield emulator
