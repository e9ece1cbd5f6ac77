"""What the engine's input reads cost against what DuckDB's own readers could do on the same
files: the floor a rewrite of the engine's two ends (issue 14) would stand on.

    python benchmarks/bench_read_floor.py [--data benchmarks/data/rows-1000000-utf16] [--rounds 3]

Every contender runs in this one process, in turn, ``--rounds`` times (the VM is shared and
noisy, so they are measured side by side and each one's best round is printed):

* ``ca lines``: the engine's read of the export today, one VARCHAR per physical line;
* ``ca cells``: DuckDB's CSV parser giving the cells (what a ``read_csv`` reader would read);
* ``states text``: the snapshot's state fields as text, as the engine reads them today;
* ``states json types``: the same fields as JSON with a ``json_type`` check each (the type check
  the byte pass does with msgspec, done by DuckDB);
* ``states byte pass``: that byte pass (hash, line index, msgspec type check), on its own.

Needs the benchmark data ``bench_run.py --rows N --utf16`` generates.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "rows-1000000-utf16"
# The state fields the engine's states statement and the msgspec type check read.
STATE_TEXT = (
    "certificateIssuanceState",
    "certificateSerialNumber",
    "certificateThumbprint",
    "certificateIssuer",
    "deviceDisplayName",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "userDisplayName",
    "certificateProfileDisplayName",
    "id",
    "devicePlatform",
    "certificateLastIssuanceStateChangedDateTime",
    "lastCertificateStateChangeDateTime",
)


def _connect() -> duckdb.DuckDBPyConnection:
    # The engine's own settings (reconcile.engine.db): 256 MB, no insertion order.
    con = duckdb.connect(config={"memory_limit": "256MB", "preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")
    return con


def _query(sql: str, path: Path) -> Callable[[], object]:
    def run() -> object:
        with _connect() as con:
            return con.execute(sql, [str(path)]).fetchall()

    return run


def _ca_width(path: Path) -> int:
    with path.open(encoding="utf-16") as handle:
        return handle.readline().count(",") + 1


def contenders(data: Path) -> dict[str, Callable[[], object]]:
    ca = data / "ca_export.csv"
    states = data / "snapshot" / "certificate_states.jsonl"
    cells = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(_ca_width(ca)))
    lines = (
        "SELECT count(*) FROM read_csv(?, columns={'l': 'VARCHAR'}, header=false, delim=chr(1), "
        "quote='', escape='', encoding='utf-16', auto_detect=false, strict_mode=false, "
        "max_line_size=400000)"
    )
    split = (
        "SELECT count(*), count(c1) FROM read_csv(?, header=false, skip=1, encoding='utf-16', "
        "delim=',', quote='\"', escape='\"', strict_mode=false, null_padding=true, "
        f"auto_detect=false, columns={{{cells}}})"
    )
    text = ", ".join(f"'{name}': 'VARCHAR'" for name in STATE_TEXT)
    as_json = ", ".join(f"'{name}': 'JSON'" for name in (*STATE_TEXT, "certificateErrorCode"))
    checks = " AND ".join(
        [f"coalesce(json_type(\"{n}\") IN ('VARCHAR', 'NULL'), true)" for n in STATE_TEXT]
        + ["coalesce(json_type(certificateErrorCode) IN ('BIGINT', 'UBIGINT', 'NULL'), true)"]
    )
    return {
        "ca lines": _query(lines, ca),
        "ca cells": _query(split, ca),
        "states text": _query(
            "SELECT count(*), count(certificateSerialNumber) FROM read_json(?, "
            f"format='newline_delimited', columns={{{text}}})",
            states,
        ),
        "states json types": _query(
            f"SELECT count(*) FILTER (WHERE {checks}) FROM read_json(?, "
            f"format='newline_delimited', columns={{{as_json}}})",
            states,
        ),
        "states byte pass": lambda: _byte_pass(states),
    }


def _byte_pass(path: Path) -> object:
    from reconcile.engine.snapshot import _scan
    from reconcile.intune.records import STATE_DECODER

    with path.open("rb") as handle:
        return _scan(handle, STATE_DECODER).lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.data / "ca_export.csv").exists():
        parser.error(f"{args.data}: no benchmark data; run bench_run.py --utf16 first")
    runs = contenders(args.data)
    best: dict[str, float] = {}
    results: dict[str, object] = {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            results[name] = run()
            seconds = time.perf_counter() - started
            best[name] = min(best.get(name, seconds), seconds)
    print(f"{'contender':20}  best s  ({args.rounds} rounds)  result")
    for name, seconds in best.items():
        print(f"{name:20}  {seconds:6.2f}  {results[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
