"""`reconcile explain SERIAL | DEVICE`: everything known about one certificate or device.

An admin chasing one finding needs the CA row, Intune's record, what the device logged and
what reconcile saw in earlier runs side by side, in the order it happened, ending with what to
do. This module assembles that from a RunResult and the evidence store; it prints nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from reconcile.enrich.advice import next_step
from reconcile.enrich.evidence import CLOCK_SKEW, device_keys, relevant_records
from reconcile.errors import ReconcileError, UsageError
from reconcile.evidence.model import EvidenceRecord
from reconcile.evidence.store import EvidenceStore
from reconcile.identity import device_key, parse_serial, serial_hex
from reconcile.model import IntuneCertificate, RunResult, Status, Verdict
from reconcile.report.text import printable, wrap
from reconcile.terminal import safe
from reconcile.timeparse import iso_z
from reconcile.views import View

log = logging.getLogger("reconcile.explain")


class QueryKind(StrEnum):
    SERIAL = "serial"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    time: datetime | None
    what: str


@dataclass(frozen=True, slots=True)
class CertificateStory:
    """One CA certificate: its verdict, the evidence that concerns it, and its timeline."""

    verdict: Verdict
    next_step: str
    evidence: tuple[EvidenceRecord, ...]
    superseded_by: Verdict | None
    timeline: tuple[TimelineEvent, ...]
    views: tuple[View, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    query: str
    kind: QueryKind
    as_of: datetime
    certificates: tuple[CertificateStory, ...]
    device_evidence: tuple[EvidenceRecord, ...]
    unknown_to_ca: tuple[IntuneCertificate, ...]


def explain(
    query: str,
    result: RunResult,
    evidence_store: EvidenceStore | None,
    history: Path | None = None,
) -> Explanation:
    """The certificates a serial (any spelling) or a device name refers to; UsageError if none."""
    text = query.strip()
    if not text:
        raise UsageError("explain needs a serial number or a device name")
    records = evidence_store.records() if evidence_store is not None else []
    serial = _serial(text)
    if serial is not None:
        verdicts = [v for v in result.verdicts if v.ca.serial == serial]
        unknown = [r for r in result.unknown_to_ca if r.serial == serial]
        if verdicts or unknown:
            verdicts = _with_history(verdicts, result, history)
            stories = [_story(v, result, records) for v in verdicts]
            return Explanation(
                text, QueryKind.SERIAL, result.as_of, tuple(stories), (), tuple(unknown)
            )
    key = device_key(text)
    verdicts = [v for v in result.verdicts if key in device_keys(v)]
    device_records = [r for r in records if device_key(r.device) == key]
    unknown = [
        r for r in result.unknown_to_ca if r.device_name and device_key(r.device_name) == key
    ]
    if not (verdicts or device_records or unknown):
        spelled = f"serial {serial_hex(serial)} or " if serial is not None else ""
        raise UsageError(
            f"nothing in this run matches {spelled}device {text!r}: "
            "give a serial number from the CA export or an Intune device name"
        )
    verdicts.sort(key=lambda v: (v.ca.not_before or result.as_of, v.ca.serial))
    verdicts = _with_history(verdicts, result, history)
    stories = [_story(v, result, records) for v in verdicts]
    return Explanation(
        text,
        QueryKind.DEVICE,
        result.as_of,
        tuple(stories),
        tuple(device_records),
        tuple(unknown),
    )


def _with_history(verdicts: list[Verdict], result: RunResult, path: Path | None) -> list[Verdict]:
    """Fill first_seen, age and new-since-last-run from the runs recorded up to the as-of.

    The database is opened read-only: explain never creates, migrates or writes it. History
    is context: if it cannot be read, explain goes on without it.
    """
    if path is None or not path.is_file() or not verdicts:
        return verdicts
    from reconcile.history import store as run_history

    try:
        db = run_history.open_read_only(path)
    except ReconcileError as exc:
        log.warning("run history not read: %s", exc)
        return verdicts
    try:
        return run_history.recorded(db, verdicts, result.as_of, result.tenant_id)
    except sqlite3.Error as exc:
        log.warning("%s: run history not read: %s", path, exc)
        return verdicts
    finally:
        db.close()


def _serial(text: str) -> int | None:
    try:
        return parse_serial(text)
    except ValueError:
        return None


def _siblings(verdict: Verdict, result: RunResult) -> list[Verdict]:
    keys = device_keys(verdict)
    return [v for v in result.verdicts if v is not verdict and keys & device_keys(v)]


def _window(verdict: Verdict, result: RunResult) -> tuple[datetime | None, datetime | None]:
    """From this certificate's issue to the next one issued to the same device."""
    start = verdict.ca.not_before
    if start is None:
        return None, None
    later = [
        v.ca.not_before
        for v in _siblings(verdict, result)
        if v.ca.not_before is not None and v.ca.not_before > start
    ]
    return start - CLOCK_SKEW, (min(later) - CLOCK_SKEW if later else None)


