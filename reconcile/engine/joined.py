"""What the join takes and gives: its options, the views' keep rule, its result.

They live below ``reconcile.join`` (which re-exports them) so that the engine that builds them
and the module that runs it do not import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconcile.model import CaCertificate, IntuneCertificate, Status, Verdict


@dataclass(frozen=True)
class JoinOptions:
    as_of: datetime
    grace_hours: float = 24.0
    templates: tuple[str, ...] = ()
    device_pattern: re.Pattern[str] | None = None
    # The newest moment the inputs describe (a live fetch ends after as-of): a revocation
    # dated later had not happened then. None: as-of.
    revoked_by: datetime | None = None
    next_step: Callable[[Verdict], str] | None = None
    """The advice for each verdict the result keeps, given as it is built: filled in later,
    every finding was copied once more (at 1M rows 48,000 verdicts pickled and read back
    three times)."""


@dataclass(frozen=True)
class JoinResult:
    verdicts: Sequence[Verdict]
    unknown_to_ca: Sequence[IntuneCertificate]
    dropped: dict[str, int]
    deferred: Deferred | None = None
    """With ``defer_records``: what was kept as references, its records not yet read."""


class Deferred:
    """Records the join kept only as references, built after it from the engine's tables.

    A full verdict costs about 2 KB (its Intune record read back, its device) and a 1M run
    keeps about 77,000 only for the views (revoked-installed, expiring), plus about 47,000
    unknown_to_ca records; read back one batch at a time, they go straight into spools.
    """

    def __init__(
        self,
        view_only: Callable[[], Iterator[Verdict]],
        unknown_to_ca: Callable[[], Sequence[IntuneCertificate]],
    ):
        self._view_only = view_only
        self._unknown_to_ca = unknown_to_ca

    def view_only(self) -> Iterator[Verdict]:
        """The view-only verdicts in join order, one at a time, each as ``Verdict.light()``
        leaves it; the Intune side must still be open."""
        return self._view_only()

    def unknown_to_ca(self) -> Sequence[IntuneCertificate]:
        return self._unknown_to_ca()


@dataclass(frozen=True)
class ViewKeep:
    """Which decided (non-finding) certificates the views need: revoked but still installed,
    and delivered ones expiring by ``expiring_until``. A rule, not a callback, so the engine
    selects them in SQL; calling it applies the same rule in Python."""

    as_of: datetime
    expiring_until: datetime

    def revoked_installed(self, status: Status, cert: CaCertificate, delivered: bool) -> bool:
        return (
            status is Status.REVOKED
            and delivered
            and cert.revoked_at is not None
            and cert.revoked_at <= self.as_of
        )

    def expiry_candidate(self, status: Status, cert: CaCertificate) -> bool:
        return (
            status is Status.DELIVERED
            and cert.not_after is not None
            and self.as_of <= cert.not_after <= self.expiring_until
        )

    def __call__(self, status: Status, cert: CaCertificate, delivered: bool) -> bool:
        return self.revoked_installed(status, cert, delivered) or self.expiry_candidate(
            status, cert
        )


def _in_scope(cert: CaCertificate, wanted: frozenset[str]) -> bool:
    if not wanted:
        return True
    return (cert.template_oid is not None and cert.template_oid.casefold() in wanted) or (
        cert.template_name is not None and cert.template_name.casefold() in wanted
    )


def wanted_templates(templates: Iterable[str]) -> frozenset[str]:
    return frozenset(t.casefold() for t in templates)


def in_scope(cert: CaCertificate, wanted: frozenset[str]) -> bool:
    """Whether the join will classify ``cert`` as anything but out_of_scope (``wanted`` from
    wanted_templates)."""
    return cert.out_of_scope is None and _in_scope(cert, wanted)
