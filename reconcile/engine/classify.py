"""The join as SQL: the README's status table, check by check, over the engine's tables.

Every CA certificate gets exactly one status; the first check that applies wins: out_of_scope,
revoked, expired, delivered, within_grace, superseded, not_installed, not_reported. Matching is
by serial (issuer-aware: both sides must agree when both name an issuer) and, for a certificate
no serial matched, by the thumbprint of Intune records that carry no serial. Of several matching
records a delivered one wins, then the one whose state changed last, then the first.
``superseded`` needs every delivered certificate first: a newer delivered certificate for the
same (device, profile) link, the Intune record's or the CA certificate's, supersedes.

Text rules Python owns (issuer names by CN, case folding outside ASCII, the device pattern,
template scope) run once per distinct value and are joined back as small tables. Only the
verdicts a run keeps become Python objects, built in batches; the rest are counted.
"""

from __future__ import annotations

import itertools
import re
import sys
import weakref
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from reconcile.engine import renewal
from reconcile.engine.db import COPY_FLOOR, Database
from reconcile.engine.joined import Deferred, JoinOptions, JoinResult, ViewKeep, wanted_templates
from reconcile.engine.keys import device_fold_sql, device_folds, issuer_keys
from reconcile.engine.tables import CA_COLUMNS, ca_record, from_micros, micros
from reconcile.identity import device_fold, fold, serial_hex
from reconcile.intune.side import Entry, IntuneSide
from reconcile.model import (
    CA_LIGHT_EMPTIES,
    CaCertificate,
    IntuneCertificate,
    ManagedDevice,
    Status,
    Verdict,
    verdict_spool,
)
from reconcile.spool import Spool
from reconcile.timeparse import iso_z

_BATCH = 4096
_SEQ_RANGE = 1_000_000
"""CA rows whose kept verdicts are read by one query."""
_kept_tables = itertools.count()
_Key = tuple[int, int]
"""An Intune record by (collection, line)."""


class Records(Protocol):
    """The full records behind the intune and device tables, read only for what a run keeps."""

    @property
    def devices_read(self) -> bool:
        """Whether managed devices were read at all (if not, no device can be called gone)."""
        ...

    def certificates(self, keys: Collection[_Key]) -> Mapping[_Key, IntuneCertificate]: ...

    def devices(self, positions: Collection[int]) -> Mapping[int, ManagedDevice]: ...

    def light_certificates(self, keys: Collection[_Key]) -> Mapping[_Key, IntuneCertificate]:
        """``certificates`` as their ``light()`` copies, for verdicts kept for the views alone."""
        ...

    def light_devices(self, positions: Collection[int]) -> Mapping[int, ManagedDevice]:
        """``devices`` as their ``light()`` copies."""
        ...


class SideRecords:
    """``Records`` over an Intune side already in Python memory."""

    def __init__(self, side: IntuneSide):
        self.side = side

    @property
    def devices_read(self) -> bool:
        return self.side.devices is not None

    def certificates(self, keys: Collection[_Key]) -> dict[_Key, IntuneCertificate]:
        entries = self.side.entries
        found: dict[_Key, IntuneCertificate] = {}
        for key in keys:
            at = bisect_left(entries, key, key=_entry_key)
            assert at < len(entries) and _entry_key(entries[at]) == key
            found[key] = self.side.certificate(entries[at])
        return found

    def devices(self, positions: Collection[int]) -> dict[int, ManagedDevice]:
        devices = self.side.devices
        assert devices is not None or not positions
        return {} if devices is None else {n: devices.get(n) for n in positions}

    def light_certificates(self, keys: Collection[_Key]) -> dict[_Key, IntuneCertificate]:
        return {key: record.light() for key, record in self.certificates(keys).items()}

    def light_devices(self, positions: Collection[int]) -> dict[int, ManagedDevice]:
        return {n: device.light() for n, device in self.devices(positions).items()}


def _entry_key(entry: Entry) -> _Key:
    return entry.collection, entry.where


# --- the rules Python owns, as small lookup tables --------------------------------------------


def _is_ascii(column: str) -> str:
    return f"strlen({column}) = length({column})"


