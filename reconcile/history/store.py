"""Run history in SQLite: the schema, its migrations, recording a run and reading runs back.

Scale drives the schema. A nightly run with 100,000 open findings for a year must stay small,
so membership is stored as spans (finding, first run, last run) rather than one row per finding
per run: a finding that stays open costs one span however many runs see it. Each run is
recorded in one transaction, so a crash mid-run leaves the database as the previous run left it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from reconcile.errors import ConfigError, UsageError
from reconcile.history.delta import Key, Open, age, delta
from reconcile.identity import issuer_key, serial_hex
from reconcile.model import (
    FINDING_STATUSES,
    TREND_RUNS,
    CaExtent,
    FindingDetail,
    FindingRef,
    PastExtent,
    RunDelta,
    RunResult,
    RunRow,
    Verdict,
    verdict_spool,
)
from reconcile.timeparse import iso_z, parse_utc

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            seq INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            as_of TEXT NOT NULL,
            started_at TEXT NOT NULL,
            tenant TEXT,
            inputs TEXT NOT NULL,
            counts TEXT NOT NULL,
            exit_code INTEGER NOT NULL,
            duration REAL NOT NULL
        )""",
        "CREATE INDEX runs_by_id ON runs (run_id)",
        "CREATE TABLE issuers (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
        """CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            issuer_id INTEGER NOT NULL REFERENCES issuers (id),
            serial BLOB NOT NULL,
            label TEXT,
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            times_seen INTEGER NOT NULL,
            resolved_at INTEGER,
            last_status TEXT NOT NULL,
            UNIQUE (issuer_id, serial)
        )""",
        """CREATE TABLE spans (
            finding_id INTEGER NOT NULL REFERENCES findings (id),
            first_run INTEGER NOT NULL REFERENCES runs (seq),
            last_run INTEGER REFERENCES runs (seq),
            PRIMARY KEY (finding_id, first_run)
        ) WITHOUT ROWID""",
    ),
    # 2: findings belong to a tenant, so two tenants' runs never diff against each other.
    # Findings recorded before are given the tenant of the newest run.
    (
        """CREATE TABLE findings_v2 (
            id INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            issuer_id INTEGER NOT NULL REFERENCES issuers (id),
            serial BLOB NOT NULL,
            label TEXT,
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            times_seen INTEGER NOT NULL,
            resolved_at INTEGER,
            last_status TEXT NOT NULL,
            UNIQUE (tenant, issuer_id, serial)
        )""",
        """INSERT INTO findings_v2 SELECT id,
            coalesce((SELECT tenant FROM runs ORDER BY seq DESC LIMIT 1), ''), issuer_id,
            serial, label, first_seen, last_seen, times_seen, resolved_at, last_status
            FROM findings""",
        """CREATE TABLE spans_v2 (
            finding_id INTEGER NOT NULL REFERENCES findings_v2 (id),
            first_run INTEGER NOT NULL REFERENCES runs (seq),
            last_run INTEGER REFERENCES runs (seq),
            PRIMARY KEY (finding_id, first_run)
        ) WITHOUT ROWID""",
        "INSERT INTO spans_v2 SELECT finding_id, first_run, last_run FROM spans",
        "DROP TABLE spans",
        "DROP TABLE findings",
        "ALTER TABLE findings_v2 RENAME TO findings",
        "ALTER TABLE spans_v2 RENAME TO spans",
    ),
    # 3: each CA's reach in the run's exports (``CaExtent``), for the next run's check.
    ("ALTER TABLE runs ADD COLUMN ca_extent TEXT",),
)
"""Each entry upgrades the schema by one version; append only, never edit a shipped entry."""

SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """What the history needs from the settings: whether to record, and where."""

    enabled: bool = True
    path: Path | None = None
    """None: the per-user default (``default_path``)."""


def default_path() -> Path:
    return platformdirs.user_data_path("reconcile") / "history.sqlite3"


def database_path(history_db: Path | None) -> Path:
    return history_db if history_db is not None else default_path()


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate forward; refuses a database newer than this code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: cannot use history database: {exc}") from None
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"{path}: history schema version {current} is newer than this reconcile "
                f"({SCHEMA_VERSION}); upgrade reconcile"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version - 1]:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)


_issuer_key = functools.lru_cache(maxsize=4096)(issuer_key)
_VERDICT_FIELDS = tuple(f.name for f in dataclasses.fields(Verdict))


