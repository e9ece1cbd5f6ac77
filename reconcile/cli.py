"""The command line: parse, resolve settings, call the core, present, map errors to exit codes.

Exit codes: 0 no findings, 1 findings, 2 usage/config/input error, 3 upstream failure or
incomplete data (no report written). This module is the only one that knows them.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from reconcile import __version__
from reconcile.errors import ReconcileError
from reconcile.history import Tracked
from reconcile.model import RunResult
from reconcile.settings import Settings, resolve

log = logging.getLogger("reconcile")

app = typer.Typer(
    name="reconcile",
    help="Find the certificates your CA issued that Intune never reports as delivered.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_UPSTREAM = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"reconcile: error: {message}", err=True)
    return typer.Exit(code)


def boundary(func: F) -> F:
    """The single place that turns errors into one-line messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReconcileError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted; no report written", 130) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise _fail(f"{where}{exc.strerror or exc}", EXIT_INPUT) from None
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except Exception as exc:
            # A bug must not exit 1, which a nightly job would read as "findings". The message
            # names only the type: exception text can carry values that were never masked.
            log.debug("internal error", exc_info=True)
            raise _fail(
                f"internal error ({type(exc).__name__}); no report written. This is a bug: "
                "run again with -vv for the traceback and report it",
                EXIT_UPSTREAM,
            ) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: int, log_format: str = "text", secrets: Sequence[str] = ()) -> None:
    from reconcile.logsetup import configure

    configure(verbose, log_format, secrets)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconcile {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """reconcile: join a CA's issued-certificate export with Intune's delivery records."""


# Options shared by run-like commands. Every one maps onto a Settings field; None = not given.
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file.", show_default=False)
]
CaExportOpt = Annotated[
    list[Path] | None,
    typer.Option("--ca-export", help="CA export file (repeatable).", show_default=False),
]
CaSourceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ca-source",
        help="CA read through Graph: cloud-pki (repeatable; combine with --ca-export).",
        show_default=False,
    ),
]
CaFormatOpt = Annotated[
    str | None,
    typer.Option(help="auto, certutil, pspki, ejbca, openssl-index or mapped.", show_default=False),
]
CaIssuerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ca-issuer",
        help="Issuer of exports that name none: once for all, or once per --ca-export in order.",
        show_default=False,
    ),
]

ColumnMapOpt = Annotated[
    Path | None, typer.Option(help="Column map TOML for localized headers.", show_default=False)
]
DateOrderOpt = Annotated[
    str | None, typer.Option(help="Order of CA dates: mdy, dmy or ymd.", show_default=False)
]
CaTimezoneOpt = Annotated[
    str | None, typer.Option(help="IANA time zone of CA dates.", show_default=False)
]
StrictOpt = Annotated[
    bool | None,
    typer.Option(
        "--strict/--no-strict",
        help="Any rejected row is an input error (exit 2).",
        show_default=False,
    ),
]
TemplateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--template", help="Template OID or name in scope (repeatable).", show_default=False
    ),
]
DevicePatternOpt = Annotated[
    str | None,
    typer.Option(
        help="Regex with one group: device name from the CA subject/SAN.", show_default=False
    ),
]
SnapshotOpt = Annotated[
    Path | None,
    typer.Option(help="Read Intune from this snapshot instead of Graph.", show_default=False),
]
SaveSnapshotOpt = Annotated[
    Path | None, typer.Option(help="Keep what a live run fetched here.", show_default=False)
]
IntuneSourceOpt = Annotated[
    str | None, typer.Option(help="states, report or both.", show_default=False)
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(help="The run's 'now', ISO-8601 (default: the clock).", show_default=False),
]
GraceOpt = Annotated[
    float | None,
    typer.Option(
        help="Hours after issuance before a missing delivery counts (default 24).",
        show_default=False,
    ),
]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="Write CSV here.", show_default=False)]
JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write JSON Lines here.", show_default=False)
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option("--html", help="Write a self-contained HTML report here.", show_default=False),
]
HistoryDbOpt = Annotated[
    Path | None,
    typer.Option(help="SQLite run history (default: user data dir).", show_default=False),
]
NoHistoryOpt = Annotated[
    bool | None,
    typer.Option("--no-history", help="Do not record this run in the history.", show_default=False),
]
EvidenceDbOpt = Annotated[
    Path | None,
    typer.Option(help="Device evidence database (default: user data dir).", show_default=False),
]
ExceptionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--exceptions", help="Accepted exceptions TOML (serial or device).", show_default=False
    ),
]
OutDirOpt = Annotated[
    Path | None, typer.Option(help="Write the full report bundle here.", show_default=False)
]
AllOpt = Annotated[
    bool | None,
    typer.Option(
        "--all/--findings-only",
        help="Every CA row in CSV/JSON, not only findings.",
        show_default=False,
    ),
]
BomOpt = Annotated[
    bool | None,
    typer.Option(
        "--bom/--no-bom",
        help="UTF-8 BOM at the start of CSV files (default on).",
        show_default=False,
    ),
]
MaxRowsOpt = Annotated[
    int | None,
    typer.Option(help="Findings shown on the terminal (default 50).", show_default=False),
]
TenantOpt = Annotated[str | None, typer.Option(help="Entra tenant id.", show_default=False)]
ClientOpt = Annotated[str | None, typer.Option(help="App (client) id.", show_default=False)]
AuthOpt = Annotated[
    str | None,
    typer.Option(
        "--auth",
        help="auto, secret, certificate, device-code or managed-identity.",
        show_default=False,
    ),
]
CertificateOpt = Annotated[
    Path | None, typer.Option(help="PEM or PFX for certificate auth.", show_default=False)
]
CloudOpt = Annotated[
    str | None, typer.Option(help="global, usgov, usgovdod or china.", show_default=False)
]
VerboseOpt = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More diagnostics on stderr.")
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No report on stdout (files and exit code only).")
]
LogFormatOpt = Annotated[
    str | None, typer.Option(help="Diagnostics as text or json lines.", show_default=False)
]


