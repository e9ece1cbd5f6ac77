"""The DuckDB connection a run works in, and the one way Python rows enter it.

An in-memory database whose spill directory is a private scratch directory, so DuckDB evicts
table blocks and spills joins to disk under ``MEMORY_LIMIT``; the directory goes with the run.
(A database file would do the same, but writing every table into it made each statement two
to five times slower.) Rows that Python
produces (exotic formats, odd lines, records built in tests) are written as JSON Lines to a
scratch file and read back in one native scan: ``executemany`` costs about 300 µs a row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import duckdb
import msgspec

from reconcile.leftovers import make_scratch, release_scratch

MEMORY_LIMIT = 256 << 20
"""The engine's limit while it reads the inputs and joins a run of up to a few million rows:
DuckDB caches up to it, and its RSS overshoots it (at 1M rows 320 MB gave a 575 MiB peak)."""
JOIN_BYTES_PER_ROW = 50
"""The engine's memory for the join, per CA row and Intune record (``fit``): 10M x 10M needs
about 1 GB (320 MB ran out in its last join), while a 1M run caches whatever it is given."""
JOIN_LIMIT = 1 << 30
AFTER_JOIN_BYTES_PER_ROW = 25
AFTER_JOIN_FLOOR = 128 << 20
AFTER_JOIN_LIMIT = 512 << 20
"""What the views and outputs may use once the join's tables are dropped (``after_join``):
25 bytes per row of the join, between these two. At 1M rows 128 MB, which took 160 MiB off
the run's peak against 320 MB; at 10M 500 MB, about what its views' renewal check needed."""
COPY_FLOOR = 192 << 20
"""The floor while the kept rows are copied out of the join's tables (``classify._copy_rows``):
at 1M rows that copy needs about 150 MB (128 MB ran out), while at the join's limit the engine
cached CA blocks up to it (574 MiB of peak RSS at 320 MB)."""
RETRY_LIMIT = 2 << 30
"""A statement that runs out of the limit runs once more with this much (then the limit is
put back): DuckDB's plan for one statement can need more than the data does, and a nightly run
should finish, later than usual, rather than fail."""
_ROW_GROUP = 16384
log = logging.getLogger("reconcile")
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()


class Database:
    """One run's engine; close it (or use it as a context manager) to remove its files."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT) -> None:
        self.scratch = make_scratch("engine")
        try:
            self.con = self._connect(memory_limit)
        except BaseException:
            release_scratch(self.scratch)
            raise
        self._batches = 0
        self._rows = 0
        self._limit = memory_limit
        self._started = time.perf_counter()

    def _connect(self, memory_limit: int) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{memory_limit >> 20}MB",
                "temp_directory": str(self.scratch / "spill"),
                "preserve_insertion_order": False,
            },
        )
        con.execute("SET enable_progress_bar = false")
        return con

    def reopen(self, tables: Mapping[str, str]) -> None:
        """A fresh engine holding only ``tables`` (name: the query over the old engine that
        fills it). DuckDB keeps the memory of what it dropped (at 1M rows about 140 MB after
        the join, with nothing left in its buffer pool); closing it is what gives that back."""
        self._batches += 1
        paths = {
            name: str(self.scratch / f"{name}-{self._batches}.parquet").replace("'", "''")
            for name in tables
        }
        # Small row groups: the writer holds one whole, and at DuckDB's 122,880 rows the
        # 129,000 kept rows of a 1M run took 1.3 s to write under the limit, against 0.2 s.
        for name, query in tables.items():
            self.execute(
                f"COPY ({query}) TO '{paths[name]}' "
                f"(FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE {_ROW_GROUP})"
            )
        self.con.close()
        self.con = self._connect(self._limit)
        for name, path in paths.items():
            self.execute(f"CREATE VIEW {name} AS FROM read_parquet('{path}')")

    def fit(self, rows: int) -> None:
        """Grow the memory limit for a join over ``rows`` rows (never below the start's)."""
        self._rows = rows
        wanted = min(JOIN_LIMIT, rows * JOIN_BYTES_PER_ROW)
        if wanted > self._limit:
            self._limit = wanted
            self.execute(f"SET memory_limit = '{wanted >> 20}MB'")

    def after_join(self, floor: int = AFTER_JOIN_FLOOR) -> None:
        """The limit for what follows the join, from the rows ``fit`` was given."""
        wanted = self._rows * AFTER_JOIN_BYTES_PER_ROW
        self.shrink(max(floor, min(AFTER_JOIN_LIMIT, wanted)))

    def shrink(self, limit: int) -> None:
        """Give memory back once the join is done (DuckDB evicts to its scratch directory)."""
        if limit < self._limit:
            self._limit = limit
            self.execute(f"SET memory_limit = '{limit >> 20}MB'")

    def execute(self, sql: str, parameters: Sequence[object] | None = None) -> None:
        started = time.perf_counter()
        self._retried(lambda: self.con.execute(sql, parameters))
        self._log(started, sql)

    def rows(self, sql: str, parameters: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        started = time.perf_counter()
        found = self._retried(lambda: self.con.execute(sql, parameters).fetchall())
        self._log(started, sql)
        return found

    def _retried(self, run: Callable[[], T]) -> T:
        """``run()``, once more with ``RETRY_LIMIT`` if it runs out of memory. A statement that
        fails is rolled back whole (each is its own transaction), so running it again is safe."""
        try:
            return run()
        except duckdb.OutOfMemoryException:
            if self._limit >= RETRY_LIMIT:
                raise
        log.warning(
            "engine: a statement ran out of its %d MB; running it again with %d MB",
            self._limit >> 20,
            RETRY_LIMIT >> 20,
        )
        self.con.execute(f"SET memory_limit = '{RETRY_LIMIT >> 20}MB'")
        try:
            return run()
        finally:
            self.con.execute(f"SET memory_limit = '{self._limit >> 20}MB'")

    def stream(
        self, sql: str, parameters: Sequence[object] | None = None, size: int = 4096
    ) -> Iterator[tuple[Any, ...]]:
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
        try:
            with path.open("wb") as handle:
                for row in rows:
                    handle.write(_ENCODER.encode(dict(zip(names, row, strict=True))))
                    handle.write(b"\n")
                    count += 1
            if count:
                spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
                self.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} "
                    f"FROM read_json(?, format='newline_delimited', columns={{{spec}}})",
                    [str(path)],
                )
        finally:
            path.unlink(missing_ok=True)
        return count

    def _log(self, started: float, sql: str) -> None:
        now = time.perf_counter()
        log.debug(
            "engine: at %.1f s, %.2f s: %s",
            now - self._started,
            now - started,
            " ".join(sql.split())[:70],
        )

    def close(self) -> None:
        self.con.close()
        release_scratch(self.scratch)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
