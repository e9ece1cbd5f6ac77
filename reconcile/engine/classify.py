"""Classification as SQL: the README's status table, check by check, over the engine's tables.

Every CA certificate gets exactly one status; the first check that applies wins:
out_of_scope, revoked, expired, delivered, within_grace, superseded, not_installed,
not_reported. Matching is by serial (issuer-aware: both sides must agree when both name an
issuer) and, for a certificate no serial matched, by the thumbprint of Intune records that carry
no serial. When several records match, a delivered one wins, then the one whose state changed
last, then the first. ``superseded`` needs every delivered certificate first: a newer delivered
certificate for the same (device, profile) link - from the Intune record, or from the CA subject
and template - supersedes an undelivered one.

Text rules Python owns (issuer names by CN, case folding, the device pattern, template scope) are
applied once per distinct value and joined back, so the SQL never re-implements them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from reconcile.engine.db import Database
from reconcile.engine.tables import ca_record, from_micros, micros
from reconcile.identity import issuer_key, serial_hex
from reconcile.intune.side import fold
from reconcile.model import (
    CaCertificate,
    IntuneCertificate,
    ManagedDevice,
    Status,
    Verdict,
)
from reconcile.timeparse import iso_z


@dataclass(frozen=True)
class JoinOptions:
    as_of: datetime
    grace_hours: float = 24.0
    templates: tuple[str, ...] = ()
    device_pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class JoinResult:
    verdicts: tuple[Verdict, ...]
    unknown_to_ca: tuple[IntuneCertificate, ...]
    dropped: dict[str, int]


class IntuneRecords(Protocol):
    """Full records behind the intune and device tables, fetched only for what a run keeps."""

    devices_present: bool

    def fetch(
        self, certificates: set[tuple[int, int]], devices: set[int]
    ) -> tuple[dict[tuple[int, int], IntuneCertificate], dict[int, ManagedDevice]]:
        """Records by (collection, line) and managed devices by their position."""


_ASCII = r"^[\x00-\x7F]*$"
_PENDING = ("superseded", "not_installed", "not_reported")
_BATCH = 8192


def _mapping(db: Database, name: str, pairs: Iterator[tuple[str, str | None]]) -> None:
    db.execute(f"CREATE OR REPLACE TABLE {name} (text VARCHAR, value VARCHAR)")
    db.insert(name, {"text": "VARCHAR", "value": "VARCHAR"}, pairs)


def _python_rules(db: Database, options: JoinOptions) -> None:
    """Issuer keys, case folds, template scope and the device pattern, once per distinct value."""
    issuers = db.rows(
        "SELECT DISTINCT issuer FROM ca WHERE issuer IS NOT NULL "
        "UNION SELECT DISTINCT issuer FROM intune WHERE issuer IS NOT NULL"
    )
    _mapping(db, "issuer_keys", ((i, issuer_key(i)) for (i,) in issuers))
    # casefold differs from lower() only outside ASCII; those few texts go through Python.
    texts = db.rows(
        f"""
        SELECT DISTINCT t FROM (
            SELECT device_name AS t FROM intune UNION ALL SELECT common_name FROM ca
            UNION ALL SELECT template_name FROM ca
        ) WHERE t IS NOT NULL AND NOT regexp_matches(t, '{_ASCII}')
        """
    )
    _mapping(db, "folds", ((t, fold(t)) for (t,) in texts))
    wanted = frozenset(t.casefold() for t in options.templates)
    pairs = db.rows("SELECT DISTINCT template_oid, template_name FROM ca")
    db.execute(
        "CREATE OR REPLACE TABLE scope (template_oid VARCHAR, template_name VARCHAR, "
        "in_scope BOOLEAN)"
    )
    db.insert(
        "scope",
        {"template_oid": "VARCHAR", "template_name": "VARCHAR", "in_scope": "BOOLEAN"},
        (
            (oid, name, _in_scope(oid, name, wanted))
            for oid, name in pairs
            if not _in_scope(oid, name, wanted)
        ),
    )
    pattern = options.device_pattern
    db.execute(
        "CREATE OR REPLACE TABLE ca_devices (subject VARCHAR, san VARCHAR, "
        "common_name VARCHAR, device VARCHAR)"
    )
    if pattern is not None:
        triples = db.rows("SELECT DISTINCT subject, san, common_name FROM ca")
        db.insert(
            "ca_devices",
            {"subject": "VARCHAR", "san": "VARCHAR", "common_name": "VARCHAR", "device": "VARCHAR"},
            ((s, a, c, _pattern_device(pattern, s, a, c)) for s, a, c in triples),
        )


def _in_scope(oid: str | None, name: str | None, wanted: frozenset[str]) -> bool:
    if not wanted:
        return True
    return (oid is not None and oid.casefold() in wanted) or (
        name is not None and name.casefold() in wanted
    )


def _pattern_device(
    pattern: re.Pattern[str], subject: str | None, san: str | None, cn: str | None
) -> str | None:
    for text in (subject, san, cn):
        if text and (match := pattern.search(text)):
            return fold(match.group(1))
    return None


def _fold(column: str) -> str:
    """fold(): NULL for NULL or '', lower() for ASCII, the Python casefold otherwise."""
    return (
        f"CASE WHEN {column} IS NULL OR {column} = '' THEN NULL "
        f"WHEN regexp_matches({column}, '{_ASCII}') THEN lower({column}) "
        f"ELSE (SELECT value FROM folds WHERE text = {column}) END"
    )


def _classify_sql(db: Database, options: JoinOptions, pattern: bool) -> None:
    as_of = micros(options.as_of)
    grace_start = micros(options.as_of - timedelta(hours=options.grace_hours))
    ca_device = (
        "(SELECT device FROM ca_devices d WHERE d.subject IS NOT DISTINCT FROM c.subject "
        "AND d.san IS NOT DISTINCT FROM c.san "
        "AND d.common_name IS NOT DISTINCT FROM c.common_name) AS ca_device"
        if pattern
        else f"{_fold('c.common_name')} AS ca_device"
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE ca_x AS
        SELECT c.seq, c.serial, c.thumbprint, c.issuer, c.not_before, c.not_after, c.revoked_at,
               CASE WHEN c.issuer <> '' THEN k.value END AS ikey,
               s.in_scope IS DISTINCT FROM false AS in_scope,
               {ca_device},
               CASE WHEN c.template_oid <> '' THEN c.template_oid
                    ELSE {_fold("c.template_name")} END AS ca_profile
        FROM ca c
        LEFT JOIN issuer_keys k ON k.text = c.issuer
        LEFT JOIN scope s ON s.template_oid IS NOT DISTINCT FROM c.template_oid
                         AND s.template_name IS NOT DISTINCT FROM c.template_name
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE intune_x AS
        SELECT i.ord, i.collection, i.line, i.serial, i.thumbprint, i.issuer, i.delivered,
               i.device_id, i.device_name, nullif(i.profile, '') AS profile, i.issued_at,
               coalesce(i.changed_at, i.issued_at) AS last_change, k.value AS ikey,
               {_fold("i.device_name")} AS name_fold
        FROM intune i LEFT JOIN issuer_keys k ON k.text = i.issuer
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE intune_l AS
        SELECT *, CASE WHEN device_id <> '' THEN device_id ELSE name_fold END AS link_device
        FROM intune_x
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE cand AS
        WITH by_serial AS (
            SELECT c.seq, i.ord FROM ca_x c JOIN intune_l i ON i.serial = c.serial
            WHERE c.ikey IS NULL OR i.issuer IS NULL OR i.ikey = c.ikey
        )
        SELECT * FROM by_serial
        UNION ALL
        SELECT c.seq, i.ord FROM ca_x c JOIN intune_l i ON i.thumbprint = c.thumbprint
        WHERE i.serial IS NULL AND c.seq NOT IN (SELECT seq FROM by_serial)
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE best AS
        SELECT seq, ord FROM (
            SELECT c.seq, c.ord, row_number() OVER (
                PARTITION BY c.seq
                ORDER BY i.delivered DESC, i.last_change DESC NULLS LAST, c.ord
            ) AS rank
            FROM cand c JOIN intune_l i USING (ord)
        ) WHERE rank = 1
        """
    )
    db.execute(
        f"""
        CREATE OR REPLACE TABLE decided AS
        SELECT c.seq, b.ord AS eord, c.not_before, c.ca_device, c.ca_profile,
               i.issued_at AS e_issued, i.link_device, i.profile AS link_profile,
               i.device_id AS e_device_id, i.device_name AS e_device_name,
               i.name_fold AS e_name_fold,
               CASE WHEN NOT c.in_scope THEN 'out_of_scope'
                    WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                    WHEN c.not_after IS NOT NULL AND c.not_after < {as_of} THEN 'expired'
                    WHEN i.delivered THEN 'delivered'
                    WHEN c.not_before IS NOT NULL AND c.not_before > {grace_start}
                        THEN 'within_grace'
               END AS status0
        FROM ca_x c LEFT JOIN best b USING (seq) LEFT JOIN intune_l i ON i.ord = b.ord
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE newest AS
        SELECT d, p, max(w) AS w FROM (
            SELECT link_device AS d, profile AS p, issued_at AS w FROM intune_l
            WHERE delivered AND issued_at IS NOT NULL
            UNION ALL
            SELECT link_device, link_profile, not_before FROM decided
            WHERE status0 = 'delivered' AND e_issued IS NULL AND not_before IS NOT NULL
            UNION ALL
            SELECT ca_device, ca_profile, coalesce(not_before, e_issued) FROM decided
            WHERE status0 = 'delivered'
        ) WHERE d IS NOT NULL AND p IS NOT NULL AND w IS NOT NULL
        GROUP BY d, p
        """
    )
    db.execute(
        """
        CREATE OR REPLACE TABLE verdicts AS
        SELECT d.seq, d.eord, d.status0 IS NULL AS pending,
               CASE WHEN d.status0 IS NOT NULL THEN d.status0
                    WHEN d.not_before IS NOT NULL AND n1.w > d.not_before THEN 'superseded'
                    WHEN d.not_before IS NOT NULL AND n2.w > d.not_before THEN 'superseded'
                    WHEN d.eord IS NULL THEN 'not_reported'
                    ELSE 'not_installed'
               END AS status,
               CASE WHEN d.status0 IS NOT NULL OR d.not_before IS NULL THEN NULL
                    WHEN n1.w > d.not_before THEN n1.w
                    WHEN n2.w > d.not_before THEN n2.w
               END AS superseded_at,
               d.ca_device, d.e_device_id, d.e_device_name, d.e_name_fold
        FROM decided d
        LEFT JOIN newest n1 ON n1.d = d.link_device AND n1.p = d.link_profile
        LEFT JOIN newest n2 ON n2.d = d.ca_device AND n2.p = d.ca_profile
        """
    )


