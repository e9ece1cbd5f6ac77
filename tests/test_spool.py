"""Spools: re-iterable, sized, frozen sequences that keep one batch in memory and the rest in
a scratch file; and the lazy views and the external sort built on them."""

from __future__ import annotations

import gc
import os
import pickle
import re
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile import pipeline, spool
from reconcile.model import (
    CertificateProfile,
    FindingRef,
    InputFile,
    IntuneSource,
    Reject,
    RunResult,
    Status,
    Verdict,
    verdict_spool,
)
from reconcile.report import bundle
from reconcile.report.document import Report
from reconcile.spool import Filtered, Head, Mapped, Sorter, Spool, sort_spooled
from reconcile.views import PlanTarget, RevocationReason, View, ViewRow
from tests.factories import AS_OF, ca_cert, device, intune_cert, result_with, verdict
from tests.helpers import demo_settings, examples, killed_after_first_line


@pytest.fixture(autouse=True)
def spill_beyond_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No memory budget: every spool spills as soon as it outgrows its buffer."""
    monkeypatch.setattr(spool, "BUDGET", 0)


def _named_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _open_scratch(folder: Path) -> int:
    """How many files this process holds open in ``folder`` (a spool's have no name there)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to see open files")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        count += target.startswith(f"{folder}{os.sep}")
    return count


def test_a_spool_reads_back_twice_in_order_and_counts(tmp_path: Path) -> None:
    items = Spool.of(range(10), buffer=3, directory=tmp_path)
    assert len(items) == 10
    assert list(items) == list(range(10))
    assert list(items) == list(range(10))
    assert items == tuple(range(10)) and tuple(range(10)) == items
    assert items != tuple(range(9)) and items != (*range(9), 99)
    assert items[0] == 0 and items[9] == 9 and items[-1] == 9 and items[2:5] == (2, 3, 4)
    assert items[::-3] == (9, 6, 3, 0)
    with pytest.raises(IndexError):
        items[10]
    assert bool(items) and not Spool.of(())


def test_nested_reads_of_one_spool_do_not_disturb_each_other(tmp_path: Path) -> None:
    items = Spool.of(range(7), buffer=2, directory=tmp_path)
    pairs = [(a, b) for a in items for b in items]
    assert pairs == [(a, b) for a in range(7) for b in range(7)]


def test_a_small_spool_never_touches_the_disk(tmp_path: Path) -> None:
    items = Spool.of(range(5), buffer=5, directory=tmp_path)
    assert not items.spilled and _open_scratch(tmp_path) == 0
    assert _named_files(tmp_path) == []
    assert list(items) == [0, 1, 2, 3, 4]


def test_beyond_its_buffer_a_spool_spills_to_a_nameless_scratch_file(tmp_path: Path) -> None:
    items = Spool.of((f"record {i}" for i in range(1000)), buffer=64, directory=tmp_path)
    assert items.spilled and _open_scratch(tmp_path) == 1
    assert _named_files(tmp_path) == []
    assert list(items) == [f"record {i}" for i in range(1000)]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_run_leaves_no_scratch_file_behind(tmp_path: Path) -> None:
    """What the OOM killer does to a 10M-row run: nothing it spilled stays on disk."""
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from reconcile import spool
        spool.BUDGET = 0
        items = spool.Spool.of(range(100_000), buffer=100, directory=Path({str(tmp_path)!r}))
        assert items.spilled
        print("spilled", flush=True)
        time.sleep(60)
        """
    )
    assert killed_after_first_line(code)[0] == "spilled"
    assert _named_files(tmp_path) == []


def test_within_the_memory_budget_no_spool_spills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "BUDGET", 1000)
    held = spool._Held.count
    first = Spool.of(range(600), buffer=8, directory=tmp_path)
    assert not first.spilled and spool._Held.count == held + 600
    second = Spool.of(range(600), buffer=8, directory=tmp_path)
    assert second.spilled and not first.spilled
    assert list(second) == list(range(600)) and spool._Held.count <= held + 1000
    second.close()
    del first
    gc.collect()
    assert spool._Held.count == held and _open_scratch(tmp_path) == 0


def test_close_removes_the_scratch_file(tmp_path: Path) -> None:
    items = Spool.of(range(100), buffer=8, directory=tmp_path)
    assert _open_scratch(tmp_path) == 1
    items.close()
    assert _open_scratch(tmp_path) == 0
    items.close()
    assert len(items) == 0


def test_a_spool_no_longer_referenced_removes_its_scratch_file(tmp_path: Path) -> None:
    items = Spool.of(range(100), buffer=8, directory=tmp_path)
    assert _open_scratch(tmp_path) == 1
    del items
    gc.collect()
    assert _open_scratch(tmp_path) == 0


@pytest.mark.parametrize("spills", [False, True])
def test_a_drained_spool_gives_each_record_once_in_order_then_lets_them_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spills: bool
) -> None:
    """Half read, a drained spool holds only what is still to come."""
    if not spills:
        monkeypatch.setattr(spool, "BUDGET", 10_000)
    held = spool._Held.count
    items = Spool.of(([i] for i in range(100)), buffer=8, directory=tmp_path)
    assert items.spilled == spills
    drained = items.drain()
    first = [next(drained) for _ in range(60)]
    if not spills:
        assert spool._Held.count == held + 40
    rest = list(drained)
    assert first + rest == [[i] for i in range(100)]
    assert len(items) == 0 and spool._Held.count == held and _open_scratch(tmp_path) == 0


def test_a_spool_is_drained_only_once_frozen() -> None:
    items: Spool[int] = Spool()
    items.append(1)
    with pytest.raises(ValueError, match="not frozen"):
        next(items.drain())


def test_a_spool_is_appended_then_frozen_then_read() -> None:
    items: Spool[int] = Spool(buffer=2)
    items.append(1)
    with pytest.raises(ValueError, match="not frozen"):
        list(items)
    items.extend([2, 3])
    items.freeze()
    assert list(items) == [1, 2, 3]
    with pytest.raises(ValueError, match="frozen"):
        items.append(4)
    with pytest.raises(ValueError, match="at least one"):
        Spool(buffer=0)


def test_a_tally_counts_as_records_are_appended(tmp_path: Path) -> None:
    verdicts = [
        Verdict(ca_cert(i), status, "why")
        for i, status in enumerate([Status.NOT_REPORTED, Status.DELIVERED, Status.NOT_REPORTED])
    ]
    spooled = verdict_spool(verdicts)
    assert spooled.tallied and spooled.tally() == {Status.NOT_REPORTED: 2, Status.DELIVERED: 1}
    assert not Spool.of(verdicts).tallied and Spool.of(verdicts).tally() == {}


def _records() -> list[object]:
    """One of every record a run spools, with every optional part filled in."""
    ca = ca_cert(
        0x1234567890ABCDEF1234567890ABCDEF12,
        thumbprint="AB" * 20,
        revoked_at=AS_OF - timedelta(days=1),
        san="DNS=pc-01.contoso.com",
        out_of_scope="a CA certificate",
        managed_device_id="dev-1",
        cloud_pki_leaf_id="leaf-1",
        not_before=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
    )
    record = intune_cert(0x99, state="failed", error_code=-2016281112, subject="CN=PC-01")
    report_row = replace(record, source=IntuneSource.REPORT, serial=None, issued_at=None)
    full = Verdict(
        ca,
        Status.NOT_INSTALLED,
        "Intune reports state 'failed' — ünïcode",
        intune=record,
        device=device(),
        device_gone=True,
        device_candidates=(device("PC-01"), device("PC-01", id="dev-2")),
        next_step="check",
        first_seen=AS_OF,
        age_days=3,
        new_since_last_run=False,
        evidence="log",
        ca_device="PC-01",
    )
    target = PlanTarget.of(ca, RevocationReason.SUPERSEDED, None)
    return [
        ca,
        record,
        report_row,
        device(),
        CertificateProfile("p1", None, "#microsoft.graph.windows81SCEPCertificateProfile"),
        Reject("ca.csv", 7, "bad serial"),
        InputFile("ca.csv", "ca-export", "certutil", "00" * 32, 10, 1),
        full,
        Verdict(ca_cert(), Status.DELIVERED, ""),
        ViewRow(View.REVOCATION_PLAN, full, "review", reason=RevocationReason.SUPERSEDED),
        ViewRow(View.EXPIRING, full, "check", days_left=-1),
        FindingRef("CN=CA", "0A", None, "not_reported", AS_OF, 0),
        target,
    ]


def test_every_record_type_comes_back_equal_and_of_its_own_type(tmp_path: Path) -> None:
    records = _records()
    back = list(Spool.of(records, buffer=1, directory=tmp_path))
    assert back == records
    assert [type(r) for r in back] == [type(r) for r in records]
    verdict = back[7]
    assert isinstance(verdict, Verdict)
    assert verdict.status is Status.NOT_INSTALLED
    assert verdict.intune is not None and verdict.intune.source is IntuneSource.STATES
    assert verdict.ca.not_before is not None and verdict.ca.not_before.utcoffset() == timedelta(
        hours=2
    )
    assert verdict.first_seen is not None and verdict.first_seen.tzinfo is UTC


class _Reduced:
    """An object that says how to rebuild itself."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type, tuple[int]]:
        return _Reduced, (self.value,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reduced) and other.value == self.value


def test_what_is_no_dataclass_pickles_to_the_bytes_pickle_itself_writes() -> None:
    objects = [
        datetime(2026, 11, 20, 2, tzinfo=timezone(timedelta(hours=2))),
        timedelta(days=3),
        UTC,
        Status.NOT_INSTALLED,
        IntuneSource.REPORT,
        complex(1, 2),
        re.compile("PC-[0-9]+"),
        _Reduced(7),
        Verdict,
        Status,
        len,
    ]
    first = spool.dumps(objects)  # the second pickling uses the reducers this one stored
    assert spool.dumps(objects) == first == pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)
    assert spool.loads(first) == objects


