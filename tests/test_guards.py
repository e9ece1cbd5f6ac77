"""A run that could not check what it was asked to never reports success (exit 2, no report)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.cli import app
from reconcile.errors import InputError
from reconcile.guards import check_extent
from reconcile.intune.side import Entry
from reconcile.model import CaExtent, PastExtent
from tests.engine.reference_guards import infer_issuers

CLI = Path(__file__).parent / "fixtures" / "cli"
AS_OF = "2026-11-20T02:00:00Z"
ISSUED = (CLI / "issued.csv").read_text(encoding="utf-8")


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env=env)


def run_args(*exports: Path, snapshot: Path = CLI / "snapshot", issuer: bool = True) -> list[str]:
    args = ["run"]
    for export in exports:
        args += ["--ca-export", str(export)]
    args += ["--snapshot", str(snapshot), "--as-of", AS_OF, "--no-history"]
    return args + (["--ca-issuer", "Contoso Issuing CA"] if issuer else [])


def one_line_error(result, out: Path) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert not out.exists()
    return errors[0]


def test_every_row_rejected_exits_2_naming_the_fix(tmp_path: Path) -> None:
    german = ISSUED.replace("11/", "31.13.")
    path = tmp_path / "de.csv"
    path.write_text(german, encoding="utf-8")
    out = tmp_path / "bundle"
    error = one_line_error(invoke(*run_args(path), "--out-dir", str(out)), out)
    assert f"{path}: 6 of 6 rows rejected" in error
    assert "first: line 2: Certificate Effective Date:" in error
    assert "--date-order" in error


def test_more_than_the_reject_ratio_exits_2_but_a_higher_ratio_reports(tmp_path: Path) -> None:
    lines = ISSUED.splitlines(keepends=True)
    lines[2] = lines[2].replace('"11/2/2026 10:00 AM"', '"not a date"')
    path = tmp_path / "one-bad.csv"
    path.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "bundle"
    error = one_line_error(invoke(*run_args(path), "--out-dir", str(out)), out)
    assert "1 of 6 rows rejected (more than ca.max_reject_ratio 0.05)" in error
    allowed = invoke(
        *run_args(path), "--out-dir", str(out), env={"RECONCILE_MAX_REJECT_RATIO": "0.2"}
    )
    assert allowed.exit_code == 1, allowed.output
    assert json.loads((out / "run.json").read_text())["rejects"]["count"] == 1


def test_an_export_with_no_rows_needs_allow_empty(tmp_path: Path) -> None:
    path = tmp_path / "header-only.csv"
    path.write_text(ISSUED.splitlines()[0] + "\n", encoding="utf-8")
    out = tmp_path / "bundle"
    error = one_line_error(invoke(*run_args(path), "--out-dir", str(out)), out)
    assert f"{path}: no in-scope certificate (no rows, none selected)" in error
    assert "--allow-empty" in error
    allowed = invoke(*run_args(path), "--allow-empty", "-q")
    assert allowed.exit_code == 0, allowed.output


def test_overlapping_exports_give_one_row_per_certificate(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    again = tmp_path / "again.csv"
    shutil.copy(CLI / "issued.csv", again)
    result = invoke(*run_args(CLI / "issued.csv", again), "--out-dir", str(out), "--all")
    assert result.exit_code == 1, result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["duplicate_rows"] == 6
    rows = list(
        csv.DictReader(io.StringIO((out / "certificates.csv").read_text(encoding="utf-8-sig")))
    )
    assert len(rows) == 6
    assert len({r["serial_number"] for r in rows}) == 6
    assert "duplicate rows collapsed" in result.stdout


def test_date_order_and_zone_are_named_in_summary_and_run_json(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = invoke(*run_args(CLI / "issued.csv"), "--out-dir", str(out))
    notes = json.loads((out / "run.json").read_text())["notes"]
    source = CLI / "issued.csv"
    assert f"{source}: date order mdy detected from line 7 (second field > 12)" in notes
    zone = (
        f"{source}: dates carry no zone (first at line 2): read as UTC; set --ca-timezone to "
        "the CA's zone"
    )
    assert zone in notes
    assert f"note: {zone}" in (out / "summary.txt").read_text(encoding="utf-8")
    assert "note: " in result.stdout
    assert result.stderr.count("dates carry no zone") == 1
    quiet = invoke(*run_args(CLI / "issued.csv"), "--ca-timezone", "Europe/Berlin", "-q")
    assert "dates carry no zone" not in quiet.stderr


def _entry(serial: int, issuer: str) -> Entry:
    return Entry(serial, None, issuer, True, None, "PC", "p", None, None, 0, serial)


def test_an_issuer_less_export_takes_the_issuer_of_nearly_all_its_matches(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.csv"
    rows = [f'"{n}","{n:040x}"' for n in range(1, 41)]
    path.write_text('"RequestID","SerialNumber"\n' + "\n".join(rows) + "\n", encoding="utf-8")
    reader = ExportReader(path, ReaderOptions())
    assert not reader.names_issuer
    entries = [_entry(n, "CN=Contoso CA") for n in range(1, 40)] + [_entry(40, "CN=Other CA")]
    chosen, notes = infer_issuers([(0, reader)], entries)
    assert chosen == {0: "CN=Contoso CA"}
    assert notes == [
        f"{path}: the export names no issuer; using CN=Contoso CA, which issued 39 of its 40 "
        "serials Intune knows (pass --ca-issuer to set it)"
    ]
    assert infer_issuers([(0, reader)], entries[:39]) == ({}, [])  # one CA: nothing to infer


def test_a_later_revoked_copy_in_another_export_gives_one_revoked_verdict(
    tmp_path: Path,
) -> None:
    head, *rows = ISSUED.splitlines()[:7]
    revoked = tmp_path / "revoked.csv"
    revoked_row = rows[1].replace('"EMPTY","20"', '"11/5/2026 10:00 AM","21"')
    revoked.write_text(head + "\n" + revoked_row + "\n", encoding="utf-8")
    out = tmp_path / "bundle"
    result = invoke(*run_args(CLI / "issued.csv", revoked), "--out-dir", str(out), "--all")
    assert result.exit_code == 1, result.output
    rows_out = list(
        csv.DictReader(io.StringIO((out / "certificates.csv").read_text(encoding="utf-8-sig")))
    )
    assert len(rows_out) == 6
    (row,) = [r for r in rows_out if r["serial_number"].endswith("066")]
    assert row["status"] == "revoked"
    assert row["source"] == f"{revoked}:2"
    meta = json.loads((out / "run.json").read_text())
    assert meta["duplicate_rows"] == 1
    assert f"{revoked}:2 (revoked) is kept over {CLI / 'issued.csv'}:3" in "\n".join(meta["notes"])
    assert meta["rejects"]["count"] == 0
    assert [i["rows"] for i in meta["inputs"] if i["kind"] == "ca-export"] == [6, 1]


def test_an_issuer_less_export_matching_several_cas_exits_2(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(CLI / "snapshot", snapshot)
    states = snapshot / "certificate_states.jsonl"
    extra = json.loads(states.read_text().splitlines()[0])
    extra.update(
        id="s4",
        certificateIssuer="CN=Fabrikam CA",
        certificateSerialNumber="6100000067AA11BB22CC33DD4400000000067",
    )
    states.write_text(states.read_text() + json.dumps(extra) + "\n")
    meta = json.loads((snapshot / "metadata.json").read_text())
    meta["counts"]["certificate_states"] = 4
    (snapshot / "metadata.json").write_text(json.dumps(meta))
    out = tmp_path / "bundle"
    args = run_args(CLI / "issued.csv", snapshot=snapshot, issuer=False)
    error = one_line_error(invoke(*args, "--out-dir", str(out)), out)
    assert "names no issuer and its serials match Intune records of several CAs" in error
    assert "pass --ca-issuer" in error
    named = invoke(*args, "--ca-issuer", "Contoso Issuing CA", "-q")
    assert named.exit_code == 1, named.output


CA_FIXTURES = Path(__file__).parent / "fixtures" / "ca"
ONE_PER_FORMAT = [
    "certutil-en.csv",
    "certutil-trailer.csv",
    "certutil-text-utf16.txt",
    "pspki-issued.csv",
    "pspki-de.csv",
    "ejbca-types.csv",
    "openssl-index-damaged.txt",
]


@pytest.mark.parametrize("name", ONE_PER_FORMAT)
def test_every_format_lists_each_certificate_once_even_exported_twice(
    name: str, tmp_path: Path
) -> None:
    from reconcile import pipeline
    from reconcile.settings import resolve

    copy = tmp_path / f"again-{name}"
    shutil.copy(CA_FIXTURES / name, copy)
    settings = resolve(
        {
            "ca_exports": [str(CA_FIXTURES / name), str(copy)],
            "snapshot": str(CLI / "snapshot"),
            "as_of": AS_OF,
            "no_history": True,
            "max_reject_ratio": 1.0,
            "allow_empty": True,
        },
        env={},
    )
    result = pipeline.run(settings, keep_all=True)
    keys = [(v.ca.issuer, v.ca.serial, v.ca.subject) for v in result.verdicts]
    assert keys and len(keys) == len(set(keys))
    assert result.duplicate_rows == len(keys)


def test_the_reject_ratio_has_a_flag_that_wins_over_the_env(tmp_path: Path) -> None:
    lines = ISSUED.splitlines(keepends=True)
    lines[2] = lines[2].replace('"11/2/2026 10:00 AM"', '"not a date"')
    path = tmp_path / "one-bad.csv"
    path.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "bundle"
    allowed = invoke(*run_args(path), "--out-dir", str(out), "--max-reject-ratio", "0.2")
    assert allowed.exit_code == 1, allowed.output
    assert json.loads((out / "run.json").read_text())["settings"]["max_reject_ratio"] == 0.2
    strict = invoke(
        *run_args(path),
        "--max-reject-ratio",
        "0.05",
        env={"RECONCILE_MAX_REJECT_RATIO": "0.2"},
    )
    assert strict.exit_code == 2
    assert "1 of 6 rows rejected (more than ca.max_reject_ratio 0.05)" in strict.stderr
    assert "raise --max-reject-ratio" not in strict.stderr  # the date fix is named instead
    wrong = invoke(*run_args(path), "--max-reject-ratio", "2")
    assert wrong.exit_code == 2
    assert "--max-reject-ratio must be between 0 and 1" in wrong.stderr


def test_an_explicit_date_order_and_zone_are_configured_not_guessed(tmp_path: Path) -> None:
    # Every date of this export is ambiguous (no field > 12) and carries no zone.
    path = tmp_path / "ambiguous.csv"
    path.write_text(ISSUED.replace("/19/", "/9/"), encoding="utf-8")
    source = str(path)
    guessed = invoke(*run_args(path), "--out-dir", str(tmp_path / "a"))
    notes = json.loads((tmp_path / "a" / "run.json").read_text())["notes"]
    assert any(n.startswith(f"{source}: date order mdy (default)") for n in notes), notes
    assert any("read as UTC" in n for n in notes), notes
    assert "dates carry no zone" in guessed.stderr
    told = invoke(
        *run_args(path),
        "--out-dir",
        str(tmp_path / "b"),
        "--date-order",
        "mdy",
        "--ca-timezone",
        "UTC",
    )
    notes = json.loads((tmp_path / "b" / "run.json").read_text())["notes"]
    assert any(n.startswith(f"{source}: date order mdy (configured)") for n in notes), notes
    assert not any("read as UTC" in n for n in notes), notes
    assert "dates carry no zone" not in told.stderr
    assert told.exit_code == guessed.exit_code


def test_a_bad_device_pattern_names_the_flag_or_variable_that_set_it(tmp_path: Path) -> None:
    flag = invoke(*run_args(CLI / "issued.csv"), "--device-pattern", "(")
    assert flag.exit_code == 2
    assert "--device-pattern is not a valid regular expression" in flag.stderr
    env = invoke(*run_args(CLI / "issued.csv"), env={"RECONCILE_DEVICE_PATTERN": "CN=(a)(b)"})
    assert env.exit_code == 2
    assert "RECONCILE_DEVICE_PATTERN must have exactly one capturing group" in env.stderr


def _resealed_snapshot(tmp_path: Path, **metadata: str) -> Path:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(CLI / "snapshot", snapshot)
    meta = json.loads((snapshot / "metadata.json").read_text())
    meta.update(metadata)
    (snapshot / "metadata.json").write_text(json.dumps(meta))
    return snapshot


def test_a_snapshot_of_another_tenant_than_configured_exits_2(tmp_path: Path) -> None:
    other = "11111111-1111-4111-8111-111111111111"
    out = tmp_path / "bundle"
    result = invoke(*run_args(CLI / "issued.csv"), "--tenant-id", other, "--out-dir", str(out))
    message = one_line_error(result, out)
    assert "00000000-0000-4000-8000-000000000001" in message
    assert other in message
    assert "(--tenant-id)" in message
    by_env = invoke(*run_args(CLI / "issued.csv"), env={"RECONCILE_TENANT_ID": other})
    assert by_env.exit_code == 2
    assert "unset RECONCILE_TENANT_ID" in by_env.stderr
    same = invoke(
        *run_args(CLI / "issued.csv"), "--tenant-id", "00000000-0000-4000-8000-000000000001"
    )
    assert same.exit_code == 1, same.output


def test_a_snapshot_weeks_older_than_as_of_is_said_in_stderr_summary_and_run_json(
    tmp_path: Path,
) -> None:
    snapshot = _resealed_snapshot(tmp_path, fetched_at="2026-10-01T00:00:00Z")
    out = tmp_path / "bundle"
    result = invoke(*run_args(CLI / "issued.csv", snapshot=snapshot), "--out-dir", str(out))
    assert result.exit_code == 1, result.output
    note = json.loads((out / "run.json").read_text())["notes"]
    stale = [n for n in note if "Intune data" in n]
    assert len(stale) == 1, note
    assert "fetched 2026-10-01T00:00:00Z, 50 days before as-of" in stale[0]
    assert stale[0] in (out / "summary.txt").read_text(encoding="utf-8")
    assert "WARNING" in result.stderr and "50 days before as-of" in result.stderr


def test_an_as_of_long_before_the_snapshot_was_fetched_is_said(tmp_path: Path) -> None:
    result = invoke(*run_args(CLI / "issued.csv"), "--as-of", "2026-10-01T00:00:00Z")
    assert "fetched 2026-11-20T01:30:00Z, 50 days after as-of" in result.stderr


def test_a_fresh_snapshot_says_nothing_about_its_age() -> None:
    result = invoke(*run_args(CLI / "issued.csv"))
    assert "Intune data" not in result.output


NEWEST = datetime(2026, 11, 19, 23, 0, tzinfo=UTC)


def extent(count: int = 6, newest: datetime | None = NEWEST, request: int | None = 106) -> CaExtent:
    return CaExtent("contoso issuing ca", "Contoso Issuing CA", count, newest, request, ("a.csv",))


def past(*extents: CaExtent) -> PastExtent:
    return PastExtent("run-1", datetime(2026, 11, 19, 2, 0, tzinfo=UTC), extents)


@pytest.mark.parametrize(
    ("now", "lost"),
    [
        (extent(request=105), "highest request id 105, but 106 in the last run (run-1, "),
        (
            extent(newest=NEWEST - timedelta(hours=1), request=None),
            "newest certificate issued 2026-11-19T22:00:00Z, but 2026-11-19T23:00:00Z in the",
        ),
    ],
)
def test_a_ca_losing_its_newest_rows_stops_unless_allowed(now: CaExtent, lost: str) -> None:
    with pytest.raises(InputError) as stopped:
        check_extent([now], past(extent()), allow_older=False)
    message = str(stopped.value)
    assert message.startswith(f"a.csv: Contoso Issuing CA: {lost}")
    assert "the export is missing rows" in message and "--allow-older-export" in message
    (note,) = check_extent([now], past(extent()), allow_older=True)
    assert note.startswith(f"a.csv: Contoso Issuing CA: {lost}")
    assert note.endswith("the export is missing rows (--allow-older-export)")


def test_growth_and_a_first_run_pass_silently() -> None:
    later = extent(7, NEWEST + timedelta(hours=1), 107)
    assert check_extent([later], past(extent()), allow_older=False) == []
    assert check_extent([extent()], past(extent()), allow_older=False) == []
    assert check_extent([extent()], None, allow_older=False) == []
    # Either side without a request id or a date: only what both have is compared.
    assert check_extent([extent(request=None)], past(extent(request=200)), False) == []
    assert check_extent([extent(newest=None)], past(extent()), allow_older=False) == []


def test_fewer_certificates_or_a_missing_ca_is_a_note() -> None:
    purged = extent(count=100)
    assert check_extent([purged], past(extent(count=101)), allow_older=False) == []
    (note,) = check_extent([purged], past(extent(count=102)), allow_older=False)
    assert note == (
        "a.csv: Contoso Issuing CA: 100 certificates, 102 in the last run (run-1, as of "
        "2026-11-19T02:00:00Z): rows purged from the CA database, or lost from the export"
    )
    other = CaExtent("fabrikam ca", "Fabrikam CA", 3, NEWEST, None, ("f.csv",))
    (gone,) = check_extent([extent()], past(extent(), other), allow_older=False)
    assert gone.startswith("Fabrikam CA: 3 certificates in the last run (run-1, as of ")
    assert gone.endswith(", in none of this run's exports")


def test_a_cut_export_after_a_full_one_exits_2_and_a_purge_is_a_note(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite3"

    def night(export: Path, day: int, *extra: str):  # type: ignore[no-untyped-def]
        args = [a for a in run_args(export) if a not in ("--no-history", AS_OF)]
        at = args.index("--as-of") + 1
        args[at:at] = [f"2026-11-{day}T02:00:00Z"]
        return invoke(*args, "--history-db", str(history), *extra)

    lines = ISSUED.splitlines(keepends=True)
    assert night(CLI / "issued.csv", 20).exit_code == 1
    purged = tmp_path / "purged.csv"
    purged.write_text(
        "".join(
            [
                lines[0],
                *lines[2:],
            ]
        ).replace("6 Rows", "5 Rows"),
        "utf-8",
    )
    noted = night(purged, 21)
    assert noted.exit_code == 1
    assert "Contoso Issuing CA: 5 certificates, 6 in the last run (" in noted.stderr
    # Cut at a row boundary, trailer and all: nothing in the file itself says so.
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(lines[:6]), encoding="utf-8")
    out = tmp_path / "bundle"
    error = one_line_error(night(cut, 22, "--out-dir", str(out)), out)
    assert f"{cut}: Contoso Issuing CA: highest request id 105, but 106 in the last run" in error
    allowed = night(cut, 22, "--allow-older-export")
    assert allowed.exit_code == 1
    assert "the export is missing rows (--allow-older-export)" in allowed.stderr
    # A replay of an earlier night compares with the runs up to it only.
    replay = night(cut, 19)
    assert replay.exit_code == 1, replay.stderr
    assert "last run" not in replay.stderr
