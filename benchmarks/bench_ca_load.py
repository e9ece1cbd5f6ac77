"""The native CA loader against the Python reader on one export: wall time and peak RSS.

    python benchmarks/bench_ca_load.py PATH [--mode native|python|reader|all]

Each mode runs in a child process of its own, so peak RSS is that mode's alone. ``native`` and
``python`` load the same ``ca`` table (``load_export``; ``load_stream``, the Python reader
through ``tables.load_certificates``); ``reader`` only iterates ExportReader, as main does today.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _child(path: Path, mode: str) -> None:
    from reconcile.ca import ExportReader, ReaderOptions
    from reconcile.engine.ca import load_export, load_stream
    from reconcile.engine.db import Database
    from reconcile.engine.tables import create_tables
    from reconcile.model import CaCertificate

    started = time.perf_counter()
    with Database() as db:
        create_tables(db)
        reader = ExportReader(path, ReaderOptions())
        opened = time.perf_counter() - started
        if mode == "reader":
            count = rejects = 0
            with reader:
                for item in reader:
                    if isinstance(item, CaCertificate):
                        count += 1
                    else:
                        rejects += 1
            native = False
        else:
            loaded = load_export(db, reader, 0) if mode == "native" else load_stream(db, reader, 0)
            ((count,),) = db.rows("SELECT count(*) FROM ca")
            rejects, native = len(loaded.rejects), loaded.native
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "mode": mode,
        "native": native,
        "rows": count,
        "rejects": rejects,
        "open_s": round(opened, 2),
        "wall_s": round(wall, 2),
        "peak_mib": round(peak),
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--mode", choices=["native", "python", "reader", "all"], default="all")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.path, args.mode)
        return
    modes = ["native", "reader", "python"] if args.mode == "all" else [args.mode]
    for mode in modes:
        subprocess.run(
            [sys.executable, __file__, str(args.path), "--mode", mode, "--child"], check=True
        )


if __name__ == "__main__":
    main()
