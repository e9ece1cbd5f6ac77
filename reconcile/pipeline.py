"""One run as a plain function: read both sides, join, enrich. The CLI, demo and tests share it."""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from reconcile import accepted
from reconcile.advice import with_next_steps
from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import ConfigError, InputError, UsageError
from reconcile.evidence.apply import apply_stored_evidence, device_keys
from reconcile.evidence.model import device_key
from reconcile.evidence.store import EvidenceStore, evidence_path
from reconcile.intune.snapshot import SnapshotSource
from reconcile.join import JoinOptions, classify
from reconcile.model import CaCertificate, InputFile, Reject, RunResult, Verdict
from reconcile.settings import Settings
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile")


class CaExports:
    """Every export opened up front (so a bad file fails before a long Graph fetch), then
    streamed once; each bad row is logged with file:line and kept as a Reject."""

    def __init__(self, settings: Settings):
        if not settings.ca_exports:
            raise UsageError("no CA export given: pass --ca-export PATH (repeatable)")
        options = ReaderOptions.from_settings(settings)
        self.strict = settings.strict
        self.rejects: list[Reject] = []
        self.inputs: list[InputFile] = []
        self._readers: list[ExportReader] = []
        try:
            for index, path in enumerate(settings.ca_exports):
                issuer = settings.issuer_for(index)
                self._readers.append(ExportReader(path, replace(options, issuer=issuer)))
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[CaCertificate]:
        for reader in self._readers:
            log.info("reading %s as %s", reader.path, reader.format)
            with reader:
                for item in reader:
                    if isinstance(item, CaCertificate):
                        yield item
                        continue
                    log.warning("%s:%d: rejected: %s", item.source, item.line, item.reason)
                    if self.strict:
                        raise InputError(
                            f"rejected row (--strict): {item.reason}", item.source, item.line
                        )
                    self.rejects.append(item)
            self.inputs.append(reader.input_file())

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


def _fetch(settings: Settings, target: Path) -> Path:
    from reconcile.intune.fetch import fetch_snapshot
    from reconcile.progress import Progress

    progress = Progress()
    try:
        return fetch_snapshot(settings, target, progress=progress)
    finally:
        progress.close()


@contextmanager
def open_intune(settings: Settings) -> Iterator[SnapshotSource]:
    """The snapshot given, or a fresh fetch from Graph (kept only with --save-snapshot).

    Open for the whole join: full records are read back from it for the verdicts kept.
    """
    delivered = frozenset(s.casefold() for s in settings.report_delivered)
    with ExitStack() as stack:
        if settings.snapshot is not None:
            path = settings.snapshot
        elif settings.save_snapshot is not None:
            path = _fetch(settings, settings.save_snapshot)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="reconcile-fetch-"))
            path = _fetch(settings, Path(tmp) / "snapshot")
        yield stack.enter_context(SnapshotSource(path, delivered))


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


def _sources(snapshot: SnapshotSource) -> Iterator[str]:
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


def _evidence_devices(settings: Settings) -> frozenset[str]:
    """Devices with stored logs: their delivered certificates must stay in the result, because
    an install in a log belongs to the newest certificate issued before it."""
    path = evidence_path(settings)
    if not path.exists():
        return frozenset()
    with EvidenceStore(path, create=False) as store:
        return frozenset(device_key(r.device) for r in store.records() if r.device)


def _keep_if(settings: Settings) -> Callable[[Verdict], bool] | None:
    devices = _evidence_devices(settings)
    if not devices:
        return None
    return lambda verdict: not devices.isdisjoint(device_keys(verdict))


def run(settings: Settings, keep_all: bool | None = None) -> RunResult:
    """Read, join and enrich; raises ReconcileError subclasses, never writes a report.

    ``keep_all`` keeps a verdict for every CA certificate (default: only with ``--all``);
    otherwise non-findings are only counted, which keeps a million-row run in memory.
    """
    with _bulk_allocation():
        return _run(settings, settings.all_rows if keep_all is None else keep_all)


def _run(settings: Settings, keep_all: bool) -> RunResult:
    as_of = settings.resolved_as_of()
    pattern = _device_pattern(settings)
    with ExitStack() as stack:
        ca = CaExports(settings)
        stack.callback(ca.close)
        snapshot = stack.enter_context(open_intune(settings))
        for reject in snapshot.rejects:
            log.warning("%s:%d: rejected: %s", reject.source, reject.line, reject.reason)
        if settings.strict and snapshot.rejects:
            first = snapshot.rejects[0]
            raise InputError(
                f"rejected record (--strict): {first.reason}", first.source, first.line
            )
        joined = classify(
            ca,
            snapshot.side,
            JoinOptions(
                as_of=as_of,
                grace_hours=settings.grace_hours,
                templates=settings.templates,
                device_pattern=pattern,
            ),
            keep_all=keep_all,
            keep_if=None if keep_all else _keep_if(settings),
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
        dropped=joined.dropped,
    )
    return with_next_steps(apply_stored_evidence(result, settings))
