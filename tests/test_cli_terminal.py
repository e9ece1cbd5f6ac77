"""The CLI at a terminal: help that is true, one-line usage errors, JSON error records,
config discovery, `init`, `history --run`, and the demo's next steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.history import store as history
from reconcile.settings import load_toml, resolve, user_config_path
from tests.factories import AS_OF, ca_cert, result_with, verdict
from tests.helpers import record_run

CLI = Path(__file__).parent / "fixtures" / "cli"
COMMANDS = [
    ["run"],
    ["demo"],
    ["fetch"],
    ["doctor"],
    ["history"],
    ["trend"],
    ["verify"],
    ["init"],
    ["explain"],
    ["evidence", "add"],
    ["evidence", "list"],
    [],
]


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "reconcile")
def test_help_shows_flags_as_flags_and_no_python_types(command):
    result = invoke(*command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert not re.search(r"<(bool|int|str|path|float|list\[[^>]*\])>", result.stdout)
    assert "[default: 0]" not in result.stdout


def test_verbose_is_a_count_and_history_and_trend_take_it(tmp_path):
    help_text = invoke("run", "--help", env={"COLUMNS": "200"}).stdout
    assert "-vv" in help_text and "count" in help_text
    db = tmp_path / "h.sqlite3"
    conn = history.open_db(db)
    record_run(conn, result_with(verdict(ca=ca_cert(0x01)), run_id="run-0"), 1, 1)
    conn.close()
    assert invoke("history", "-v", "--history-db", str(db)).exit_code == 0
    assert invoke("trend", "-vv", "--history-db", str(db)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "fragment", "command"),
    [
        (["run", "--bogus"], "No such option: --bogus", "reconcile run"),
        (["trend", "--days", "-3"], "'--days'", "reconcile trend"),
        (["history", "--limit", "0"], "'--limit'", "reconcile history"),
        (["run", "--verbose", "2"], "unexpected extra argument", "reconcile run"),
        (["evidence", "add"], "Missing argument", "reconcile evidence add"),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(args, fragment, command):
    result = invoke(*args)
    assert result.exit_code == 2
    first, hint = result.stderr.splitlines()
    assert first.startswith("reconcile: error: ") and fragment in first
    assert hint == f"Try '{command} --help' for help."
    assert "╭" not in result.stderr and result.stdout == ""


def test_errors_name_the_flag_not_the_settings_field():
    result = invoke("run", "--as-of", "yesterday-ish", "--ca-export", str(CLI / "issued.csv"))
    assert result.exit_code == 2
    assert "invalid value for --as-of" in result.stderr
    assert "as_of" not in result.stderr


def test_with_json_logs_the_final_error_is_a_json_record():
    result = invoke("run", "--log-format", "json", "--as-of", "nope", "--ca-export", "x.csv")
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "--as-of" in record["message"]
    usage = invoke("run", "--log-format", "json", "--bogus")
    (line,) = usage.stderr.splitlines()
    record = json.loads(line)
    assert record["message"].startswith("No such option")
    assert record["hint"] == "Try 'reconcile run --help' for help."


def test_config_is_found_here_then_in_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text("[run]\ngrace_hours = 5\n", encoding="utf-8")
    assert resolve({}).grace_hours == 5
    (tmp_path / "reconcile.toml").write_text("[run]\ngrace_hours = 7\n", encoding="utf-8")
    assert resolve({}).grace_hours == 7
    explicit = tmp_path / "other.toml"
    explicit.write_text("[run]\ngrace_hours = 9\n", encoding="utf-8")
    assert resolve({}, {"RECONCILE_CONFIG": str(explicit)}).grace_hours == 9
    assert resolve({}, {}, config_path=explicit).grace_hours == 9


def test_an_unknown_key_gets_a_did_you_mean(tmp_path):
    path = tmp_path / "reconcile.toml"
    path.write_text("[run]\ngrace_hour = 5\n", encoding="utf-8")
    result = invoke("trend", "--config", str(path))
    assert result.exit_code == 2
    assert "unknown setting 'run.grace_hour'; did you mean 'run.grace_hours'?" in result.stderr


def test_init_writes_a_starter_that_loads_and_refuses_to_overwrite(tmp_path):
    first = invoke("init", str(tmp_path))
    assert first.exit_code == 0, first.output
    config, columns = tmp_path / "reconcile.toml", tmp_path / "reconcile-columns.toml"
    text = config.read_text(encoding="utf-8")
    assert "# grace_hours = 24.0" in text and "RECONCILE_GRACE_HOURS" in text
    assert set(load_toml(config)) == {"ca_exports", "tenant_id", "client_id"}
    assert 'format = "certutil"' in columns.read_text(encoding="utf-8")
    again = invoke("init", str(tmp_path))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert invoke("init", str(tmp_path), "--force").exit_code == 0


def test_history_run_shows_status_and_age_not_the_issuer_key(tmp_path):
    db = tmp_path / "h.sqlite3"
    conn = history.open_db(db)
    from datetime import timedelta

    for night in range(3):
        result = result_with(
            verdict(ca=ca_cert(0x0A), intune=None),
            run_id=f"run-{night}",
            as_of=AS_OF + timedelta(days=night),
        )
        record_run(conn, result, 1, 1)
    conn.close()
    shown = invoke("history", "--history-db", str(db), "--run", "run-2")
    assert shown.exit_code == 0, shown.output
    header, _, row = shown.stdout.splitlines()[:3]
    words = " ".join(header.split())
    assert words == "latest status serial device or subject first seen age (days)"
    assert row.split()[0] == "not_reported" and row.split()[-1] == "2"
    assert "contoso issuing ca" not in shown.stdout


def test_demo_prints_next_steps_and_reports_a_seeded_trend(tmp_path):
    out = tmp_path / "demo-output"
    result = invoke("demo", "--out-dir", str(out))
    assert result.exit_code == 0, result.output
    assert "Next, try:" in result.stderr
    assert str(out / "report.html") in result.stderr
    assert "reconcile explain " in result.stderr
    assert "Since run 20261119T020000Z" in result.stdout
    assert "Open longest:" in result.stdout
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Findings per run, 4 run(s)" in html
    assert (tmp_path / "demo-output.history.sqlite3").is_file()


def test_a_top_level_key_and_a_mistyped_env_var_get_a_hint(tmp_path, caplog):
    path = tmp_path / "reconcile.toml"
    path.write_text("grace_hours = 5\n", encoding="utf-8")
    result = invoke("trend", "--config", str(path))
    assert "must be a [table]; did you mean 'run.grace_hours'?" in result.stderr
    with caplog.at_level("WARNING", logger="reconcile"):
        resolve({}, {"RECONCILE_TENANT": "x"})
    assert "unknown environment variable RECONCILE_TENANT; did you mean RECONCILE_TENANT_ID?" in (
        caplog.text
    )
