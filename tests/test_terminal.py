"""External text reaches the terminal without escape sequences or bidi overrides, in every
command that prints it (run, explain, history, evidence list)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.terminal import REPLACEMENT, safe

CLI = Path(__file__).parent / "fixtures" / "cli"
AS_OF = "2026-11-20T02:00:00Z"
# An OSC-8 hyperlink shown as "click-me", CSI colour and cursor codes, 8-bit CSI, a bidi
# override that would show "exe.txt" as "txt.exe", and the formula the CSV tests already use.
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click-me\x1b]8;;\x1b\\"
CSI = "\x1b[31;1mred\x1b[0m\x1b[2J"
BIDI = "report\u202etxt.exe"
C1 = "\x9b31mX\x07bell"
HOSTILE = '=HYPERLINK("http://evil.example","x")'
FORBIDDEN = ("\x1b", "\x9b", "\x07", "\u202e", "evil.example/")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (OSC8, f"{REPLACEMENT}click-me{REPLACEMENT}"),
        (CSI, f"{REPLACEMENT}red{REPLACEMENT}{REPLACEMENT}"),
        (BIDI, f"report{REPLACEMENT}txt.exe"),
        (C1, f"{REPLACEMENT}X{REPLACEMENT}bell"),
        ("\u2066isolated\u2069", f"{REPLACEMENT}isolated{REPLACEMENT}"),
        (HOSTILE, HOSTILE),
        ("Café デバイス", "Café デバイス"),
        ("two\nlines\ttab", f"two{REPLACEMENT}lines{REPLACEMENT}tab"),
        (None, ""),
    ],
)
def test_safe_replaces_sequences_and_controls(raw, shown):
    assert safe(raw) == shown


def test_multiline_keeps_newlines_and_tabs_only():
    assert safe(f"a\n\tb{CSI}\r", multiline=True) == (
        f"a\n\tb{REPLACEMENT}red{REPLACEMENT}{REPLACEMENT}{REPLACEMENT}"
    )


@pytest.fixture
def hostile_snapshot(tmp_path: Path) -> Path:
    """The CLI fixture snapshot with hostile device, user, profile names and tenant id."""
    target = tmp_path / "snapshot"
    shutil.copytree(CLI / "snapshot", target)
    states = target / "certificate_states.jsonl"
    records = [json.loads(line) for line in states.read_text(encoding="utf-8").splitlines()]
    records[0]["deviceDisplayName"] = OSC8
    records[0]["userDisplayName"] = CSI
    records[0]["@reconcile.profileName"] = BIDI
    records[1]["userDisplayName"] = C1
    states.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    meta = json.loads((target / "metadata.json").read_text(encoding="utf-8"))
    meta["tenant_id"] = "\x1b[8m" + meta["tenant_id"]
    (target / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return target


def _inputs(snapshot: Path) -> list[str]:
    return [
        "--ca-export",
        str(CLI / "issued.csv"),
        "--snapshot",
        str(snapshot),
        "--ca-issuer",
        "Contoso Issuing CA",
        "--as-of",
        AS_OF,
    ]


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _assert_clean(text: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, repr(bad)


def test_run_explain_and_history_print_no_control_sequences(hostile_snapshot, tmp_path):
    db = tmp_path / "history.sqlite3"
    ran = _invoke("run", *_inputs(hostile_snapshot), "--history-db", str(db), "--all")
    assert ran.exit_code == 1, ran.output
    explained = _invoke("explain", "PC-01", *_inputs(hostile_snapshot), "--history-db", str(db))
    assert explained.exit_code == 0, explained.output
    listed = _invoke("history", "--history-db", str(db))
    run_id = listed.stdout.split("\n")[2].split()[0]
    members = _invoke("history", "--history-db", str(db), "--run", run_id)
    for result in (ran, explained, listed, members):
        _assert_clean(result.stdout + result.stderr)
    assert "click-me" in explained.stdout and "txt.exe" in explained.stdout
    assert HOSTILE in ran.stdout and HOSTILE in members.stdout


def test_evidence_list_prints_no_control_sequences(tmp_path):
    db = tmp_path / "evidence.db"
    log = Path(__file__).parent / "fixtures" / "evidence" / "android-certrep-failure.log"
    added = _invoke("evidence", "add", str(log), "--device", OSC8, "--evidence-db", str(db))
    assert added.exit_code == 0, added.output
    listed = _invoke("evidence", "list", "--evidence-db", str(db))
    assert listed.exit_code == 0, listed.output
    _assert_clean(added.stdout + listed.stdout + listed.stderr)
    assert "click-me" in listed.stdout and "android" in listed.stdout
    assert "android-certrep-failure.log" in listed.stdout


def test_json_log_lines_escape_what_json_dumps_leaves_raw():
    import io
    import logging

    from reconcile.logsetup import configure
    from reconcile.terminal import json_safe

    stream = io.StringIO()
    configure(0, "json", (), stream)
    try:
        logging.getLogger("reconcile").warning("device %s", OSC8 + BIDI + C1)
    finally:
        configure(0, "text", (), io.StringIO())
    line = stream.getvalue().strip()
    _assert_clean(line.replace("evil.example/", ""))
    assert json.loads(line)["message"] == "device " + OSC8 + BIDI + C1
    assert json_safe('"\u202e"') == '"\\u202e"'


def test_text_log_lines_are_made_safe():
    import io
    import logging

    from reconcile.logsetup import configure

    stream = io.StringIO()
    configure(0, "text", (), stream)
    try:
        logging.getLogger("reconcile").warning("rejected: %s", OSC8)
    finally:
        configure(0, "text", (), io.StringIO())
    _assert_clean(stream.getvalue())
    assert "click-me" in stream.getvalue()
