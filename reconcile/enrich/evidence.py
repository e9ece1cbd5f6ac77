"""Let device evidence split findings into delivery problems and reporting problems.

A device log that shows the certificate installed turns a not_reported or not_installed
finding into installed_not_reported: the certificate arrived and only Intune's reporting path
(Certificate Connector / NDES) is broken. A log that shows the enrollment failing or stalled
keeps the status and says where it stopped. Both stay findings.

Logs name no serial number, so an install proves the certificate that device (and profile,
where both sides know it) was most recently issued before the install; a renewal installed
later proves the renewal, not the certificate it replaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from reconcile.enrich.advice import evidence_next_step
from reconcile.evidence.model import EvidenceRecord, Outcome
from reconcile.evidence.store import EvidenceStore
from reconcile.identity import common_name, device_key, san_dns_names
from reconcile.model import RunResult, Status, Verdict, verdict_spool
from reconcile.timeparse import iso_z

CLOCK_SKEW = timedelta(minutes=15)
"""Device clocks and CA NotBefore (which AD CS may backdate) disagree by minutes."""

_RECLASSIFIABLE = frozenset({Status.NOT_REPORTED, Status.NOT_INSTALLED})


def device_names(verdict: Verdict) -> list[str]:
    """Every name the verdict's device may go by: Intune's, the CA subject CN and SAN DNS names."""
    names = [
        verdict.intune.device_name if verdict.intune else None,
        verdict.device.device_name if verdict.device else None,
        verdict.ca.common_name,
    ]
    subject = verdict.ca.subject
    if verdict.ca.common_name is None and subject:
        names.append(common_name(subject))
    if verdict.ca.san:
        names.extend(san_dns_names(verdict.ca.san))
    return [n.strip() for n in names if n and n.strip()]


def device_keys(verdict: Verdict) -> set[str]:
    return {device_key(name) for name in device_names(verdict)}


def _same_profile(verdict: Verdict, record: EvidenceRecord) -> bool:
    ours = verdict.intune.profile_id if verdict.intune else None
    if record.profile_id is None or ours is None:
        return True
    return ours.casefold() == record.profile_id.casefold()


def relevant_records(verdict: Verdict, records: Iterable[EvidenceRecord]) -> list[EvidenceRecord]:
    keys = device_keys(verdict)
    return [r for r in records if device_key(r.device) in keys and _same_profile(verdict, r)]


def _proved(
    verdicts: Mapping[int, Verdict], keyed: dict[int, set[str]], records: list[EvidenceRecord]
) -> dict[int, EvidenceRecord]:
    """For each install, the verdict (by index) of the certificate it installed."""
    by_key: dict[str, list[int]] = {}
    for index, keys in keyed.items():
        for key in keys:
            by_key.setdefault(key, []).append(index)
    proved: dict[int, EvidenceRecord] = {}
    for record in records:
        installed = record.installed_at
        if installed is None:
            continue
        best: tuple[datetime, int, int] | None = None
        for index in by_key.get(device_key(record.device), ()):
            verdict = verdicts[index]
            issued = verdict.ca.not_before
            if issued is None or issued > installed + CLOCK_SKEW:
                continue
            if not _same_profile(verdict, record):
                continue
            candidate = (issued, verdict.ca.serial, index)
            if best is None or candidate > best:
                best = candidate
        if best is not None:
            index = best[2]
            earlier = proved.get(index)
            if earlier is None or installed < (earlier.installed_at or installed):
                proved[index] = record
    return proved


def _latest_attempt(verdict: Verdict, records: list[EvidenceRecord]) -> EvidenceRecord | None:
    """The newest enrollment since the certificate was issued that proved no install.

    An undated log (an iOS Console copy read without --log-date) may show an install, but not
    which certificate it installed; it is reported, not used to reclassify.
    """
    issued = verdict.ca.not_before
    attempts = [
        r
        for r in relevant_records(verdict, records)
        if not (r.outcome is Outcome.INSTALLED and r.installed_at is not None)
        and (issued is None or r.time is None or r.time >= issued - CLOCK_SKEW)
    ]
    if not attempts:
        return None
    return max(attempts, key=lambda r: (r.time is not None, r.time or issued, r.line))


def _reclassified(verdict: Verdict, record: EvidenceRecord) -> Verdict:
    intune = (
        f"Intune reports state {verdict.intune.state!r}"
        if verdict.status is Status.NOT_INSTALLED and verdict.intune
        else "Intune has no record of it"
    )
    return dataclasses.replace(
        verdict,
        status=Status.INSTALLED_NOT_REPORTED,
        reason=(
            f"installed on {record.device} at {iso_z(record.installed_at)} per its "
            f"{record.platform.value} log, but {intune}"
        ),
        evidence=record.summary(),
        next_step="",
    )


def apply_evidence(result: RunResult, store: EvidenceStore) -> RunResult:
    """Reclassify or annotate not_reported and not_installed verdicts from stored device logs.

    Only verdicts of devices that have evidence are looked at (and held, by their index in
    the run), and only changed ones rebuilt: the store holds a handful of devices, a run may
    hold a million certificates.
    """
    records = store.records()
    wanted = {device_key(r.device) for r in records}
    if not wanted:
        return result
    keyed: dict[int, set[str]] = {}
    picked: dict[int, Verdict] = {}
    for index, verdict in enumerate(result.verdicts):
        keys = device_keys(verdict) & wanted
        if keys:
            keyed[index] = keys
            picked[index] = verdict
    proved = _proved(picked, keyed, records)
    changed: dict[int, Verdict] = {}
    for index in keyed:
        verdict = picked[index]
        if verdict.status not in _RECLASSIFIABLE:
            continue
        if index in proved:
            changed[index] = _reclassified(verdict, proved[index])
            continue
        attempt = _latest_attempt(verdict, records)
        if attempt is not None:
            step = "" if verdict.device_gone else evidence_next_step(attempt)
            changed[index] = dataclasses.replace(
                verdict, evidence=attempt.summary(), next_step=step
            )
    if not changed:
        return result
    verdicts = verdict_spool(
        (changed.get(i, v) for i, v in enumerate(result.verdicts)), copy_of=result.verdicts
    )
    return dataclasses.replace(result, verdicts=verdicts)


def apply_stored_evidence(result: RunResult, path: Path) -> RunResult:
    """apply_evidence with the store at ``path``, when one exists; never creates it."""
    if not path.exists():
        return result
    with EvidenceStore(path, create=False) as store:
        return apply_evidence(result, store)
