"""The floor the engine is measured against: a bare DuckDB anti-join, no classification.

``read_csv(encoding='utf-16')`` over the certutil export, ``read_json`` over the certificate
states, serials normalised to canonical hex, and the CA serials Intune does not report as
installed written to CSV. It does none of reconcile's checks (scope, revocation, expiry, grace,
supersession, issuers, thumbprints, rejects), so it is a lower bound, not a competitor.

    python benchmarks/duckdb_baseline.py --snapshot DIR --ca-export FILE --csv OUT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb


def _encoding(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--snapshot", type=Path, required=True)
    parser.add_argument("--ca-export", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    args, _ = parser.parse_known_args(argv)
    con = duckdb.connect()
    states = args.snapshot / "certificate_states.jsonl"
    con.execute(
        f"""
        COPY (
          WITH ca AS (
            SELECT "Serial Number" AS serial_text,
                   ltrim(lower(replace("Serial Number", ' ', '')), '0') AS serial
            FROM read_csv(?, encoding='{_encoding(args.ca_export)}', all_varchar=true,
                          header=true, null_padding=true, ignore_errors=true)
          ),
          intune AS (
            SELECT ltrim(lower(certificateSerialNumber), '0') AS serial
            FROM read_json(?, format='newline_delimited',
                           columns={{certificateSerialNumber: 'VARCHAR',
                                    certificateIssuanceState: 'VARCHAR'}})
            WHERE certificateIssuanceState = 'installed'
          )
          SELECT serial_text FROM ca ANTI JOIN intune USING (serial)
          WHERE serial IS NOT NULL
        ) TO '{args.csv}' (HEADER, DELIMITER ',')
        """,
        [str(args.ca_export), str(states)],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
