"""Time and peak RSS of opening a snapshot: the engine's loader against SnapshotSource.

Each contender runs once, in its own child process (peak RSS is that child's ru_maxrss from
os.wait4), on the same snapshot directory:

* ``python``: ``SnapshotSource`` (an Entry per record, the device dictionaries);
* ``engine``: ``engine.snapshot.load_snapshot`` into a scratch DuckDB database.

    python benchmarks/bench_snapshot_load.py --snapshot benchmarks/data/rows-1000000-utf16/snapshot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "rows-1000000-utf16" / "snapshot"


def child(kind: str, snapshot: Path) -> None:
    from reconcile.engine.db import Database
    from reconcile.engine.snapshot import load_snapshot
    from reconcile.engine.tables import create_tables
    from reconcile.intune.snapshot import SnapshotSource

    started = time.perf_counter()
    if kind == "python":
        with SnapshotSource(snapshot, ("active",)) as source:
            records = len(source.side.entries)
            rejects = len(source.rejects)
    else:
        with Database() as db:
            create_tables(db)
            with load_snapshot(db, snapshot, ("active",)) as engine:
                records = db.rows("SELECT count(*) FROM intune")[0][0]
                rejects = len(engine.rejects)
    print(json.dumps({"seconds": time.perf_counter() - started, "records": records,
                      "rejects": rejects}))  # fmt: skip


def measure(kind: str, snapshot: Path) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, "--snapshot", str(snapshot)],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{kind} failed with status {status}")
    found = json.loads(output)
    found["wall"] = time.perf_counter() - started
    found["peak_mib"] = usage.ru_maxrss / 1024
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, default=DEFAULT)
    parser.add_argument("--child", choices=("python", "engine"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.snapshot)
        return
    print(f"snapshot {args.snapshot}")
    header = ("loader", "wall s", "load s", "peak MiB", "records", "rejects")
    print("{:<8} {:>8} {:>8} {:>9} {:>9} {:>8}".format(*header))
    for kind in ("engine", "python"):
        found = measure(kind, args.snapshot)
        print(
            f"{kind:<8} {found['wall']:>8.1f} {found['seconds']:>8.1f} "
            f"{found['peak_mib']:>9.0f} {found['records']:>9} {found['rejects']:>8}"
        )


if __name__ == "__main__":
    main()
