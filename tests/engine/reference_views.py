"""The views' renewal check as it was in Python, before it moved to the engine: the oracle
tests/engine/test_renewal.py holds ``engine.renewal`` to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconcile.identity import device_fold, fold
from reconcile.intune.side import Entry
from reconcile.model import Verdict


def _link(
    device_id: str | None, device_name: str | None, profile: str | None
) -> tuple[str, str] | None:
    device = device_id or device_fold(device_name)
    return (device, profile) if device and profile else None


def _verdict_link(verdict: Verdict) -> tuple[str, str] | None:
    record = verdict.intune
    if record is None:
        return None
    return _link(
        record.device_id, record.device_name, record.profile_id or fold(record.profile_name)
    )


def _issued(verdict: Verdict) -> float | None:
    """The latest issuance time either side gives: Intune's clock may run minutes after the CA's."""
    times = [verdict.ca.not_before, verdict.intune.issued_at if verdict.intune else None]
    known = [t.timestamp() for t in times if t is not None]
    return max(known) if known else None


def _is_own(entry: Entry, verdict: Verdict) -> bool:
    """Whether an Intune entry is the candidate's own record (same serial or thumbprint)."""
    if entry.serial is not None:
        return entry.serial == verdict.ca.serial
    return entry.thumbprint is not None and entry.thumbprint == verdict.ca.thumbprint


def renewed(candidates: Sequence[Verdict], entries: Iterable[Entry]) -> set[int]:
    """Indexes of the candidates for which Intune reports a newer delivered certificate of the
    same device and profile: their renewal already happened."""
    links: dict[tuple[str, str], list[int]] = {}
    for index, verdict in enumerate(candidates):
        if (link := _verdict_link(verdict)) is not None:
            links.setdefault(link, []).append(index)
    if not links:
        return set()
    delivered: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if not entry.delivered or entry.issued_at is None:
            continue
        link = _link(entry.device_id, entry.device_name, entry.profile)
        if link is not None and link in links:
            delivered.setdefault(link, []).append(entry)
    renewed = set()
    for link, indexes in links.items():
        for index in indexes:
            verdict = candidates[index]
            mine = _issued(verdict)
            if mine is None:
                continue
            for entry in delivered.get(link, ()):
                assert entry.issued_at is not None
                if entry.issued_at > mine and not _is_own(entry, verdict):
                    renewed.add(index)
                    break
    return renewed