def _superseded_by(verdict: Verdict, result: RunResult) -> Verdict | None:
    if verdict.status is not Status.SUPERSEDED:
        return None
    siblings = _siblings(verdict, result)
    start = verdict.ca.not_before
    newer = [
        v
        for v in siblings
        if v.status is Status.DELIVERED
        and v.ca.not_before is not None
        and (start is None or v.ca.not_before > start)
    ]
    return min(newer, key=lambda v: (v.ca.not_before, v.ca.serial)) if newer else None


def _story(verdict: Verdict, result: RunResult, records: list[EvidenceRecord]) -> CertificateStory:
    start, end = _window(verdict, result)
    evidence = [
        r
        for r in relevant_records(verdict, records)
        if r.time is None or ((start is None or r.time >= start) and (end is None or r.time < end))
    ]
    superseded_by = _superseded_by(verdict, result)
    events = list(_certificate_events(verdict, result.as_of, superseded_by))
    for record in evidence:
        events.extend(_evidence_events(record))
    return CertificateStory(
        verdict=verdict,
        next_step=verdict.next_step or next_step(verdict),
        evidence=tuple(evidence),
        superseded_by=superseded_by,
        timeline=_sorted(events),
        views=result.views.views_of(verdict.ca.serial, verdict.ca.issuer) if result.views else (),
    )


def _sorted(events: Iterable[TimelineEvent]) -> tuple[TimelineEvent, ...]:
    """By time; events whose time no source gave come last, in the order they were found."""
    timed = sorted((e for e in events if e.time is not None), key=lambda e: e.time or _EPOCH)
    return (*timed, *(e for e in events if e.time is None))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _certificate_events(
    verdict: Verdict, as_of: datetime, superseded_by: Verdict | None
) -> Iterable[TimelineEvent]:
    ca = verdict.ca
    template = ca.template_name or ca.template_oid or "no template"
    request = f"request {ca.request_id}, " if ca.request_id else ""
    yield TimelineEvent(ca.not_before, f"issued by the CA ({request}template {template})")
    intune = verdict.intune
    if intune is not None:
        where = intune.device_name or intune.device_id or "unknown device"
        if intune.issued_at is not None:
            yield TimelineEvent(intune.issued_at, f"Intune: issued to {where}")
        yield TimelineEvent(
            intune.state_changed_at, f"Intune: state {intune.state} ({intune.source.value})"
        )
    if superseded_by is not None:
        yield TimelineEvent(
            superseded_by.ca.not_before,
            f"renewal {serial_hex(superseded_by.ca.serial)} issued; Intune reports it installed",
        )
    if verdict.first_seen is not None:
        yield TimelineEvent(verdict.first_seen, "first reported as a finding by reconcile")
    if ca.revoked_at is not None:
        yield TimelineEvent(ca.revoked_at, "revoked by the CA")
    if ca.not_after is not None:
        word = "expired" if ca.not_after < as_of else "expires"
        yield TimelineEvent(ca.not_after, word)
    yield TimelineEvent(as_of, f"this run: {verdict.status.value}")


def _evidence_events(record: EvidenceRecord) -> Iterable[TimelineEvent]:
    where = f"device {record.platform.value} log"
    last = len(record.steps) - 1
    for position, step in enumerate(record.steps):
        failed = step.text.startswith("FAILED")
        if step.stage is not None or failed or position in (0, last):
            mark = f" [{step.stage.value}]" if step.stage is not None else ""
            yield TimelineEvent(step.time, f"{where}: {step.text}{mark}")


_FIELD = " " * 14
"""Where a field's value starts: its wrapped lines continue under it."""
_EVENT = " " * 27
"""Where a timeline event's text starts, after its time."""


def render_explanation(expl: Explanation, width: int | None = None) -> str:
    """Plain text for a terminal, every line fitted to ``width`` (None: unwrapped); one block
    per certificate, then device-only evidence."""
    return "\n".join(_explanation_lines(expl, width)) + "\n"


