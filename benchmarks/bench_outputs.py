"""What writing a large run's outputs costs in memory: a RunResult with N findings (and as
many Intune records unknown to the CA, and 1.5 N view-only verdicts: the 10M-row run's
proportions) written as the CSV, JSON Lines, view CSVs, HTML page and run.json.

Each measurement runs in a child process (peak RSS from wait4), with the reconcile that the
given interpreter imports, so the same script measures two trees:

    python benchmarks/bench_outputs.py                         # this tree, 500,000 findings
    python benchmarks/bench_outputs.py --python /work/main/.venv/bin/python   # another tree
    python benchmarks/bench_outputs.py --findings 50000 --summary   # summary.txt as well
    python benchmarks/bench_outputs.py --findings 50000 --keep /tmp/a   # keep the files
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _verdicts(n: int, view_only: bool) -> Iterator[Any]:
    from reconcile.model import (
        CaCertificate,
        IntuneCertificate,
        IntuneSource,
        ManagedDevice,
        Status,
        Verdict,
    )

    start = 0x10_0000_0000 + (10 * n if view_only else 0)
    for i in range(start, start + n):
        name = f"DESKTOP-{i:010X}"
        ca = CaCertificate(
            serial=i << 64,
            thumbprint=f"{i:040X}",
            issuer="Contoso Issuing CA",
            subject=f"CN={name}",
            common_name=name,
            requester=None if view_only else "CONTOSO\\svc-ndes",
            template_oid="1.3.6.1.4.1.311.21.8.1.2",
            template_name=None if view_only else "Intune-SCEP",
            request_id=None if view_only else str(i),
            not_before=AS_OF - timedelta(days=300, seconds=i % 86400),
            not_after=AS_OF + timedelta(days=10 if view_only else 65, seconds=i % 86400),
            revoked_at=None,
            source="ca_export.csv",
            line=i - start + 2,
        )
        record = IntuneCertificate(
            source=IntuneSource.STATES,
            record_id="" if view_only else f"state-{i:x}",
            serial=None if view_only else i << 64,
            thumbprint=None,
            issuer=None,
            state="installed" if view_only else "failed",
            delivered=view_only,
            device_name=name,
            device_id=f"{i:08x}-0000-4000-8000-{i:012x}",
            user=f"user{i % 5000}@contoso.com",
            profile_id="profile-1",
            profile_name="Windows SCEP",
            platform=None if view_only else "windows10AndLater",
            issued_at=AS_OF - timedelta(days=300),
            expires_at=None,
            state_changed_at=None if view_only else AS_OF - timedelta(days=2),
            error_code=None if view_only else -2016281112,
        )
        device = ManagedDevice(
            f"dev-{i:x}", name, None, None, f"user{i % 5000}@contoso.com", "Windows", AS_OF
        )
        if view_only:
            yield Verdict(ca, Status.DELIVERED, "", record, device, next_step="nothing")
            continue
        yield Verdict(
            ca,
            Status.NOT_INSTALLED if i % 3 else Status.NOT_REPORTED,
            f"Intune reports state 'failed' since {AS_OF.date()}",
            record if i % 3 else None,
            device,
            next_step="device-side install failure: check the device's DeviceManagement log",
            ca_device=name,
        )


def _unknown(n: int) -> Iterator[Any]:
    from reconcile.model import IntuneCertificate, IntuneSource

    for i in range(n):
        yield IntuneCertificate(
            source=IntuneSource.STATES,
            record_id=f"unknown-{i:x}",
            serial=(i + 7) << 72,
            thumbprint=f"{i:040X}",
            issuer="CN=Contoso Issuing CA, DC=contoso, DC=com",
            state="installed",
            delivered=True,
            device_name=f"LAPTOP-{i:010X}",
            device_id=f"{i:08x}-1111-4000-8000-{i:012x}",
            user=f"user{i % 5000}@contoso.com",
            profile_id="profile-2",
            profile_name="Windows SCEP",
            platform="windows10AndLater",
            issued_at=AS_OF - timedelta(days=30),
            expires_at=AS_OF + timedelta(days=335),
            state_changed_at=AS_OF - timedelta(days=29),
            error_code=None,
        )


def _result(findings: int) -> Any:
    """The RunResult as the pipeline hands it over: spooled where this tree spools."""
    from dataclasses import replace

    from reconcile import views
    from reconcile.model import InputFile, RunResult

    try:
        from reconcile.model import verdict_spool
        from reconcile.spool import Spool
    except ImportError:  # a tree before spools: everything in tuples
        verdicts: Any = tuple(_verdicts(findings, False))
        unknown: Any = tuple(_unknown(findings * 47 // 50))
        kept_for_views: Any = (*verdicts, *_verdicts(findings * 3 // 2, True))
    else:
        verdicts = verdict_spool(_verdicts(findings, False))
        unknown = Spool.of(_unknown(findings * 47 // 50))
        kept_for_views = itertools.chain(verdicts, Spool.of(_verdicts(findings * 3 // 2, True)))
    inputs = (InputFile("ca_export.csv", "ca-export", "certutil", "0" * 64, findings, 0),)
    result = RunResult(
        run_id="20261120T020000Z-bench",
        as_of=AS_OF,
        grace_hours=24.0,
        verdicts=verdicts,
        unknown_to_ca=unknown,
        rejects=(),
        inputs=inputs,
    )
    built = views.build(kept_for_views, [], inputs, views.ViewOptions(as_of=AS_OF))
    del kept_for_views
    return replace(result, views=built)


def _write(result: Any, out: Path, summary: bool) -> None:
    from reconcile.report import bundle, csvout, html, jsonl, table
    from reconcile.report.atomic import write_atomic
    from reconcile.report.document import Report
    from reconcile.views import View

    report = Report(result)
    options = bundle.OutputOptions(bundle_inputs="reference")
    bundle.write_csv(out / "findings.csv", report, options)
    bundle.write_json(out / "findings.jsonl", report)
    write_atomic(
        out / "unknown-to-ca.csv",
        functools.partial(csvout.write_unknown_to_ca, report=report),
        encoding=options.csv_encoding,
        newline="",
    )
    write_atomic(
        out / "unknown-to-ca.jsonl", functools.partial(jsonl.write_unknown_to_ca, report=report)
    )
    for view in View:
        bundle.write_view_csv(out / f"{view.value}.csv", view, report, options)
    write_atomic(out / "report.html", lambda h: html.write(h, report), encoding="utf-8")
    meta = bundle.run_metadata(report, options, ["bench"], 1)
    writer = getattr(meta, "write", None)
    write_atomic(out / "run.json", writer or (lambda h: h.write(meta.dumps())))
    if summary:
        write_atomic(out / "summary.txt", functools.partial(table.write, report=report))


def child(findings: int, summary: bool, keep: Path | None) -> None:
    import reconcile

    started = time.perf_counter()
    result = _result(findings)
    built, built_peak = time.perf_counter() - started, _peak_mib()
    with tempfile.TemporaryDirectory(prefix="bench-outputs-") as tmp:
        out = keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        _write(result, out, summary)
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.iterdir()) / (1 << 20)
    views = result.views
    print(
        f"reconcile from {Path(reconcile.__file__).parent.parent}\n"
        f"findings {len(result.findings):,}, unknown_to_ca {len(result.unknown_to_ca):,}, "
        f"view rows {sum(views.counts().values()):,}; outputs {size:,.0f} MiB\n"
        f"build {built:.1f} s (peak {built_peak:,.0f} MiB), write {written:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=500_000)
    parser.add_argument("--summary", action="store_true", help="write summary.txt as well")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (tree) to run")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.findings, args.summary, args.keep)
        return 0
    command = [args.python, __file__, "--child", "--findings", str(args.findings)]
    if args.summary:
        command.append("--summary")
    if args.keep:
        command += ["--keep", str(args.keep.absolute())]
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "PYTHONHASHSEED": "0"})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    print(f"wall {seconds:.1f} s, peak RSS {usage.ru_maxrss / 1024:,.0f} MiB")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
