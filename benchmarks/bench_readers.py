"""Time ExportReader alone on a generated certutil export; prints rows/s and peak RSS.

    python benchmarks/bench_readers.py                       # 1,000,000 rows, UTF-16LE + BOM
    python benchmarks/bench_readers.py --rows 200000 --encoding utf-8 --keep

The file looks like `certutil -view -gmt -seconds ... csv` redirected by Windows PowerShell 5.1:
quoted cells, EMPTY nulls, spaced hashes, V2 templates, a few revoked rows, trailing status
lines. Generation is not timed. --keep holds every record in a list, as a join would, to show
what a million records cost in memory.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gen_data import CERTUTIL_HEADER as HEADER

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.model import CaCertificate

TEMPLATES = (
    "1.3.6.1.4.1.311.21.8.4521873.9174215.11838394.2917640.12836427.177.1 Intune SCEP Device",
    "1.3.6.1.4.1.311.21.8.4521873.9174215.11838394.2917640.12836427.177.2 Intune PKCS User",
    "Machine",
)


def certutil_date(value: datetime) -> str:
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    return (
        f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d}:{value.second:02d} "
        f"{half} GMT"
    )


def generate(path: Path, rows: int, encoding: str) -> None:
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("w", encoding=encoding, newline="") as out:
        out.write(",".join(f'"{h}"' for h in HEADER) + "\r\n")
        for request_id in range(1, rows + 1):
            issued = start + timedelta(seconds=request_id * 29 + rng.randrange(10))
            serial = f"61{request_id:08x}{rng.getrandbits(64):016x}0000{request_id:08x}"
            digest = rng.getrandbits(160).to_bytes(20, "big").hex(" ")
            revoked = request_id % 97 == 0
            cells = (
                str(request_id),
                serial,
                digest,
                certutil_date(issued),
                certutil_date(issued + timedelta(days=365)),
                TEMPLATES[request_id % len(TEMPLATES)],
                "CONTOSO\\svc-ndes",
                f"DESKTOP-{request_id:07d}",
                f"CN=DESKTOP-{request_id:07d}, OU=Devices, DC=corp, DC=contoso",
                certutil_date(issued + timedelta(days=30)) if revoked else None,
                "0x15 (21) -- Revoked" if revoked else "0x14 (20) -- Issued",
            )
            out.write(",".join("EMPTY" if c is None else f'"{c}"' for c in cells) + "\r\n")
        out.write(f"\r\nMaximum Row Index: {rows}\r\n\r\n{rows} Rows\r\n")
        out.write("CertUtil: -view command completed successfully.\r\n")


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-16", help="utf-16 (LE with BOM) or utf-8")
    parser.add_argument("--keep", action="store_true", help="hold every record, as a join would")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "certutil.csv"
        started = time.perf_counter()
        generate(path, args.rows, args.encoding)
        size = path.stat().st_size
        print(
            f"generated {args.rows:,} rows, {size / 2**20:.0f} MiB {args.encoding} "
            f"in {time.perf_counter() - started:.1f} s; peak RSS so far {peak_rss_mib():.0f} MiB"
        )
        kept: list[CaCertificate] = []
        records = rejects = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        reader = ExportReader(path, ReaderOptions(issuer="Contoso Issuing CA 1"))
        for item in reader:
            if isinstance(item, CaCertificate):
                records += 1
                if args.keep:
                    kept.append(item)
            else:
                rejects += 1
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        info = reader.input_file()
    print(
        f"read {records:,} records, {rejects:,} rejects ({info.format}) in {elapsed:.2f} s wall, "
        f"{cpu:.2f} s CPU: {records / elapsed:,.0f} rows/s wall, {records / cpu:,.0f} rows/s CPU; "
        f"peak RSS {peak_rss_mib():.0f} MiB"
        + (f" holding {len(kept):,} records" if args.keep else "")
    )


if __name__ == "__main__":
    main()