def _fit(line: str, width: int | None, indent: str = "    ") -> str:
    """Sanitised before it is wrapped, so no escape sequence can span a line break."""
    return wrap(safe(line, multiline=True), width, indent)


def _explanation_lines(expl: Explanation, width: int | None) -> list[str]:
    lines: list[str] = []
    count = len(expl.certificates)
    noun = "certificate" if count == 1 else "certificates"
    head = f"{expl.kind.value} {expl.query}: {count} CA {noun} (as of {iso_z(expl.as_of)})"
    lines.append(_fit(head, width))
    for story in expl.certificates:
        lines.append("")
        lines.extend(_render_story(story, width))
    if expl.unknown_to_ca:
        lines.append("")
        lines.append("Intune reports, but no CA export contains:")
        for record in expl.unknown_to_ca:
            serial = serial_hex(record.serial) if record.serial is not None else record.thumbprint
            line = (
                f"  {serial}  state {record.state}, device {record.device_name or '?'}, "
                f"issuer {record.issuer or '?'}"
            )
            lines.append(_fit(line, width))
    shown = {id(r) for story in expl.certificates for r in story.evidence}
    loose = [r for r in expl.device_evidence if id(r) not in shown]
    if loose:
        lines.append("")
        lines.append("Device evidence not tied to a certificate above:")
        lines.extend(_fit(f"  {r.summary()}", width) for r in loose)
    return lines


def _render_story(story: CertificateStory, width: int | None) -> list[str]:
    v = story.verdict
    ca = v.ca
    finding = " (finding)" if v.is_finding else ""
    lines = [_fit(f"== {serial_hex(ca.serial)}  {v.status.value}{finding}", width)]

    def field(name: str, value: str) -> None:
        lines.append(_fit(f"   {name + ':':<11}{value}", width, _FIELD))

    field("reason", v.reason)
    field("next step", story.next_step)
    if story.views:
        field("views", ", ".join(view.value for view in story.views))
    valid = f"{iso_z(ca.not_before) or '?'} to {iso_z(ca.not_after) or '?'}"
    field(
        "CA",
        f"issuer {ca.issuer or '?'}, subject {ca.subject or ca.common_name or '?'}, "
        f"template {ca.template_name or ca.template_oid or '?'}, valid {valid}, "
        f"from {ca.source}:{ca.line}",
    )
    if ca.cloud_pki_leaf_id is not None:
        field(
            "Cloud PKI",
            f"leaf {printable(ca.cloud_pki_leaf_id, 80)}, "
            f"managed device {printable(ca.managed_device_id, 80) or '?'}",
        )
    if v.intune is not None:
        i = v.intune
        field(
            "Intune",
            f"state {i.state}, device {i.device_name or i.device_id or '?'}, user {i.user or '?'}, "
            f"profile {i.profile_name or i.profile_id or '?'} ({i.source.value} {i.record_id})",
        )
    else:
        field("Intune", "no record")
    if v.device is not None:
        d = v.device
        gone = "; gone from Intune" if v.device_gone else ""
        field(
            "device",
            f"{d.device_name or d.id} ({d.operating_system or '?'}, last sync "
            f"{iso_z(d.last_sync) or '?'}){gone}",
        )
    elif v.device_candidates:
        field(
            "device",
            f"ambiguous: {len(v.device_candidates)} managed devices share this name; "
            "none was picked",
        )
        for d in v.device_candidates:
            field(
                "candidate",
                f"{d.device_name or '?'} id {d.id} ({d.operating_system or '?'}, serial "
                f"{d.serial_number or '?'}, last sync {iso_z(d.last_sync) or '?'})",
            )
    elif v.device_gone:
        field("device", "gone from Intune")
    if story.superseded_by is not None:
        field("renewal", f"{serial_hex(story.superseded_by.ca.serial)} (delivered)")
    if v.first_seen is not None:
        new = ", new since last run" if v.new_since_last_run else ""
        field("history", f"finding since {iso_z(v.first_seen)} ({v.age_days or 0} days{new})")
    if story.evidence:
        for record in story.evidence:
            field("evidence", record.summary())
    elif v.evidence:
        field("evidence", v.evidence)
    lines.append("   timeline:")
    for event in story.timeline:
        when = iso_z(event.time) if event.time is not None else "time unknown".ljust(20)
        lines.append(_fit(f"     {when}  {event.what}", width, _EVENT))
    return lines
