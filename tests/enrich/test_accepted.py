"""Accepted exceptions: sign-offs with an owner and an expiry; expired ones flag again."""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.enrich import accepted
from reconcile.enrich.advice import next_step, with_next_steps
from reconcile.errors import ConfigError
from reconcile.model import Status
from tests.factories import AS_OF, ca_cert, device, intune_cert, result_with, verdict
from tests.test_cli import base_args

NOT_INSTALLED = "06100000066AA11BB22CC33DD4400000000066"
NOT_REPORTED = "06:10:00:00:06:7A:A1:1B:B2:2C:C3:3D:D4:40:00:00:00:00:67"


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("reconcile"), "propagate", True)
    caplog.set_level(logging.INFO, logger="reconcile")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exceptions.toml"
    path.write_text(text, encoding="utf-8")
    return path


def entry(target: str, expires: str = "2026-12-31", extra: str = "") -> str:
    return (
        f'[[exception]]\n{target}\nreason = "kiosk retired"\nowner = "pki-team"\n'
        f"expires = {expires}\n{extra}\n"
    )


def test_serial_match_is_accepted_with_owner_and_reason(tmp_path):
    rules = accepted.load(write(tmp_path, entry('serial = "10:00"')))
    found = verdict(Status.NOT_REPORTED, ca=ca_cert(0x1000), reason="Intune has no record")
    other = verdict(Status.NOT_REPORTED, ca=ca_cert(0x1001))
    delivered = verdict(Status.DELIVERED, ca=ca_cert(0x1000))
    out = accepted.apply([found, other, delivered], rules.entries, AS_OF)
    assert [v.status for v in out] == [Status.ACCEPTED, Status.NOT_REPORTED, Status.DELIVERED]
    assert out[0].reason == (
        "accepted until 2026-12-31 by pki-team: kiosk retired"
        " (was not_reported: Intune has no record)"
    )
    assert rules.input_file.kind == "exceptions" and len(rules.input_file.sha256) == 64


def test_an_accepted_finding_gets_the_advice_of_its_new_status(tmp_path):
    """The join gives each finding its next step as it builds it; accepting it drops that
    step, so the run's advice is the accepted status's, not the old one's."""
    rules = accepted.load(write(tmp_path, entry('serial = "10:00"')))
    found = verdict(Status.NOT_REPORTED, ca=ca_cert(0x1000))
    found = replace(found, next_step=next_step(found))
    out = accepted.apply([found], rules.entries, AS_OF)
    assert out[0].status is Status.ACCEPTED and out[0].next_step == ""
    result = with_next_steps(result_with(*out))
    assert [v.next_step for v in result.verdicts] == ["nothing: accepted as an exception"]


def test_device_match_by_name_or_id_any_case(tmp_path):
    rules = accepted.load(write(tmp_path, entry('device = "pc-01"') + entry('device = "dev-X"')))
    by_name = verdict(Status.NOT_INSTALLED, intune=intune_cert(state="failed", device_name="PC-01"))
    by_id = verdict(Status.NOT_INSTALLED, device=device("X"))
    assert {v.status for v in accepted.apply([by_name, by_id], rules.entries, AS_OF)} == {
        Status.ACCEPTED
    }


def test_issuer_limits_the_match(tmp_path):
    rules = accepted.load(write(tmp_path, entry('serial = "1000"', extra='issuer = "Other CA"')))
    (out,) = accepted.apply([verdict(ca=ca_cert(0x1000))], rules.entries, AS_OF)
    assert out.status is Status.NOT_REPORTED


def test_valid_through_expiry_day_then_flags_again_with_warning(tmp_path, caplog):
    rules = accepted.load(write(tmp_path, entry('serial = "1000"', expires="2026-11-20")))
    finding = verdict(ca=ca_cert(0x1000))
    (today,) = accepted.apply([finding], rules.entries, AS_OF)
    assert today.status is Status.ACCEPTED
    (tomorrow,) = accepted.apply([finding], rules.entries, AS_OF.replace(day=21))
    assert tomorrow.status is Status.NOT_REPORTED
    assert "exception #1 (serial 1000, owner pki-team) expired on 2026-11-20" in caplog.text
    assert "1 finding(s) it covered are flagged again" in caplog.text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (entry('serial = "xyz"'), "exception #1: serial number 'xyz' is not hexadecimal"),
        (entry('serial = "1"\ndevice = "PC"'), "exception #1: give exactly one of"),
        (entry('device = "PC"', expires='"31/12/2026"'), "exception #1: 'expires' '31/12/2026'"),
        (entry('device = "PC"', expires="2026-12-31T00:00:00Z"), "not a date-time"),
        (
            '[[exception]]\ndevice = "PC"\nowner = "x"\nexpires = 2026-01-01\n',
            "'reason' is required",
        ),
        (entry('device = "PC"') + entry('device = ""'), "exception #2: 'device' must be non-empty"),
        (entry('device = "PC"', extra='until = "x"'), "exception #1: unknown key(s): until"),
        ("[exception]\nserial = 1\n", "must be an array of tables"),
        ("exception = [", "invalid TOML"),
    ],
)
def test_bad_entries_name_file_and_entry(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        accepted.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_run_marks_accepted_and_records_the_file_as_input(tmp_path):
    rules = write(
        tmp_path,
        entry(f'serial = "{NOT_INSTALLED}"') + entry(f'serial = "{NOT_REPORTED}"', "2026-01-01"),
    )
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app, [*base_args("--no-history"), "--exceptions", str(rules), "--out-dir", str(out)]
    )
    assert done.exit_code == 1, done.output
    assert "exception #2" in done.stderr and "expired on 2026-01-01" in done.stderr
    text = (out / "findings.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["status"] for r in rows] == ["not_reported"]
    assert "accepted" in (out / "summary.txt").read_text(encoding="utf-8")
    assert str(rules) in (out / "run.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("pattern", [None, r"^(PC-\d+)$"])
def test_device_exception_covers_a_finding_known_only_from_the_ca(tmp_path, pattern):
    """PC-03 has no Intune record at all: its device comes from the CA certificate."""
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(
        '[[exception]]\ndevice = "pc-03"\nreason = "lab machine"\nowner = "ops"\n'
        'expires = "2027-01-31"\n',
        encoding="utf-8",
    )
    out = tmp_path / "findings.csv"
    extra = ["--device-pattern", pattern] if pattern else []
    done = CliRunner().invoke(
        app, base_args("--exceptions", str(exceptions), "--all", "--csv", str(out), *extra)
    )
    assert done.exit_code == 1, done.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    row = next(r for r in rows if r["request_id"] == "103")
    assert row["intune_state"] == "" and row["device_in_intune"] == ""
    assert row["status"] == "accepted"
    assert row["reason"].startswith("accepted until 2027-01-31 by ops: lab machine")
    assert row["device_name"] == "PC-03"


def test_hostile_exceptions_files_are_one_line_config_errors(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        accepted.load(deep)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.toml"
        os.mkfifo(fifo)
        with pytest.raises(ConfigError, match="not a regular file"):
            accepted.load(fifo)
