"""The command line: parse, resolve settings, call the core, present, map errors to exit codes.

Exit codes: 0 no findings, 1 findings, 2 usage/config/input error, 3 upstream failure or
incomplete data (no report written). This module is the only one that knows them.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import io
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from reconcile import __version__
from reconcile.ca.dates import DateOrder
from reconcile.ca.formats import CaFormat, CaSource
from reconcile.errors import ReconcileError
from reconcile.graph.config import AuthMethod, Cloud
from reconcile.history.store import Tracked
from reconcile.intune.options import SourceChoice
from reconcile.logsetup import LogFormat
from reconcile.model import RunResult
from reconcile.report import BundleInputs
from reconcile.settings import SETTING_FIELDS, Settings, resolve
from reconcile.terminal import safe
from reconcile.views import View

if TYPE_CHECKING:
    from reconcile.report.bundle import OutputOptions

log = logging.getLogger("reconcile")

# typer vendors click; its exception base is reached through a public class, not a private module.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _json_errors(args: Sequence[str]) -> bool:
    """Whether a usage error, raised before settings exist, should be a JSON record."""
    for i, arg in enumerate(args):
        if arg == "--log-format=json" or (
            arg == "--log-format" and args[i + 1 : i + 2] == ["json"]
        ):
            return True
    return os.environ.get("RECONCILE_LOG_FORMAT", "") == "json"


_COMPLETION = ("install_completion", "show_completion")


_METAVARS = {"path": "PATH", "str": "TEXT", "int": "N", "float": "NUMBER"}


def _as_flags(params: Sequence[Any], ctx: Any = None) -> None:
    """Help that reads like pip's or gh's: flags show no value (typer would print ``<bool>``)
    and values a plain name such as PATH, never ``<list[Path]>``."""
    for param in params:
        if getattr(param, "is_flag", False) or getattr(param, "name", "") in _COMPLETION:
            param.metavar = ""
        elif ctx is not None and param.metavar is None:
            raw = param.display_type(ctx).strip("<>")
            inner = raw.removeprefix("list[").removesuffix("]")
            label = _METAVARS.get(inner.lower(), inner.upper())
            if param.param_type_name == "argument":
                param.display_type_rich = lambda ctx, label=label: label
            else:
                param.metavar = label


class _OneLineErrors(TyperGroup):
    """Usage errors as one ``reconcile: error:`` line and a hint, like every other error;
    help that shows flags as flags."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _as_flags([*self.params, option])  # the completion flags are appended after __init__
        return option

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _as_flags([*command.params, command.get_help_option(ctx)], ctx)
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except _ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]
            else:
                ctx = getattr(exc, "ctx", None)
                command = ctx.command_path if ctx is not None else "reconcile"
                _print_error(
                    exc.format_message(),  # type: ignore[attr-defined]
                    _json_errors(argv),
                    f"Try '{command} --help' for help.",
                )
            # click gives some errors exit 1, which a nightly job would read as "findings".
            code = EXIT_INPUT
        except typer.Abort:
            _print_error("aborted; no report written", _json_errors(argv))
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="reconcile",
    help="Find the certificates your CA issued that Intune never reports as delivered.",
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_UPSTREAM = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def _print_error(message: str, as_json: bool = False, hint: str | None = None) -> None:
    from reconcile.logsetup import error_line

    typer.echo(error_line(safe(message), as_json, hint), err=True)


_json_requested = False
"""--log-format json was given: errors raised before logging is configured are JSON too."""


def _fail(message: str, code: int) -> typer.Exit:
    from reconcile.logsetup import json_configured

    _print_error(message, json_configured() or _json_requested or _json_errors(()))
    return typer.Exit(code)


def _echo(text: str, *, nl: bool = True, err: bool = False) -> None:
    """Every line a command prints goes through here: external text cannot reach the terminal
    with escape sequences or bidi overrides, whichever module formatted it."""
    typer.echo(safe(text, multiline=True), nl=nl, err=err)


