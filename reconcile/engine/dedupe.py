"""``dedupe.Collapser`` over the ``ca`` table: one certificate, one row left for the join.

The table holds every row the exports streamed (``seq`` = stream order). A certificate is its
issuer (by ``issuer_key``) and serial, or (serial, subject) in an index.txt. Only certificates
with several rows (rare) are looked at row by row; for those, the copy the Python pass holds
when a row arrives is the best-ranked row before it (revoked, then newest issuance, then latest
expiry, the earliest among equals), so its warnings come out of one window query, in stream
order. The losers are deleted, leaving exactly what the Python pass hands the join, its replay
included: when a later copy outranked one already joined, every row at the winner's file:line.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, fields

from reconcile.engine.db import Database
from reconcile.engine.keys import issuer_keys, serial_hex_sql
from reconcile.model import CaCertificate

log = logging.getLogger("reconcile")

_COMPARED = tuple(f.name for f in fields(CaCertificate) if f.name not in ("source", "line"))
"""The values two copies must share to be identical (the Python fingerprint's)."""
_READ = ("seq", "source", "line", *_COMPARED)
"""The ``ca`` columns read (columns other pieces add to the table are not these passes')."""
_STAMP_OFFSET = 1 << 25
_STAMP_MAX = (1 << 27) - 1
_SEQ_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class Collapsed:
    """What ``Collapser`` reports once every row was seen (``finish`` included)."""

    duplicate_rows: int
    warnings: tuple[str, ...]
    replay_needed: bool
    """Whether the Python pass would have joined twice; the table needs no second pass."""


def _stamp(column: str) -> str:
    """``dedupe._stamp``: int(timestamp()) truncates toward zero, then // 60 floors (DuckDB's
    integer ``//`` truncates)."""
    seconds = f"({column} // 1000000)"
    minutes = f"(CASE WHEN {seconds} < 0 THEN -((59 - {seconds}) // 60) ELSE {seconds} // 60 END)"
    return (
        f"(CASE WHEN {column} IS NULL THEN 0 "
        f"ELSE least(greatest({minutes} + {_STAMP_OFFSET}, 1), {_STAMP_MAX}) END)::BIGINT"
    )


def _among(column: str, texts: Collection[str]) -> str:
    """``column IN texts``, false (never NULL) for no texts."""
    if not texts:
        return "false"
    return f"{column} IN ({', '.join(_literal(t) for t in sorted(texts))})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def collapse(db: Database, index_sources: Collection[str]) -> Collapsed:
    """Delete from ``ca`` every row ``Collapser`` would not pass on; its counts and warnings.

    ``index_sources`` are the index.txt files (``CaExports.index_sources``). The warnings are
    logged as the Python pass logs them, in the same order.
    """
    issuer_keys(db, "dedupe_issuer_keys", "SELECT issuer FROM ca")
    indexed = _among("c.source", index_sources)
    db.execute(
        f"""
        CREATE OR REPLACE VIEW dedupe_keyed AS
        SELECT {", ".join(f"c.{name}" for name in _READ)},
               k.value IS NULL AS no_issuer, coalesce(k.value, '') AS ikey,
               {indexed} AS indexed,
               {indexed} AND c.subject IS NULL AS no_subject,
               CASE WHEN {indexed} THEN coalesce(c.subject, '') ELSE '' END AS ksubject
        FROM ca c LEFT JOIN dedupe_issuer_keys k ON k.text = c.issuer
        """
    )
    group = "no_issuer, ikey, serial, indexed, no_subject, ksubject"
    rank = (
        f"((CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END)::BIGINT * {1 << 54} "
        f"+ {_stamp('not_before')} * {1 << 27} + {_stamp('not_after')})"
    )
    # One number orders the copies as the Python pass does: rank first, then the earliest.
    best = f"({rank})::HUGEINT * {1 << 64} + ({_SEQ_MAX} - seq)"
    # Certificates seen twice, found by a 64-bit hash of their key first: grouping every row
    # by one integer is cheap, and a hash collision only adds a group the exact step drops.
    db.execute(
        f"""
        CREATE OR REPLACE TABLE dedupe_hashes AS
        SELECT hash({group}) AS h FROM dedupe_keyed GROUP BY h HAVING count(*) > 1
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE dedupe_groups AS
        SELECT row_number() OVER () AS gid, * FROM (
            SELECT {group}, count(*) AS n, min(seq) AS first_seq, arg_max(seq, {best}) AS win_seq
            FROM dedupe_keyed WHERE hash({group}) IN (SELECT h FROM dedupe_hashes)
            GROUP BY {group} HAVING count(*) > 1
        )
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE dedupe_members AS
        SELECT k.*, g.gid, g.first_seq, g.win_seq, {rank} AS rank, {best} AS best
        FROM dedupe_keyed k JOIN dedupe_groups g USING ({group})
        """
    )
    # The copy held when each row arrived, over three narrow columns (the sort is the cost).
    db.execute(
        """
        CREATE OR REPLACE TABLE dedupe_held AS
        SELECT seq, arg_max(seq, best) OVER (PARTITION BY gid ORDER BY seq
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS held_seq
        FROM dedupe_members
        """
    )
    ((total, groups),) = db.rows("SELECT coalesce(sum(n), 0), count(*) FROM dedupe_groups")
    warnings = [*_disagreements(db), *_reuses(db)]
    ((replay,),) = db.rows("SELECT count(*) > 0 FROM dedupe_members WHERE win_seq <> first_seq")
    if replay:
        # The replay passes every row at the winner's file:line (a file given twice: each copy).
        losers = """
            SELECT m.seq FROM dedupe_members m JOIN dedupe_members w ON w.seq = m.win_seq
            WHERE m.source <> w.source OR m.line <> w.line
        """
    else:
        losers = "SELECT seq FROM dedupe_members WHERE seq <> first_seq"
    db.execute(f"DELETE FROM ca WHERE seq IN ({losers})")
    for text in warnings:
        log.warning("%s", text)
    for name in (
        "dedupe_held",
        "dedupe_members",
        "dedupe_groups",
        "dedupe_hashes",
        "dedupe_issuer_keys",
    ):
        db.execute(f"DROP TABLE {name}")
    db.execute("DROP VIEW dedupe_keyed")
    return Collapsed(int(total) - int(groups), tuple(warnings), bool(replay))


def _disagreements(db: Database) -> list[str]:
    """One warning per copy whose values differ from the copy held when it arrived."""
    same = " AND ".join(f"m.{c} IS NOT DISTINCT FROM h.{c}" for c in _COMPARED)
    found = db.rows(
        f"""
        SELECT {serial_hex_sql("m.serial")}, m.source || ':' || m.line, h.source || ':' || h.line,
               m.rank > h.rank, m.rank < h.rank,
               m.revoked_at IS NOT NULL, h.revoked_at IS NOT NULL
        FROM dedupe_members m JOIN dedupe_held d ON d.seq = m.seq
        JOIN dedupe_members h ON h.seq = d.held_seq
        WHERE NOT ({same})
        ORDER BY m.seq
        """
    )
    warnings = []
    for serial, here, held, outranks, outranked, revoked, held_revoked in found:
        if outranks:
            winner, loser = here, held
            why = "revoked" if revoked and not held_revoked else "newest"
        else:
            winner, loser = held, here
            why = "revoked" if held_revoked and not revoked else "newest" if outranked else "first"
        warnings.append(
            f"serial {serial} appears twice with different values: {winner} ({why}) is kept "
            f"over {loser}"
        )
    return warnings


def _reuses(db: Database) -> list[str]:
    """``Collapser.finish``: per (issuer, serial) an index.txt gives several subjects, once.

    Among the first copies of index.txt rows, by their issuer as written and serial: every one
    whose subject differs from the first one's; the first is named by its line in the file of
    the first that differs (as the Python pass names it).
    """
    found = db.rows(
        f"""
        WITH firsts AS (
            SELECT seq, issuer, serial, subject, source, line FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY no_issuer, ikey, serial, indexed, no_subject, ksubject
                    ORDER BY seq) AS copy
                FROM dedupe_keyed WHERE indexed
            ) WHERE copy = 1
        ), ordered AS (
            SELECT *, first_value(subject) OVER w AS first_subject,
                      first_value(line) OVER w AS first_line
            FROM firsts
            WINDOW w AS (PARTITION BY issuer IS NULL, coalesce(issuer, ''), serial ORDER BY seq)
        )
        SELECT {serial_hex_sql("serial")},
               arg_min(source, seq) || ':' || arg_min(first_line, seq),
               list(source || ':' || line ORDER BY seq)
        FROM ordered WHERE subject IS DISTINCT FROM first_subject
        GROUP BY issuer IS NULL, coalesce(issuer, ''), serial
        ORDER BY min(seq)
        """
    )
    return [
        f"serial {serial} is reused for different subjects ({', '.join([first, *lines])}): "
        "the CA database is inconsistent; every row is kept"
        for serial, first, lines in found
    ]
