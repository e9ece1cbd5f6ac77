"""Time ``reconcile run`` end to end on N CA rows x N Intune records, next to two yardsticks.

The contenders run one after the other as subprocesses of this script, on the same files:
``reconcile run`` (full classification), a pandas baseline (``pandas_baseline.py``: the same
classification written the pandas way) and a bare DuckDB anti-join (``duckdb_baseline.py``:
read_csv + read_json + anti-join to CSV, no classification at all). Wall time is measured around
each process, peak RSS is that child's own ru_maxrss (os.wait4), and the ratios to the DuckDB
floor are printed. Data is generated once per N and gen_data.py version and cached under
benchmarks/data/ (gitignored).

    python benchmarks/bench_run.py                    # 1,000,000 x 1,000,000
    python benchmarks/bench_run.py --rows 100000 --profile
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "gen_data.py"
BASELINE = HERE / "pandas_baseline.py"
FLOOR = HERE / "duckdb_baseline.py"
FINDINGS = ("not_installed", "not_reported", "superseded")
TARGET_RATIO = 3.0
"""reconcile within this multiple of the DuckDB anti-join's wall time in the same run."""
TARGET_RSS_MIB = 512.0


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    peak_rss_mib: float
    exit_code: int
    findings: dict[str, int]
    stderr: str


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown"
    return {
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "cpus": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "memory": memory,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def ensure_data(rows: int, root: Path, utf16: bool) -> tuple[Path, dict[str, object]]:
    """Generate once per (rows, encoding, generator source); reuse afterwards."""
    fingerprint = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:16]
    directory = root / f"rows-{rows}{'-utf16' if utf16 else ''}"
    stamp = directory / "generator.sha"
    manifest = directory / "bench.json"
    if not (stamp.exists() and stamp.read_text() == fingerprint and manifest.exists()):
        print(f"generating {rows:,} x {rows:,} under {directory} ...", file=sys.stderr)
        started = time.perf_counter()
        command = [sys.executable, str(GENERATOR), "--rows", str(rows), "--out", str(directory)]
        subprocess.run([*command, *(["--utf16"] if utf16 else [])], check=True, stdout=2)
        print(f"generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        stamp.write_text(fingerprint)
    return directory, json.loads(manifest.read_text())


def measure(name: str, command: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MiB, exit code and stderr of one child process."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    # ru_maxrss is KiB on Linux.
    return seconds, usage.ru_maxrss / 1024, child.returncode, stderr


def count_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def count_findings(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        counts = Counter(row["status"] for row in csv.DictReader(handle))
    return {status: counts.get(status, 0) for status in FINDINGS}


def reconcile_command(data: Path, manifest: dict[str, object], csv_out: Path) -> list[str]:
    script = Path(sys.executable).with_name("reconcile")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "reconcile.cli"]
    return [*base, "run", *run_arguments(data, manifest), "--csv", str(csv_out), "--quiet"]


def run_arguments(data: Path, manifest: dict[str, object]) -> list[str]:
    templates = manifest["templates"]
    assert isinstance(templates, list)
    arguments = [
        "--snapshot",
        str(data / "snapshot"),
        "--ca-export",
        str(data / "ca_export.csv"),
        "--as-of",
        str(manifest["as_of"]),
        "--ca-issuer",
        str(manifest["issuer"]),
    ]
    for template in templates:
        arguments += ["--template", str(template)]
    return arguments


def isolated_env(home: Path) -> dict[str, str]:
    """No developer config or history leaks in, and runs do not pile up history."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "c"))
    return env


def profile(data: Path, manifest: dict[str, object], out: Path, env: dict[str, str]) -> str:
    """cProfile of the same command; returns the top 20 by cumulative and by own time."""
    stats_file = out / "reconcile.prof"
    command = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(stats_file),
        "-m",
        "reconcile.cli",
        "run",
        *run_arguments(data, manifest),
        "--csv",
        str(out / "reconcile-profiled.csv"),
        "--quiet",
    ]
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
    report = []
    # typer/click frames say nothing; the cumulative view starts at the pipeline.
    for order, restriction in (("cumulative", r"reconcile/(?!cli\.py)"), ("tottime", "")):
        stream = _Capture()
        stats = pstats.Stats(str(stats_file), stream=stream).sort_stats(order)
        stats.print_stats(*([restriction] if restriction else []), 20)
        report.append(f"--- top 20 by {order} ---\n{stream.text()}")
    return "\n".join(report)


class _Capture:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def text(self) -> str:
        lines = "".join(self.parts).splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        return "\n".join(lines[start:])


def table(results: list[Measurement], expected: dict[str, int]) -> str:
    floor = next((r for r in results if r.name == "duckdb"), None)
    header = (
        f"{'tool':<10} {'wall s':>8} {'x duckdb':>9} {'peak RSS MiB':>13} {'exit':>5} "
        f"{'rows out':>9}  findings match"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        total = sum(r.findings.values())
        if r.name == "duckdb":
            ok = "n/a (anti-join only, no classification)"
        else:
            ok = "yes" if r.findings == expected else f"no {r.findings}"
        ratio = f"{r.seconds / floor.seconds:>8.1f}x" if floor and floor.seconds else f"{'':>9}"
        lines.append(
            f"{r.name:<10} {r.seconds:>8.1f} {ratio} {r.peak_rss_mib:>13.0f} {r.exit_code:>5} "
            f"{total:>9,}  {ok}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reconcile end-to-end benchmark")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--utf16", action="store_true", help="CA export in UTF-16LE with BOM")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB anti-join")
    parser.add_argument("--profile", action="store_true", help="also cProfile reconcile run")
    args = parser.parse_args(argv)

    data, manifest = ensure_data(args.rows, args.data, args.utf16)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    counts = manifest["expected_counts"]
    assert isinstance(counts, dict)
    expected = {status: int(counts.get(status, 0)) for status in FINDINGS}
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as home:
        env = isolated_env(Path(home))
        csv_out = args.out / "reconcile.csv"
        csv_out.unlink(missing_ok=True)
        seconds, rss, code, stderr = measure(
            "reconcile", reconcile_command(data, manifest, csv_out), env
        )
        results.append(
            Measurement("reconcile", seconds, rss, code, count_findings(csv_out), stderr)
        )
        if not args.no_pandas:
            pandas_out = args.out / "pandas.csv"
            pandas_out.unlink(missing_ok=True)
            command = [
                sys.executable,
                str(BASELINE),
                *run_arguments(data, manifest),
                "--csv",
                str(pandas_out),
            ]
            seconds, rss, code, stderr = measure("pandas", command, env)
            results.append(
                Measurement("pandas", seconds, rss, code, count_findings(pandas_out), stderr)
            )
        if not args.no_duckdb:
            floor_out = args.out / "duckdb.csv"
            floor_out.unlink(missing_ok=True)
            command = [sys.executable, str(FLOOR), *run_arguments(data, manifest)]
            seconds, rss, code, stderr = measure("duckdb", [*command, "--csv", str(floor_out)], env)
            rows = {"anti-join rows": count_rows(floor_out)}
            results.append(Measurement("duckdb", seconds, rss, code, rows, stderr))
        profile_text = profile(data, manifest, args.out, env) if args.profile else ""

    info = machine()
    print(f"reconcile benchmark: {args.rows:,} CA rows x {args.rows:,} Intune records")
    print(f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}, Python {info['python']}")
    # Other work on the machine inflates wall times; the load average says how much.
    print(f"load average at start: {load_before}, at end: {info['load_average']}")
    print(f"expected findings: {expected}\n")
    print(table(results, expected))
    ours = results[0]
    by_name = {r.name: r for r in results}
    verdicts = [f"peak RSS < 512 MiB: {'yes' if ours.peak_rss_mib < TARGET_RSS_MIB else 'NO'}"]
    if "duckdb" in by_name:
        ratio = ours.seconds / by_name["duckdb"].seconds
        verdicts.append(
            f"within {TARGET_RATIO:g}x DuckDB: {'yes' if ratio <= TARGET_RATIO else 'NO'} "
            f"({ratio:.1f}x)"
        )
    if "pandas" in by_name:
        faster = ours.seconds < by_name["pandas"].seconds
        verdicts.append(f"faster than pandas: {'yes' if faster else 'NO'}")
    print("\ntargets: " + ", ".join(verdicts))
    for r in results:
        if r.exit_code not in (0, 1):
            print(f"\n{r.name} exited {r.exit_code}:\n{r.stderr[-2000:]}", file=sys.stderr)
    if profile_text:
        print("\n" + profile_text)
    record = {
        "rows": args.rows,
        "machine": info,
        "load_average_at_start": load_before,
        "expected_findings": expected,
        "results": [{k: v for k, v in r.__dict__.items() if k != "stderr"} for r in results],
    }
    (args.out / f"bench-{args.rows}.json").write_text(json.dumps(record, indent=2) + "\n")
    ok = all(
        r.exit_code in (0, 1) and (r.name == "duckdb" or r.findings == expected) for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
