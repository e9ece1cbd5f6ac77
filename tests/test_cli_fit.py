"""explain, history, trend and doctor fit an 80-column terminal and use a 200-column one:
long values wrap at whole words, nothing useful is cut, and text stays safe after wrapping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from tests.helpers import assert_fits, columns
from tests.test_terminal import BIDI, CLI, CSI, _assert_clean, _inputs

WIDTHS = (80, 200)
# Long names with spaces, and escape sequences whose hidden part has spaces too, so a wrap
# done before sanitising could split one across lines.
DEVICE = (
    "Conference Room Display \x1b]8;;https://evil.example/ a b c\x1b\\click-me\x1b]8;;\x1b\\"
    " Building 7 North Wing Floor 3"
)
USER = "Henrietta Alexandra Mueller-Lüdenscheidt " + CSI + " of the Regional Office Team"
PROFILE = "Contoso Windows Device SCEP Profile for Shared Conference Room Displays " + BIDI


def invoke(width: int, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False)


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def long_snapshot(tmp_path: Path) -> Path:
    target = tmp_path / "snapshot"
    shutil.copytree(CLI / "snapshot", target)
    states = target / "certificate_states.jsonl"
    records = [json.loads(line) for line in states.read_text(encoding="utf-8").splitlines()]
    for record in records[:2]:
        record["deviceDisplayName"] = DEVICE
        record["userDisplayName"] = USER
        record["@reconcile.profileName"] = PROFILE
    states.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    meta = json.loads((target / "metadata.json").read_text(encoding="utf-8"))
    meta["tenant_id"] = "\x1b[8m" + meta["tenant_id"]
    (target / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return target


@pytest.fixture
def db(long_snapshot: Path, tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite3"
    for as_of in ("2026-11-19T02:00:00Z", "2026-11-20T02:00:00Z"):
        args = [*_inputs(long_snapshot)]
        args[args.index("--as-of") + 1] = as_of
        ran = invoke(200, "run", *args, "--history-db", str(path))
        assert ran.exit_code == 1, ran.output
    return path


def _next_steps(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if "next step:" in line]
    return [line.split("next step:", 1)[1].strip() for line in lines]


@pytest.mark.parametrize("query", ["PC-02", "6100000066aa11bb22cc33dd4400000000066"])
def test_explain_fits_and_keeps_every_next_step_whole(long_snapshot, db, query):
    args = ("explain", query, *_inputs(long_snapshot), "--history-db", str(db))
    unwrapped = invoke(1000, *args)
    assert unwrapped.exit_code == 0, unwrapped.output
    steps = _next_steps(unwrapped.stdout)
    assert steps and all(steps)
    for width in WIDTHS:
        shown = invoke(width, *args)
        assert shown.exit_code == 0, shown.output
        assert_fits(shown.stdout, width)
        _assert_clean(shown.stdout + shown.stderr)
        assert "…" not in shown.stdout and "..." not in shown.stdout
        for step in steps:
            assert step in words(shown.stdout)
        assert "click-me" in shown.stdout and "txt.exe" in shown.stdout
        assert words(shown.stdout) == words(unwrapped.stdout)
    narrow = invoke(80, *args).stdout.splitlines()
    # A wrapped field continues under its value.
    assert any(line.startswith(" " * 14) and line[14] != " " for line in narrow)


def test_history_lists_fit_and_keep_the_tenant_and_names_whole(db):
    wide = invoke(200, "history", "--history-db", str(db))
    assert wide.exit_code == 0, wide.output
    assert_fits(wide.stdout, 200)
    header, _, *rows = wide.stdout.splitlines()
    assert header.split() == ["run", "as_of", "tenant", "findings", "accepted", "exit", "seconds"]
    assert len(rows) == 2
    narrow = invoke(80, "history", "--history-db", str(db))
    assert narrow.exit_code == 0
    assert_fits(narrow.stdout, 80)
    _assert_clean(wide.stdout + narrow.stdout)
    # The columns after the run id move to tables of their own, each led by the run id; the
    # tenant id stays whole; every cell of the wide table is still there.
    tables = narrow.stdout.strip().split("\n\n")
    assert len(tables) > 1
    names = [n for t in tables for n in t.splitlines()[0].split() if n != "run"]
    assert names == header.split()[1:]
    for number, row in enumerate(rows):
        cells = row.split()
        assert [t.splitlines()[2 + number].split()[0] for t in tables] == [cells[0]] * len(tables)
        assert [c for t in tables for c in t.splitlines()[2 + number].split()[1:]] == cells[1:]
    run_id = rows[0].split()[0]
    for width in WIDTHS:
        members = invoke(width, "history", "--history-db", str(db), "--run", run_id)
        assert members.exit_code == 0, members.output
        assert_fits(members.stdout, width)
        _assert_clean(members.stdout)
        assert "6100000066AA11BB22CC33DD4400000000066" in members.stdout
        assert "click-me" in members.stdout


def test_trend_fits_80_columns_and_is_one_table_at_200(db):
    wide = invoke(200, "trend", "--history-db", str(db))
    assert wide.exit_code == 0, wide.output
    assert_fits(wide.stdout, 200)
    header, rule, *rows = wide.stdout.splitlines()
    assert len(rows) == 2 and header.split()[:2] == ["as_of", "findings"]
    narrow = invoke(80, "trend", "--history-db", str(db))
    assert narrow.exit_code == 0
    assert_fits(narrow.stdout, 80)
    tables = narrow.stdout.strip().split("\n\n")
    assert len(tables) > 1
    # Every table repeats the as_of column; together they hold every column of the wide one.
    columns = [name for t in tables for name in t.splitlines()[0].split() if name != "as_of"]
    assert columns == header.split()[1:]
    for table in tables:
        assert [line.split()[0] for line in table.splitlines()[2:]] == [r.split()[0] for r in rows]


def test_doctor_fits_and_shows_the_whole_fix():
    for width in WIDTHS:
        result = invoke(width, "doctor", "--tenant-id", "00000000-0000-0000-0000-000000000001")
        assert result.exit_code == 3
        assert_fits(result.stdout, width)
        # 80 columns: one block per check; 200: a table whose detail and fix cells wrap.
        table = width == 200
        assert result.stdout.startswith("FAIL  configuration\n") is not table
        text = " | ".join(columns(result.stdout)) if table else words(result.stdout)
        assert "no Graph credential configured: set RECONCILE_CLIENT_SECRET" in text
        assert "or choose --auth device-code or managed-identity" in text
        assert "correct the setting named above" in text and "…" not in text


def test_evidence_list_fits_and_keeps_the_log_path_whole(tmp_path):
    store = str(tmp_path / "evidence.db")
    log = Path(__file__).parent / "fixtures" / "evidence" / "android-certrep-failure.log"
    added = invoke(200, "evidence", "add", str(log), "--device", DEVICE, "--evidence-db", store)
    assert added.exit_code == 0, added.output
    for width in WIDTHS:
        listed = invoke(width, "evidence", "list", "--evidence-db", store)
        assert listed.exit_code == 0, listed.output
        assert_fits(listed.stdout, width)
        _assert_clean(listed.stdout)
        assert f"{log}:3" in listed.stdout and "click-me" in listed.stdout
