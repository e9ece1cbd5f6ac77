"""Fetch benchmark: reconcile's Graph client against the emulator, 20 ms latency per request.

    .venv/bin/python benchmarks/bench_fetch.py [--records 100000] [--quick]

The emulator runs in its own process (so its CPU and memory are not the client's) and logs
every request; each fetch runs in a fresh child process so its peak RSS is its own. Compared:
reconcile's fetch_snapshot (largest $top, $select, concurrent profiles, streaming to disk) and
a plain sequential client that follows nextLinks at the default page size. Checks the targets:
requests within 5% of the minimum pages, wall time >= 3x better than plain, RSS flat between
20k and 100k records, and no request earlier than a Retry-After allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconcile.emulator import GeneratedTenant, GraphEmulator, RecordedRequest  # noqa: E402
from reconcile.emulator.server import retry_after_violations  # noqa: E402

PROFILES = 10
LATENCY = 0.02
GRAPH_ROUTES = ("profiles", "states", "devices")


def _start_emulator(
    records: int, log: Path, faults: list[str]
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = log.with_suffix(".ready")
    command = [
        sys.executable,
        "-m",
        "reconcile.emulator",
        "--generated",
        str(records),
        "--profiles",
        str(PROFILES),
        "--latency",
        str(LATENCY),
        "--request-log",
        str(log),
        "--ready-file",
        str(ready),
    ]
    for fault in faults:
        command += ["--fault", fault]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("emulator did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text(encoding="utf-8"))


def _child(kind: str, env: dict[str, str], out: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--out", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} fetch failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _fetch_reconcile(out: Path) -> None:
    from reconcile.intune.fetch import fetch_snapshot
    from reconcile.settings import resolve

    fetch_snapshot(resolve({}, os.environ).fetch_options(), out)


def _fetch_plain(out: Path) -> None:
    """What a first script would do: one request at a time, default page size, no $select."""
    import ssl

    import httpx

    env = os.environ
    verify = ssl.create_default_context(cafile=env["RECONCILE_CA_BUNDLE"])
    base = env["RECONCILE_GRAPH_URL"]
    with httpx.Client(verify=verify, timeout=60) as http:
        token = http.post(
            f"{env['RECONCILE_AUTHORITY_HOST']}/{env['RECONCILE_TENANT_ID']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env["RECONCILE_CLIENT_ID"],
                "client_secret": env["RECONCILE_CLIENT_SECRET"],
                "scope": f"{base}/.default",
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"

        def pages(url: str) -> Any:
            next_url: str | None = url
            while next_url:
                response = http.get(next_url)
                response.raise_for_status()
                body = response.json()
                yield body["value"]
                next_url = body.get("@odata.nextLink")

        out.mkdir(parents=True)
        with (out / "states.jsonl").open("w", encoding="utf-8") as sink:
            for page in pages(f"{base}/beta/deviceManagement/deviceConfigurations"):
                for profile in page:
                    kind = str(profile["@odata.type"]).removeprefix("#")
                    if not kind.endswith("CertificateProfile"):
                        continue
                    url = (
                        f"{base}/beta/deviceManagement/deviceConfigurations/{profile['id']}"
                        f"/{kind}/managedDeviceCertificateStates"
                    )
                    for states in pages(url):
                        sink.writelines(json.dumps(s) + "\n" for s in states)
            for devices in pages(f"{base}/v1.0/deviceManagement/managedDevices"):
                sink.writelines(json.dumps(d) + "\n" for d in devices)


def child_main(kind: str, out: Path) -> None:
    started = time.monotonic()
    if kind == "reconcile":
        _fetch_reconcile(out)
    else:
        _fetch_plain(out)
    wall = time.monotonic() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss_mb}))


def run(kind: str, records: int, faults: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        log = Path(tmp) / "requests.jsonl"
        process, ready = _start_emulator(records, log, faults or [])
        try:
            figures = _child(kind, ready["env"], Path(tmp) / "snapshot")
        finally:
            process.terminate()
            process.wait(timeout=10)
        requests = [
            RecordedRequest.from_json(json.loads(line))
            for line in log.read_text(encoding="utf-8").splitlines()
        ]
    graph = [r for r in requests if r.route in GRAPH_ROUTES]
    minimum = GraphEmulator(data=GeneratedTenant(records, profiles=PROFILES)).minimum_pages()
    return {
        "kind": kind,
        "records": records,
        "wall": figures["wall"],
        "rss_mb": figures["rss_mb"],
        "graph_requests": len(graph),
        "graph_requests_ok": sum(1 for r in graph if r.status == 200),
        "minimum_pages": minimum,
        "throttled": sum(1 for r in requests if r.status == 429),
        "early_retries": len(retry_after_violations(requests)),
    }


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['kind']:<10} {row['records']:>7} records  {row['wall']:7.2f} s  "
        f"{row['graph_requests']:>5} Graph requests ({row['graph_requests_ok']} ok, minimum "
        f"{row['minimum_pages']})  peak RSS {row['rss_mb']:6.1f} MB  "
        f"429s {row['throttled']}  early retries {row['early_retries']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="records for the RSS check")
    parser.add_argument("--child", choices=("reconcile", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.out)
        return 0
    print(f"emulator: {PROFILES} profiles, {LATENCY * 1000:.0f} ms latency per request")
    small = run("reconcile", args.small)
    print(_line(small), flush=True)
    large = run("reconcile", args.records)
    print(_line(large), flush=True)
    plain = run("plain", args.records)
    print(_line(plain), flush=True)
    throttle = [
        "throttle:route=states,after=5,times=6,retry_after=1",
        "throttle:route=devices,after=2,times=2,retry_after=1,retry_after_date=true",
        "throttle:route=states,after=40,times=3,retry_after=none",
    ]
    throttled = run("reconcile", args.records, throttle)
    throttled["kind"] = "429s"
    print(_line(throttled), flush=True)

    overhead = large["graph_requests"] / large["minimum_pages"] - 1
    speedup = plain["wall"] / large["wall"]
    growth = large["rss_mb"] / small["rss_mb"] - 1
    checks = [
        (f"requests within 5% of minimum ({overhead:+.1%})", overhead <= 0.05),
        (f"wall time >= 3x better than plain ({speedup:.1f}x)", speedup >= 3),
        (
            f"RSS flat {small['records']} -> {large['records']} records "
            f"({small['rss_mb']:.0f} -> {large['rss_mb']:.0f} MB, {growth:+.0%})",
            growth <= 0.25,
        ),
        (
            f"no request before Retry-After ({throttled['early_retries']} early, "
            f"{throttled['throttled']} throttled)",
            throttled["early_retries"] == 0 and throttled["throttled"] > 0,
        ),
    ]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
