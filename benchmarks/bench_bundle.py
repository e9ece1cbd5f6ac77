"""What the self-contained --out-dir bundle costs: size on disk and run time added at N rows.

Runs ``reconcile run`` on the same generated data three ways (--csv only; --out-dir with the
inputs copied, the default; --out-dir --bundle-inputs reference) and times ``reconcile verify``
on the copied bundle. Data is shared with bench_run.py (benchmarks/data/, gitignored).

    python benchmarks/bench_bundle.py                 # 1,000,000 x 1,000,000
    python benchmarks/bench_bundle.py --rows 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import HERE, ensure_data, isolated_env, measure, run_arguments  # noqa: E402


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    args = parser.parse_args(argv)
    data, manifest = ensure_data(args.rows, args.data, utf16=False)
    script = Path(sys.executable).with_name("reconcile")
    base = [str(script), "run", *run_arguments(data, manifest), "--no-history", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        work = Path(tmp)
        env = isolated_env(work / "home")
        runs = {
            "--csv": [*base, "--csv", str(work / "f.csv")],
            "--out-dir (copy)": [*base, "--out-dir", str(work / "copy")],
            "--out-dir --bundle-inputs reference": [
                *base, "--out-dir", str(work / "ref"), "--bundle-inputs", "reference",
            ],
        }  # fmt: skip
        rows = []
        for name, command in runs.items():
            seconds, rss, code, err = measure(name, command, env)
            if code not in (0, 1):
                print(err, file=sys.stderr)
                return 2
            rows.append((name, seconds, rss))
        seconds, rss, code, err = measure(
            "verify", [str(script), "verify", str(work / "copy")], env
        )
        if code != 0:
            print(err, file=sys.stderr)
            return 2
        inputs = _size(data / "ca_export.csv") + _size(data / "snapshot")
        print(f"{args.rows:,} x {args.rows:,}; inputs {_mib(inputs)}")
        print("| run | wall | peak RSS | bundle size |")
        print("|---|---|---|---|")
        sizes = {"--csv": work / "f.csv", "--out-dir (copy)": work / "copy"}
        sizes["--out-dir --bundle-inputs reference"] = work / "ref"
        for name, wall, peak in rows:
            print(f"| {name} | {wall:.1f} s | {peak:,.0f} MiB | {_mib(_size(sizes[name]))} |")
        print(f"| verify (copy bundle) | {seconds:.1f} s | {rss:,.0f} MiB | |")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