def test_filtered_mapped_and_head_are_lazy_sized_views() -> None:
    source = Spool.of(range(10), buffer=3)
    evens = Filtered(source, lambda n: n % 2 == 0)
    assert list(evens) == [0, 2, 4, 6, 8] and len(evens) == 5 and evens == (0, 2, 4, 6, 8)
    assert not Filtered(source, lambda n: n > 99) and Filtered(source, bool, count=9)
    squares = Mapped(source, lambda n: n * n)
    assert len(squares) == 10 and squares[3] == 9 and list(squares)[-1] == 81
    assert list(Head(source, 4)) == [0, 1, 2, 3] and len(Head(source, 40)) == 10
    assert not Head(source, 0) and not Head((), 3)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers()), max_size=60),
    st.integers(1, 7),
)
def test_the_external_sort_is_sorted_and_stable(items: list[tuple[int, int]], run: int) -> None:
    expected = sorted(items, key=lambda item: item[0])
    assert list(sort_spooled(items, key=lambda item: item[0], buffer=2, run=run)) == expected
    sorter: Sorter[tuple[int, int]] = Sorter(lambda item: item[0], run=run)
    for item in items:
        sorter.append(item)
    assert list(sorter.result()) == expected


def test_the_external_sort_leaves_no_scratch_files(tmp_path: Path) -> None:
    result = sort_spooled(range(100, 0, -1), key=lambda n: n, run=7, directory=tmp_path)
    assert list(result) == list(range(1, 101))
    result.close()
    assert _open_scratch(tmp_path) == 0 and _named_files(tmp_path) == []