def _fold(column: str, lookup: str) -> str:
    """identity.fold in SQL; non-ASCII text from the ``j_folds`` table."""
    return (
        f"CASE WHEN {column} IS NULL OR {column} = '' THEN NULL "
        f"WHEN {_is_ascii(column)} THEN lower({column}) ELSE {lookup}.value END"
    )


_PAIR = {"text": "VARCHAR", "value": "VARCHAR"}
_NAMES = {
    "subject": "VARCHAR",
    "san": "VARCHAR",
    "common_name": "VARCHAR",
    "name": "VARCHAR",
    "dkey": "VARCHAR",
}


def _pairs(db: Database, table: str, pairs: Iterator[tuple[str, str | None]]) -> None:
    db.execute(f"CREATE OR REPLACE TABLE {table} (text VARCHAR, value VARCHAR)")
    db.insert(table, _PAIR, pairs)


def _python_rules(db: Database, options: JoinOptions) -> None:
    """Issuer keys, folds outside ASCII, template scope and the device pattern, once per
    distinct value."""
    issuer_keys(db, "j_issuer_keys", "SELECT issuer FROM ca UNION SELECT issuer FROM intune")
    device_folds(
        db, "j_device_keys", "SELECT device_name FROM intune UNION SELECT common_name FROM ca"
    )
    templates = db.rows(
        f"SELECT DISTINCT template_name FROM ca WHERE NOT {_is_ascii('template_name')}"
    )
    _pairs(db, "j_folds", ((t, fold(t)) for (t,) in templates))
    wanted = wanted_templates(options.templates)
    texts = db.rows(
        "SELECT t FROM (SELECT template_oid AS t FROM ca UNION SELECT template_name FROM ca) "
        "WHERE t IS NOT NULL"
    )
    _pairs(db, "j_scope", ((t, None) for (t,) in texts if t.casefold() in wanted))
    pattern = options.device_pattern
    if pattern is not None:
        db.execute(
            "CREATE OR REPLACE TABLE j_ca_names "
            "(subject VARCHAR, san VARCHAR, common_name VARCHAR, name VARCHAR, dkey VARCHAR)"
        )
        triples = db.rows("SELECT DISTINCT subject, san, common_name FROM ca")
        db.insert("j_ca_names", _NAMES, (_pattern_name(pattern, *t) for t in triples))


def _pattern_name(
    pattern: re.Pattern[str], subject: str | None, san: str | None, cn: str | None
) -> tuple[str | None, ...]:
    """The device a CA certificate names by the configured pattern's group."""
    name = None
    for text in (subject, san, cn):
        if text and (match := pattern.search(text)):
            name = str(match.group(1))
            break
    return subject, san, cn, name, device_fold(name)


# --- the classification -----------------------------------------------------------------------


_CA_PROFILE = (
    f"CASE WHEN c.template_oid <> '' THEN c.template_oid ELSE {_fold('c.template_name', 'f')} END"
)
"""The profile a CA row is renewed under (``c``, its ``j_folds`` row ``f``)."""


