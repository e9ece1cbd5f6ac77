"""The CA guards' inputs from the tables: ``guards.Tally``'s counts and ``infer_issuers``.

Both read the ``ca`` table before copies collapse (an export whose rows all repeat another's is
not empty, and an issuer-less export's serials are judged on every row it holds). Grouping
leaves a few rows per template, export or issuer; Python applies its own rules (case folding,
issuer keys, the share arithmetic) to those, so the answers are the Python passes' own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from reconcile.engine.db import Database
from reconcile.engine.keys import TEXT_MAP
from reconcile.engine.tables import from_micros
from reconcile.errors import UsageError
from reconcile.guards import INFER_SHARE
from reconcile.identity import issuer_key
from reconcile.join import in_scope, wanted_templates
from reconcile.model import CaCertificate, CaExtent

log = logging.getLogger("reconcile")
_Ordered = TypeVar("_Ordered", int, datetime)

Templates = Counter[tuple[str | None, str | None]]


def tally(db: Database, templates: Sequence[str]) -> tuple[Templates, Counter[str]]:
    """``guards.Tally``'s ``templates`` and ``in_scope`` over every row of ``ca``, counted in
    the order the rows came (a Counter's ties list in that order in check_templates)."""
    wanted = wanted_templates(templates)
    found = db.rows(
        """
        SELECT template_oid, template_name, source, out_of_scope IS NULL, count(*)
        FROM ca GROUP BY ALL ORDER BY min(seq)
        """
    )
    counts: Templates = Counter()
    scoped_rows: Counter[str] = Counter()
    for oid, name, source, scoped, count in found:
        counts[oid, name] += count
        # The join's own rule, on a stand-in holding only what it reads.
        if in_scope(_template_only(oid, name, scoped), wanted):
            scoped_rows[source] += count
    return counts, scoped_rows


def _template_only(oid: str | None, name: str | None, scoped: bool) -> CaCertificate:
    return CaCertificate(
        serial=0,
        thumbprint=None,
        issuer=None,
        subject=None,
        common_name=None,
        requester=None,
        template_oid=oid,
        template_name=name,
        request_id=None,
        not_before=None,
        not_after=None,
        revoked_at=None,
        source="",
        line=0,
        out_of_scope=None if scoped else "out of scope",
    )


def infer_issuers(
    db: Database, issuerless: Sequence[tuple[int, str]]
) -> tuple[dict[int, str], list[str]]:
    """``guards.infer_issuers`` from the ``ca`` rows of the issuer-less exports and ``intune``.

    ``issuerless`` are (index, path) of the exports that name no issuer (``CaExports.issuerless``);
    their rows in ``ca`` are those of that source with no issuer. An export given twice is in
    the table twice: its counts are divided by its copies, as the Python pass reads each once.
    Issuers that tie on a count are listed by their first vote in the file (Python's order
    among the issuers of one serial is a set's, which no run repeats).
    """
    if not issuerless:
        return {}, []
    spelled = db.rows("SELECT issuer, max(ord) FROM intune WHERE issuer <> '' GROUP BY issuer")
    issuers: dict[str, str] = {}
    for text, _ in sorted(spelled, key=lambda row: row[1]):
        issuers[issuer_key(text)] = text  # the last record's spelling, as the Python dict keeps
    if len(issuers) < 2:
        return {}, []
    db.execute("CREATE OR REPLACE TABLE infer_keys (text VARCHAR, value VARCHAR)")
    db.insert("infer_keys", TEXT_MAP, ((text, issuer_key(text)) for text, _ in spelled))
    sources = sorted({source for _, source in issuerless})
    db.execute("CREATE OR REPLACE TABLE infer_sources (source VARCHAR)")
    db.insert("infer_sources", {"source": "VARCHAR"}, ((s,) for s in sources))
    keyed = """
        SELECT DISTINCT i.serial, k.value AS key
        FROM intune i JOIN infer_keys k ON k.text = i.issuer WHERE i.serial IS NOT NULL
    """
    rows = """
        SELECT seq, source, serial FROM ca
        WHERE issuer IS NULL AND source IN (SELECT source FROM infer_sources)
    """
    matched = dict(
        db.rows(
            f"""
            SELECT source, count(*) FROM ({rows})
            WHERE serial IN (SELECT serial FROM ({keyed})) GROUP BY source
            """
        )
    )
    votes: dict[str, list[tuple[str, int, int]]] = {}
    for source, key, count, first in db.rows(
        f"""
        SELECT r.source, k.key, count(*), min(r.seq) FROM ({rows}) r JOIN ({keyed}) k USING (serial)
        GROUP BY ALL
        """
    ):
        votes.setdefault(source, []).append((key, count, first))
    db.execute("DROP TABLE infer_keys")
    db.execute("DROP TABLE infer_sources")
    copies = Counter(source for _, source in issuerless)
    chosen: dict[int, str] = {}
    notes = []
    for index, source in issuerless:
        share = copies[source]
        seen = matched.get(source, 0) // share
        if not seen:
            continue
        ranked = [
            (key, count // share)
            for key, count, _ in sorted(votes[source], key=lambda v: (-v[1], v[2], v[0]))
        ]
        chosen[index], note = decide_issuer(source, ranked, seen, issuers)
        notes.append(note)
    return chosen, notes


def decide_issuer(
    source: str, ranked: Sequence[tuple[str, int]], seen: int, issuers: Mapping[str, str]
) -> tuple[str, str]:
    """The issuer of an export that names none, from its serials' votes (issuer key, count;
    most first) among the ``seen`` serials Intune knows, and the note that says so; the
    UsageError that asks for --ca-issuer when no issuer has nearly all of them."""
    key, count = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if count < seen * INFER_SHARE or runner_up > seen * (1 - INFER_SHARE):
        shares = ", ".join(f"{issuers[k]} ({n})" for k, n in ranked[:5])
        raise UsageError(
            f"{source}: the export names no issuer and its serials match Intune records "
            f"of several CAs ({shares}); pass --ca-issuer for it"
        )
    note = (
        f"{source}: the export names no issuer; using {issuers[key]}, which issued "
        f"{count} of its {seen} serials Intune knows (pass --ca-issuer to set it)"
    )
    log.warning("%s", note)
    return issuers[key], note


def apply_issuers(
    db: Database, issuerless: Sequence[tuple[int, str]], chosen: Mapping[int, str]
) -> None:
    """Give the rows of each export ``infer_issuers`` chose for the issuer it chose: what
    reading the export again with that issuer yields (only the issuer differs)."""
    for index, source in issuerless:
        issuer = chosen.get(index)
        if issuer is not None:
            db.execute(
                "UPDATE ca SET issuer = ? WHERE source = ? AND issuer IS NULL", [issuer, source]
            )


def extent(db: Database, sources: Sequence[str]) -> tuple[CaExtent, ...]:
    """Each CA's reach in the rows of the exports ``sources`` (not Cloud PKI's leaves, which
    Graph pages through to the end), by issuer key, first seen first."""
    if not sources:
        return ()
    db.execute("CREATE OR REPLACE TABLE extent_sources (source VARCHAR)")
    db.insert("extent_sources", {"source": "VARCHAR"}, ((s,) for s in sorted(set(sources))))
    found = db.rows(
        """
        SELECT issuer, count(*), max(not_before),
               max(try_cast(request_id AS HUGEINT)), list(DISTINCT source)
        FROM ca WHERE source IN (SELECT source FROM extent_sources)
        GROUP BY issuer ORDER BY min(seq)
        """
    )
    db.execute("DROP TABLE extent_sources")
    merged: dict[str, CaExtent] = {}
    for issuer, count, newest, request, sources in found:
        key = issuer_key(issuer) if issuer is not None else ""
        issued = from_micros(newest)
        highest = int(request) if request is not None else None
        held = merged.get(key)
        if held is not None:
            count += held.certificates
            issued = _latest(issued, held.newest_issued)
            highest = _latest(highest, held.highest_request_id)
            sources = [*held.sources, *sources]
        label = held.issuer if held is not None else issuer or "(exports naming no issuer)"
        merged[key] = CaExtent(key, label, count, issued, highest, tuple(sorted(set(sources))))
    return tuple(merged.values())


def _latest(a: _Ordered | None, b: _Ordered | None) -> _Ordered | None:
    return b if a is None else a if b is None else max(a, b)
