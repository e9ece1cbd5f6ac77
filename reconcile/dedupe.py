"""One certificate, one verdict: copies of a certificate across or within exports collapse.

Exports overlap (two exports of one CA, issued and revoked exports combined, a re-run appended
to the file). A certificate is its issuer and serial; an identical copy is only counted, a
disagreeing copy loses to the revoked one, else to the newest, with a warning naming both
file:lines. An OpenSSL index.txt that reuses a serial for another subject is a broken CA, not a
copy: every row stays and one warning names the serial and its lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from reconcile.identity import issuer_key, serial_hex
from reconcile.model import CaCertificate

log = logging.getLogger("reconcile")

_Key = tuple[str | None, int] | tuple[str | None, int, str | None]
_PROVENANCE = frozenset({"source", "line"})
_COMPARED = tuple(f.name for f in fields(CaCertificate) if f.name not in _PROVENANCE)


def _same(a: CaCertificate, b: CaCertificate) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _COMPARED)


def _rank(cert: CaCertificate) -> tuple[bool, float, float]:
    """Revoked beats not revoked; then the newest issuance, then the latest expiry."""
    return (
        cert.revoked_at is not None,
        cert.not_before.timestamp() if cert.not_before else float("-inf"),
        cert.not_after.timestamp() if cert.not_after else float("-inf"),
    )


def _where(cert: CaCertificate) -> str:
    return f"{cert.source}:{cert.line}"


@dataclass
class Collapsed:
    """The certificates in first-seen order, with what collapsing them found."""

    certificates: list[CaCertificate]
    duplicate_rows: int = 0
    warnings: list[str] = field(default_factory=list)


def collapse(certificates: Iterable[CaCertificate], index_sources: frozenset[str]) -> Collapsed:
    """Keep one record per (issuer, serial); ``index_sources`` are the index.txt files, whose
    rows are one certificate per (issuer, serial, subject)."""
    slots: dict[_Key, int] = {}
    kept: list[CaCertificate] = []
    # index.txt serial reuse: every row of a reused serial, in file order.
    reused: dict[tuple[str | None, int], list[CaCertificate]] = {}
    keys: dict[str, str] = {}
    result = Collapsed(kept)
    for cert in certificates:
        if cert.issuer is None:
            issuer = None
        else:
            issuer = keys.get(cert.issuer)
            if issuer is None:
                issuer = keys[cert.issuer] = issuer_key(cert.issuer)
        key: _Key = (issuer, cert.serial)
        if cert.source in index_sources:
            key = (issuer, cert.serial, cert.subject)
            first = slots.get((issuer, cert.serial))
            if first is None:
                slots[(issuer, cert.serial)] = len(kept)
            elif kept[first].subject != cert.subject and key not in slots:
                reused.setdefault((issuer, cert.serial), [kept[first]]).append(cert)
        slot = slots.get(key)
        if slot is None:
            slots[key] = len(kept)
            kept.append(cert)
            continue
        result.duplicate_rows += 1
        other = kept[slot]
        if _same(cert, other):
            continue
        winner, loser = (cert, other) if _rank(cert) > _rank(other) else (other, cert)
        kept[slot] = winner
        why = "revoked" if winner.revoked_at is not None and loser.revoked_at is None else "newest"
        result.warnings.append(
            f"serial {serial_hex(cert.serial)} appears twice with different values: "
            f"{_where(winner)} ({why}) is kept over {_where(loser)}"
        )
    for (_, serial), rows in reused.items():
        lines = ", ".join(_where(c) for c in rows)
        result.warnings.append(
            f"serial {serial_hex(serial)} is reused for different subjects ({lines}): "
            "the CA database is inconsistent; every row is kept"
        )
    for warning in result.warnings:
        log.warning("%s", warning)
    return result
