"""Whole-result helpers that only tests need: a run streams, tests want everything at once."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reconcile.demo import DEMO_AS_OF, DEMO_ISSUER, DEMO_TEMPLATES, demo_ca_export, demo_snapshot
from reconcile.engine.db import Database
from reconcile.engine.tables import create_tables, load_side
from reconcile.history.store import recording
from reconcile.intune.records import ReportStatuses
from reconcile.intune.side import IntuneSide
from reconcile.model import (
    CertificateProfile,
    InputFile,
    IntuneCertificate,
    ManagedDevice,
    Reject,
    RunDelta,
    RunResult,
)
from reconcile.settings import Settings
from tests.engine.reference_snapshot import SnapshotSource

CERTUTIL_HEADER = [
    "Issued Request ID",
    "Serial Number",
    "Certificate Hash",
    "Certificate Effective Date",
    "Certificate Expiration Date",
    "Certificate Template",
    "Requester Name",
    "Issued Common Name",
    "Issued Distinguished Name",
    "Revocation Date",
    "Request Disposition",
]
"""The header `certutil -view csv` writes on an English AD CS."""


@contextmanager
def engine_of(side: IntuneSide | None = None) -> Iterator[Database]:
    """The engine's tables, holding ``side``'s records (none by default): what views.build
    reads the renewals from."""
    with Database() as db:
        create_tables(db)
        if side is not None:
            load_side(db, side)
        yield db


def record_run(
    db: sqlite3.Connection,
    result: RunResult,
    exit_code: int,
    duration: float,
    *,
    started_at: datetime | None = None,
    hook: Callable[[str], None] | None = None,
) -> tuple[RunResult, RunDelta]:
    """Record one run and commit, as a run does once its reports are written."""
    with recording(db, result, exit_code, duration, started_at=started_at, hook=hook) as recorded:
        return recorded


def run_findings(db: sqlite3.Connection, run_id: str) -> list[tuple[str, str, str | None]]:
    """(issuer, serial, label) of every finding open in a past run, from the spans."""
    row = db.execute("SELECT max(seq) FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert row[0] is not None, f"no recorded run {run_id!r}"
    rows = db.execute(
        "SELECT i.key, f.serial, f.label FROM spans s JOIN findings f ON f.id = s.finding_id"
        " JOIN issuers i ON i.id = f.issuer_id"
        " WHERE s.first_run <= ?1 AND (s.last_run IS NULL OR s.last_run >= ?1)",
        (row[0],),
    )
    return sorted((issuer, serial.hex().upper(), label) for issuer, serial, label in rows)


@dataclass(frozen=True)
class Snapshot:
    """The Intune side of a run, every record decoded."""

    path: Path
    metadata: Mapping[str, Any]
    profiles: tuple[CertificateProfile, ...]
    certificates: tuple[IntuneCertificate, ...]
    devices: tuple[ManagedDevice, ...]
    rejects: tuple[Reject, ...]
    inputs: tuple[InputFile, ...]

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None


def read_snapshot(directory: Path, report_delivered: ReportStatuses | Iterable[str]) -> Snapshot:
    """Every record of a snapshot; a run streams it through ``SnapshotSource`` instead."""
    with SnapshotSource(directory, report_delivered) as source:
        side = source.side
        devices = side.devices
        return Snapshot(
            path=directory,
            metadata=source.metadata,
            profiles=tuple(source.profiles),
            certificates=tuple(side.certificate(e) for e in side.entries),
            devices=tuple(devices.get(n) for n in source.device_lines) if devices else (),
            rejects=tuple(source.rejects),
            inputs=tuple(source.inputs),
        )


def demo_settings(**overrides: Any) -> Settings:
    """A run over the bundled demo (its export, snapshot, issuer, templates and as-of)."""
    values: dict[str, Any] = {
        "ca_exports": (demo_ca_export(),),
        "snapshot": demo_snapshot(),
        "ca_issuer": (DEMO_ISSUER,),
        "templates": DEMO_TEMPLATES,
        "as_of": DEMO_AS_OF,
        "no_history": True,
    }
    values.update(overrides)
    return Settings(**values)


def assert_fits(text: str, width: int) -> None:
    """Every line fits ``width``, except one token wider than that (a path, a 40-digit serial,
    a thumbprint), which wrapping leaves whole on a line of its own."""
    for line in text.splitlines():
        assert len(line) <= width or len(line.split()) == 1, line


def columns(table: str) -> list[str]:
    """Each column's text top to bottom, wrapped lines joined, cut where the rule's dashes are."""
    lines = table.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    return [" ".join(" ".join(line[a:b] for line in lines[2:]).split()) for a, b in spans]


def examples(count: int) -> int:
    """A property test's example count, times ``HYPOTHESIS_EXAMPLES_SCALE`` (default 1): a
    long run (``HYPOTHESIS_EXAMPLES_SCALE=50 make test``) searches fifty times as far."""
    raw = os.environ.get("HYPOTHESIS_EXAMPLES_SCALE", "1")
    try:
        scale = int(raw)
    except ValueError:
        raise ValueError(f"HYPOTHESIS_EXAMPLES_SCALE={raw!r} is not a whole number") from None
    if scale < 1:
        raise ValueError(f"HYPOTHESIS_EXAMPLES_SCALE={raw!r} is below 1")
    return count * scale


def killed_after_first_line(code: str) -> tuple[str, int]:
    """Run ``code`` in a child Python and SIGKILL it once it prints a line, as the OOM killer
    would: (that line, the child's pid). The child is reaped, so its pid is gone."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    with child.stdout:
        line = child.stdout.readline().rstrip("\n")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    return line, child.pid
