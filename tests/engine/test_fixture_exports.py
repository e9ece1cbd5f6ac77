"""Real exports, read as a run reads them: the engine's tally, issuer inference and collapsing
give what the Python passes give, on every fixture format and the overlaps real runs see."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.engine import guards as engine_guards
from reconcile.engine.db import Database
from reconcile.engine.dedupe import collapse
from reconcile.engine.snapshot import load_snapshot
from reconcile.engine.tables import (
    CA_COLUMNS,
    ca_record,
    create_tables,
    load_certificates,
    load_side,
)
from reconcile.errors import UsageError
from reconcile.model import CaCertificate
from tests.engine import reference_guards
from tests.engine.reference_dedupe import Collapser
from tests.engine.reference_snapshot import SnapshotSource

FIXTURES = Path(__file__).parent.parent / "fixtures"
CA = FIXTURES / "ca"
_columns = ", ".join(c for c in CA_COLUMNS if c != "seq")
DELIVERED = frozenset({"installed"})


def _read(paths: Sequence[Path]) -> tuple[list[CaCertificate], frozenset[str]]:
    certs: list[CaCertificate] = []
    index = set()
    for path in paths:
        with ExportReader(path, ReaderOptions()) as reader:
            certs += [c for c in reader if isinstance(c, CaCertificate)]
            if reader.format == "openssl-index":
                index.add(str(path))
    return certs, frozenset(index)


def _revoked_copy(tmp_path: Path) -> Path:
    """issued.csv's second row again, revoked (a revoked export combined with the issued one)."""
    head, _, second, *_ = (FIXTURES / "cli" / "issued.csv").read_text().splitlines()
    path = tmp_path / "revoked.csv"
    path.write_text(
        head + "\n" + second.replace('"EMPTY","20"', '"11/5/2026 10:00 AM","21"') + "\n"
    )
    return path


def _reused(tmp_path: Path) -> Path:
    """An index.txt that reuses serials for other subjects, and repeats a line."""
    lines = (CA / "openssl-index.txt").read_text().splitlines()
    path = tmp_path / "index.txt"
    path.write_text("\n".join([*lines, lines[0].replace("CN=", "CN=other-"), lines[1]]) + "\n")
    return path


RUNS = {
    "issued and revoked exports": lambda tmp: [FIXTURES / "cli" / "issued.csv", _revoked_copy(tmp)],
    "revoked first": lambda tmp: [_revoked_copy(tmp), FIXTURES / "cli" / "issued.csv"],
    "pspki issued and revoked": lambda tmp: [CA / "pspki-issued.csv", CA / "pspki-revoked.csv"],
    "every format twice": lambda tmp: [
        CA / name
        for name in (
            "certutil-en.csv",
            "certutil-trailer.csv",
            "certutil-text-utf16.txt",
            "pspki-issued.csv",
            "pspki-de.csv",
            "ejbca-types.csv",
            "ejbca-certificatedata.csv",
            "openssl-index-damaged.txt",
        )
        for _ in range(2)
    ],
    "index.txt reusing serials": lambda tmp: [_reused(tmp), CA / "openssl-index.txt"],
}


# The fixtures of several formats share serials: exported twice, they disagree across files.
OVERLAPPING = set(RUNS) - {"pspki issued and revoked"}


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("templates", [(), ("Intune-SCEP",), ("nothing-matches",)])
def test_a_run_over_real_exports_collapses_and_counts_alike(
    run: str, templates: tuple[str, ...], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs, index = _read(RUNS[run](tmp_path))
    tally = reference_guards.Tally(certs, templates)
    collapser = Collapser(index)
    with caplog.at_level(logging.WARNING, logger="reconcile"):
        passed = list(collapser.first_copies(tally))
        collapser.finish()
        python_log = caplog.messages
        caplog.clear()
        if collapser.replay_needed:
            passed = list(collapser.winners(certs))
        with Database() as db:
            create_tables(db)
            load_certificates(db, certs)
            counts, in_scope = engine_guards.tally(db, templates)
            found = collapse(db, index)
            kept = [ca_record(r) for r in db.rows(f"SELECT {_columns} FROM ca ORDER BY seq")]
    assert list(counts.items()) == list(tally.templates.items())
    assert list(in_scope.items()) == list(tally.in_scope.items())
    assert kept == passed
    assert found.warnings == tuple(collapser.warnings)
    assert caplog.messages == python_log
    assert (found.duplicate_rows, found.replay_needed) == (
        collapser.duplicate_rows,
        collapser.replay_needed,
    )
    assert bool(found.warnings) == bool(found.duplicate_rows) == (run in OVERLAPPING)


def _snapshot(tmp_path: Path, extra_issuer: str | None) -> Path:
    """The CLI fixture snapshot, with one more record of another CA when asked."""
    snapshot = tmp_path / "snapshot"
    source = FIXTURES / "cli" / "snapshot"
    snapshot.mkdir()
    for item in source.iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    if extra_issuer is not None:
        states = snapshot / "certificate_states.jsonl"
        extra = json.loads(states.read_text().splitlines()[0])
        extra.update(
            id="s4",
            certificateIssuer=extra_issuer,
            certificateSerialNumber="6100000067AA11BB22CC33DD4400000000067",
        )
        states.write_text(states.read_text() + json.dumps(extra) + "\n")
        meta = json.loads((snapshot / "metadata.json").read_text())
        meta["counts"]["certificate_states"] += 1
        (snapshot / "metadata.json").write_text(json.dumps(meta))
    return snapshot


@pytest.mark.parametrize("native", [False, True], ids=["side loaded", "snapshot read natively"])
@pytest.mark.parametrize("extra_issuer", [None, "CN=Fabrikam CA"])
def test_issuer_inference_over_the_cli_fixtures_decides_alike(
    extra_issuer: str | None, native: bool, tmp_path: Path
) -> None:
    export = FIXTURES / "cli" / "issued.csv"
    directory = _snapshot(tmp_path, extra_issuer)
    with SnapshotSource(directory, DELIVERED) as snapshot:
        reader = ExportReader(export, ReaderOptions())
        try:
            expected: object = reference_guards.infer_issuers([(0, reader)], snapshot.side.entries)
        except UsageError as exc:
            expected = str(exc)
        finally:
            reader.close()
        certs, _ = _read([export])
        with Database() as db, ExitStack() as stack:
            create_tables(db)
            load_certificates(db, certs)
            if native:
                stack.enter_context(load_snapshot(db, directory, DELIVERED))
            else:
                load_side(db, snapshot.side)
            try:
                found: object = engine_guards.infer_issuers(db, [(0, str(export))])
            except UsageError as exc:
                found = str(exc)
    assert found == expected
    assert (extra_issuer is None) == isinstance(found, tuple)
