"""A year of nightly runs with 100,000 open findings: database size and time to record one run.

Targets (issue 4): the database stays under 200 MB after 365 runs, and recording one run's
findings takes under 5 s. Each night 1 % of the open findings resolve and as many new ones appear.

    .venv/bin/python benchmarks/bench_history.py [--runs 365] [--findings 100000] [--churn 0.01]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconcile.history import store as history
from reconcile.model import CaCertificate, RunResult, Status, Verdict

ISSUERS = ("Contoso Issuing CA 1", "Contoso Issuing CA 2")


def verdict(serial: int) -> Verdict:
    ca = CaCertificate(
        serial=serial,
        thumbprint=None,
        issuer=ISSUERS[serial % 2],
        subject=f"CN=device-{serial}",
        common_name=f"device-{serial}",
        requester=None,
        template_oid=None,
        template_name="Intune SCEP",
        request_id=str(serial),
        not_before=None,
        not_after=None,
        revoked_at=None,
        source="export.csv",
        line=serial,
    )
    status = Status.NOT_REPORTED if serial % 3 else Status.NOT_INSTALLED
    return Verdict(ca=ca, status=status, reason="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(42)
    base = 0x1F00000000000000000000000000
    open_serials = [base + i * 7919 for i in range(args.findings)]
    next_serial = base + args.findings * 7919
    start = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite3"
        db = history.open_db(path)
        for night in range(args.runs):
            churn = int(len(open_serials) * args.churn) if night else 0
            for _ in range(churn):
                open_serials[rng.randrange(len(open_serials))] = next_serial
                next_serial += 7919
            result = RunResult(
                run_id=f"night-{night:03d}",
                as_of=start + timedelta(days=night),
                grace_hours=24.0,
                verdicts=tuple(verdict(s) for s in open_serials),
                unknown_to_ca=(),
                rejects=(),
                inputs=(),
            )
            began = time.perf_counter()
            with history.recording(db, result, 1, 60.0) as (_annotated, delta):
                pass
            timings.append(time.perf_counter() - began)
            if night % 30 == 0 or night == args.runs - 1:
                size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
                print(
                    f"run {night + 1:3d}: record {timings[-1]:.2f} s, new {len(delta.new)},"
                    f" resolved {len(delta.resolved)}, db {size:.1f} MB",
                    flush=True,
                )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = path.stat().st_size / 1e6
    print(f"runs: {args.runs}, open findings per run: {args.findings}, churn {args.churn:.0%}")
    print(f"database size: {size:.1f} MB (target < 200 MB)")
    print(
        f"record time per run: median {statistics.median(timings):.2f} s,"
        f" max {max(timings):.2f} s, first run {timings[0]:.2f} s (target < 5 s)"
    )


if __name__ == "__main__":
    main()
