"""One run as a plain function: read both sides, join, enrich. The CLI, demo and tests share it."""

from __future__ import annotations

import gc
import hashlib
import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypeGuard

from reconcile import guards, leftovers, progress, views
from reconcile.ca import ExportReader
from reconcile.ca.cloudpki import SOURCE as CLOUD_PKI
from reconcile.ca.cloudpki import CloudPkiSource
from reconcile.ca.openssl_index import NAME as INDEX_FORMAT
from reconcile.engine import dedupe as engine_dedupe
from reconcile.engine import guards as engine_guards
from reconcile.engine.ca import load_export
from reconcile.engine.classify import classify_tables
from reconcile.engine.db import Database
from reconcile.engine.snapshot import EngineSnapshot, load_snapshot
from reconcile.engine.tables import create_tables, load_certificates
from reconcile.enrich import accepted
from reconcile.enrich.advice import next_step, with_next_steps
from reconcile.enrich.evidence import apply_stored_evidence, device_keys
from reconcile.errors import ConfigError, InputError, UsageError
from reconcile.evidence.store import EvidenceStore
from reconcile.history.store import past_extent
from reconcile.identity import device_key
from reconcile.intune.connectors import load_connectors
from reconcile.intune.records import ReportStatuses
from reconcile.join import JoinOptions, JoinResult
from reconcile.model import (
    FINDING_STATUSES,
    CaCertificate,
    InputFile,
    Reject,
    RunResult,
    Verdict,
    verdict_spool,
)
from reconcile.report import BundleInputs
from reconcile.settings import Settings
from reconcile.spool import Spool
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile")


class CaExports:
    """Every export opened up front (so a bad file fails before a long Graph fetch), then
    read once into the engine; each bad row is logged with file:line and kept as a Reject."""

    def __init__(self, settings: Settings):
        if not settings.ca_exports and not settings.ca_sources:
            raise UsageError(
                "no CA export given: pass --ca-export PATH (repeatable) or --ca-source cloud-pki"
            )
        options = settings.reader_options()
        self.settings = settings
        self.strict = settings.strict
        self.rejects: list[Reject] = []
        self.inputs: list[InputFile] = []
        self.notes: list[str] = []
        self._readers: list[ExportReader] = []
        self._zone_warned = False
        self.cloud_pki: CloudPkiSource | None = None
        """Microsoft Cloud PKI's leaves, read after the exports like one more export."""
        try:
            for index, path in enumerate(settings.ca_exports):
                issuer = settings.issuer_for(index)
                self._readers.append(ExportReader(path, replace(options, issuer=issuer)))
        except BaseException:
            self.close()
            raise

    def load(self, db: Database) -> None:
        """Every export, then the Cloud PKI leaves, into the ``ca`` table in that order: the
        large CSV exports read by the engine itself, the other formats through their reader."""
        seq = 0
        for reader in self._readers:
            log.info("reading %s as %s", reader.path, reader.format)
            self.notes.extend(reader.notes)
            if reader.zone_note and not self._zone_warned:
                self._zone_warned = True
                log.warning("%s", reader.zone_note)
            loaded = load_export(db, reader, seq)
            seq += loaded.certificates
            for reject in loaded.rejects:
                self._reject(reject)
            if loaded.error is not None:
                raise loaded.error
            assert loaded.input_file is not None
            self.inputs.append(loaded.input_file)
            progress.report("ca_rows", seq + len(self.rejects))
        if self.cloud_pki is not None:
            load_certificates(db, self._cloud_pki_rows(self.cloud_pki), seq)

    def _reject(self, reject: Reject) -> None:
        log.warning("%s:%d: rejected: %s", reject.source, reject.line, reject.reason)
        if self.strict:
            raise InputError(
                f"rejected row (--strict): {reject.reason}", reject.source, reject.line
            )
        self.rejects.append(reject)

    def _cloud_pki_rows(self, source: CloudPkiSource) -> Iterator[CaCertificate]:
        for reject in source.rejects:
            self._reject(reject)
        yield from source

    def issuerless(self) -> list[tuple[int, str]]:
        """Exports whose rows name no issuer (no --ca-issuer and no issuer column), by path."""
        return [(i, str(r.path)) for i, r in enumerate(self._readers) if not r.names_issuer]

    def sources(self) -> list[str]:
        """The exports as their rows in ``ca`` name them (Cloud PKI's leaves are not one)."""
        return [str(r.path) for r in self._readers]

    def index_sources(self) -> frozenset[str]:
        return frozenset(str(r.path) for r in self._readers if r.format == INDEX_FORMAT)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


def _check_cloud_pki(source: CloudPkiSource, in_scope: Counter[str], settings: Settings) -> None:
    """The export guards, for the leaf file (a snapshot collection, so not among ca.inputs)."""
    leaves = source.input_file
    guards.check_rejects([leaves], source.rejects, settings.max_reject_ratio)
    if not settings.allow_empty and not in_scope[leaves.path]:
        what = f"{leaves.rows} leaf certificates" if leaves.rows else "no leaf certificates"
        raise InputError(
            f"no in-scope Cloud PKI certificate ({what}, none selected); pass --allow-empty if "
            "that is expected",
            leaves.path,
        )