def terminal_width() -> int:
    """The terminal's width, or ``COLUMNS``, or 120 columns when stdout is a file or pipe."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 20 else 120


def boundary(func: F) -> F:
    """The single place that turns errors into one-line messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _json_requested
        _json_requested = kwargs.get("log_format") == "json"
        # Until the command has its settings: warnings while resolving them get the prefix.
        _setup_logging(0, "json" if _json_requested else "text")
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
        _echo(f"reconcile {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Show the version."
        ),
    ] = None,
) -> None:
    """reconcile: join a CA's issued-certificate export with Intune's delivery records."""


def _choices(kind: type[StrEnum]) -> str:
    """``a, b or c``: the help text of a choice, from the enum that defines it."""
    *rest, last = (str(member) for member in kind)
    return f"{', '.join(rest)} or {last}" if rest else last


# Options shared by run-like commands. Each parameter is named after the Settings field it sets
# (the flag may differ: --ca-export sets ca_exports), so settings_for() serves every command.
# None means not given.
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="PATH", help="TOML configuration file.", show_default=False
    ),
]
CaExportOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--ca-export", metavar="PATH", help="CA export file (repeatable).", show_default=False
    ),
]
CaSourceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ca-source",
        help=f"CA read through Graph: {_choices(CaSource)} (repeatable; combine with --ca-export).",
        show_default=False,
    ),
]
CaFormatOpt = Annotated[
    str | None,
    typer.Option(
        metavar="FORMAT",
        help=f"{_choices(CaFormat)}.",
        show_default=False,
    ),
]
CaIssuerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ca-issuer",
        metavar="ISSUER",
        help="Issuer of exports that name none: once for all, or once per --ca-export in order.",
        show_default=False,
    ),
]

