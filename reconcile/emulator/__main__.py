"""``python -m reconcile.emulator``: serve a snapshot or a generated tenant until interrupted.

Prints the RECONCILE_* variables that point reconcile at it (the secret is the emulator's own
throwaway credential, generated for this run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
from pathlib import Path

from reconcile.emulator.connectors import ConnectorSwitch
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.emulator.faults import FaultKind, parse_fault
from reconcile.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, GraphEmulator
from reconcile.emulator.tenant import GeneratedTenant, SnapshotTenant, Tenant
from reconcile.errors import ReconcileError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconcile.emulator",
        description="Local HTTPS Entra ID + Microsoft Graph emulator for reconcile.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--snapshot", type=Path, help="serve this snapshot directory")
    source.add_argument(
        "--generated", type=int, metavar="N", help="serve N synthetic certificate states"
    )
    parser.add_argument("--profiles", type=int, default=10, help="profiles for --generated")
    parser.add_argument("--devices", type=int, help="managed devices for --generated (N/2)")
    parser.add_argument("--tenant", default=DEFAULT_TENANT_ID, help="tenant id to answer for")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", help="accepted secret (default: a random one)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--page-size", type=int, default=100, help="items per page without $top")
    parser.add_argument("--max-page-size", type=int, default=1000, help="largest $top honoured")
    parser.add_argument("--export-polls", type=int, default=2, help="polls before completed")
    parser.add_argument("--token-lifetime", type=int, default=3599, help="access token seconds")
    parser.add_argument(
        "--report-without-loc",
        action="store_true",
        help="leave CertificateStatus_loc out of the export (numeric codes only)",
    )
    parser.add_argument(
        "--report-columns",
        help="comma-separated report columns the tenant knows (default: the documented list)",
    )
    kinds = ", ".join(k.value for k in FaultKind)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"kind[:key=value,...]; kinds: {kinds}; keys: route, path, query, times, after, "
        "retry_after, retry_after_date, delay (repeatable)",
    )
    parser.add_argument(
        "--stale-connector",
        action="store_true",
        help="add a certificate connector that has been silent for three days",
    )
    parser.add_argument(
        "--connector-status",
        type=int,
        choices=(200, 403, 404),
        default=200,
        help="answer the connector endpoints with this status (403/404: no access)",
    )
    parser.add_argument("--request-log", type=Path, help="append every request as JSON Lines")
    parser.add_argument(
        "--ready-file", type=Path, help="write the connection details here as JSON once serving"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        faults = [parse_fault(spec) for spec in args.fault]
    except ValueError as exc:
        print(f"error: --fault: {exc}", file=sys.stderr)
        return 2
    try:
        data: Tenant
        if args.generated is not None:
            data = GeneratedTenant(args.generated, profiles=args.profiles, devices=args.devices)
        else:
            data = SnapshotTenant(args.snapshot or DEMO_SNAPSHOT)
    except (ReconcileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    secret = args.client_secret
    emulator = GraphEmulator(
        tenant=args.tenant,
        client_id=args.client_id,
        client_secret=secret,
        data=data,
        faults=faults,
        latency=args.latency,
        page_size=args.page_size,
        max_page_size=args.max_page_size,
        export_polls=args.export_polls,
        token_lifetime=args.token_lifetime,
        report_loc=not args.report_without_loc,
        report_columns=(
            [c.strip() for c in args.report_columns.split(",") if c.strip()]
            if args.report_columns
            else None
        ),
        request_log=args.request_log,
        port=args.port,
        snapshot_dir=None if args.generated is not None else args.snapshot or DEMO_SNAPSHOT,
        connectors=ConnectorSwitch(stale=args.stale_connector, status=args.connector_status),
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with emulator:
        env = demo_settings_env(emulator)
        if args.ready_file is not None:
            details = {"env": env, "base_url": emulator.base_url, "port": emulator.port}
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(details), encoding="utf-8")
            tmp.replace(args.ready_file)
        print(f"# reconcile Graph emulator on {emulator.base_url} (Ctrl-C stops it)")
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