def _fetch(settings: Settings, target: Path) -> Path:
    from reconcile.intune.fetch import fetch_snapshot

    return fetch_snapshot(settings.fetch_options(), target, progress=progress.report)


@contextmanager
def keep_fetched(settings: Settings) -> Iterator[Settings]:
    """Settings whose live fetch outlives ``run`` until the block ends, so the --out-dir
    bundle can hold the snapshot its report was computed from."""
    copied = settings.out_dir is not None and settings.bundle_inputs is BundleInputs.COPY
    if not copied or settings.snapshot or settings.save_snapshot:
        yield settings
        return
    with leftovers.scratch("fetch") as tmp:
        yield replace(settings, save_snapshot=Path(tmp) / "snapshot")


@contextmanager
def open_intune(settings: Settings, db: Database) -> Iterator[EngineSnapshot]:
    """The snapshot given, or a fresh fetch from Graph (kept only with --save-snapshot), read
    into ``db``'s tables.

    Open for the whole join: full records are read back from it for the verdicts kept.
    """
    delivered = ReportStatuses(
        settings.report_delivered, ReportStatuses.parse_codes(settings.report_status_codes)
    )
    with ExitStack() as stack:
        if settings.snapshot is not None:
            path = settings.snapshot
        elif settings.save_snapshot is not None:
            path = _fetch(settings, settings.save_snapshot)
        else:
            tmp = stack.enter_context(leftovers.scratch("fetch"))
            path = _fetch(settings, Path(tmp) / "snapshot")
        yield stack.enter_context(load_snapshot(db, path, delivered))


def _device_pattern(settings: Settings) -> re.Pattern[str] | None:
    if not settings.device_pattern:
        return None
    label = settings.label("device_pattern")
    try:
        pattern = re.compile(settings.device_pattern)
    except re.error as exc:
        raise ConfigError(f"{label} is not a valid regular expression: {exc}") from None
    if pattern.groups != 1:
        raise ConfigError(f"{label} must have exactly one capturing group")
    return pattern


def run_id_for(settings: Settings, inputs: list[InputFile], as_of: datetime) -> str:
    """Derived from as-of, options and input hashes only, so the same inputs give
    byte-identical reports; ``as_of`` is the one the run used, never a second clock read."""
    digest = hashlib.sha256()
    for part in (
        iso_z(as_of),
        f"{settings.grace_hours:g}",
        *settings.templates,
    ):
        digest.update(part.encode() + b"\0")
    for item in inputs:
        digest.update(item.sha256.encode() + b"\0")
    stamp = as_of.strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{digest.hexdigest()[:8]}"


def _sources(snapshot: EngineSnapshot) -> Iterator[str]:
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
    path = settings.evidence_path()
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


def _split_view_only(
    joined: JoinResult,
    keep_all: bool,
    keep_if: Callable[[Verdict], bool] | None,
    deferred: Sequence[Verdict] = (),
) -> tuple[Spool[Verdict], Spool[Verdict], dict[str, int]]:
    """(the run's verdicts, those kept only for the views, the counts of the rest).

    Without ``--all`` a run's verdicts are its findings (plus what device evidence needs);
    the revoked and delivered certificates the views needed stay out of them and are counted
    with the other non-findings, so every output but the views is unchanged. ``deferred`` are
    the join's view-only verdicts, built after it. Both are spools: beyond the spools' memory
    budget they wait in a scratch file. ``joined.verdicts`` and ``deferred`` are read once,
    so they may be iterators.
    """
    if keep_all:
        return verdict_spool(joined.verdicts), Spool.of(()), joined.dropped
    found = joined.verdicts
    if (
        keep_if is None
        and _tallied(found)
        and _tallied(deferred)
        and all(status in FINDING_STATUSES for status in found.tally())
    ):
        # The join kept its findings alone: both spools stand as they are, never copied (at
        # 1M rows 130,000 verdicts read, and pickled beyond the budget, once more).
        return found, deferred, _with_counts(joined.dropped, deferred)
    kept = verdict_spool()
    view_only = verdict_spool()
    for verdict in joined.verdicts:
        if verdict.is_finding or (keep_if is not None and keep_if(verdict)):
            kept.append(verdict)
        else:
            view_only.append(verdict)
    view_only.extend(deferred)
    return kept.freeze(), view_only.freeze(), _with_counts(joined.dropped, view_only)


def _tallied(verdicts: Sequence[Verdict]) -> TypeGuard[Spool[Verdict]]:
    """A spool whose statuses are counted: what it holds is known without a pass."""
    return isinstance(verdicts, Spool) and verdicts.tallied


def _with_counts(dropped: dict[str, int], verdicts: Spool[Verdict]) -> dict[str, int]:
    """``dropped`` plus the statuses of ``verdicts`` (from its tally)."""
    counts = Counter(dropped)
    for status, count in verdicts.tally().items():
        counts[str(status)] += count
    return dict(counts)


