"""What the engine's input reads cost against what DuckDB's own readers could do on the same
files: the floor a rewrite of the engine's two ends (issue 14) would stand on.

    python benchmarks/bench_read_floor.py [--data benchmarks/data/rows-1000000-utf16] [--rounds 3]

Every contender runs in this one process, in turn, ``--rounds`` times (the VM is shared and
noisy, so they are measured side by side and each one's best round is printed):

* ``ca lines``: the engine's read of the export today, one VARCHAR per physical line;
* ``ca cells``: DuckDB's CSV parser giving the cells (what a ``read_csv`` reader would read);
* ``states text``: the snapshot's state fields as text, as the engine reads them today;
* ``states json types``: the fields msgspec's decoder checks, read as JSON with a ``json_type``
  check each (the byte pass's type check, done by DuckDB);
* ``states byte pass``: that byte pass (hash, line index, msgspec type check), on its own.

Needs the benchmark data ``bench_run.py --rows N --utf16`` generates.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from msgspec import structs

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "rows-1000000-utf16"
# msgspec's type names -> the json_type values DuckDB gives a field of that type, or NULL.
JSON_TYPES = {"str | None": ("VARCHAR",), "int | None": ("BIGINT", "UBIGINT")}


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
    """The engine's own reads (its SQL, its decoder's fields) beside DuckDB's readers."""
    from reconcile.engine.ca import physical_lines
    from reconcile.engine.snapshot import _STATE_TEXT, _source
    from reconcile.intune.records import STATE_DECODER

    ca = data / "ca_export.csv"
    states = data / "snapshot" / "certificate_states.jsonl"
    cells = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(_ca_width(ca)))
    split = (
        "SELECT count(*), count(c1) FROM read_csv(?, header=false, skip=1, encoding='utf-16', "
        "delim=',', quote='\"', escape='\"', strict_mode=false, null_padding=true, "
        f"auto_detect=false, columns={{{cells}}})"
    )
    # The fields and types the byte pass's msgspec decoder checks, each checked by DuckDB.
    fields = [(f.encode_name, JSON_TYPES[str(f.type)]) for f in structs.fields(STATE_DECODER.type)]
    as_json = ", ".join(f"'{name}': 'JSON'" for name, _ in fields)
    checks = " AND ".join(
        f'coalesce(json_type("{name}") IN ({", ".join(repr(t) for t in (*kinds, "NULL"))}), true)'
        for name, kinds in fields
    )
    return {
        "ca lines": _query(f"SELECT count(*) FROM {physical_lines('utf-16')}", ca),
        "ca cells": _query(split, ca),
        "states text": _query(f"SELECT count(*), count(t1) FROM {_source(_STATE_TEXT)}", states),
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