ColumnMapOpt = Annotated[
    Path | None,
    typer.Option(metavar="PATH", help="Column map TOML for localized headers.", show_default=False),
]
DateOrderOpt = Annotated[
    str | None,
    typer.Option(
        metavar="ORDER", help=f"Order of CA dates: {_choices(DateOrder)}.", show_default=False
    ),
]
CaTimezoneOpt = Annotated[
    str | None, typer.Option(metavar="ZONE", help="IANA time zone of CA dates.", show_default=False)
]
StrictOpt = Annotated[
    bool | None,
    typer.Option(
        "--strict/--no-strict",
        metavar="",
        help="Any rejected row is an input error (exit 2).",
        show_default=False,
    ),
]
MaxRejectRatioOpt = Annotated[
    float | None,
    typer.Option(
        metavar="RATIO",
        help="Share of an export's rows that may be rejected before the run stops with exit 2 "
        "(default 0.05).",
        show_default=False,
    ),
]
AllowOlderExportOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-older-export",
        help="Accept a CA export whose newest certificate is older than the last run's "
        "instead of exiting 2.",
        show_default=False,
    ),
]
AllowEmptyOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-empty",
        help="Accept an export with no in-scope certificate instead of exiting 2.",
        show_default=False,
    ),
]
TemplateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--template",
        metavar="TEMPLATE",
        help="Template OID or name in scope (repeatable).",
        show_default=False,
    ),
]
DevicePatternOpt = Annotated[
    str | None,
    typer.Option(
        metavar="REGEX",
        help="Regex with one group: device name from the CA subject/SAN.",
        show_default=False,
    ),
]
SnapshotOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="DIR", help="Read Intune from this snapshot instead of Graph.", show_default=False
    ),
]
SaveSnapshotOpt = Annotated[
    Path | None,
    typer.Option(metavar="DIR", help="Keep what a live run fetched here.", show_default=False),
]
IntuneSourceOpt = Annotated[
    str | None,
    typer.Option(metavar="SOURCE", help=f"{_choices(SourceChoice)}.", show_default=False),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        metavar="TIME", help="The run's 'now', ISO-8601 (default: the clock).", show_default=False
    ),
]
GraceOpt = Annotated[
    float | None,
    typer.Option(
        metavar="HOURS",
        help="Hours after issuance before a missing delivery counts (default 24).",
        show_default=False,
    ),
]
CsvOpt = Annotated[
    Path | None, typer.Option("--csv", metavar="PATH", help="Write CSV here.", show_default=False)
]
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", metavar="PATH", help="Write JSON Lines here.", show_default=False),
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        metavar="PATH",
        help="Write a self-contained HTML report here.",
        show_default=False,
    ),
]
HistoryDbOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH", help="SQLite run history (default: user data dir).", show_default=False
    ),
]
NoHistoryOpt = Annotated[
    bool | None,
    typer.Option(
        "--no-history",
        metavar="",
        help="Do not record this run in the history.",
        show_default=False,
    ),
]
EvidenceDbOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        help="Device evidence database (default: user data dir).",
        show_default=False,
    ),
]
ExceptionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--exceptions",
        metavar="PATH",
        help="Accepted exceptions TOML (serial or device).",
        show_default=False,
    ),
]
OutDirOpt = Annotated[
    Path | None,
    typer.Option(metavar="DIR", help="Write the full report bundle here.", show_default=False),
]
BundleInputsOpt = Annotated[
    str | None,
    typer.Option(
        "--bundle-inputs",
        help=f"{BundleInputs.COPY} (default): the --out-dir bundle holds gzip copies of its "
        f"inputs; {BundleInputs.REFERENCE}: it names their paths only.",
        show_default=False,
    ),
]
AllOpt = Annotated[
    bool | None,
    typer.Option(
        "--all/--findings-only",
        metavar="",
        help="Every CA row in CSV/JSON, not only findings.",
        show_default=False,
    ),
]
BomOpt = Annotated[
    bool | None,
    typer.Option(
        "--bom/--no-bom",
        metavar="",
        help="UTF-8 BOM at the start of CSV files (default on).",
        show_default=False,
    ),
]
ExpiryDaysOpt = Annotated[
    int | None,
    typer.Option(
        help="Installed certificates expiring within this many days are listed (default 30).",
        show_default=False,
    ),
]
RevokedInstalledCsvOpt = Annotated[
    Path | None,
    typer.Option(
        "--revoked-installed-csv",
        help="Write the revoked-but-installed view as CSV here.",
        show_default=False,
    ),
]
ExpiringCsvOpt = Annotated[
    Path | None,
    typer.Option("--expiring-csv", help="Write the expiring view as CSV here.", show_default=False),
]
RevocationPlanOpt = Annotated[
    Path | None,
    typer.Option(
        "--revocation-plan", help="Write the revocation plan CSV here.", show_default=False
    ),
]
MaxRowsOpt = Annotated[
    int | None,
    typer.Option(
        metavar="N", help="Findings shown on the terminal (default 50).", show_default=False
    ),
]
TenantOpt = Annotated[
    str | None, typer.Option(metavar="ID", help="Entra tenant id.", show_default=False)
]
ClientOpt = Annotated[
    str | None, typer.Option(metavar="ID", help="App (client) id.", show_default=False)
]
AuthOpt = Annotated[
    str | None,
    typer.Option(
        "--auth",
        metavar="METHOD",
        help=f"{_choices(AuthMethod)}.",
        show_default=False,
    ),
]
CertificateOpt = Annotated[
    Path | None,
    typer.Option(
        "--certificate", metavar="PATH", help="PEM or PFX for certificate auth.", show_default=False
    ),
]
CloudOpt = Annotated[
    str | None,
    typer.Option(metavar="CLOUD", help=f"{_choices(Cloud)}.", show_default=False),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        metavar="",
        show_default=False,
        help="More diagnostics on stderr: -v progress notes, -vv debug (a count, not a value).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", metavar="", help="No report on stdout (files and exit code only)."
    ),
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        metavar="FORMAT",
        help=f"Diagnostics as {LogFormat.TEXT} or {LogFormat.JSON} lines.",
        show_default=False,
    ),
]


