"""Records survive the trip into the engine's tables and back unchanged."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from reconcile.engine.db import Database
from reconcile.engine.tables import (
    CA_COLUMNS,
    ca_record,
    create_tables,
    load_certificates,
    load_side,
)
from reconcile.intune.side import IntuneSide
from tests.factories import ca_cert, device, intune_cert
from tests.helpers import killed_after_first_line


def test_a_certificate_comes_back_as_it_went_in() -> None:
    cert = ca_cert(
        0x0A1B2C3D4E5F60718293A4B5C6D7E8F901234567,
        revoked_at=datetime(2026, 3, 1, 12, 30, 1, 123456, tzinfo=UTC),
        out_of_scope="a CA certificate",
        managed_device_id="dev-1",
        san="DNS=pc-01.example.com",
    )
    with Database() as db:
        create_tables(db)
        assert load_certificates(db, [cert, ca_cert(0)]) == 2
        names = ", ".join(c for c in CA_COLUMNS if c != "seq")
        rows = db.rows(f"SELECT {names} FROM ca ORDER BY seq")
    assert [ca_record(row) for row in rows] == [cert, ca_cert(0)]


def test_shared_device_names_keep_every_device() -> None:
    side = IntuneSide.from_records(
        [intune_cert(0x10)], [device("PC-01", id="a"), device("pc-01", id="b"), device("PC-02")]
    )
    with Database() as db:
        create_tables(db)
        load_side(db, side)
        names = db.rows("SELECT key, dev FROM device_names ORDER BY dev")
        serials = db.rows("SELECT serial FROM intune")
    assert names == [("pc-01", 0), ("pc-01", 1), ("pc-02", 2)]
    assert serials == [("10",)]


def test_the_scratch_directory_goes_with_the_database() -> None:
    db = Database()
    scratch = db.scratch
    db.execute("CREATE TABLE t (x INTEGER)")
    db.close()
    assert not scratch.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_next_run_removes_the_engine_folder_a_killed_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The OOM killer runs no cleanup: the spilled joins stay until the next run."""
    code = textwrap.dedent(
        f"""
        import tempfile, time
        tempfile.tempdir = {str(tmp_path)!r}
        from reconcile.engine.db import Database
        db = Database()
        (db.scratch / "spill.bin").write_bytes(b"x" * 1000)
        print(db.scratch, flush=True)
        time.sleep(60)
        """
    )
    line, pid = killed_after_first_line(code)
    left = Path(line)
    assert left.name.startswith(f"reconcile-engine-{pid}-") and left.is_dir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="reconcile"), Database() as db:
        assert not left.exists()
        assert [p.name for p in tmp_path.iterdir()] == [db.scratch.name]
    assert f"removed {left}, left by a run that was killed" in caplog.text


def test_a_running_engine_s_folder_is_never_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another live process's folder, this process's own open one, and names of other shapes
    stay."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = tmp_path / f"reconcile-engine-{os.getppid()}-abc123"
    other = tmp_path / "reconcile-engine-notapid"
    for folder in (live, other):
        folder.mkdir()
    with Database() as first, Database() as second:
        assert first.scratch.exists() and second.scratch.exists()
        assert live.exists() and other.exists()


def test_the_memory_limit_grows_with_the_join_and_never_shrinks() -> None:
    with Database() as db:
        db.fit(1_000)
        small = db.rows("SELECT current_setting('memory_limit')")
        db.fit(20_000_000)
        large = db.rows("SELECT current_setting('memory_limit')")
        db.fit(1_000)
        after = db.rows("SELECT current_setting('memory_limit')")
    assert small != large == after


def test_a_statement_out_of_memory_runs_again_with_more_then_the_limit_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A list aggregate cannot spill: 4M integers in one list need far more than 16 MB.
    big = "SELECT list(i) AS l FROM range(4000000) t(i)"
    with Database(memory_limit=16 << 20) as db:
        limit = db.rows("SELECT current_setting('memory_limit')")
        with pytest.raises(duckdb.OutOfMemoryException):
            db.con.execute(f"CREATE TABLE direct AS {big}")
        with caplog.at_level(logging.WARNING, logger="reconcile"):
            db.execute(f"CREATE TABLE t AS {big}")
            ((length,),) = db.rows(f"SELECT len(l) FROM ({big})")
        assert db.rows("SELECT count(*) FROM t") == [(1,)] and length == 4_000_000
        assert db.rows("SELECT current_setting('memory_limit')") == limit
    assert caplog.text.count("ran out of its 16 MB; running it again with 2048 MB") == 2


def test_after_the_join_the_limit_follows_its_rows_within_bounds() -> None:
    def after(rows: int) -> str:
        with Database() as db:
            db.fit(rows)
            db.after_join()
            ((limit,),) = db.rows("SELECT current_setting('memory_limit')")
            return str(limit)

    # The floor for a 1M-row join, 25 bytes a row at 10M, the cap beyond.
    assert after(2_000_000) == after(0)
    assert len({after(0), after(20_000_000), after(200_000_000)}) == 3


def test_a_reopened_engine_holds_only_what_it_was_given_and_the_same_limit() -> None:
    with Database() as db:
        db.execute(
            "CREATE TABLE t AS SELECT i, i::VARCHAR AS s, [i, i + 1] AS l, i % 2 = 0 AS even "
            "FROM range(1000) r(i)"
        )
        db.execute("CREATE TABLE gone AS SELECT 1 AS x")
        db.fit(20_000_000)
        limit = db.rows("SELECT current_setting('memory_limit')")
        before = db.rows("SELECT * FROM t WHERE even ORDER BY i")
        types = db.rows("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM t)")
        db.reopen({"t": "FROM t WHERE even", "odd": "SELECT i FROM t WHERE NOT even"})
        assert db.rows("SELECT * FROM t ORDER BY i") == before
        assert db.rows("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM t)") == types
        assert db.rows("SELECT count(*), min(i) FROM odd") == [(500, 1)]
        assert db.rows("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'gone'") == [(0,)]
        assert db.rows("SELECT current_setting('memory_limit')") == limit


def test_a_scratch_folder_with_a_quote_in_its_name_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "it's here"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    with Database() as db:
        assert db.scratch.parent == folder
        db.execute("CREATE TABLE t AS SELECT 1 AS x")
        db.reopen({"t": "FROM t"})
        assert db.rows("SELECT x FROM t") == [(1,)]