def finding_key(verdict: Verdict) -> Key:
    """(issuer, serial) in canonical form; serials repeat across issuing CAs."""
    issuer = _issuer_key(verdict.ca.issuer) if verdict.ca.issuer else ""
    return issuer, serial_hex(verdict.ca.serial)


def _ts(value: str) -> datetime:
    return parse_utc(value)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _from_epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


_LABEL_CHARS = 80


@contextmanager
def recording(
    db: sqlite3.Connection,
    result: RunResult,
    exit_code: int,
    duration: float,
    *,
    started_at: datetime | None = None,
    hook: Callable[[str], None] | None = None,
) -> Iterator[tuple[RunResult, RunDelta]]:
    """Record one run atomically, committed only when the body (writing the reports) succeeds.

    Yields the result with history columns filled, and the delta. ``hook`` is called between
    steps with the step's name; tests use it to crash mid-run.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield _record(db, result, exit_code, duration, started_at, hook or (lambda _name: None))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _record(
    db: sqlite3.Connection,
    result: RunResult,
    exit_code: int,
    duration: float,
    started_at: datetime | None,
    step: Callable[[str], None],
) -> tuple[RunResult, RunDelta]:
    as_of = result.as_of
    as_of_text = iso_z(as_of)
    started = started_at or datetime.now(UTC)
    # The run's open findings by key, as the little a delta names them by (not the verdicts).
    current = {finding_key(v): Open.of(v) for v in result.verdicts if v.status in FINDING_STATUSES}
    tenant = result.tenant_id or ""
    previous = db.execute(
        "SELECT seq, run_id FROM runs WHERE coalesce(tenant, '') = ? ORDER BY seq DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    inputs = [
        {"path": f.path, "kind": f.kind, "format": f.format, "sha256": f.sha256}
        for f in result.inputs
    ]
    cursor = db.execute(
        "INSERT INTO runs (run_id, as_of, started_at, tenant, inputs, counts, exit_code,"
        " duration, ca_extent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            result.run_id,
            as_of_text,
            iso_z(started.astimezone(UTC).replace(microsecond=0)),
            result.tenant_id,
            json.dumps(inputs, sort_keys=True),
            json.dumps(run_counts(result)),
            exit_code,
            round(duration, 3),
            json.dumps([_extent_json(e) for e in result.ca_extent]),
        ),
    )
    seq = int(cursor.lastrowid or 0)
    step("run")
    issuers = dict(db.execute("SELECT key, id FROM issuers").fetchall())
    for issuer in sorted({key[0] for key in current} - issuers.keys()):
        issuers[issuer] = db.execute("INSERT INTO issuers (key) VALUES (?)", (issuer,)).lastrowid
    open_rows = {
        (issuer, serial.hex().upper()): (fid, first_seen, label, status)
        for fid, issuer, serial, first_seen, label, status in db.execute(
            "SELECT f.id, i.key, f.serial, f.first_seen, f.label, f.last_status FROM findings f"
            " JOIN issuers i ON i.id = f.issuer_id WHERE f.resolved_at IS NULL AND f.tenant = ?",
            (tenant,),
        )
    }
    by_serial: dict[str, list[Key]] = {}
    for open_key in open_rows:
        by_serial.setdefault(open_key[1], []).append(open_key)
    now = _epoch(as_of)
    seen_before: list[tuple[str, int]] = []
    new_keys: set[Key] = set()
    first_seen_of: dict[Key, datetime] = {}
    not_open: list[tuple[Key, Open]] = []
    for key, finding in current.items():
        row = open_rows.get(key)
        if row is None:
            row = _adopt(db, tenant, key, issuers, open_rows, by_serial, current)
        if row is not None:
            seen_before.append((finding.status, row[0]))
            first_seen_of[key] = _from_epoch(row[1])
            continue
        new_keys.add(key)
        not_open.append((key, finding))
    span_ids: list[int] = []
    for (key, _finding), (fid, first_seen) in zip(
        not_open, _reopen_or_insert(db, tenant, issuers, not_open, now), strict=True
    ):
        span_ids.append(fid)
        first_seen_of[key] = _from_epoch(first_seen)
    db.executemany(
        "UPDATE findings SET last_seen = ?1, times_seen = times_seen + 1, last_status = ?2"
        " WHERE id = ?3",
        ((now, status, fid) for status, fid in seen_before),
    )
    step("updated")
    db.executemany(
        "INSERT INTO spans (finding_id, first_run) VALUES (?, ?)",
        ((fid, seq) for fid in span_ids),
    )
    step("inserted")
    gone = [(key, row) for key, row in open_rows.items() if key not in current]
    previous_seq = previous[0] if previous is not None else None
    db.executemany(
        "UPDATE findings SET resolved_at = ? WHERE id = ?",
        ((now, row[0]) for _key, row in gone),
    )
    db.executemany(
        "UPDATE spans SET last_run = ? WHERE finding_id = ? AND last_run IS NULL",
        ((previous_seq, row[0]) for _key, row in gone),
    )
    step("resolved")
    verdicts = verdict_spool(
        (
            v
            if v.status not in FINDING_STATUSES
            else _with_history(v, first_seen_of[key := finding_key(v)], as_of, key in new_keys)
            for v in result.verdicts
        ),
        copy_of=result.verdicts,
    )
    resolved = (
        FindingRef(issuer, serial, name, status, _from_epoch(first), age(_from_epoch(first), as_of))
        for (issuer, serial), (_fid, first, name, status) in gone
    )
    changes = delta(
        previous[1] if previous is not None else None,
        current,
        first_seen_of,
        new_keys,
        resolved,
        as_of,
    )
    return dataclasses.replace(result, verdicts=verdicts), changes


def _with_history(verdict: Verdict, first_seen: datetime, as_of: datetime, new: bool) -> Verdict:
    """dataclasses.replace is too slow for 100,000 verdicts a night; this builds them directly."""
    values = {name: getattr(verdict, name) for name in _VERDICT_FIELDS}
    values.update(first_seen=first_seen, age_days=age(first_seen, as_of), new_since_last_run=new)
    return Verdict(**values)


OpenRow = tuple[int, int, str | None, str]


def _adopt(
    db: sqlite3.Connection,
    tenant: str,
    key: Key,
    issuers: dict[str, int],
    open_rows: dict[Key, OpenRow],
    by_serial: dict[str, list[Key]],
    current: dict[Key, Open],
) -> OpenRow | None:
    """The open finding this one continues when only the issuer's being known changed: an
    export whose issuer was unknown and is now given (--ca-issuer), or the reverse. It keeps
    its first_seen; it is neither new nor resolved."""
    issuer, serial = key
    candidates = [("", serial)] if issuer else [k for k in by_serial.get(serial, ()) if k[0]]
    free = [k for k in candidates if k in open_rows and k not in current]
    if len(free) != 1:
        return None
    row = open_rows.pop(free[0])
    if issuer:
        taken = db.execute(
            "SELECT 1 FROM findings WHERE tenant = ? AND issuer_id = ? AND serial = ?",
            (tenant, issuers[issuer], bytes.fromhex(serial)),
        ).fetchone()
        if taken is not None:
            open_rows[free[0]] = row
            return None
        db.execute("UPDATE findings SET issuer_id = ? WHERE id = ?", (issuers[issuer], row[0]))
    return row


def _reopen_or_insert(
    db: sqlite3.Connection,
    tenant: str,
    issuers: dict[str, int],
    findings: Sequence[tuple[Key, Open]],
    now: int,
) -> list[tuple[int, int]]:
    """(id, first_seen) of each finding not open before, in order: one resolved once is
    reopened (keeping its first_seen), the others are inserted in their order.

    In bulk, through a scratch table: a first night at 1M rows has 50,000 new findings, and a
    lookup and an insert each took 20 µs."""
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS not_open (n INTEGER PRIMARY KEY, issuer_id INTEGER,"
        " serial BLOB, label TEXT, status TEXT)"
    )
    db.execute("DELETE FROM not_open")
    rows = [
        (
            n,
            issuers[issuer],
            bytes.fromhex(serial),
            finding.label[:_LABEL_CHARS] if finding.label else None,
            finding.status,
        )
        for n, ((issuer, serial), finding) in enumerate(findings)
    ]
    db.executemany("INSERT INTO not_open VALUES (?, ?, ?, ?, ?)", rows)
    pairs = """SELECT o.n, f.id, f.first_seen FROM not_open o JOIN findings f
        ON f.tenant = ? AND f.issuer_id = o.issuer_id AND f.serial = o.serial"""
    reopened = {n: (fid, first) for n, fid, first in db.execute(pairs, (tenant,))}
    db.executemany(
        "UPDATE findings SET last_seen = ?, times_seen = times_seen + 1, label = ?,"
        " last_status = ?, resolved_at = NULL WHERE id = ?",
        ((now, rows[n][3], rows[n][4], fid) for n, (fid, _first) in reopened.items()),
    )
    db.execute(
        "INSERT INTO findings (tenant, issuer_id, serial, label, first_seen, last_seen,"
        " times_seen, last_status) SELECT ?1, issuer_id, serial, label, ?2, ?2, 1, status"
        " FROM not_open o WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.tenant = ?1"
        " AND f.issuer_id = o.issuer_id AND f.serial = o.serial) ORDER BY n",
        (tenant, now),
    )
    found = {n: (fid, first) for n, fid, first in db.execute(pairs, (tenant,))}
    db.execute("DELETE FROM not_open")
    return [found[n] for n in range(len(findings))]


def list_runs(
    db: sqlite3.Connection, limit: int | None = None, tenant: str | None = None
) -> list[RunRow]:
    """Most recent first; with ``tenant``, only that tenant's runs (a report's trend)."""
    sql = "SELECT run_id, as_of, started_at, tenant, counts, exit_code, duration, inputs FROM runs"
    params: tuple[str | int, ...] = ()
    if tenant is not None:
        sql += " WHERE coalesce(tenant, '') = ?"
        params = (tenant,)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params = (*params, limit)
    return [
        RunRow(
            run_id=run_id,
            as_of=_ts(as_of),
            started_at=_ts(started),
            tenant=tenant,
            counts={k: int(v) for k, v in json.loads(counts).items()},
            exit_code=exit_code,
            duration=duration,
            inputs=tuple(json.loads(inputs)),
        )
        for run_id, as_of, started, tenant, counts, exit_code, duration, inputs in db.execute(
            sql, params
        )
    ]


def trend(
    db: sqlite3.Connection, days: int | None = None, now: datetime | None = None
) -> list[RunRow]:
    """Runs oldest first, optionally only the last ``days`` days before ``now``."""
    rows = list(reversed(list_runs(db)))
    if days is not None:
        since = (now or datetime.now(UTC)) - timedelta(days=days)
        rows = [r for r in rows if r.as_of >= since]
    return rows


def run_counts(result: RunResult) -> dict[str, int]:
    """The status counts, and each view's count beside them (a JSON key more; no schema
    change)."""
    counts = result.counts()
    if result.views is not None:
        counts.update(result.views.counts())
    return counts


@dataclass(frozen=True, slots=True)
class Tracked:
    """A run with its history: annotated result, the delta and recent runs for the trend."""

    result: RunResult
    delta: RunDelta | None
    runs: tuple[RunRow, ...]


@contextmanager
def tracked_run(
    options: HistoryOptions, result: RunResult, exit_code: int, duration: float
) -> Iterator[Tracked]:
    """Record the run around the body that writes its reports; history off yields it as is."""
    if not options.enabled:
        yield Tracked(result, None, ())
        return
    db = open_db(database_path(options.path))
    try:
        with recording(db, result, exit_code, duration) as (annotated, delta):
            runs = tuple(reversed(list_runs(db, limit=TREND_RUNS, tenant=result.tenant_id or "")))
            yield Tracked(annotated, delta, runs)
    finally:
        db.close()


def open_existing(history_db: Path | None) -> sqlite3.Connection:
    """For read-only commands: a missing database is an error, not a new empty one."""
    path = database_path(history_db)
    if not path.is_file():
        raise ConfigError(f"{path}: no run history yet (it is written by `reconcile run`)")
    return open_db(path)


def open_read_only(path: Path) -> sqlite3.Connection:
    """For explain: never creates, migrates or writes the database."""
    if not path.is_file():
        raise ConfigError(f"{path}: no run history yet (it is written by `reconcile run`)")
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)
        version = schema_version(db)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: cannot use history database: {exc}") from None
    if version != SCHEMA_VERSION:
        db.close()
        raise ConfigError(
            f"{path}: history schema version {version}, this reconcile reads {SCHEMA_VERSION};"
            " the next `reconcile run` upgrades it"
        )
    return db


def past_extent(options: HistoryOptions, tenant: str | None, as_of: datetime) -> PastExtent | None:
    """The CAs' reach in the latest recorded run of ``tenant`` as of ``as_of`` or before; None
    with history off, before the first run, or when that run predates the record of it."""
    path = database_path(options.path)
    if not options.enabled or not path.is_file():
        return None
    db = open_db(path)
    try:
        row = db.execute(
            "SELECT run_id, as_of, ca_extent FROM runs WHERE coalesce(tenant, '') = ?"
            " AND as_of <= ? AND coalesce(ca_extent, '[]') <> '[]'"
            " ORDER BY as_of DESC, seq DESC LIMIT 1",
            (tenant or "", iso_z(as_of)),
        ).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    extents = tuple(_extent_of(item) for item in json.loads(row[2]))
    return PastExtent(str(row[0]), parse_utc(str(row[1])), extents)


def _extent_json(extent: CaExtent) -> dict[str, object]:
    newest = extent.newest_issued
    return {
        "issuer_key": extent.issuer_key,
        "issuer": extent.issuer,
        "certificates": extent.certificates,
        "newest_issued": iso_z(newest) if newest is not None else None,
        "highest_request_id": extent.highest_request_id,
        "sources": list(extent.sources),
    }


def _extent_of(item: dict[str, Any]) -> CaExtent:
    newest = item["newest_issued"]
    return CaExtent(
        issuer_key=str(item["issuer_key"]),
        issuer=str(item["issuer"]),
        certificates=int(item["certificates"]),
        newest_issued=parse_utc(newest) if newest is not None else None,
        highest_request_id=item["highest_request_id"],
        sources=tuple(item["sources"]),
    )


def recorded(
    db: sqlite3.Connection, verdicts: Sequence[Verdict], as_of: datetime, tenant: str | None
) -> list[Verdict]:
    """History columns as the runs recorded up to ``as_of`` give them, for this tenant only;
    a finding no such run saw (or an as-of before the first run) gets none."""
    previous = db.execute(
        "SELECT max(seq) FROM runs WHERE coalesce(tenant, '') = ? AND as_of <= ?",
        (tenant or "", iso_z(as_of)),
    ).fetchone()[0]
    if previous is None:
        return list(verdicts)
    out: list[Verdict] = []
    for verdict in verdicts:
        row = None
        if verdict.is_finding:
            issuer, serial = finding_key(verdict)
            rows = db.execute(
                "SELECT f.id, f.first_seen, i.key FROM findings f JOIN issuers i"
                " ON i.id = f.issuer_id WHERE f.tenant = ? AND f.serial = ? AND f.first_seen <= ?",
                (tenant or "", bytes.fromhex(serial), _epoch(as_of)),
            ).fetchall()
            exact = [r for r in rows if r[2] == issuer]
            row = exact[0] if exact else (rows[0] if len(rows) == 1 else None)
        if row is None:
            out.append(verdict)
            continue
        was_open = db.execute(
            "SELECT 1 FROM spans WHERE finding_id = ?1 AND first_run <= ?2"
            " AND (last_run IS NULL OR last_run >= ?2)",
            (row[0], previous),
        ).fetchone()
        out.append(_with_history(verdict, _from_epoch(row[1]), as_of, was_open is None))
    return out


def run_finding_details(db: sqlite3.Connection, run_id: str) -> list[FindingDetail]:
    """(serial, label, status, first seen, age in days at that run) of every finding open in a
    past run; the status is the finding's latest one, which is its status in that run unless
    it changed later."""
    row = db.execute(
        "SELECT seq, as_of FROM runs WHERE seq = (SELECT max(seq) FROM runs WHERE run_id = ?)",
        (run_id,),
    ).fetchone()
    if row is None:
        raise UsageError(f"no recorded run {run_id!r}")
    seq, as_of = row[0], parse_utc(str(row[1]))
    rows = db.execute(
        "SELECT f.serial, f.label, f.last_status, f.first_seen FROM spans s"
        " JOIN findings f ON f.id = s.finding_id"
        " WHERE s.first_run <= ?1 AND (s.last_run IS NULL OR s.last_run >= ?1)",
        (seq,),
    )
    details = []
    for serial, name, status, first_seen in rows:
        seen = _from_epoch(first_seen)
        details.append(FindingDetail(serial.hex().upper(), name, status, seen, age(seen, as_of)))
    return sorted(details, key=lambda d: (-d.age_days, d.serial))