def build_settings(config: Path | None, **flags: Any) -> Settings:
    """Flags that were not given are None and fall through to env, TOML and defaults."""
    cleaned = {k: (tuple(v) if isinstance(v, list) else v) for k, v in flags.items()}
    return resolve(cleaned, config_path=config)


def settings_for(ctx: typer.Context, **fixed: Any) -> Settings:
    """The command's own parameters that name a Settings field, plus ``fixed`` values the
    command always sets; ``--config`` picks the TOML file."""
    given = {k: v for k, v in ctx.params.items() if k in SETTING_FIELDS}
    return build_settings(ctx.params.get("config"), **given, **fixed)


def check_targets(settings: Settings) -> None:
    """Outputs that cannot be written fail before the run, not after an hour of fetching."""
    from reconcile.report.atomic import check_file_target

    for target in (
        settings.csv,
        settings.json,
        settings.html,
        settings.revoked_installed_csv,
        settings.expiring_csv,
        settings.revocation_plan,
    ):
        if target is not None:
            check_file_target(target)


def exit_code_for(result: RunResult) -> int:
    """1 for any finding or any revoked certificate still installed; expiring alone is 0."""
    return EXIT_OK if result.clean else EXIT_FINDINGS


def output_options(settings: Settings) -> OutputOptions:
    from reconcile.report.bundle import OutputOptions
    from reconcile.verify import recorded_settings

    return OutputOptions(
        all_rows=settings.all_rows,
        csv_bom=settings.csv_bom,
        bundle_inputs=settings.bundle_inputs,
        column_map=settings.column_map,
        secrets=settings.secret_values(),
        recorded=recorded_settings(settings),
    )


def present(
    result: RunResult, settings: Settings, quiet: bool, tracked: Tracked | None = None
) -> int:
    """Write every requested output, print the report, and return the exit code."""
    from reconcile.report import bundle, html, table
    from reconcile.report.atomic import write_atomic
    from reconcile.report.document import Report

    exit_code = exit_code_for(result)
    report = Report(
        result,
        tracked.delta if tracked is not None else None,
        tracked.runs if tracked is not None else (),
        all_rows=settings.all_rows,
    )
    options = output_options(settings)
    if settings.csv is not None:
        bundle.write_csv(settings.csv, report, options)
    if settings.json is not None:
        bundle.write_json(settings.json, report)
    for view, path in (
        (View.REVOKED_INSTALLED, settings.revoked_installed_csv),
        (View.EXPIRING, settings.expiring_csv),
        (View.REVOCATION_PLAN, settings.revocation_plan),
    ):
        if path is not None:
            bundle.write_view_csv(path, view, report, options)
    if settings.html is not None:
        write_atomic(settings.html, lambda h: html.write(h, report), encoding="utf-8")
    if settings.out_dir is not None:
        bundle.write_bundle(
            settings.out_dir,
            report,
            options,
            sys.argv[1:],
            exit_code,
            extra=[("report.html", lambda h: html.write(h, report))],
        )
    if not quiet:
        terminal = dataclasses.replace(report, max_rows=settings.max_rows, width=terminal_width())
        text = io.StringIO()
        table.write(text, terminal)
        _echo(text.getvalue(), nl=False)
    return exit_code