def build_settings(config: Path | None, **flags: Any) -> Settings:
    """Flags that were not given are None and fall through to env, TOML and defaults."""
    cleaned = {k: (tuple(v) if isinstance(v, list) else v) for k, v in flags.items()}
    return resolve(cleaned, config_path=config)


def present(
    result: RunResult,
    settings: Settings,
    quiet: bool,
    preamble: str = "",
    tracked: Tracked | None = None,
) -> int:
    """Write every requested output, print the report, and return the exit code."""
    from reconcile.report import bundle, html, table
    from reconcile.report.atomic import write_atomic

    exit_code = EXIT_FINDINGS if result.findings else EXIT_OK
    delta, runs = (tracked.delta, tracked.runs) if tracked is not None else (None, ())
    if settings.csv is not None:
        bundle.write_csv(settings.csv, result, settings)
    if settings.json is not None:
        bundle.write_json(settings.json, result, settings)
    if settings.html is not None:
        write_atomic(settings.html, lambda h: html.write(h, result, delta, runs), encoding="utf-8")
    if settings.out_dir is not None:
        bundle.write_bundle(
            settings.out_dir,
            result,
            settings,
            sys.argv[1:],
            exit_code,
            extra=[("report.html", lambda h: html.write(h, result, delta, runs))],
            preamble=preamble,
        )
    if not quiet:
        typer.echo(table.render(result, settings.max_rows, preamble), nl=False)
    return exit_code