def _device_sql(devices_present: bool) -> str:
    """(dev, gone) as the join has always decided them; unknown without managed devices."""
    if not devices_present:
        return "NULL::BIGINT AS dev, false AS gone"
    return """
        CASE WHEN v.eord IS NOT NULL AND v.e_device_id IS NOT NULL THEN di.dev
             WHEN v.eord IS NOT NULL AND v.e_device_name IS NOT NULL THEN dn.dev
             WHEN v.ca_device IS NOT NULL THEN dc.dev
        END AS dev,
        CASE WHEN v.eord IS NOT NULL AND v.e_device_id IS NOT NULL THEN di.dev IS NULL
             WHEN v.eord IS NOT NULL AND v.e_device_name IS NOT NULL THEN dn.dev IS NULL
             WHEN v.ca_device IS NOT NULL THEN dc.dev IS NULL AND EXISTS (
                 SELECT 1 FROM intune_x m WHERE m.name_fold = v.ca_device)
             ELSE false
        END AS gone
    """


def _device_joins(devices_present: bool) -> str:
    if not devices_present:
        return ""
    return """
        LEFT JOIN device_ids di ON di.key = v.e_device_id
        LEFT JOIN device_names dn ON dn.key = v.e_name_fold
        LEFT JOIN device_names dc ON dc.key = v.ca_device
    """