@app.command()
@boundary
def run(
    ctx: typer.Context,
    ca_exports: CaExportOpt = None,
    ca_sources: CaSourceOpt = None,
    snapshot: SnapshotOpt = None,
    config: ConfigOpt = None,
    ca_format: CaFormatOpt = None,
    ca_issuer: CaIssuerOpt = None,
    column_map: ColumnMapOpt = None,
    date_order: DateOrderOpt = None,
    ca_timezone: CaTimezoneOpt = None,
    strict: StrictOpt = None,
    max_reject_ratio: MaxRejectRatioOpt = None,
    allow_empty: AllowEmptyOpt = None,
    allow_older_export: AllowOlderExportOpt = None,
    templates: TemplateOpt = None,
    device_pattern: DevicePatternOpt = None,
    save_snapshot: SaveSnapshotOpt = None,
    intune_source: IntuneSourceOpt = None,
    as_of: AsOfOpt = None,
    grace_hours: GraceOpt = None,
    csv: CsvOpt = None,
    json: JsonOpt = None,
    out_dir: OutDirOpt = None,
    bundle_inputs: BundleInputsOpt = None,
    html: HtmlOpt = None,
    expiry_days: ExpiryDaysOpt = None,
    revoked_installed_csv: RevokedInstalledCsvOpt = None,
    expiring_csv: ExpiringCsvOpt = None,
    revocation_plan: RevocationPlanOpt = None,
    history_db: HistoryDbOpt = None,
    no_history: NoHistoryOpt = None,
    exceptions_file: ExceptionsOpt = None,
    evidence_db: EvidenceDbOpt = None,
    all_rows: AllOpt = None,
    csv_bom: BomOpt = None,
    max_rows: MaxRowsOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    auth_method: AuthOpt = None,
    certificate_path: CertificateOpt = None,
    cloud: CloudOpt = None,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Reconcile CA exports with Intune (a snapshot, or a live fetch from Graph)."""
    from reconcile import pipeline

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    from reconcile import lock, notify, progress, retention
    from reconcile.history import store as history

    check_targets(settings)
    with lock.run_lock(settings.lock_file()), pipeline.keep_fetched(settings) as kept:
        started = time.monotonic()
        with progress.shown(enabled=not quiet):
            result = pipeline.run(kept)
        # The run's records live until its report is written, and hold no cycles: the cyclic
        # collector would rescan them all each time it ran (at 1M rows about 0.5 s).
        gc.freeze()
        code = exit_code_for(result)
        with history.tracked_run(
            settings.history(), result, code, time.monotonic() - started
        ) as tracked:
            present(tracked.result, settings, quiet, tracked)
        retention.prune_for(settings.retention(), datetime.now(UTC))
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
    from reconcile import pipeline, progress
    from reconcile.emulator import GraphEmulator
    from reconcile.emulator.demo import demo_settings_env
    from reconcile.history import store as history

    _setup_logging(verbose)
    from reconcile.emulator.connectors import ConnectorSwitch

    seeded = out_dir.parent / f"{out_dir.name}.history.sqlite3"
    _seed_demo_history(seeded)
    with GraphEmulator(
        snapshot_dir=demo_data.demo_snapshot(),
        tenant=demo_data.DEMO_TENANT_ID,
        export_polls=0,
        connectors=ConnectorSwitch(clock=demo_data.DEMO_AS_OF),
    ) as emulator:
        env = demo_settings_env(emulator)
        settings = build_settings(
            None,
            ca_exports=[demo_data.demo_ca_export()],
            ca_sources=[CaSource.CLOUD_PKI],
            ca_issuer=demo_data.DEMO_ISSUER,
            templates=[*demo_data.DEMO_TEMPLATES, demo_data.DEMO_CLOUD_PKI_CA],
            as_of=demo_data.DEMO_AS_OF,
            out_dir=out_dir,
            history_db=seeded,
            intune_source="both",
            tenant_id=env["RECONCILE_TENANT_ID"],
            client_id=env["RECONCILE_CLIENT_ID"],
            client_secret=env["RECONCILE_CLIENT_SECRET"],
            auth_method=env["RECONCILE_AUTH"],
            authority_host=env["RECONCILE_AUTHORITY_HOST"],
            graph_url=env["RECONCILE_GRAPH_URL"],
            ca_bundle=env["RECONCILE_CA_BUNDLE"],
        )
        settings = dataclasses.replace(settings, fetch_stamp=demo_data.DEMO_AS_OF)
        _echo(f"Demo tenant served by the Graph emulator at {emulator.base_url}", err=True)
        check_targets(settings)
        started = time.monotonic()
        with pipeline.keep_fetched(settings) as kept:
            with progress.shown():
                result = pipeline.run(kept)
            code = exit_code_for(result)
            with history.tracked_run(
                settings.history(), result, code, time.monotonic() - started
            ) as tracked:
                present(tracked.result, settings, False, tracked)
    _echo(_demo_next_steps(result, out_dir.resolve(), seeded), err=True)
    raise typer.Exit(EXIT_OK)


DEMO_NIGHTS = 3


def _seed_demo_history(path: Path) -> None:
    """A few earlier nights of the demo tenant in a history of its own, beside the demo's
    reports and made anew each time, so the report shows a trend and ages; the admin's own
    history is never touched."""
    from datetime import timedelta

    from reconcile import demo as demo_data
    from reconcile import pipeline
    from reconcile.history import store as history

    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)

    for night in range(DEMO_NIGHTS, 0, -1):
        settings = build_settings(
            None,
            ca_exports=[demo_data.demo_ca_export()],
            snapshot=demo_data.demo_snapshot(),
            ca_issuer=demo_data.DEMO_ISSUER,
            templates=list(demo_data.DEMO_TEMPLATES),
            as_of=(demo_data.DEMO_AS_OF - timedelta(days=night)).isoformat(),
            history_db=path,
            intune_source="both",
        )
        result = pipeline.run(settings)
        with history.tracked_run(settings.history(), result, int(bool(result.findings)), 0.0):
            pass


def _demo_next_steps(result: RunResult, out_dir: Path, seeded: Path) -> str:
    import re
    import shlex

    from reconcile import demo as demo_data

    names = (v.intune.device_name for v in result.findings if v.intune and v.intune.device_name)
    device = next((n for n in names if re.fullmatch(r"[\w.-]+", n)), "CONTOSO-LT-0099")
    explain = shlex.join(
        [
            "reconcile",
            "explain",
            device,
            "--ca-export",
            str(demo_data.demo_ca_export()),
            "--ca-source",
            CaSource.CLOUD_PKI.value,
            "--snapshot",
            str(demo_data.demo_snapshot()),
            "--ca-issuer",
            demo_data.DEMO_ISSUER,
            "--intune-source",
            "both",
            "--as-of",
            demo_data.DEMO_AS_OF.isoformat(),
        ]
    )
    return "\n".join(
        [
            "",
            f"Demo reports written to {out_dir}",
            "Next, try:",
            f"  open the HTML report:  {out_dir / 'report.html'}",
            f"  explain one device:    {explain}",
            f"  the demo's history:    reconcile trend --history-db {shlex.quote(str(seeded))}",
            "  your own tenant:       reconcile init, then reconcile doctor",
        ]
    )


@app.command()
@boundary
def fetch(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Snapshot directory to write (replaced atomically).")
    ],
    config: ConfigOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    cloud: CloudOpt = None,
    auth_method: AuthOpt = None,
    certificate_path: CertificateOpt = None,
    intune_source: IntuneSourceOpt = None,
    ca_sources: CaSourceOpt = None,
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

    from reconcile import progress
    from reconcile.graph.cassette import recording_transport
    from reconcile.graph.transport import ssl_trust
    from reconcile.intune.fetch import fetch_snapshot
    from reconcile.intune.snapshot import METADATA

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    options = settings.fetch_options()
    transport = None
    if record_cassette is not None:
        transport = recording_transport(ssl_trust(options.graph), record_cassette, pseudonymise)
    try:
        with progress.shown():
            path = fetch_snapshot(options, out, transport=transport, progress=progress.report)
    finally:
        if transport is not None:
            transport.close()
            _echo(f"cassette {record_cassette}: {transport.interactions} exchanges", err=True)
    counts = json.loads((path / METADATA).read_text(encoding="utf-8"))["counts"]
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    _echo(f"snapshot {path}: {summary}")
    raise typer.Exit(EXIT_OK)


@app.command()
@boundary
def doctor(
    ctx: typer.Context,
    config: ConfigOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    cloud: CloudOpt = None,
    auth_method: AuthOpt = None,
    certificate_path: CertificateOpt = None,
    intune_source: IntuneSourceOpt = None,
    ca_sources: CaSourceOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Check configuration, sign-in, each Graph permission and the clock; exit 3 if any fails."""
    from reconcile.doctor import render_checks, run_doctor

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    checks = run_doctor(settings.doctor_options())
    _echo(render_checks(checks, terminal_width()))
    raise typer.Exit(EXIT_UPSTREAM if any(c.ok is False for c in checks) else EXIT_OK)


HistoryDbArg = Annotated[
    Path | None,
    typer.Option(
        "--history-db",
        metavar="PATH",
        help="SQLite run history (default: user data dir).",
        show_default=False,
    ),
]


@app.command("history")
@boundary
def history_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    history_db: HistoryDbArg = None,
    limit: Annotated[
        int, typer.Option(min=1, metavar="N", help="Runs to list, newest first.")
    ] = 30,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="ID",
            help="List the findings open in this run instead, with status and age.",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """List recorded runs (or one run's findings) from the history database."""
    from reconcile.history import store as history
    from reconcile.report import historytext

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format)
    db = history.open_existing(settings.history_db)
    try:
        if run_id is not None:
            details = history.run_finding_details(db, run_id)
            _echo(historytext.format_run_details(details, terminal_width()))
        else:
            _echo(historytext.format_runs(history.list_runs(db, limit), terminal_width()))
    finally:
        db.close()


