"""The command line: parse, resolve settings, call the core, present, map errors to exit codes.

Exit codes: 0 no findings, 1 findings, 2 usage/config/input error, 3 upstream failure or
incomplete data (no report written). This module is the only one that knows them.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from reconcile import __version__
from reconcile.errors import ReconcileError
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

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: int, log_format: str = "text") -> None:
    from reconcile.logsetup import configure

    configure(verbose, log_format)


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
CaFormatOpt = Annotated[
    str | None,
    typer.Option(help="auto, certutil, pspki, ejbca, openssl-index or mapped.", show_default=False),
]
CaIssuerOpt = Annotated[
    str | None, typer.Option(help="Issuer name for exports without one.", show_default=False)
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


def present(result: RunResult, settings: Settings, quiet: bool, preamble: str = "") -> int:
    """Write every requested output, print the report, and return the exit code."""
    from reconcile.report import bundle, table

    exit_code = EXIT_FINDINGS if result.findings else EXIT_OK
    if settings.csv is not None:
        bundle.write_csv(settings.csv, result, settings)
    if settings.json is not None:
        bundle.write_json(settings.json, result, settings)
    if settings.out_dir is not None:
        bundle.write_bundle(settings.out_dir, result, settings, sys.argv[1:], exit_code)
    if not quiet:
        typer.echo(table.render(result, settings.max_rows, preamble), nl=False)
    return exit_code


@app.command()
@boundary
def run(
    ca_export: CaExportOpt = None,
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
    _setup_logging(verbose, settings.log_format)
    result = pipeline.run(settings)
    raise typer.Exit(present(result, settings, quiet))


@app.command()
@boundary
def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the demo writes its reports.")] = Path(
        "demo-output"
    ),
    verbose: VerboseOpt = 0,
) -> None:
    """Run the whole pipeline on the bundled demo tenant; exits 0 when the demo ran."""
    from reconcile import demo as demo_data
    from reconcile import pipeline

    _setup_logging(verbose)
    settings = build_settings(
        None,
        ca_exports=[demo_data.demo_ca_export()],
        snapshot=demo_data.demo_snapshot(),
        ca_issuer=demo_data.DEMO_ISSUER,
        templates=list(demo_data.DEMO_TEMPLATES),
        as_of=demo_data.DEMO_AS_OF,
        out_dir=out_dir,
        no_history=True,
    )
    result = pipeline.run(settings)
    present(result, settings, quiet=False)
    typer.echo(f"\nDemo reports written to {out_dir.resolve()}", err=True)
    raise typer.Exit(EXIT_OK)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