@app.command()
@boundary
def run(
    ca_export: CaExportOpt = None,
    ca_source: CaSourceOpt = None,
    snapshot: SnapshotOpt = None,
    config: ConfigOpt = None,
    ca_format: CaFormatOpt = None,
    ca_issuer: CaIssuerOpt = None,
    column_map: ColumnMapOpt = None,
    date_order: DateOrderOpt = None,
    ca_timezone: CaTimezoneOpt = None,
    strict: StrictOpt = None,
    template: TemplateOpt = None,
    device_pattern: DevicePatternOpt = None,
    save_snapshot: SaveSnapshotOpt = None,
    intune_source: IntuneSourceOpt = None,
    as_of: AsOfOpt = None,
    grace_hours: GraceOpt = None,
    csv: CsvOpt = None,
    json: JsonOpt = None,
    out_dir: OutDirOpt = None,
    html: HtmlOpt = None,
    history_db: HistoryDbOpt = None,
    no_history: NoHistoryOpt = None,
    exceptions: ExceptionsOpt = None,
    evidence_db: EvidenceDbOpt = None,
    all_rows: AllOpt = None,
    bom: BomOpt = None,
    max_rows: MaxRowsOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    auth: AuthOpt = None,
    certificate: CertificateOpt = None,
    cloud: CloudOpt = None,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Reconcile CA exports with Intune (a snapshot, or a live fetch from Graph)."""
    from reconcile import pipeline

    settings = build_settings(
        config,
        ca_exports=ca_export,
        ca_sources=ca_source,
        snapshot=snapshot,
        ca_format=ca_format,
        ca_issuer=ca_issuer,
        column_map=column_map,
        date_order=date_order,
        ca_timezone=ca_timezone,
        strict=strict,
        templates=template,
        device_pattern=device_pattern,
        save_snapshot=save_snapshot,
        intune_source=intune_source,
        as_of=as_of,
        grace_hours=grace_hours,
        csv=csv,
        json=json,
        out_dir=out_dir,
        html=html,
        history_db=history_db,
        no_history=no_history,
        exceptions_file=exceptions,
        evidence_db=evidence_db,
        all_rows=all_rows,
        csv_bom=bom,
        max_rows=max_rows,
        tenant_id=tenant_id,
        client_id=client_id,
        auth_method=auth,
        certificate_path=certificate,
        cloud=cloud,
        log_format=log_format,
    )
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    from reconcile import history, lock, notify, retention

    with lock.run_lock(lock.path_for(settings)):
        started = time.monotonic()
        result = pipeline.run(settings)
        code = EXIT_FINDINGS if result.findings else EXIT_OK
        with history.tracked_run(settings, result, code, time.monotonic() - started) as tracked:
            present(tracked.result, settings, quiet, tracked.summary(), tracked)
        retention.prune_for(settings, datetime.now(UTC))
        notify.notify(
            settings.webhook_url, settings.webhook_timeout, tracked.result, tracked.delta, code
        )
    raise typer.Exit(code)


@app.command()
@boundary
def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the demo writes its reports.")] = Path(
        "demo-output"
    ),
    verbose: VerboseOpt = 0,
) -> None:
    """Run the whole live pipeline on the bundled demo tenant; exits 0 when the demo ran.

    The demo tenant is served by the local Graph emulator over HTTPS, so sign-in, paging, the
    report export and the download all go through msal and httpx as against a real tenant.
    """
    from reconcile import demo as demo_data
    from reconcile import pipeline
    from reconcile.emulator import GraphEmulator
    from reconcile.emulator.demo import demo_settings_env

    _setup_logging(verbose)
    with GraphEmulator(
        snapshot_dir=demo_data.demo_snapshot(), tenant=demo_data.DEMO_TENANT_ID, export_polls=0
    ) as emulator:
        env = demo_settings_env(emulator)
        settings = build_settings(
            None,
            ca_exports=[demo_data.demo_ca_export()],
            ca_sources=["cloud-pki"],
            ca_issuer=demo_data.DEMO_ISSUER,
            templates=[*demo_data.DEMO_TEMPLATES, demo_data.DEMO_CLOUD_PKI_CA],
            as_of=demo_data.DEMO_AS_OF,
            out_dir=out_dir,
            no_history=True,
            intune_source="both",
            tenant_id=env["RECONCILE_TENANT_ID"],
            client_id=env["RECONCILE_CLIENT_ID"],
            client_secret=env["RECONCILE_CLIENT_SECRET"],
            auth_method=env["RECONCILE_AUTH"],
            authority_host=env["RECONCILE_AUTHORITY_HOST"],
            graph_url=env["RECONCILE_GRAPH_URL"],
            ca_bundle=env["RECONCILE_CA_BUNDLE"],
        )
        typer.echo(f"Demo tenant served by the Graph emulator at {emulator.base_url}", err=True)
        result = pipeline.run(settings)
    present(result, settings, quiet=False)
    typer.echo(f"\nDemo reports written to {out_dir.resolve()}", err=True)
    raise typer.Exit(EXIT_OK)


def _graph_settings(
    config: Path | None,
    tenant_id: str | None,
    client_id: str | None,
    cloud: str | None,
    auth: str | None,
    certificate: Path | None,
    intune_source: str | None,
    log_format: str | None,
    ca_sources: list[str] | None = None,
) -> Settings:
    """The options fetch and doctor share: where the tenant is and how to sign in."""
    return build_settings(
        config,
        tenant_id=tenant_id,
        client_id=client_id,
        cloud=cloud,
        auth_method=auth,
        certificate_path=certificate,
        intune_source=intune_source,
        log_format=log_format,
        ca_sources=ca_sources,
    )


@app.command()
@boundary
def fetch(
    out: Annotated[
        Path, typer.Option("--out", help="Snapshot directory to write (replaced atomically).")
    ],
    config: ConfigOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    cloud: CloudOpt = None,
    auth: AuthOpt = None,
    certificate: CertificateOpt = None,
    intune_source: IntuneSourceOpt = None,
    ca_source: CaSourceOpt = None,
    log_format: LogFormatOpt = None,
    record_cassette: Annotated[
        Path | None,
        typer.Option(
            "--record-cassette",
            help="Also write every Graph and sign-in exchange, scrubbed of secrets and tokens, "
            "to this vcrpy cassette (for a bug report).",
        ),
    ] = None,
    pseudonymise: Annotated[
        bool,
        typer.Option(
            "--pseudonymise", help="In the cassette, replace device and user names by pseudonyms."
        ),
    ] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Read Intune's certificate records from Graph into a snapshot directory."""
    import json

    from reconcile.graph.cassette import recording_transport
    from reconcile.graph.transport import ssl_trust
    from reconcile.intune.fetch import fetch_snapshot
    from reconcile.intune.snapshot import METADATA

    settings = _graph_settings(
        config, tenant_id, client_id, cloud, auth, certificate, intune_source, log_format, ca_source
    )
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    transport = None
    if record_cassette is not None:
        transport = recording_transport(ssl_trust(settings), record_cassette, pseudonymise)
    try:
        path = fetch_snapshot(settings, out, transport=transport)
    finally:
        if transport is not None:
            transport.close()
            typer.echo(f"cassette {record_cassette}: {transport.interactions} exchanges", err=True)
    counts = json.loads((path / METADATA).read_text(encoding="utf-8"))["counts"]
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    typer.echo(f"snapshot {path}: {summary}")
    raise typer.Exit(EXIT_OK)


@app.command()
@boundary
def doctor(
    config: ConfigOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    cloud: CloudOpt = None,
    auth: AuthOpt = None,
    certificate: CertificateOpt = None,
    intune_source: IntuneSourceOpt = None,
    ca_source: CaSourceOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Check configuration, sign-in, each Graph permission and the clock; exit 3 if any fails."""
    from tabulate import tabulate

    from reconcile.doctor import run_doctor

    settings = _graph_settings(
        config, tenant_id, client_id, cloud, auth, certificate, intune_source, None, ca_source
    )
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    checks = run_doctor(settings)
    marks = {True: "ok", False: "FAIL", None: "-"}
    rows = [(marks[c.ok], c.name, c.detail, c.fix) for c in checks]
    typer.echo(
        tabulate(rows, headers=("", "check", "detail", "fix"), maxcolwidths=[None, None, 60, 50])
    )
    raise typer.Exit(EXIT_UPSTREAM if any(c.ok is False for c in checks) else EXIT_OK)


HistoryDbArg = Annotated[
    Path | None,
    typer.Option(
        "--history-db", help="SQLite run history (default: user data dir).", show_default=False
    ),
]


@app.command("history")
@boundary
def history_command(
    config: ConfigOpt = None,
    history_db: HistoryDbArg = None,
    limit: Annotated[int, typer.Option(help="Runs to list, newest first.")] = 30,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", help="List the findings open in this run instead.", show_default=False
        ),
    ] = None,
) -> None:
    """List recorded runs (or one run's findings) from the history database."""
    from reconcile import history

    settings = build_settings(config, history_db=history_db)
    db = history.open_existing(settings.history_db)
    try:
        if run_id is not None:
            rows = history.run_findings(db, run_id)
            typer.echo(history.format_run_findings(rows))
        else:
            typer.echo(history.format_runs(history.list_runs(db, limit)))
    finally:
        db.close()


@app.command("trend")
@boundary
def trend_command(
    config: ConfigOpt = None,
    history_db: HistoryDbArg = None,
    days: Annotated[
        int | None, typer.Option(help="Only runs of the last N days.", show_default=False)
    ] = None,
) -> None:
    """Counts per status over time, one line per recorded run, oldest first."""
    from reconcile import history

    settings = build_settings(config, history_db=history_db)
    db = history.open_existing(settings.history_db)
    try:
        typer.echo(history.format_trend(history.trend(db, days)))
    finally:
        db.close()


@app.command("verify")
@boundary
def verify_command(
    directory: Annotated[Path, typer.Argument(help="A report folder written by --out-dir.")],
    verbose: VerboseOpt = 0,
) -> None:
    """Check a report folder's manifest and recompute its findings from the recorded inputs.

    Exit 0 verified, 1 a file was altered or the recomputed report differs (the first differing
    file is named), 2 an input is missing or changed so the run cannot be recomputed.
    """
    from reconcile import verify

    _setup_logging(verbose)
    outcome = verify.verify(directory)
    for name in outcome.unlisted:
        typer.echo(f"note: {name} is not covered by the manifest", err=True)
    if not outcome.ok:
        raise _fail(f"verification failed: {outcome.problem}", EXIT_FINDINGS)
    typer.echo(
        f"verified: {len(outcome.checked)} files match the manifest and the recomputed report"
    )
    raise typer.Exit(EXIT_OK)


evidence_app = typer.Typer(
    help="Device evidence: what Android, iOS and Windows logs prove about certificate delivery.",
    no_args_is_help=True,
)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("add")
@boundary
def evidence_add(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Android OMA-DM log, iOS profiled log, or Windows events as XML or CSV.",
            show_default=False,
        ),
    ],
    device: Annotated[
        str | None,
        typer.Option(
            help="Intune device name, for logs that do not name their device (Android, iOS).",
            show_default=False,
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="IANA zone of log times without an offset (default UTC).", show_default=False
        ),
    ] = None,
    log_date: Annotated[
        str | None,
        typer.Option(
            help="Date (YYYY-MM-DD) of an iOS Console copy, which has times only.",
            show_default=False,
        ),
    ] = None,
    evidence_db: EvidenceDbOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Parse device logs and store what they prove; adding the same file again changes nothing."""
    from reconcile.evidence.add import add_logs, parse_options, render_added
    from reconcile.evidence.store import EvidenceStore, evidence_path

    settings = build_settings(config, evidence_db=evidence_db)
    _setup_logging(verbose, settings.log_format)
    options = parse_options(device, timezone, log_date)
    with EvidenceStore(evidence_path(settings)) as store:
        added = add_logs(paths, store, options)
    typer.echo(render_added(added), nl=False)
    raise typer.Exit(EXIT_OK)


@app.command("explain")
@boundary
def explain_command(
    query: Annotated[
        str, typer.Argument(help="A serial number (any spelling) or an Intune device name.")
    ],
    ca_export: CaExportOpt = None,
    ca_source: CaSourceOpt = None,
    snapshot: SnapshotOpt = None,
    config: ConfigOpt = None,
    ca_format: CaFormatOpt = None,
    ca_issuer: CaIssuerOpt = None,
    column_map: ColumnMapOpt = None,
    date_order: DateOrderOpt = None,
    ca_timezone: CaTimezoneOpt = None,
    strict: StrictOpt = None,
    template: TemplateOpt = None,
    device_pattern: DevicePatternOpt = None,
    intune_source: IntuneSourceOpt = None,
    as_of: AsOfOpt = None,
    grace_hours: GraceOpt = None,
    history_db: HistoryDbOpt = None,
    exceptions: ExceptionsOpt = None,
    evidence_db: EvidenceDbOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    auth: AuthOpt = None,
    certificate: CertificateOpt = None,
    cloud: CloudOpt = None,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Everything known about one certificate or device, as a timeline with the next step.

    Takes the same inputs as `run`; records nothing in the history and writes no report.
    """
    from reconcile import history, pipeline
    from reconcile.evidence.store import EvidenceStore, evidence_path
    from reconcile.explain import explain, render_explanation

    settings = build_settings(
        config,
        ca_exports=ca_export,
        ca_sources=ca_source,
        snapshot=snapshot,
        ca_format=ca_format,
        ca_issuer=ca_issuer,
        column_map=column_map,
        date_order=date_order,
        ca_timezone=ca_timezone,
        strict=strict,
        templates=template,
        device_pattern=device_pattern,
        intune_source=intune_source,
        as_of=as_of,
        grace_hours=grace_hours,
        history_db=history_db,
        no_history=True,
        exceptions_file=exceptions,
        evidence_db=evidence_db,
        tenant_id=tenant_id,
        client_id=client_id,
        auth_method=auth,
        certificate_path=certificate,
        cloud=cloud,
        log_format=log_format,
    )
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    result = pipeline.run(settings, keep_all=True)
    path = evidence_path(settings)
    past = history.database_path(settings.history_db)
    if path.exists():
        with EvidenceStore(path, create=False) as store:
            explanation = explain(query, result, store, past)
    else:
        explanation = explain(query, result, None, past)
    typer.echo(render_explanation(explanation), nl=False)
    raise typer.Exit(EXIT_OK)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