def view_options(settings: Settings) -> views.ViewOptions:
    config = settings.ca_config
    return views.ViewOptions(
        as_of=settings.resolved_as_of(),
        expiry_days=settings.expiry_days,
        ca_config={str(p): config for p in settings.ca_exports} if config else {},
    )


def _run(settings: Settings, keep_all: bool) -> RunResult:
    as_of = settings.resolved_as_of()
    pattern = _device_pattern(settings)
    view_opts = view_options(settings)
    with ExitStack() as stack:
        db = stack.enter_context(Database())
        create_tables(db)
        ca = CaExports(settings)
        stack.callback(ca.close)
        snapshot = stack.enter_context(open_intune(settings, db))
        for reject in snapshot.rejects:
            log.warning("%s:%d: rejected: %s", reject.source, reject.line, reject.reason)
        if settings.strict and snapshot.rejects:
            first = snapshot.rejects[0]
            raise InputError(
                f"rejected record (--strict): {first.reason}", first.source, first.line
            )
        if CLOUD_PKI in settings.ca_sources:
            # The same join as the exports: Cloud PKI leaves are CA certificates like any row.
            ca.cloud_pki = snapshot.cloud_pki()
        aged = guards.check_snapshot(
            snapshot.path,
            snapshot.tenant_id,
            snapshot.fetched_at,
            settings.tenant_id,
            as_of,
            settings.label("tenant_id"),
        )
        ca.load(db)
        # The guards see every row before copies collapse, and stop the run before the join.
        issuerless = ca.issuerless()
        inferred, notes = engine_guards.infer_issuers(db, issuerless)
        engine_guards.apply_issuers(db, issuerless, inferred)
        templates, in_scope = engine_guards.tally(db, settings.templates)
        collapsed = engine_dedupe.collapse(db, ca.index_sources())
        guards.check_rejects(ca.inputs, ca.rejects, settings.max_reject_ratio)
        # Only the history reads the extent: a run that keeps none has nothing to compare with.
        recorded = settings.history()
        extent = engine_guards.extent(db, ca.sources()) if recorded.enabled else ()
        shrunk = guards.check_extent(
            extent, past_extent(recorded, snapshot.tenant_id, as_of), settings.allow_older_export
        )
        if ca.cloud_pki is not None:
            _check_cloud_pki(ca.cloud_pki, in_scope, settings)
        guards.check_templates(templates, settings.templates)
        if not settings.allow_empty:
            guards.check_empty(in_scope, ca.inputs)
        options = JoinOptions(
            as_of=as_of,
            grace_hours=settings.grace_hours,
            templates=settings.templates,
            device_pattern=pattern,
            revoked_by=snapshot.fetched_at,
            next_step=next_step,
        )
        keep_if = None if keep_all else _keep_if(settings)
        keep_cert = None if keep_all else views.wanted(view_opts)
        joined = classify_tables(
            db, snapshot, options, keep_all, keep_if, keep_cert, defer_records=True
        )
        notes = [*aged, *ca.notes, *notes, *collapsed.warnings, *shrunk]
        connectors = load_connectors(snapshot, as_of, settings.connector_stale_hours)
        for line in connectors.stale_lines() if connectors is not None else ():
            log.warning("%s", line)
        later = joined.deferred
        deferred: Sequence[Verdict] = ()
        if later is not None:
            deferred = verdict_spool(later.view_only())
        progress.report("join", len(joined.verdicts) + len(deferred), "verdicts kept")
        inputs = [*ca.inputs, *snapshot.inputs]
        if connectors is not None and connectors.input_file is not None:
            inputs.append(connectors.input_file)
        verdicts, view_only, dropped = _split_view_only(joined, keep_all, keep_if, deferred)
        unknown_to_ca = joined.unknown_to_ca
        del joined, deferred
        if settings.exceptions_file is not None:
            exceptions = accepted.load(settings.exceptions_file)
            verdicts = accepted.apply(verdicts, exceptions.entries, as_of)
            inputs.append(exceptions.input_file)
        result = RunResult(
            run_id=run_id_for(settings, inputs, as_of),
            as_of=as_of,
            grace_hours=settings.grace_hours,
            verdicts=verdicts,
            unknown_to_ca=unknown_to_ca,
            rejects=(*ca.rejects, *snapshot.rejects),
            inputs=tuple(inputs),
            templates=settings.templates,
            intune_sources=tuple(_sources(snapshot)),
            tenant_id=snapshot.tenant_id,
            dropped=dropped,
            notes=tuple(notes),
            duplicate_rows=collapsed.duplicate_rows,
            ca_extent=extent,
        )
        result = with_next_steps(apply_stored_evidence(result, settings.evidence_path()))
        built = views.build(
            itertools.chain(result.verdicts, view_only.drain()), db, result.inputs, view_opts
        )
        if later is not None:
            # Read once the views are built: at 1M rows 47,000 records that need not sit
            # beside the view-only verdicts.
            result = replace(result, unknown_to_ca=later.unknown_to_ca())
        return replace(result, views=replace(built, connectors=connectors))