def _kept_rows(db: Database, devices_present: bool, where: str) -> Iterator[tuple[object, ...]]:
    sql = f"""
        SELECT v.status, v.superseded_at, i.collection, i.line, {_device_sql(devices_present)},
               c.serial, c.thumbprint, c.issuer, c.subject, c.common_name, c.requester,
               c.template_oid, c.template_name, c.request_id, c.not_before, c.not_after,
               c.revoked_at, c.source, c.line, c.san
        FROM verdicts v JOIN ca c USING (seq)
        LEFT JOIN intune i ON i.ord = v.eord
        {_device_joins(devices_present)}
        WHERE {where}
        ORDER BY v.seq
    """
    return iter(db.stream(sql, size=_BATCH))


def classify(
    db: Database,
    records: IntuneRecords,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
) -> JoinResult:
    """Classify the ca table against the intune table; only kept verdicts become objects.

    Without ``keep_all`` only the statuses that can be findings (superseded, not_installed,
    not_reported) are built; the rest are counted, unless ``keep_if`` asks for them.
    """
    _python_rules(db, options)
    _classify_sql(db, options, options.device_pattern is not None)
    pending = ", ".join(f"'{s}'" for s in _PENDING)
    dropped: Counter[str] = Counter()
    if keep_all:
        where = "true"
    elif keep_if is None:
        where = f"v.status IN ({pending})"
        dropped.update(
            dict(
                db.rows(
                    f"SELECT status, count(*) FROM verdicts WHERE status NOT IN ({pending}) "
                    "GROUP BY status"
                )
            )
        )
    else:
        where = "true"
    verdicts: list[Verdict] = []
    for chunk in _chunks(_kept_rows(db, records.devices_present, where)):
        for verdict in _build(chunk, records, options):
            if keep_all or keep_if is None or verdict.status.value in _PENDING or keep_if(verdict):
                verdicts.append(verdict)
            else:
                dropped[verdict.status.value] += 1
    unknown = _unknown_to_ca(db, records)
    return JoinResult(verdicts=tuple(verdicts), unknown_to_ca=unknown, dropped=dict(dropped))


