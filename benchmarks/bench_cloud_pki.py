"""Time the Cloud PKI CA source: N leaf certificates fetched from the emulator, then read back.

    python benchmarks/bench_cloud_pki.py                     # 200,000 leaves
    python benchmarks/bench_cloud_pki.py --leaves 20000 --page-size 100

The fetch goes through the real client (msal + httpx, HTTPS) to the local emulator, which
serves the leaves in the documented Graph JSON shape. The read is what a run does: the snapshot
scan validates every line, then the CA source streams the records into the join. Generating the
leaves is not timed.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reconcile.emulator import GraphEmulator
from reconcile.emulator.cloudpki import CloudPki
from reconcile.emulator.demo import demo_settings_env
from reconcile.intune.fetch import fetch_snapshot
from reconcile.intune.snapshot import SnapshotSource
from reconcile.settings import resolve

CA_ID = "5f2b6c1e-3d4a-4b8e-9c7f-1a2b3c4d5e6f"
STATUSES = (
    ("active",) * 90 + ("revoked",) * 4 + ("expired",) * 4 + ("unknown", "unknownFutureValue")
)


def leaf(rng: random.Random, n: int) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    return {
        "@odata.type": "#microsoft.graph.cloudCertificationAuthorityLeafCertificate",
        "id": f"{rng.getrandbits(128):032x}",
        "subjectName": f"CN=PC-{n:07d}",
        "issuerId": CA_ID,
        "issuerName": "Contoso Cloud Issuing CA",
        "certificateStatus": status,
        "validityStartDateTime": "2026-11-01T10:00:00Z",
        "validityEndDateTime": "2027-11-01T10:00:00Z",
        "thumbprint": f"{rng.getrandbits(160):040X}",
        "serialNumber": f"{rng.getrandbits(128):032X}",
        "revocationDateTime": "2026-11-10T08:00:00Z" if status == "revoked" else None,
        "deviceName": f"PC-{n:07d}",
        "userPrincipalName": f"user{n}@contoso.example",
        "deviceId": f"{rng.getrandbits(128):032x}",
        "userId": f"{rng.getrandbits(128):032x}",
        "devicePlatform": "Windows10AndLater",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = random.Random(15)
    leaves = [leaf(rng, n) for n in range(args.leaves)]
    cas = [{"id": CA_ID, "displayName": "Contoso Cloud Issuing CA"}]
    pki = CloudPki(cas, leaves)
    with (
        GraphEmulator(generated=0, cloud_pki=pki, page_size=args.page_size) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = resolve({"ca_sources": ("cloud-pki",)}, demo_settings_env(emu))
        started = time.perf_counter()
        snapshot = fetch_snapshot(settings.fetch_options(), Path(tmp) / "snapshot")
        fetched = time.perf_counter() - started
        requests = len(emu.requests_for("cloud_pki_leaves"))
        started = time.perf_counter()
        with SnapshotSource(snapshot, frozenset()) as source:
            scanned = time.perf_counter() - started
            records = sum(1 for _ in source.cloud_pki())
        read = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.leaves} leaves: fetch {fetched:.1f} s in {requests} leaf requests "
        f"({args.leaves / fetched:,.0f}/s); read {read:.1f} s (scan {scanned:.1f} s), "
        f"{records / read:,.0f} records/s; peak RSS {peak:.0f} MiB"
    )
    return 0 if records == args.leaves else 1


if __name__ == "__main__":
    sys.exit(main())