@pytest.mark.parametrize("source_spilled", [False, True])
def test_a_copy_of_verdicts_spills_only_where_its_source_did(
    monkeypatch: pytest.MonkeyPatch, source_spilled: bool
) -> None:
    """A copy shares its source's records: of a source in memory it stays in memory (even past
    the budget, here none), of a spilled one it spills too."""
    monkeypatch.setattr(spool, "BUFFER", 4)
    if not source_spilled:
        monkeypatch.setattr(spool, "BUDGET", 10_000)
    source = verdict_spool(verdict(ca=ca_cert(0x1000 + i)) for i in range(20))
    assert source.spilled == source_spilled
    monkeypatch.setattr(spool, "BUDGET", 0)
    copy = verdict_spool((replace(v, next_step="x") for v in source), copy_of=source)
    assert copy.spilled == source_spilled
    assert [v.ca.serial for v in copy] == [0x1000 + i for i in range(20)]
    assert copy.tally() == {Status.NOT_REPORTED: 20}
    in_memory = [verdict(ca=ca_cert(0x2000 + i)) for i in range(20)]
    assert not verdict_spool(iter(in_memory), copy_of=in_memory).spilled


def test_findings_and_counts_of_a_spooled_run_need_no_pass() -> None:
    verdicts = verdict_spool(
        [
            Verdict(ca_cert(1), Status.NOT_REPORTED, ""),
            Verdict(ca_cert(2), Status.ACCEPTED, ""),
            Verdict(ca_cert(3), Status.NOT_INSTALLED, ""),
        ]
    )
    result = replace(result_with(), verdicts=verdicts)
    assert [v.ca.serial for v in result.findings] == [1, 3]
    assert len(result.findings) == 2
    assert result.counts()["accepted"] == 1 and result.counts()["not_reported"] == 1
    only_findings = replace(result, verdicts=Filtered(verdicts, lambda v: v.is_finding))
    assert only_findings.findings == result.findings
    assert replace(result, verdicts=verdict_spool(result.findings)).findings is not None


def _bundle(result: RunResult, folder: Path) -> dict[str, bytes]:
    out = bundle.write_bundle(
        folder,
        Report(result, all_rows=True),
        bundle.OutputOptions(bundle_inputs="reference"),
        ["run"],
        1,
    )
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_a_run_that_spills_every_spool_writes_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo run with every spool, sort run and merge batch a record or two long gives the
    same files, byte for byte, as with the default buffers (which never spill on the demo)."""
    monkeypatch.undo()  # the default buffers and budget, for the run to compare with
    in_memory = _bundle(pipeline.run(demo_settings(), keep_all=True), tmp_path / "memory")
    monkeypatch.setattr(spool, "BUDGET", 0)
    monkeypatch.setattr(spool, "BUFFER", 1)
    monkeypatch.setattr(spool, "SORT_RUN", 2)
    monkeypatch.setattr(spool, "MERGE_BATCH", 1)
    result = pipeline.run(demo_settings(), keep_all=True)
    assert isinstance(result.verdicts, Spool) and result.verdicts.spilled
    assert result.views is not None and len(result.views.revocation_plan) > 2
    assert _bundle(result, tmp_path / "spilled") == in_memory