@app.command("trend")
@boundary
def trend_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    history_db: HistoryDbArg = None,
    days: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Only runs of the last N days.", show_default=False),
    ] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Counts per status over time, one line per recorded run, oldest first."""
    from reconcile.history import store as history
    from reconcile.report import historytext

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format)
    db = history.open_existing(settings.history_db)
    try:
        _echo(historytext.format_trend(history.trend(db, days), terminal_width()))
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
        _echo(f"note: {name} is not covered by the manifest", err=True)
    if not outcome.ok:
        raise _fail(f"verification failed: {outcome.problem}", EXIT_FINDINGS)
    _echo(f"verified: {len(outcome.checked)} files match the manifest and the recomputed report")
    raise typer.Exit(EXIT_OK)


evidence_app = typer.Typer(
    help="Device evidence: what Android, iOS and Windows logs prove about certificate delivery.",
    cls=_OneLineErrors,
    no_args_is_help=True,
)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("add")
@boundary
def evidence_add(
    ctx: typer.Context,
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
    from reconcile.evidence.store import EvidenceStore

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format)
    options = parse_options(device, timezone, log_date)
    with EvidenceStore(settings.evidence_path()) as store:
        added = add_logs(paths, store, options)
    _echo(render_added(added), nl=False)
    raise typer.Exit(EXIT_OK)


@evidence_app.command("list")
@boundary
def evidence_list(
    ctx: typer.Context,
    device: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Only this device's attempts.", show_default=False),
    ] = None,
    evidence_db: EvidenceDbOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Show what the evidence store holds: one line per enrollment attempt, newest last."""
    from reconcile.evidence.store import EvidenceStore
    from reconcile.report.text import fit_table, printable
    from reconcile.timeparse import iso_z

    settings = settings_for(ctx)
    _setup_logging(verbose, settings.log_format)
    path = settings.evidence_path()
    if not path.exists():
        raise _fail(f"{path}: no evidence stored yet (add logs with `reconcile evidence add`)", 2)
    with EvidenceStore(path, create=False) as store:
        records = store.records(device)
    if not records:
        _echo("No evidence stored" + (f" for device {device!r}." if device else "."))
        raise typer.Exit(EXIT_OK)
    rows = [
        (
            iso_z(r.time)[:16] if r.time else "-",
            printable(r.device),
            r.platform.value,
            printable(r.profile or r.profile_id or "-"),
            r.outcome.value,
            f"{printable(r.source)}:{r.line}",
        )
        for r in sorted(
            records, key=lambda r: (r.time is None, r.time or datetime.min.replace(tzinfo=UTC))
        )
    ]
    headers = ("time (UTC)", "device", "platform", "profile", "outcome", "log")
    _echo(fit_table(rows, headers, terminal_width(), title=2, wrapped=(3,), min_room=20))
    _echo(f"{len(records)} attempt(s) in {path}", err=True)
    raise typer.Exit(EXIT_OK)


