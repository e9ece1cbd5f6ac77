"""The one join: every CA certificate gets exactly one status, and Intune's leftovers are listed.

Checks run in a fixed order, so a certificate that is both revoked and never delivered is
``revoked``: out_of_scope, revoked, expired, delivered, within_grace, superseded,
not_installed, not_reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconcile.engine.classify import SideRecords, classify_tables, close_with
from reconcile.engine.db import Database
from reconcile.engine.joined import (
    Deferred,
    JoinOptions,
    JoinResult,
    ViewKeep,
    in_scope,
    wanted_templates,
)
from reconcile.engine.tables import create_tables, load_certificates, load_side
from reconcile.intune.side import IntuneSide
from reconcile.model import CaCertificate, Status, Verdict

__all__ = [
    "Deferred",
    "JoinOptions",
    "JoinResult",
    "ViewKeep",
    "classify",
    "in_scope",
    "wanted_templates",
]


def classify(
    certificates: Iterable[CaCertificate],
    side: IntuneSide,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
    keep_cert: Callable[[Status, CaCertificate, bool], bool] | None = None,
    defer_records: bool = False,
) -> JoinResult:
    """Classify every CA certificate, in the engine.

    Statuses up to within_grace are decided from the certificate and its best Intune record;
    the rest (the only ones that can be findings) once every delivered certificate is known,
    because a renewal later in the export can supersede them. Without ``keep_all`` the decided
    ones are only counted, unless ``keep_if`` asks for them (device evidence needs a device's
    delivered renewals too) or ``keep_cert`` does from the status, the certificate and whether
    Intune reports it delivered (the views: revoked but installed, expiring; a ``ViewKeep`` is
    applied in SQL). With ``defer_records`` the unknown_to_ca records, and those view-only
    certificates (unless ``keep_if`` needs their verdicts), go into ``deferred`` unread
    instead. Verdicts come in the order of ``certificates``.
    """
    db = Database()
    try:
        create_tables(db)
        load_certificates(db, certificates)
        load_side(db, side)
        result = classify_tables(
            db, SideRecords(side), options, keep_all, keep_if, keep_cert, defer_records
        )
    except BaseException:
        db.close()
        raise
    if result.deferred is None:
        db.close()
    else:
        close_with(result.deferred, db)
    return result
