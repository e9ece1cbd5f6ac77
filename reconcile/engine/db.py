"""The DuckDB connection a run works in, and the one way Python rows enter it.

The engine keeps every row of both sides in DuckDB tables, not in Python objects: a million CA
rows and a million Intune records stay within a few hundred MiB because DuckDB stores them
compressed and spills to its temporary directory beyond ``MEMORY_LIMIT``. Rows that Python must
produce (exotic formats, odd lines) are written as JSON Lines to a scratch file and read back in
one native scan; DuckDB's ``executemany`` costs about 300 µs a row.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec

MEMORY_LIMIT = "320MB"
log = logging.getLogger("reconcile.engine")
_STARTED = time.perf_counter()
_ENCODER = msgspec.json.Encoder()


class Database:
    """A throwaway DuckDB with a private scratch directory for its file, spills and batches."""

    def __init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="reconcile-engine-"))
        # A database file (not :memory:) lets DuckDB evict table blocks to disk under its
        # memory limit; it lives in the scratch directory and goes with it.
        self.con = duckdb.connect(
            str(self.scratch / "engine.duckdb"),
            config={
                "memory_limit": MEMORY_LIMIT,
                "temp_directory": str(self.scratch / "spill"),
                "preserve_insertion_order": False,
            },
        )
        self.con.execute("SET enable_progress_bar = false")
        self._batches = 0

    def execute(self, sql: str, parameters: Sequence[object] | None = None) -> None:
        started = time.perf_counter()
        self.con.execute(sql, parameters)
        self._log(started, sql)

    def _log(self, started: float, sql: str) -> None:
        now = time.perf_counter()
        log.debug(
            "engine: at %.1f s, %.2f s: %s",
            now - _STARTED,
            now - started,
            " ".join(sql.split())[:70],
        )

    def execute_in_order(self, sql: str, parameters: Sequence[object] | None = None) -> None:
        """A statement whose table must keep its source's row order: rowid is the line."""
        self.con.execute("SET preserve_insertion_order = true")
        try:
            self.execute(sql, parameters)
        finally:
            self.con.execute("SET preserve_insertion_order = false")

    def execute_small_builds(self, sql: str, parameters: Sequence[object] | None = None) -> None:
        """A statement of a big table LEFT JOINed to small lookup tables: keep the lookups as
        the hash tables, whatever the estimates say (the big side would not fit in memory)."""
        self.con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        try:
            self.execute(sql, parameters)
        finally:
            self.con.execute("SET disabled_optimizers = ''")

    def rows(self, sql: str, parameters: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        started = time.perf_counter()
        found = self.con.execute(sql, parameters).fetchall()
        self._log(started, sql)
        return found

    def stream(
        self, sql: str, parameters: Sequence[object] | None = None, size: int = 4096
    ) -> Iterable[tuple[Any, ...]]:
        """Rows in batches, so a large result never sits in Python at once."""
        cursor = self.con.cursor()
        try:
            cursor.execute(sql, parameters)
            while batch := cursor.fetchmany(size):
                yield from batch
        finally:
            cursor.close()

    def insert(
        self, table: str, columns: Mapping[str, str], rows: Iterable[Sequence[object]]
    ) -> int:
        """Append Python rows (tuples in ``columns`` order) to ``table``; returns the count."""
        self._batches += 1
        path = self.scratch / f"batch-{self._batches}.jsonl"
        names = tuple(columns)
        count = 0
        with path.open("wb") as handle:
            for row in rows:
                handle.write(_ENCODER.encode(dict(zip(names, row, strict=True))))
                handle.write(b"\n")
                count += 1
        if count:
            spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
            self.con.execute(
                f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} "
                f"FROM read_json(?, format='newline_delimited', columns={{{spec}}})",
                [str(path)],
            )
        path.unlink()
        return count

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