@app.command("init")
@boundary
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to write the files (default: here).", show_default=False)
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Overwrite files that exist.")
    ] = False,
) -> None:
    """Write a commented starter reconcile.toml and a certutil column map to edit."""
    from reconcile.starter import write_starter

    for path in write_starter(directory, force):
        _echo(f"wrote {path}")
    _echo(
        "Edit reconcile.toml (tenant, client id, CA export), then run `reconcile doctor`; "
        "reconcile reads ./reconcile.toml by itself.",
        err=True,
    )
    raise typer.Exit(EXIT_OK)


@app.command("explain")
@boundary
def explain_command(
    ctx: typer.Context,
    query: Annotated[
        str, typer.Argument(help="A serial number (any spelling) or an Intune device name.")
    ],
    ca_exports: CaExportOpt = None,
    ca_sources: CaSourceOpt = None,
    snapshot: SnapshotOpt = None,
    config: ConfigOpt = None,
    ca_format: CaFormatOpt = None,
    ca_issuer: CaIssuerOpt = None,
    column_map: ColumnMapOpt = None,
    date_order: DateOrderOpt = None,
    ca_timezone: CaTimezoneOpt = None,
    strict: StrictOpt = None,
    max_reject_ratio: MaxRejectRatioOpt = None,
    templates: TemplateOpt = None,
    device_pattern: DevicePatternOpt = None,
    intune_source: IntuneSourceOpt = None,
    as_of: AsOfOpt = None,
    grace_hours: GraceOpt = None,
    history_db: HistoryDbOpt = None,
    exceptions_file: ExceptionsOpt = None,
    evidence_db: EvidenceDbOpt = None,
    tenant_id: TenantOpt = None,
    client_id: ClientOpt = None,
    auth_method: AuthOpt = None,
    certificate_path: CertificateOpt = None,
    cloud: CloudOpt = None,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Everything known about one certificate or device, as a timeline with the next step.

    Takes the same inputs as `run`; records nothing in the history and writes no report.
    """
    from reconcile import pipeline, progress
    from reconcile.evidence.store import EvidenceStore
    from reconcile.explain import explain, render_explanation

    settings = settings_for(ctx, no_history=True)
    _setup_logging(verbose, settings.log_format, settings.secret_values())
    with progress.shown():
        result = pipeline.run(settings, keep_all=True)
    path = settings.evidence_path()
    past = settings.history_path()
    if path.exists():
        with EvidenceStore(path, create=False) as store:
            explanation = explain(query, result, store, past)
    else:
        explanation = explain(query, result, None, past)
    _echo(render_explanation(explanation, terminal_width()), nl=False)
    raise typer.Exit(EXIT_OK)


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM (docker stop, systemd, timeout) unwinds like Ctrl-C, so temporaries are removed."""
    raise KeyboardInterrupt


def main() -> None:
    """Console entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    app()


if __name__ == "__main__":
    main()
