"""Run history: findings appear, age and resolve across runs; a crash leaves the database intact."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.errors import ConfigError
from reconcile.history import store as history
from reconcile.model import CaExtent, Status
from reconcile.report import historytext
from tests.factories import AS_OF, ca_cert, result_with, verdict
from tests.helpers import engine_of, record_run, run_findings

ISSUER_A = "CN=Contoso Issuing CA, DC=contoso, DC=com"


def finding(serial: int, status: Status = Status.NOT_REPORTED, issuer: str = ISSUER_A):
    return verdict(status, ca=ca_cert(serial, issuer=issuer, common_name=f"PC-{serial:X}"))


def night(day: int, *verdicts, run_id: str | None = None):
    return result_with(*verdicts, run_id=run_id or f"run-{day}", as_of=AS_OF + timedelta(days=day))


@pytest.fixture
def db(tmp_path):
    conn = history.open_db(tmp_path / "history.sqlite3")
    yield conn
    conn.close()


def by_serial(result):
    return {v.ca.serial: v for v in result.verdicts}


def test_findings_appear_age_and_resolve(db):
    first, delta1 = record_run(db, night(0, finding(1), finding(2)), 1, 1.5)
    assert delta1.previous_run_id is None
    assert {r.serial for r in delta1.new} == {"01", "02"}
    assert all(v.new_since_last_run and v.age_days == 0 for v in first.verdicts)

    delivered = verdict(Status.DELIVERED, ca=ca_cert(9))
    second, delta2 = record_run(
        db, night(3, finding(2, Status.NOT_INSTALLED), finding(3), delivered), 1, 1.0
    )
    seen = by_serial(second)
    assert seen[2].first_seen == AS_OF and seen[2].age_days == 3
    assert seen[2].new_since_last_run is False
    assert seen[3].new_since_last_run is True and seen[3].age_days == 0
    assert seen[9].first_seen is None and seen[9].new_since_last_run is None
    assert delta2.previous_run_id == "run-0"
    assert [r.serial for r in delta2.new] == ["03"]
    assert [(r.serial, r.label, r.status) for r in delta2.resolved] == [
        ("01", "PC-1", "not_reported")
    ]
    assert [(r.serial, r.age_days) for r in delta2.longest_open] == [("02", 3)]

    text = historytext.format_delta(delta2)
    assert text.splitlines()[0] == "Since run run-0: 1 new, 1 resolved, 2 open."
    assert "Resolved:\n  01 PC-1 (not_reported, first seen 2026-11-20, 3 d)" in text
    assert "Open longest:\n  02 PC-2 (not_installed, first seen 2026-11-20, 3 d)" in text

    day0, day3 = int(AS_OF.timestamp()), int((AS_OF + timedelta(days=3)).timestamp())
    row = db.execute(
        "SELECT first_seen, last_seen, times_seen, resolved_at, last_status FROM findings"
        " WHERE serial = x'02'"
    ).fetchone()
    assert row == (day0, day3, 2, None, "not_installed")
    resolved = db.execute("SELECT resolved_at FROM findings WHERE serial = x'01'").fetchone()
    assert resolved == (day3,)


def test_reopened_finding_keeps_first_seen_and_counts_as_new(db):
    record_run(db, night(0, finding(1)), 1, 1)
    record_run(db, night(1), 0, 1)
    again, delta = record_run(db, night(5, finding(1)), 1, 1)
    reopened = again.verdicts[0]
    assert reopened.first_seen == AS_OF and reopened.age_days == 5
    assert reopened.new_since_last_run is True
    assert [r.serial for r in delta.new] == ["01"]
    row = db.execute("SELECT times_seen, resolved_at FROM findings").fetchone()
    assert row == (2, None)
    assert run_findings(db, "run-0") == [("contoso issuing ca", "01", "PC-1")]
    assert run_findings(db, "run-1") == []
    assert run_findings(db, "run-5") == [("contoso issuing ca", "01", "PC-1")]


def test_reopened_and_new_findings_in_one_run(db):
    """Reopened ones keep their row (status and label updated), new ones get rows in order."""
    record_run(db, night(0, finding(1), finding(2)), 1, 1)
    record_run(db, night(1), 0, 1)
    renamed = verdict(
        Status.NOT_INSTALLED, ca=ca_cert(1, issuer=ISSUER_A, common_name="PC-RENAMED")
    )
    again, delta = record_run(db, night(2, finding(4), renamed, finding(3)), 1, 1)
    assert sorted(r.serial for r in delta.new) == ["01", "03", "04"]
    assert {v.ca.serial: v.first_seen for v in again.verdicts} == {
        1: AS_OF,
        3: AS_OF + timedelta(days=2),
        4: AS_OF + timedelta(days=2),
    }
    rows = db.execute(
        "SELECT id, hex(serial), label, last_status, times_seen, resolved_at FROM findings"
        " ORDER BY id"
    ).fetchall()
    assert [row[1:] for row in rows] == [
        ("01", "PC-RENAMED", "not_installed", 2, None),
        ("02", "PC-2", "not_reported", 1, int((AS_OF + timedelta(days=1)).timestamp())),
        ("04", "PC-4", "not_reported", 1, None),
        ("03", "PC-3", "not_reported", 1, None),
    ]


def test_same_serial_from_two_issuers_are_two_findings(db):
    other = "CN=Fabrikam Issuing CA"
    annotated, delta = record_run(db, night(0, finding(5), finding(5, issuer=other)), 1, 1)
    assert len(delta.new) == 2
    assert db.execute("SELECT count(*) FROM findings").fetchone() == (2,)


def test_accepted_findings_leave_the_open_set(db):
    record_run(db, night(0, finding(1)), 1, 1)
    _, delta = record_run(db, night(1, finding(1, Status.ACCEPTED)), 0, 1)
    assert [r.serial for r in delta.resolved] == ["01"]


def test_runs_and_trend_listing(db):
    record_run(db, night(0, finding(1), finding(2)), 1, 2.25)
    record_run(db, night(1, finding(2), finding(3, Status.NOT_INSTALLED)), 1, 1)
    runs = history.list_runs(db)
    assert [r.run_id for r in runs] == ["run-1", "run-0"]
    assert runs[1].duration == 2.25 and runs[1].exit_code == 1
    assert runs[0].counts["not_installed"] == 1
    assert [r.run_id for r in history.trend(db)] == ["run-0", "run-1"]
    recent = history.trend(db, days=1, now=AS_OF + timedelta(days=1, hours=12))
    assert [r.run_id for r in recent] == ["run-1"]
    table = historytext.format_trend(history.trend(db))
    assert table.splitlines()[2].split()[:4] == ["2026-11-20T02:00:00Z", "2", "2", "0"]


def test_crash_mid_run_leaves_the_database_as_it_was(tmp_path):
    path = tmp_path / "history.sqlite3"
    conn = history.open_db(path)
    record_run(conn, night(0, finding(1), finding(2)), 1, 1)
    conn.close()
    before = _dump(path)
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from reconcile.history import store as history
        from tests.helpers import record_run
        from tests.history.test_store import finding, night

        def crash(step):
            if step == "inserted":
                os._exit(9)

        db = history.open_db(Path({str(path)!r}))
        record_run(db, night(1, finding(2), finding(3)), 1, 1, hook=crash)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True
    )
    assert done.returncode == 9, done.stderr
    conn = history.open_db(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert _dump(path) == before


def test_error_mid_run_rolls_back(db):
    record_run(db, night(0, finding(1)), 1, 1)

    def fail(step):
        if step == "resolved":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        record_run(db, night(1, finding(2)), 1, 1, hook=fail)
    assert [r.run_id for r in history.list_runs(db)] == ["run-0"]
    assert db.execute("SELECT serial, resolved_at FROM findings").fetchall() == [(b"\x01", None)]


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_new_database_is_migrated_and_uses_wal(tmp_path):
    conn = history.open_db(tmp_path / "h.sqlite3")
    assert history.schema_version(conn) == history.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    again = history.open_db(tmp_path / "h.sqlite3")
    versions = again.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(v,) for v in range(1, history.SCHEMA_VERSION + 1)]
    again.close()


def test_database_from_a_newer_reconcile_is_refused(tmp_path):
    path = tmp_path / "h.sqlite3"
    history.open_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?)", (history.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer than this reconcile"):
        history.open_db(path)


def test_not_a_database_is_a_config_error(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="cannot use history database"):
        history.open_db(path)


def test_history_and_trend_commands(tmp_path):
    path = tmp_path / "history.sqlite3"
    conn = history.open_db(path)
    record_run(conn, night(0, finding(1)), 1, 1)
    record_run(conn, night(1), 0, 1)
    conn.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["history", "--history-db", str(path)])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.index("run-1") < listed.stdout.index("run-0")
    members = runner.invoke(app, ["history", "--history-db", str(path), "--run", "run-0"])
    assert "PC-1" in members.stdout
    trend = runner.invoke(app, ["trend", "--history-db", str(path)])
    assert trend.exit_code == 0
    assert trend.stdout.index("2026-11-20") < trend.stdout.index("2026-11-21")
    missing = runner.invoke(app, ["history", "--history-db", str(tmp_path / "none.sqlite3")])
    assert missing.exit_code == 2
    assert "no run history yet" in missing.stderr


def test_each_view_count_is_recorded_per_run_and_shown_in_the_trend(db):
    from reconcile.views import ViewOptions, build

    gone = verdict(Status.NOT_REPORTED, ca=ca_cert(9, common_name="PC-9"), device_gone=True)
    with engine_of() as engine:
        views = build((gone,), engine, (), ViewOptions(as_of=AS_OF))
    result = result_with(gone, run_id="run-views", views=views)
    record_run(db, result, 1, 1)
    record_run(db, night(1, finding(2)), 1, 1)
    older, newer = history.trend(db)
    assert older.counts["revocation_plan"] == 1 and older.counts["revoked_installed"] == 0
    assert "revocation_plan" not in newer.counts
    table = historytext.format_trend(history.trend(db)).splitlines()
    assert table[0].split()[-3:] == ["revoked_installed", "expiring", "revocation_plan"]
    assert table[2].split()[-3:] == ["0", "0", "1"] and table[3].split()[-3:] == ["0", "0", "0"]


def test_each_run_records_its_ca_extent_for_the_next(tmp_path):
    options = history.HistoryOptions(path=tmp_path / "h.sqlite3")
    assert history.past_extent(options, None, AS_OF) is None
    reach = CaExtent("contoso issuing ca", "Contoso Issuing CA", 6, AS_OF, 2**70, ("a.csv",))
    db = history.open_db(tmp_path / "h.sqlite3")
    try:
        record_run(db, replace(night(0), ca_extent=(reach,)), 0, 1.0)
        # A run that read no export (Cloud PKI alone) is not what the next one compares with.
        record_run(db, night(1), 0, 1.0)
    finally:
        db.close()
    found = history.past_extent(options, None, AS_OF + timedelta(days=2))
    assert found == history.PastExtent("run-0", AS_OF, (reach,))
    assert history.past_extent(options, None, AS_OF - timedelta(seconds=1)) is None
    assert history.past_extent(options, "another-tenant", AS_OF) is None
    assert history.past_extent(replace(options, enabled=False), None, AS_OF) is None
