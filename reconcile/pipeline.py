"""One run as a plain function: read both sides, join, enrich. The CLI, demo and tests share it."""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconcile import accepted
from reconcile.advice import with_next_steps
from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import ConfigError, InputError, UsageError
from reconcile.evidence.apply import apply_stored_evidence
from reconcile.intune.snapshot import Snapshot, read_snapshot
from reconcile.join import JoinOptions, classify
from reconcile.model import CaCertificate, InputFile, Reject, RunResult
from reconcile.settings import Settings
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile")


@dataclass(frozen=True)
class CaRead:
    certificates: list[CaCertificate]
    rejects: list[Reject]
    inputs: list[InputFile]


def read_ca_exports(settings: Settings) -> CaRead:
    """Stream every export; each bad row is logged with file:line and kept as a Reject."""
    if not settings.ca_exports:
        raise UsageError("no CA export given: pass --ca-export PATH (repeatable)")
    options = ReaderOptions.from_settings(settings)
    certificates: list[CaCertificate] = []
    rejects: list[Reject] = []
    inputs: list[InputFile] = []
    for path in settings.ca_exports:
        reader = ExportReader(path, options)
        log.info("reading %s as %s", path, reader.format)
        for item in reader:
            if isinstance(item, Reject):
                log.warning("%s:%d: rejected: %s", item.source, item.line, item.reason)
                if settings.strict:
                    raise InputError(
                        f"rejected row (--strict): {item.reason}", item.source, item.line
                    )
                rejects.append(item)
            else:
                certificates.append(item)
        inputs.append(reader.input_file())
    return CaRead(certificates, rejects, inputs)


def _fetch(settings: Settings, target: Path) -> Path:
    from reconcile.intune.fetch import fetch_snapshot
    from reconcile.progress import Progress

    progress = Progress()
    try:
        return fetch_snapshot(settings, target, progress=progress)
    finally:
        progress.close()


def load_intune(settings: Settings) -> Snapshot:
    """The snapshot given, or a fresh fetch from Graph (kept only with --save-snapshot)."""
    delivered = frozenset(s.casefold() for s in settings.report_delivered)
    if settings.snapshot is not None:
        return read_snapshot(settings.snapshot, delivered)
    if settings.save_snapshot is not None:
        return read_snapshot(_fetch(settings, settings.save_snapshot), delivered)
    with tempfile.TemporaryDirectory(prefix="reconcile-fetch-") as tmp:
        return read_snapshot(_fetch(settings, Path(tmp) / "snapshot"), delivered)


def _device_pattern(settings: Settings) -> re.Pattern[str] | None:
    if not settings.device_pattern:
        return None
    try:
        pattern = re.compile(settings.device_pattern)
    except re.error as exc:
        raise ConfigError(f"device_pattern is not a valid regular expression: {exc}") from None
    if pattern.groups != 1:
        raise ConfigError("device_pattern must have exactly one capturing group")
    return pattern


def run_id_for(settings: Settings, inputs: list[InputFile]) -> str:
    """Derived from the inputs, so the same inputs give byte-identical reports."""
    digest = hashlib.sha256()
    for part in (
        iso_z(settings.resolved_as_of()),
        f"{settings.grace_hours:g}",
        *settings.templates,
    ):
        digest.update(part.encode() + b"\0")
    for item in inputs:
        digest.update(item.sha256.encode() + b"\0")
    stamp = settings.resolved_as_of().strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{digest.hexdigest()[:8]}"


def _sources(snapshot: Snapshot) -> Iterator[str]:
    counts = snapshot.metadata.get("counts", {})
    if "certificate_states" in counts:
        yield "states"
    if "report_rows" in counts:
        yield "report"


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic GC while millions of acyclic records are built; it only rescans them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run(settings: Settings) -> RunResult:
    """Read, join and enrich; raises ReconcileError subclasses, never writes a report."""
    with _bulk_allocation():
        return _run(settings)


def _run(settings: Settings) -> RunResult:
    as_of = settings.resolved_as_of()
    pattern = _device_pattern(settings)
    ca = read_ca_exports(settings)
    snapshot = load_intune(settings)
    for reject in snapshot.rejects:
        log.warning("%s:%d: rejected: %s", reject.source, reject.line, reject.reason)
    if settings.strict and snapshot.rejects:
        first = snapshot.rejects[0]
        raise InputError(f"rejected record (--strict): {first.reason}", first.source, first.line)
    has_devices = "managed_devices" in snapshot.metadata.get("counts", {})
    joined = classify(
        ca.certificates,
        snapshot.certificates,
        snapshot.devices if has_devices else None,
        JoinOptions(
            as_of=as_of,
            grace_hours=settings.grace_hours,
            templates=settings.templates,
            device_pattern=pattern,
        ),
    )
    inputs = [*ca.inputs, *snapshot.inputs]
    verdicts = joined.verdicts
    if settings.exceptions_file is not None:
        exceptions = accepted.load(settings.exceptions_file)
        verdicts = accepted.apply(verdicts, exceptions.entries, as_of)
        inputs.append(exceptions.input_file)
    result = RunResult(
        run_id=run_id_for(settings, inputs),
        as_of=as_of,
        grace_hours=settings.grace_hours,
        verdicts=verdicts,
        unknown_to_ca=joined.unknown_to_ca,
        rejects=(*ca.rejects, *snapshot.rejects),
        inputs=tuple(inputs),
        templates=settings.templates,
        intune_sources=tuple(_sources(snapshot)),
        tenant_id=snapshot.tenant_id,
    )
    return with_next_steps(apply_stored_evidence(result, settings))