def _chunks(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _build(
    chunk: list[tuple[object, ...]], records: IntuneRecords, options: JoinOptions
) -> Iterator[Verdict]:
    wanted_certs = {
        (collection, line)
        for _, _, collection, line, *_ in chunk
        if isinstance(collection, int) and isinstance(line, int)
    }
    wanted_devices = {row[4] for row in chunk if isinstance(row[4], int)}
    certificates, devices = records.fetch(wanted_certs, wanted_devices)
    for row in chunk:
        status_text, superseded, collection, line, dev, gone = row[:6]
        assert isinstance(status_text, str)
        cert = ca_record(row[6:])
        status = Status(status_text)
        record = (
            certificates[(collection, line)]
            if isinstance(collection, int) and isinstance(line, int)
            else None
        )
        superseded_at = from_micros(superseded) if isinstance(superseded, int) else None
        yield Verdict(
            ca=cert,
            status=status,
            reason=_reason(status, cert, record, options, superseded_at),
            intune=record,
            device=devices[dev] if isinstance(dev, int) else None,
            device_gone=bool(gone),
        )


def _unknown_to_ca(db: Database, records: IntuneRecords) -> tuple[IntuneCertificate, ...]:
    """Intune records the exports should contain but do not, one per (issuer, serial).

    An export without issuer could be from any CA, so then every Intune issuer counts as covered.
    """
    rows = db.rows(
        """
        WITH matched AS (SELECT DISTINCT ord FROM cand),
        covered AS (SELECT DISTINCT ikey FROM ca_x WHERE ikey IS NOT NULL),
        every_issuer AS (SELECT count(*) > 0 AS yes FROM ca WHERE issuer IS NULL),
        candidates AS (
            SELECT i.ord, i.collection, i.line,
                   CASE WHEN i.issuer <> '' THEN i.ikey END AS key,
                   i.serial IS NULL AS by_thumbprint, coalesce(i.serial, i.thumbprint) AS id
            FROM intune_x i
            WHERE i.ord NOT IN (SELECT ord FROM matched)
              AND (i.serial IS NOT NULL OR i.thumbprint IS NOT NULL)
        )
        SELECT collection, line FROM (
            SELECT *, row_number() OVER (PARTITION BY key, by_thumbprint, id ORDER BY ord) AS n
            FROM candidates
            WHERE (SELECT yes FROM every_issuer) OR key IN (SELECT ikey FROM covered)
        ) WHERE n = 1 ORDER BY ord
        """
    )
    keys = [(int(c), int(n)) for c, n in rows]
    certificates: dict[tuple[int, int], IntuneCertificate] = {}
    for start in range(0, len(keys), _BATCH):
        found, _ = records.fetch(set(keys[start : start + _BATCH]), set())
        certificates.update(found)
    return tuple(certificates[key] for key in keys)


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
