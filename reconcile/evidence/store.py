"""The evidence store: a small SQLite file of what device logs proved, kept apart from history.

Logs arrive one by one, days after the run that raised the finding, and are evidence for
every later run, so they are stored rather than re-parsed. A file is keyed by the SHA-256 of
its bytes: adding the same log twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from reconcile.errors import InputError
from reconcile.evidence.model import (
    EvidenceRecord,
    Outcome,
    ParsedLog,
    Platform,
    Stage,
    Step,
)
from reconcile.identity import device_key

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE files (
            sha256 TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            platform TEXT NOT NULL,
            added_at TEXT NOT NULL,
            units INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            unit TEXT NOT NULL,
            options TEXT NOT NULL
        )""",
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            file_sha256 TEXT NOT NULL REFERENCES files (sha256),
            platform TEXT NOT NULL,
            source TEXT NOT NULL,
            line INTEGER NOT NULL,
            device TEXT NOT NULL,
            device_key TEXT NOT NULL,
            profile TEXT,
            profile_id TEXT,
            stage TEXT,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX records_by_device ON records (device_key)",
        """CREATE TABLE steps (
            record_id INTEGER NOT NULL REFERENCES records (id),
            seq INTEGER NOT NULL,
            time TEXT,
            stage TEXT,
            text TEXT NOT NULL,
            line INTEGER NOT NULL,
            PRIMARY KEY (record_id, seq)
        )""",
    ),
    # identity.device_key keeps names that are not host names whole (it cut every name at its
    # first dot): stored keys follow, so lookups by name still find their records.
    ("UPDATE records SET device_key = reconcile_device_key(device)",),
)
"""Each entry upgrades the schema by one version; append only, never edit a shipped entry."""

SCHEMA_VERSION = len(_MIGRATIONS)


class AddResult(StrEnum):
    ADDED = "added"
    UNCHANGED = "already added"
    REPLACED = "replaced"


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class EvidenceStore:
    """Open with ``EvidenceStore(path)``; use as a context manager so the file is closed."""

    def __init__(self, path: Path, *, create: bool = True):
        self.path = path
        if not create and not path.exists():
            raise InputError("no evidence database (add logs with `reconcile evidence add`)", path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"cannot open the evidence database: {exc}", path) from None
        self.db.create_function("reconcile_device_key", 1, device_key, deterministic=True)
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise InputError(f"not a usable evidence database: {exc}", path) from None
        except InputError:
            self.db.close()
            raise

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] or 0
            if version > SCHEMA_VERSION:
                raise InputError(
                    f"evidence database schema {version} is newer than this reconcile "
                    f"understands ({SCHEMA_VERSION}); upgrade reconcile",
                    self.path,
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version (version) VALUES (?)", (number + 1,))

    def stored_options(self, sha256: str) -> str | None:
        """How a stored file was read (device, zone, date), or None when it is not stored."""
        row = self.db.execute("SELECT options FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return str(row[0]) if row is not None else None

    def add(self, parsed: ParsedLog, options: str, now: datetime | None = None) -> AddResult:
        """Store a parsed log. The same bytes read the same way change nothing; read with other
        options (a --device or --log-date given later) they replace what the file proved."""
        added_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self.db:
            previous = self.stored_options(parsed.sha256)
            if previous == options:
                return AddResult.UNCHANGED
            if previous is not None:
                self._forget(parsed.sha256)
            self.db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    parsed.sha256,
                    parsed.path,
                    parsed.platform.value,
                    added_at,
                    parsed.units,
                    parsed.skipped,
                    parsed.unit,
                    options,
                ),
            )
            for record in parsed.records:
                cursor = self.db.execute(
                    "INSERT INTO records (file_sha256, platform, source, line, device, device_key,"
                    " profile, profile_id, stage, outcome, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        parsed.sha256,
                        record.platform.value,
                        record.source,
                        record.line,
                        record.device,
                        device_key(record.device),
                        record.profile,
                        record.profile_id,
                        record.stage.value if record.stage else None,
                        record.outcome.value,
                        record.detail,
                    ),
                )
                self.db.executemany(
                    "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            cursor.lastrowid,
                            seq,
                            _time(step.time),
                            step.stage.value if step.stage else None,
                            step.text,
                            step.line,
                        )
                        for seq, step in enumerate(record.steps)
                    ],
                )
        return AddResult.ADDED if previous is None else AddResult.REPLACED

    def _forget(self, sha256: str) -> None:
        self.db.execute(
            "DELETE FROM steps WHERE record_id IN (SELECT id FROM records WHERE file_sha256 = ?)",
            (sha256,),
        )
        self.db.execute("DELETE FROM records WHERE file_sha256 = ?", (sha256,))
        self.db.execute("DELETE FROM files WHERE sha256 = ?", (sha256,))

    def records(self, device: str | None = None) -> list[EvidenceRecord]:
        """Every stored record, or those of one device (name compared as ``device_key``)."""
        query = "SELECT * FROM records"
        params: tuple[str, ...] = ()
        if device is not None:
            query += " WHERE device_key = ?"
            params = (device_key(device),)
        rows = self.db.execute(query + " ORDER BY id", params).fetchall()
        steps: dict[int, list[Step]] = {}
        for record_id, _seq, time, stage, text, line in self._steps(device):
            steps.setdefault(record_id, []).append(
                Step(_parse_time(time), Stage(stage) if stage else None, text, line)
            )
        return [
            EvidenceRecord(
                platform=Platform(row[2]),
                source=row[3],
                line=row[4],
                device=row[5],
                profile=row[7],
                profile_id=row[8],
                stage=Stage(row[9]) if row[9] else None,
                outcome=Outcome(row[10]),
                detail=row[11],
                steps=tuple(steps.get(row[0], ())),
            )
            for row in rows
        ]

    def _steps(
        self, device: str | None
    ) -> Iterator[tuple[int, int, str | None, str | None, str, int]]:
        query = "SELECT s.* FROM steps s"
        params: tuple[str, ...] = ()
        if device is not None:
            query += " JOIN records r ON r.id = s.record_id WHERE r.device_key = ?"
            params = (device_key(device),)
        yield from self.db.execute(query + " ORDER BY s.record_id, s.seq", params)