def _key_ids(db: Database) -> None:
    """Issuer keys and profiles as integers, equal where the texts are: the join only compares
    them. Carried as text (a template OID is 74 bytes) through ``j_ca``, ``j_in`` and
    ``j_decided``, they made the join's tables spill out of the engine's limit; at 1M rows its
    statements took 2.4 s against 3.0 s."""
    db.execute(
        "CREATE OR REPLACE TABLE j_issuer_ids AS SELECT text, CASE WHEN value IS NOT NULL "
        "THEN dense_rank() OVER (ORDER BY value) END AS id FROM j_issuer_keys"
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE j_profiles AS
        SELECT text, row_number() OVER () AS id FROM (
            SELECT {_CA_PROFILE} FROM ca c LEFT JOIN j_folds f ON f.text = c.template_name
            UNION SELECT nullif(profile, '') FROM intune
        ) t(text) WHERE text IS NOT NULL
        """
    )


def _classify_sql(db: Database, options: JoinOptions) -> None:
    as_of = micros(options.as_of)
    grace_start = micros(options.as_of - timedelta(hours=options.grace_hours))
    revoked_by = micros(max(options.as_of, options.revoked_by or options.as_of))
    if options.device_pattern is not None:
        name = "p.name"
        dkey = "p.dkey"
        names = (
            "LEFT JOIN j_ca_names p ON p.subject IS NOT DISTINCT FROM c.subject "
            "AND p.san IS NOT DISTINCT FROM c.san "
            "AND p.common_name IS NOT DISTINCT FROM c.common_name"
        )
    else:
        name = "c.common_name"
        dkey = device_fold_sql("c.common_name", "j_device_keys")
        names = ""
    scope = "(so.text IS NOT NULL OR sn.text IS NOT NULL)" if options.templates else "true"
    _key_ids(db)
    db.execute(
        f"""
        CREATE OR REPLACE TABLE j_ca AS
        SELECT *, nullif(coalesce(managed_device_id, ca_dkey), '') AS ca_link_dev
        FROM (
            SELECT c.seq, c.serial, c.thumbprint, c.issuer IS NULL AS no_issuer,
                   c.not_before, c.not_after, c.revoked_at, c.managed_device_id,
                   CASE WHEN c.issuer <> '' THEN k.id END AS ikey,
                   c.out_of_scope IS NULL AND {scope} AS in_scope,
                   {name} AS ca_name, {dkey} AS ca_dkey,
                   pr.id AS ca_profile
            FROM ca c
            LEFT JOIN j_issuer_ids k ON k.text = c.issuer
            LEFT JOIN j_folds f ON f.text = c.template_name
            LEFT JOIN j_profiles pr ON pr.text = {_CA_PROFILE}
            LEFT JOIN j_scope so ON so.text = c.template_oid
            LEFT JOIN j_scope sn ON sn.text = c.template_name
            {names}
        )
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE j_in AS
        SELECT *,
               nullif(CASE WHEN device_id <> '' THEN device_id ELSE name_dkey END, '')
                   AS link_dev
        FROM (
            SELECT i.ord, i.collection, i.line, i.serial, i.thumbprint,
                   i.issuer IS NULL AS no_issuer, k.id AS ikey,
                   CASE WHEN i.issuer <> '' THEN k.id END AS unknown_key,
                   coalesce(i.delivered, false) AS delivered, i.device_id,
                   i.device_name IS NOT NULL AS has_name,
                   {device_fold_sql("i.device_name", "j_device_keys")} AS name_dkey,
                   pr.id AS profile, i.issued_at,
                   coalesce(i.changed_at, i.issued_at) AS last_change
            FROM intune i
            LEFT JOIN j_issuer_ids k ON k.text = i.issuer
            LEFT JOIN j_profiles pr ON pr.text = nullif(i.profile, '')
        )
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE j_match AS
        WITH by_serial AS (
            SELECT c.seq, i.ord FROM j_ca c JOIN j_in i ON i.serial = c.serial
            WHERE c.ikey IS NULL OR i.no_issuer OR i.ikey = c.ikey
        )
        SELECT seq, ord FROM by_serial
        UNION ALL
        SELECT c.seq, i.ord
        FROM j_ca c JOIN (SELECT ord, thumbprint FROM j_in WHERE serial IS NULL) i
            ON i.thumbprint = c.thumbprint
        WHERE c.seq NOT IN (SELECT seq FROM by_serial)
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE j_best AS
        SELECT m.seq, m.ord, i.issued_at, i.link_dev, i.profile, i.delivered
        FROM j_match m JOIN j_in i USING (ord)
        QUALIFY row_number() OVER (
            PARTITION BY m.seq ORDER BY i.delivered DESC, i.last_change DESC NULLS LAST, m.ord
        ) = 1
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE j_decided AS
        SELECT c.seq, b.ord AS eord, c.not_before, c.not_after, c.revoked_at, c.ca_link_dev,
               c.ca_profile,
               b.issued_at AS e_issued, b.link_dev AS e_link_dev, b.profile AS e_profile,
               coalesce(b.delivered, false) AS delivered,
               CASE WHEN NOT c.in_scope THEN 'out_of_scope'
                    WHEN c.revoked_at <= {revoked_by} THEN 'revoked'
                    WHEN c.not_after < {as_of} THEN 'expired'
                    WHEN b.delivered THEN 'delivered'
                    WHEN c.not_before > {grace_start} THEN 'within_grace'
               END AS status0
        FROM j_ca c LEFT JOIN j_best b USING (seq)
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE j_newest AS
        WITH wanted AS (
            SELECT e_link_dev AS d, e_profile AS p FROM j_decided
            WHERE status0 IS NULL AND not_before IS NOT NULL
            UNION
            SELECT ca_link_dev, ca_profile FROM j_decided
            WHERE status0 IS NULL AND not_before IS NOT NULL
        ),
        delivered AS (
            SELECT link_dev AS d, profile AS p, issued_at AS w FROM j_in
            WHERE delivered AND issued_at IS NOT NULL
            UNION ALL
            SELECT e_link_dev, e_profile, not_before FROM j_decided
            WHERE status0 = 'delivered' AND e_issued IS NULL
            UNION ALL
            SELECT ca_link_dev, ca_profile, coalesce(not_before, e_issued) FROM j_decided
            WHERE status0 = 'delivered'
        )
        SELECT x.d, x.p, max(x.w) AS w
        FROM delivered x SEMI JOIN wanted ON wanted.d = x.d AND wanted.p = x.p
        WHERE x.w IS NOT NULL
        GROUP BY x.d, x.p
        """
    )
    # Only the undecided (pending) certificates can be superseded: the rest keep status0.
    db.execute(
        """
        CREATE OR REPLACE TABLE j_verdicts AS
        SELECT seq, eord, delivered, not_after, revoked_at, false AS pending, status0 AS status,
               NULL::BIGINT AS superseded_at
        FROM j_decided WHERE status0 IS NOT NULL
        UNION ALL
        SELECT d.seq, d.eord, d.delivered, d.not_after, d.revoked_at, true,
               CASE WHEN n1.w > d.not_before OR n2.w > d.not_before THEN 'superseded'
                    WHEN d.eord IS NULL THEN 'not_reported'
                    ELSE 'not_installed' END,
               CASE WHEN n1.w > d.not_before THEN n1.w WHEN n2.w > d.not_before THEN n2.w END
        FROM (SELECT * FROM j_decided WHERE status0 IS NULL) d
        LEFT JOIN j_newest n1 ON n1.d = d.e_link_dev AND n1.p = d.e_profile
        LEFT JOIN j_newest n2 ON n2.d = d.ca_link_dev AND n2.p = d.ca_profile
        """
    )


def _device_tables(db: Database) -> None:
    db.execute(
        """
        CREATE OR REPLACE TABLE j_named AS
        SELECT key, count(*) AS n, min(dev) AS dev, list(dev ORDER BY dev) AS devs
        FROM device_names GROUP BY key
        """
    )
    db.execute(
        "CREATE OR REPLACE TABLE j_mentioned AS "
        "SELECT DISTINCT name_dkey AS key FROM j_in WHERE name_dkey IS NOT NULL"
    )


_SHARED_COLUMNS = frozenset({"issuer", "requester", "template_oid", "template_name", "source"})
_CA_FIELDS = ", ".join(f"c.{name}" for name in list(CA_COLUMNS)[1:])
_LEAD = (
    "v_status",
    "superseded_at",
    "e_collection",
    "e_line",
    "dev",
    "gone",
    "candidates",
    "kind",
    "ca_name",
    "seq",
)
"""The columns ``_rows_sql`` gives before the CA row."""
_LIGHT_ROWS = ", ".join(
    [*_LEAD, *(f"NULL AS {n}" if n in CA_LIGHT_EMPTIES else n for n in list(CA_COLUMNS)[1:])]
)
"""A kept row with the CA columns ``CaCertificate.light`` empties as NULL: ``ca_record`` of it
is the light record (at 1M rows, building 79,000 records in full and making them light after
took about 1 s)."""


def _rows_sql(devices_read: bool, kept: str) -> str:
    """The rows of the verdicts in table ``kept``: status, superseded_at, the record's
    (collection, line), the device (position, gone, candidates), kind, the CA-side name, seq,
    the CA row.

    Every join but the last is narrow and cut to the kept rows' keys; the CA row joins last,
    the kept rows its hash table and the CA table its probe. Joined the other way round, DuckDB
    built its hash tables over the CA columns (at 1M rows 176 MB for 50,000 rows, and the
    copy ran out of the engine's limit below 320 MB). ``seq IN`` alone, not a range beside it:
    with both, DuckDB built the join on the CA side and ran out of memory at 1M rows."""
    if devices_read:
        device = """
            CASE WHEN r.id_key IS NOT NULL THEN di.dev WHEN nm.n = 1 THEN nm.dev END AS dev,
            CASE WHEN r.id_key IS NOT NULL THEN di.dev IS NULL
                 WHEN r.name_key IS NULL OR nm.n IS NOT NULL THEN false
                 ELSE coalesce(r.by_record, false) OR mn.key IS NOT NULL END AS gone,
            CASE WHEN r.id_key IS NULL AND nm.n > 1 THEN nm.devs END AS candidates
        """
        joins = """
            LEFT JOIN (SELECT * FROM device_ids WHERE key IN (SELECT id_key FROM r)) di
                ON di.key = r.id_key
            LEFT JOIN (SELECT * FROM j_named WHERE key IN (SELECT name_key FROM r)) nm
                ON nm.key = r.name_key
            LEFT JOIN (SELECT * FROM j_mentioned WHERE key IN (SELECT name_key FROM r)) mn
                ON mn.key = r.name_key
        """
    else:
        device = "NULL::BIGINT AS dev, false AS gone, NULL::BIGINT[] AS candidates"
        joins = ""
    return f"""
        WITH r AS MATERIALIZED (
            SELECT v.seq, v.status AS v_status, v.superseded_at, i.collection AS e_collection,
                   i.line AS e_line, x.ca_name, v.kind,
                   coalesce(x.managed_device_id, i.device_id) AS id_key,
                   i.has_name AS by_record,
                   CASE WHEN i.has_name THEN i.name_dkey ELSE x.ca_dkey END AS name_key
            FROM {kept} v
            JOIN (
                SELECT seq, ca_name, managed_device_id, ca_dkey FROM j_ca
                WHERE seq IN (SELECT seq FROM {kept})
            ) x USING (seq)
            LEFT JOIN (
                SELECT ord, collection, line, device_id, has_name, name_dkey FROM j_in
                WHERE ord IN (SELECT eord FROM {kept})
            ) i ON i.ord = v.eord
        ),
        d AS MATERIALIZED (
            SELECT r.seq, r.v_status, r.superseded_at, r.e_collection, r.e_line, {device},
                   r.kind, r.ca_name
            FROM r
            {joins}
        )
        SELECT {", ".join(f"d.{name}" for name in _LEAD)}, {_CA_FIELDS}
        FROM ca c JOIN d USING (seq)
    """


_Row = tuple[object, ...]


def _batches(rows: Iterator[_Row]) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Kept(NamedTuple):
    kind: str
    seq: int
    verdict: Verdict
    delivered: bool
    """Whether Intune reports the certificate delivered."""


def _build(
    batch: list[_Row], records: Records, options: JoinOptions, light: bool = False
) -> Iterator[_Kept]:
    """The verdicts of ``batch``; ``light`` (rows read as ``_LIGHT_ROWS``) builds each as
    ``Verdict.light()`` would leave it, without reading what that drops (at 1M rows 79,000
    view-only verdicts took 9 s built in full and made light after, 4 s built light)."""
    keys: set[_Key] = set()
    positions: set[int] = set()
    listed: set[int] = set()
    for row in batch:
        collection, line, dev, candidates = row[2], row[3], row[4], row[6]
        if isinstance(collection, int) and isinstance(line, int):
            keys.add((collection, line))
        if isinstance(dev, int):
            positions.add(dev)
        if isinstance(candidates, list):
            listed.update(candidates)
    if light:
        found = records.light_certificates(keys)
        devices = records.light_devices(positions)
        # A light verdict keeps its candidates whole (``Verdict.light``).
        named = records.devices(listed)
    else:
        found = records.certificates(keys)
        devices = named = records.devices(positions | listed)
    for row in batch:
        lead, ca = row[: len(_LEAD)], row[len(_LEAD) :]
        status_text, superseded, collection, line, dev, gone, candidates, kind, name, seq = lead
        assert isinstance(status_text, str) and isinstance(kind, str) and isinstance(seq, int)
        assert name is None or isinstance(name, str)
        cert = ca_record(_interned(ca))
        status = Status(status_text)
        record = (
            found[(collection, line)]
            if isinstance(collection, int) and isinstance(line, int)
            else None
        )
        if light:
            reason = ""
        else:
            superseded_at = from_micros(superseded) if isinstance(superseded, int) else None
            reason = _reason(status, cert, record, options, superseded_at)
        verdict = Verdict(
            ca=cert,
            status=status,
            reason=reason,
            intune=record,
            device=devices[dev] if isinstance(dev, int) else None,
            device_gone=bool(gone),
            device_candidates=(
                tuple(named[n] for n in candidates) if isinstance(candidates, list) else ()
            ),
            ca_device=name or None,
        )
        yield _Kept(kind, seq, verdict, record is not None and record.delivered)


_SHARED = tuple(n - 1 for n, name in enumerate(CA_COLUMNS) if name in _SHARED_COLUMNS)


def _interned(fields: tuple[object, ...]) -> tuple[object, ...]:
    """The CA row with its few-valued texts shared, as the CA readers share them: at 100,000
    kept verdicts separate copies of the issuer, template and file name cost about 50 MB."""
    values = list(fields)
    for n in _SHARED:
        value = values[n]
        if isinstance(value, str):
            values[n] = sys.intern(value)
    return tuple(values)


def _copy_rows(db: Database, devices_read: bool, where: str, kind: str = "'keep'") -> str:
    """The rows of the verdicts ``where`` picks, copied out of the join's tables into a table
    of their own, so those can go before Python builds a single verdict (at 1M rows the
    join's tables and 130,000 verdicts as objects were 860 MiB together).

    A range of CA rows at a time: at 10M rows one query over every kept row ran out of the
    engine's memory; the kept rows of one range let the scans skip the CA row groups outside
    it (DuckDB pushes the join's key range into them)."""
    number = next(_kept_tables)
    picked, table = f"kept_picked_{number}", f"kept_rows_{number}"
    ((first, last),) = db.rows(f"SELECT min(seq), max(seq) FROM j_verdicts v WHERE {where}")
    starts = range(first, last + 1, _SEQ_RANGE) if first is not None else range(1)
    for start in starts:
        db.execute(
            f"CREATE OR REPLACE TABLE {picked} AS SELECT *, {kind} AS kind FROM j_verdicts v "
            f"WHERE ({where}) AND v.seq >= {start} AND v.seq < {start + _SEQ_RANGE}"
        )
        select = _rows_sql(devices_read, picked)
        db.execute(
            f"CREATE TABLE {table} AS {select}"
            if start == starts[0]
            else f"INSERT INTO {table} {select}"
        )
    db.execute(f"DROP TABLE {picked}")
    return table


def _verdicts(
    db: Database,
    records: Records,
    options: JoinOptions,
    table: str,
    light: bool = False,
    kind: str | None = None,
) -> Iterator[_Kept]:
    """The verdicts of a ``_copy_rows`` table, in CA order (``light``: as ``_build``; ``kind``:
    only the rows of that kind)."""
    which = "true" if kind is None else f"kind = '{kind}'"
    # A range of CA rows at a time: a sorted result stays pinned while Python builds the
    # verdicts (at 10M rows, 780,000 view-only rows did not fit the engine's memory limit).
    ((first, last),) = db.rows(f"SELECT min(seq), max(seq) FROM {table} WHERE {which}")
    if first is None:
        return
    for start in range(first, last + 1, _SEQ_RANGE):
        rows = db.stream(
            f"SELECT {_LIGHT_ROWS if light else '*'} FROM {table} WHERE {which} "
            f"AND seq >= {start} AND seq < {start + _SEQ_RANGE} ORDER BY seq",
            size=_BATCH,
        )
        for batch in _batches(rows):
            yield from _build(batch, records, options, light)


def _advised(options: JoinOptions) -> Callable[[Verdict], Verdict]:
    step = options.next_step
    if step is None:
        return lambda verdict: verdict
    return lambda verdict: replace(verdict, next_step=step(verdict))


def _view_sql(keep: ViewKeep) -> str:
    """ViewKeep's rule over j_verdicts v."""
    as_of = micros(keep.as_of)
    return (
        f"coalesce((v.status = 'revoked' AND v.delivered AND v.revoked_at <= {as_of}) OR "
        f"(v.status = 'delivered' AND v.not_after BETWEEN {as_of} AND "
        f"{micros(keep.expiring_until)}), false)"
    )


def classify_tables(
    db: Database,
    records: Records,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
    keep_cert: Callable[[Status, CaCertificate, bool], bool] | None = None,
    defer_records: bool = False,
) -> JoinResult:
    """Classify the ``ca`` table against ``intune`` and the device tables; ``join.classify``
    says what the arguments mean. ``db`` must stay open while ``deferred`` is read."""
    ((rows,),) = db.rows("SELECT (SELECT count(*) FROM ca) + (SELECT count(*) FROM intune)")
    db.fit(rows)
    _python_rules(db, options)
    _classify_sql(db, options)
    if records.devices_read:
        _device_tables(db)
    unknown = _unknown_sql(db)
    # What only the classification needed goes before the kept verdicts are built.
    db.execute("DROP TABLE j_match; DROP TABLE j_best; DROP TABLE j_decided; DROP TABLE j_newest")
    db.after_join(COPY_FLOOR)
    view = _view_sql(keep_cert) if isinstance(keep_cert, ViewKeep) else "false"
    in_python = keep_cert if keep_cert is not None and view == "false" else None
    defer = defer_records and not keep_all and keep_if is None
    # Spooled: at 10M rows about 500,000 findings, more than a run may hold as objects.
    verdicts = verdict_spool()
    dropped: Counter[str] = Counter()
    deferred_seqs: list[int] = []
    later: str | None = None
    later_kind: str | None = None  # the kind of later's rows when they share the findings' table
    advised = _advised(options)
    if keep_all:
        rows = _copy_rows(db, records.devices_read, "true")
        _release(db, rows)
        verdicts.extend(advised(k.verdict) for k in _verdicts(db, records, options, rows))
    else:
        by_sql = keep_if is None and in_python is None
        # When SQL knows the view-only verdicts, they are copied with the findings as 'later':
        # one scan of the CA rows, not two (at 1M rows 0.73 s against 1.18 s).
        shared = defer and in_python is None
        if shared:
            where = f"v.pending OR {view}"
            kind = "CASE WHEN v.pending THEN 'keep' ELSE 'later' END"
        else:
            rest = "false" if by_sql else "true"
            where = f"v.pending OR {view if not defer else 'false'} OR ({rest} AND NOT {view})"
            kind = f"CASE WHEN v.pending OR {view} THEN 'keep' ELSE 'rest' END"
        rows = _copy_rows(db, records.devices_read, where, kind)
        if by_sql:
            # What SQL alone decides it drops is counted there (the loop below builds no such
            # verdict), while the join's tables are still here.
            counted = db.rows(
                f"SELECT v.status, count(*) FROM j_verdicts v "
                f"WHERE NOT v.pending AND NOT {view} GROUP BY v.status ORDER BY min(v.seq)"
            )
            dropped.update({str(s): int(n) for s, n in counted})
        if not defer or shared:
            # Which view-only verdicts come later is known now: the join's tables can go.
            if shared:
                later, later_kind = rows, "later"
            _release(db, rows)
        for kept in _verdicts(db, records, options, rows, kind="keep" if shared else None):
            verdict = kept.verdict
            if kept.kind == "keep":
                verdicts.append(advised(verdict))
            elif in_python is not None and in_python(verdict.status, verdict.ca, kept.delivered):
                if defer:
                    deferred_seqs.append(kept.seq)
                else:
                    verdicts.append(advised(verdict))
            elif keep_if is not None and keep_if(verdict):
                verdicts.append(advised(verdict))
            else:
                dropped[verdict.status.value] += 1
        if defer and in_python is not None:
            db.execute("CREATE OR REPLACE TABLE j_deferred (seq BIGINT)")
            db.insert("j_deferred", {"seq": "BIGINT"}, ((s,) for s in deferred_seqs))
            later = _copy_rows(db, records.devices_read, "v.seq IN (SELECT seq FROM j_deferred)")
            _release(db, later)
    if not defer_records:
        return JoinResult(verdicts.freeze(), _unknown_records(db, records, unknown), dict(dropped))

    def view_only() -> Iterator[Verdict]:
        if later is None:
            return iter(())
        return (k.verdict for k in _verdicts(db, records, options, later, True, later_kind))

    def unknown_to_ca() -> Spool[IntuneCertificate]:
        return _unknown_records(db, records, unknown)

    return JoinResult(verdicts.freeze(), (), dict(dropped), Deferred(view_only, unknown_to_ca))


def _release(db: Database, *kept: str | None) -> None:
    """A fresh engine once the rows the join keeps are copied out (``_copy_rows`` tables
    ``kept``): only those, the Intune records unknown to the CA and the delivered ones the
    views' renewal check reads stay, as files. Dropping the join's tables was not enough: at 1M
    rows DuckDB kept about 140 MB it no longer used while Python built the verdicts."""
    db.after_join()
    db.reopen(
        {name: f"FROM {name}" for name in (*kept, "j_unknown") if name is not None}
        | {"intune": f"SELECT {renewal.READS} FROM intune WHERE {renewal.DELIVERED}"}
    )


def close_with(deferred: Deferred, db: Database) -> None:
    """Close ``db`` once ``deferred`` is gone (it reads back from it)."""
    weakref.finalize(deferred, db.close)


def _unknown_sql(db: Database) -> str:
    """Intune records the exports should contain but do not, one per (issuer, serial).

    An export without issuer could be from any CA, so then every Intune issuer counts as covered.
    """
    db.execute(
        """
        CREATE OR REPLACE TABLE j_unknown AS
        SELECT ord, collection, line FROM j_in i
        WHERE (i.serial IS NOT NULL OR i.thumbprint IS NOT NULL)
          AND i.ord NOT IN (SELECT ord FROM j_match)
          AND ((SELECT bool_or(no_issuer) FROM j_ca)
               OR i.unknown_key IN (SELECT ikey FROM j_ca WHERE ikey IS NOT NULL))
        QUALIFY row_number() OVER (
            PARTITION BY i.unknown_key, i.serial IS NULL, coalesce(i.serial, i.thumbprint)
            ORDER BY i.ord
        ) = 1
        """
    )
    return "SELECT collection, line FROM j_unknown ORDER BY ord"


def _unknown_records(db: Database, records: Records, sql: str) -> Spool[IntuneCertificate]:
    found: Spool[IntuneCertificate] = Spool()
    for batch in _batches(db.stream(sql, size=_BATCH)):
        keys = [(int(c), int(n)) for c, n in batch]  # type: ignore[call-overload]
        by_key = records.certificates(keys)
        found.extend(by_key[k] for k in keys)
    return found.freeze()


def _reason(
    status: Status,
    cert: CaCertificate,
    record: IntuneCertificate | None,
    options: JoinOptions,
    superseded_at: datetime | None,
) -> str:
    where = ""
    if record is not None:
        profile = record.profile_name or record.profile_id or "unknown profile"
        where = f" ({record.source.value}, {profile})"
    match status:
        case Status.OUT_OF_SCOPE if cert.out_of_scope is not None:
            return cert.out_of_scope
        case Status.OUT_OF_SCOPE:
            template = cert.template_name or cert.template_oid or "no template"
            return f"template {template} is not selected"
        case Status.REVOKED:
            return f"revoked by the CA at {iso_z(cert.revoked_at)}"
        case Status.EXPIRED:
            return f"expired at {iso_z(cert.not_after)}"
        case Status.DELIVERED:
            return f"Intune reports it installed{where}"
        case Status.WITHIN_GRACE:
            return (
                f"issued {iso_z(cert.not_before)}, within the {options.grace_hours:g} h "
                "grace window for Intune's reporting lag"
            )
        case Status.SUPERSEDED:
            return (
                "a newer certificate for the same device and profile, issued "
                f"{iso_z(superseded_at)}, is delivered"
            )
        case Status.NOT_INSTALLED:
            assert record is not None
            return f"Intune reports state {record.state!r}{where}"
        case Status.NOT_REPORTED:
            return f"Intune has no record of serial {serial_hex(cert.serial)}"
    return status.value
