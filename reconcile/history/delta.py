"""What changed since the previous run, computed from what the store read: no database here.

The store finds which findings are new, which continue and which are gone; this turns those
facts into the delta a summary, the HTML page and the webhook show.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from reconcile.model import FindingRef, RunDelta, Verdict

LONGEST_OPEN = 5

Key = tuple[str, str]
"""(issuer, serial) in canonical form."""


def label(verdict: Verdict) -> str | None:
    """The name a finding is recorded under: Intune's device name, else the CA's CN or subject."""
    return verdict.managed_name or verdict.ca.common_name or verdict.ca.subject


def age(first_seen: datetime, as_of: datetime) -> int:
    return max(0, (as_of - first_seen).days)


@dataclass(frozen=True, slots=True)
class Open:
    """What history keeps of a finding open in this run, instead of its whole verdict: a run
    may have half a million of them."""

    issuer: str | None
    label: str | None
    status: str

    @classmethod
    def of(cls, verdict: Verdict) -> Open:
        return cls(verdict.ca.issuer, label(verdict), verdict.status.value)


def ref(key: Key, verdict: Verdict | Open, first_seen: datetime, as_of: datetime) -> FindingRef:
    known = Open.of(verdict) if isinstance(verdict, Verdict) else verdict
    return FindingRef(
        known.issuer or key[0],
        key[1],
        known.label,
        known.status,
        first_seen,
        age(first_seen, as_of),
    )


def delta(
    previous_run_id: str | None,
    current: Mapping[Key, Verdict | Open],
    first_seen_of: Mapping[Key, datetime],
    new_keys: set[Key],
    resolved: Iterable[FindingRef],
    as_of: datetime,
) -> RunDelta:
    """The delta of a run whose open findings are ``current``; ``new_keys`` were not open
    before, ``resolved`` were open before and are not now."""

    def ref_of(key: Key) -> FindingRef:
        return ref(key, current[key], first_seen_of[key], as_of)

    oldest = heapq.nsmallest(
        LONGEST_OPEN,
        (key for key in current if key not in new_keys),
        key=lambda k: (first_seen_of[k], k),
    )
    return RunDelta(
        previous_run_id=previous_run_id,
        new=tuple(ref_of(key) for key in sorted(new_keys)),
        resolved=tuple(sorted(resolved, key=lambda r: (r.issuer, r.serial))),
        longest_open=tuple(ref_of(key) for key in oldest),
        open_count=len(current),
    )
