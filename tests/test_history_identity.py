"""History keeps its identity: across an issuer becoming known, across tenants, and in explain."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.history import store as history

CLI = Path(__file__).parent / "fixtures" / "cli"
ISSUER = "Contoso Issuing CA"


def run(db: Path, as_of: str, *extra: str, snapshot: Path = CLI / "snapshot"):
    done = CliRunner().invoke(
        app,
        [
            "run",
            "--ca-export", str(CLI / "issued.csv"),
            "--snapshot", str(snapshot),
            "--as-of", as_of,
            "--history-db", str(db),
            *extra,
        ],
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    return done


def findings(db: Path) -> list[tuple[str, str, int, int | None]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(
            conn.execute(
                "SELECT f.tenant, i.key, f.first_seen, f.resolved_at FROM findings f"
                " JOIN issuers i ON i.id = f.issuer_id"
            ).fetchall()
        )
    finally:
        conn.close()


def test_issuer_becoming_known_keeps_first_seen(tmp_path):
    db = tmp_path / "h.sqlite3"
    run(db, "2026-11-21T02:00:00Z")
    before = findings(db)
    assert before and all(key == "" for _t, key, _f, _r in before)
    later = run(db, "2026-11-22T02:00:00Z", "--ca-issuer", ISSUER)
    assert "0 new, 0 resolved" in later.stdout, later.stdout
    after = findings(db)
    assert len(after) == len(before)
    assert all(key and resolved is None for _t, key, _f, resolved in after)
    assert sorted(f for _t, _k, f, _r in after) == sorted(f for _t, _k, f, _r in before)
    out = tmp_path / "out"
    run(db, "2026-11-23T02:00:00Z", "--ca-issuer", ISSUER, "--json", str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["first_seen"] for r in rows} == {"2026-11-21T02:00:00Z"}
    assert {r["age_days"] for r in rows} == {2}


def _other_tenant(tmp_path: Path) -> Path:
    snapshot = tmp_path / "other-snapshot"
    shutil.copytree(CLI / "snapshot", snapshot)
    meta = json.loads((snapshot / "metadata.json").read_text(encoding="utf-8"))
    meta["tenant_id"] = "11111111-2222-4333-8444-555555555555"
    (snapshot / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return snapshot


def test_runs_of_another_tenant_never_diff_against_this_one(tmp_path):
    db = tmp_path / "h.sqlite3"
    first = run(db, "2026-11-21T02:00:00Z", "--ca-issuer", ISSUER)
    assert "First recorded run" in first.stdout
    other = run(db, "2026-11-21T12:00:00Z", "--ca-issuer", ISSUER, snapshot=_other_tenant(tmp_path))
    assert "First recorded run" in other.stdout, other.stdout
    again = run(db, "2026-11-22T02:00:00Z", "--ca-issuer", ISSUER)
    assert "Since run 20261121T020000Z" in again.stdout and "0 new, 0 resolved" in again.stdout
    tenants = {t for t, _k, _f, _r in findings(db)}
    assert tenants == {
        "00000000-0000-4000-8000-000000000001",
        "11111111-2222-4333-8444-555555555555",
    }
    conn = history.open_db(db)
    try:
        mine = history.list_runs(conn, tenant="00000000-0000-4000-8000-000000000001")
        assert [r.run_id[:16] for r in mine] == ["20261122T020000Z", "20261121T020000Z"]
    finally:
        conn.close()
    listing = CliRunner().invoke(app, ["history", "--history-db", str(db)])
    assert listing.exit_code == 0
    assert "tenant" in listing.stdout and "11111111-2222-4333-8444-555555555555" in listing.stdout


def test_version_1_database_is_migrated_keeping_spans(tmp_path):
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in history._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute(
        "INSERT INTO runs VALUES (1, 'r1', '2026-11-20T02:00:00Z', '2026-11-20T02:00:01Z',"
        " 'tenant-a', '[]', '{}', 1, 1.0)"
    )
    conn.execute("INSERT INTO issuers VALUES (1, 'issuer')")
    conn.execute(
        "INSERT INTO findings VALUES (7, 1, x'61', 'PC-01', 100, 100, 1, NULL, 'not_reported')"
    )
    conn.execute("INSERT INTO spans VALUES (7, 1, NULL)")
    conn.close()
    db = history.open_db(path)
    try:
        assert history.schema_version(db) == history.SCHEMA_VERSION
        # Runs recorded before the CA extent was kept have none: the next run checks nothing.
        assert db.execute("SELECT ca_extent FROM runs").fetchall() == [(None,)]
        assert db.execute("SELECT id, tenant, first_seen FROM findings").fetchall() == [
            (7, "tenant-a", 100)
        ]
        assert db.execute("SELECT * FROM spans").fetchall() == [(7, 1, None)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()


def explain(db: Path, as_of: str, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "explain", "PC-02",
            "--ca-export", str(CLI / "issued.csv"),
            "--snapshot", str(CLI / "snapshot"),
            "--ca-issuer", ISSUER,
            "--as-of", as_of,
            "--history-db", str(db),
            *extra,
        ],
    )  # fmt: skip


def test_explain_before_the_first_run_reports_no_history(tmp_path):
    db = tmp_path / "h.sqlite3"
    run(db, "2026-11-20T02:00:00Z", "--ca-issuer", ISSUER)
    run(db, "2026-11-21T02:00:00Z", "--ca-issuer", ISSUER)
    earlier = explain(db, "2026-11-19T02:00:00Z")
    assert earlier.exit_code == 0, earlier.output
    assert "first reported" not in earlier.stdout and "finding since" not in earlier.stdout
    later = explain(db, "2026-11-21T12:00:00Z")
    assert "first reported as a finding by reconcile" in later.stdout
    assert "finding since 2026-11-20T02:00:00Z (1 days)" in later.stdout


@pytest.mark.parametrize("old_schema", [False, True])
def test_explain_never_creates_or_migrates_a_history_database(tmp_path, old_schema):
    db = tmp_path / "h.sqlite3"
    if old_schema:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in history._MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.close()
        before = db.read_bytes()
    done = explain(db, "2026-11-21T02:00:00Z")
    assert done.exit_code == 0, done.output
    if old_schema:
        assert db.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sqlite3"]
    else:
        assert not db.exists()
