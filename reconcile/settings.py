"""Settings for one invocation, resolved once: flags > RECONCILE_* env > TOML file > defaults.

Each field declares its TOML key (``table.key``) and environment variable in its metadata, so
the precedence rule, the README table and config/example.toml all come from one place.

This is the door: the CLI resolves one ``Settings`` and hands each part the small typed options
it needs (``graph_config``, ``fetch_options``, ``reader_options``, ...), so the Graph client,
the CA readers and the Intune fetch never see the settings object. Each value remembers where
it came from (``origin``), so "the default" and "set to the default's value" stay apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile.ca.dates import DateOrder
from reconcile.ca.formats import CaFormat, CaSource
from reconcile.errors import ConfigError
from reconcile.graph.config import AuthMethod, Cloud, GraphConfig
from reconcile.intune.options import FetchOptions, SourceChoice
from reconcile.logsetup import LogFormat
from reconcile.paths import (
    CONFIG_NAME,
    default_evidence_db,
    default_history_db,
    lock_beside,
    user_config_path,
)
from reconcile.report import BundleInputs

if TYPE_CHECKING:
    from reconcile.ca import ReaderOptions
    from reconcile.doctor import DoctorOptions
    from reconcile.history.store import HistoryOptions
    from reconcile.retention import Retention


def _opt(
    default: Any,
    toml: str,
    env: str | None = None,
    *,
    secret: bool = False,
    help: str = "",
    separator: str = ",",
) -> Any:
    meta = {"toml": toml, "env": env, "secret": secret, "help": help, "separator": separator}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta, repr=not secret)


class Origin(StrEnum):
    """Where a resolved value came from."""

    FLAG = "flag"
    ENV = "env"
    CONFIG = "config"
    DEFAULT = "default"


@dataclass(frozen=True)
class Settings:
    """Every knob of reconcile. Secrets are excluded from repr and masked in run.json."""

    # --- CA exports -------------------------------------------------------------------------
    ca_exports: tuple[Path, ...] = _opt(
        (), "ca.exports", "RECONCILE_CA_EXPORT", help="CA export files (repeatable)"
    )
    ca_sources: tuple[str, ...] = _opt(
        (),
        "ca.sources",
        "RECONCILE_CA_SOURCE",
        help="CAs read through Graph instead of an export: cloud-pki (Microsoft Cloud PKI); "
        "combine with CA exports for a mixed estate",
    )
    ca_format: CaFormat = _opt(
        CaFormat.AUTO,
        "ca.format",
        "RECONCILE_CA_FORMAT",
        help="auto, certutil, certutil-text, pspki, ejbca, openssl-index or mapped",
    )
    ca_issuer: tuple[str, ...] = _opt(
        (),
        "ca.issuer",
        "RECONCILE_CA_ISSUER",
        help="issuer of exports that name none (certutil, PSPKI): one for every export, or one "
        "per export in the same order (repeatable; ';' between names in the env var)",
        separator=";",
    )
    ca_config: str | None = _opt(
        None,
        "ca.config",
        "RECONCILE_CA_CONFIG",
        help="AD CS CA config (host\\CA name) for the revocation plan's certutil -config",
    )
    column_map: Path | None = _opt(
        None,
        "ca.column_map",
        "RECONCILE_COLUMN_MAP",
        help="TOML column map for localized or custom headers",
    )
    date_order: DateOrder = _opt(
        DateOrder.MDY,
        "ca.date_order",
        "RECONCILE_DATE_ORDER",
        help="order of day, month and year in CA dates: mdy, dmy or ymd",
    )
    ca_timezone: str = _opt(
        "UTC",
        "ca.timezone",
        "RECONCILE_CA_TIMEZONE",
        help="IANA zone of CA dates without GMT/UTC marker",
    )
    encoding: str | None = _opt(
        None,
        "ca.encoding",
        "RECONCILE_CA_ENCODING",
        help="force a text encoding instead of BOM sniffing",
    )
    legacy_encoding: str = _opt(
        "cp1252",
        "ca.legacy_encoding",
        "RECONCILE_CA_LEGACY_ENCODING",
        help="code page tried when a file is not valid UTF-8",
    )
    strict: bool = _opt(
        False, "ca.strict", "RECONCILE_STRICT", help="any rejected row is an input error (exit 2)"
    )
    max_reject_ratio: float = _opt(
        0.05,
        "ca.max_reject_ratio",
        "RECONCILE_MAX_REJECT_RATIO",
        help="share of an export's rows that may be rejected before the run stops (exit 2)",
    )
    allow_empty: bool = _opt(
        False,
        "ca.allow_empty",
        "RECONCILE_ALLOW_EMPTY",
        help="accept an export with no in-scope certificate instead of stopping (exit 2)",
    )
    allow_older_export: bool = _opt(
        False,
        "ca.allow_older_export",
        "RECONCILE_ALLOW_OLDER_EXPORT",
        help="accept an export whose newest row is older than the last run's (exit 2 otherwise)",
    )
    templates: tuple[str, ...] = _opt(
        (),
        "ca.templates",
        "RECONCILE_TEMPLATE",
        help="template OIDs or names in scope (default: all)",
    )
    device_pattern: str | None = _opt(
        None,
        "ca.device_pattern",
        "RECONCILE_DEVICE_PATTERN",
        help="regex with one group taking the device name "
        "from the CA subject/SAN, to link renewals",
    )
    # --- Intune -----------------------------------------------------------------------------
    snapshot: Path | None = _opt(
        None,
        "intune.snapshot",
        "RECONCILE_SNAPSHOT",
        help="read Intune records from this snapshot directory",
    )
    save_snapshot: Path | None = _opt(
        None,
        "intune.save_snapshot",
        "RECONCILE_SAVE_SNAPSHOT",
        help="keep what a live run fetched as a snapshot here",
    )
    intune_source: SourceChoice = _opt(
        SourceChoice.STATES,
        "intune.source",
        "RECONCILE_INTUNE_SOURCE",
        help="states, report or both",
    )
    report_delivered: tuple[str, ...] = _opt(
        ("installed", "issued", "active", "valid"),
        "intune.report_delivered",
        "RECONCILE_REPORT_DELIVERED",
        help="CertificateStatus values of the report export that mean delivered",
    )
    report_status_codes: tuple[str, ...] = _opt(
        (),
        "intune.report_status_codes",
        "RECONCILE_REPORT_STATUS_CODES",
        help="code=text for numeric CertificateStatus codes of the report export (Microsoft "
        "documents none; the _loc column is read when present)",
    )
    report_raw_rows: bool = _opt(
        False,
        "intune.report_raw_rows",
        "RECONCILE_REPORT_RAW_ROWS",
        help="keep every column of each report export row in the snapshot, not only those read",
    )
    max_snapshot_bytes: int = _opt(
        4 * 1024**3,
        "intune.max_snapshot_bytes",
        "RECONCILE_MAX_SNAPSHOT_BYTES",
        help="largest snapshot a fetch may write; a larger one fails the run",
    )
    export_timeout: float = _opt(
        600.0,
        "intune.export_timeout",
        "RECONCILE_EXPORT_TIMEOUT",
        help="seconds to wait for a report export job",
    )
    max_concurrency: int = _opt(
        4, "intune.max_concurrency", "RECONCILE_MAX_CONCURRENCY", help="profiles read at once"
    )
    connector_stale_hours: float = _opt(
        24.0,
        "intune.connector_stale_hours",
        "RECONCILE_CONNECTOR_STALE_HOURS",
        help="a certificate connector silent for longer than this is a warning",
    )
    # --- classification ---------------------------------------------------------------------
    as_of: datetime | None = _opt(
        None, "run.as_of", "RECONCILE_AS_OF", help="the run's 'now' (ISO-8601); default: the clock"
    )
    grace_hours: float = _opt(
        24.0,
        "run.grace_hours",
        "RECONCILE_GRACE_HOURS",
        help="certificates issued this recently are within_grace",
    )
    # --- outputs ----------------------------------------------------------------------------
    csv: Path | None = _opt(None, "output.csv", "RECONCILE_CSV", help="write findings CSV")
    json: Path | None = _opt(None, "output.json", "RECONCILE_JSON", help="write JSON Lines")
    html: Path | None = _opt(None, "output.html", "RECONCILE_HTML", help="write an HTML report")
    out_dir: Path | None = _opt(
        None, "output.out_dir", "RECONCILE_OUT_DIR", help="write the full report bundle here"
    )
    bundle_inputs: BundleInputs = _opt(
        BundleInputs.COPY,
        "output.bundle_inputs",
        "RECONCILE_BUNDLE_INPUTS",
        help="copy: the --out-dir bundle holds compressed copies of its inputs; reference: "
        "it names their paths only",
    )
    all_rows: bool = _opt(
        False, "output.all", "RECONCILE_ALL", help="CSV/JSON hold every CA row, not only findings"
    )
    csv_bom: bool = _opt(
        True,
        "output.csv_bom",
        "RECONCILE_CSV_BOM",
        help="start CSV files with a UTF-8 BOM (for Excel)",
    )
    revoked_installed_csv: Path | None = _opt(
        None,
        "output.revoked_installed_csv",
        "RECONCILE_REVOKED_INSTALLED_CSV",
        help="write the revoked-but-installed view as CSV here",
    )
    expiring_csv: Path | None = _opt(
        None, "output.expiring_csv", "RECONCILE_EXPIRING_CSV", help="write the expiring view here"
    )
    revocation_plan: Path | None = _opt(
        None,
        "output.revocation_plan",
        "RECONCILE_REVOCATION_PLAN",
        help="write the revocation plan CSV here",
    )
    max_rows: int = _opt(
        50, "output.max_rows", "RECONCILE_MAX_ROWS", help="findings shown on the terminal"
    )
    expiry_days: int = _opt(
        30,
        "report.expiry_days",
        "RECONCILE_EXPIRY_DAYS",
        help="installed certificates expiring within this many days are listed as expiring",
    )
    # --- Graph and auth ---------------------------------------------------------------------
    tenant_id: str | None = _opt(
        None, "graph.tenant_id", "RECONCILE_TENANT_ID", help="Entra ID tenant (directory) id"
    )
    client_id: str | None = _opt(
        None,
        "graph.client_id",
        "RECONCILE_CLIENT_ID",
        help="application (client) id of the app registration",
    )
    client_secret: str | None = _opt(
        None,
        "graph.client_secret",
        "RECONCILE_CLIENT_SECRET",
        secret=True,
        help="prefer the env var or a file",
    )
    client_secret_file: Path | None = _opt(
        None,
        "graph.client_secret_file",
        "RECONCILE_CLIENT_SECRET_FILE",
        help="file holding only the client secret (mode 0600)",
    )
    auth_method: AuthMethod = _opt(
        AuthMethod.AUTO,
        "graph.auth",
        "RECONCILE_AUTH",
        help="auto, secret, certificate, device-code or managed-identity",
    )
    certificate_path: Path | None = _opt(
        None,
        "graph.certificate",
        "RECONCILE_CERTIFICATE",
        help="PEM or PFX with the app's private key",
    )
    certificate_password: str | None = _opt(
        None,
        "graph.certificate_password",
        "RECONCILE_CERTIFICATE_PASSWORD",
        secret=True,
        help="password of the PFX or encrypted PEM key",
    )
    certificate_thumbprint: str | None = _opt(
        None,
        "graph.certificate_thumbprint",
        "RECONCILE_CERTIFICATE_THUMBPRINT",
        help="SHA-1 thumbprint, when the key file holds no certificate",
    )
    send_certificate_chain: bool = _opt(
        False,
        "graph.send_certificate_chain",
        "RECONCILE_SEND_CERTIFICATE_CHAIN",
        help="subject-name/issuer auth (x5c)",
    )
    managed_identity_client_id: str | None = _opt(
        None,
        "graph.managed_identity_client_id",
        "RECONCILE_MANAGED_IDENTITY_CLIENT_ID",
        help="client id of a user-assigned managed identity (empty: system-assigned)",
    )
    cloud: Cloud = _opt(
        Cloud.GLOBAL, "graph.cloud", "RECONCILE_CLOUD", help="global, usgov, usgovdod or china"
    )
    authority_host: str | None = _opt(
        None,
        "graph.authority_host",
        "RECONCILE_AUTHORITY_HOST",
        help="https URL of the Entra ID authority, overriding the cloud's",
    )
    graph_url: str | None = _opt(
        None,
        "graph.graph_url",
        "RECONCILE_GRAPH_URL",
        help="https URL of Microsoft Graph, overriding the cloud's",
    )
    ca_bundle: Path | None = _opt(
        None,
        "graph.ca_bundle",
        "RECONCILE_CA_BUNDLE",
        help="PEM bundle trusted for Entra ID and Graph",
    )
    token_cache: Path | None = _opt(
        None,
        "graph.token_cache",
        "RECONCILE_TOKEN_CACHE",
        help="device-code token cache (default: user cache dir)",
    )
    graph_max_attempts: int = _opt(
        6,
        "graph.max_attempts",
        "RECONCILE_GRAPH_MAX_ATTEMPTS",
        help="tries per Graph request (429, 503, 504, network errors) before giving up",
    )
    graph_retry_time: float = _opt(
        300.0,
        "graph.retry_time",
        "RECONCILE_GRAPH_RETRY_TIME",
        help="seconds one Graph request may spend retrying",
    )
    graph_rate_limit: int = _opt(
        900,
        "graph.rate_limit",
        "RECONCILE_GRAPH_RATE_LIMIT",
        help="Graph requests per 20 s (Intune allows 1,000 per app)",
    )
    # --- history and operations -------------------------------------------------------------
    history_db: Path | None = _opt(
        None,
        "history.database",
        "RECONCILE_HISTORY_DB",
        help="SQLite run history (default: user data dir)",
    )
    no_history: bool = _opt(
        False,
        "history.disabled",
        "RECONCILE_NO_HISTORY",
        help="do not record runs in the history database",
    )
    lock_path: Path | None = _opt(
        None,
        "history.lock",
        "RECONCILE_LOCK",
        help="lock file that keeps runs from overlapping (default: beside the history)",
    )
    keep_runs: int | None = _opt(
        None,
        "history.keep_runs",
        "RECONCILE_KEEP_RUNS",
        help="keep only the newest N report folders under the out-dir's parent",
    )
    keep_days: int | None = _opt(
        None,
        "history.keep_days",
        "RECONCILE_KEEP_DAYS",
        help="delete report folders older than N days",
    )
    exceptions_file: Path | None = _opt(
        None,
        "history.exceptions",
        "RECONCILE_EXCEPTIONS",
        help="accepted exceptions TOML (serial or device, reason, owner, expiry)",
    )
    webhook_url: str | None = _opt(
        None,
        "notify.webhook_url",
        "RECONCILE_WEBHOOK_URL",
        secret=True,
        help="POST the run summary here (Teams/Slack-compatible JSON)",
    )
    webhook_timeout: float = _opt(
        10.0, "notify.timeout", "RECONCILE_WEBHOOK_TIMEOUT", help="seconds to wait for the webhook"
    )
    log_format: LogFormat = _opt(
        LogFormat.TEXT, "logging.format", "RECONCILE_LOG_FORMAT", help="text or json"
    )
    evidence_db: Path | None = _opt(
        None,
        "evidence.database",
        "RECONCILE_EVIDENCE_DB",
        help="device evidence SQLite store (default: evidence.db in the user data dir)",
    )

    # Not a setting: where each value given came from (absent means the default).
    origins: Mapping[str, Origin] = field(default_factory=dict, compare=False, repr=False)
    # Not a setting: the time a live fetch records as fetched_at (None: the clock). The demo
    # pins it to its as-of, because its tenant is that day's data served again.
    fetch_stamp: datetime | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """A choice given as text becomes its enum; an unknown one is left for ``validate``."""
        for name, kind in _CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, kind) and value in set(kind):
                object.__setattr__(self, name, kind(value))

    def origin(self, name: str) -> Origin:
        return self.origins.get(name, Origin.DEFAULT)

    def label(self, name: str) -> str:
        """How the user set ``name``, for messages: the env var or config key if it came from
        one, else its command-line flag."""
        meta = SETTING_FIELDS[name].metadata
        origin = self.origin(name)
        if origin is Origin.ENV:
            return str(meta["env"])
        if origin is Origin.CONFIG:
            return str(meta["toml"])
        return flag_for(name)

    def resolved_as_of(self) -> datetime:
        return self.as_of if self.as_of is not None else datetime.now(UTC).replace(microsecond=0)

    def issuer_for(self, index: int) -> str | None:
        """The configured issuer of the index-th CA export, if any."""
        if not self.ca_issuer:
            return None
        return self.ca_issuer[0] if len(self.ca_issuer) == 1 else self.ca_issuer[index]

    def secret_values(self) -> tuple[str, ...]:
        """Values that must never be printed; used by log and argv masking."""
        values: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and isinstance(value, str) and value:
                values.append(value)
        return tuple(values)

    # --- the options each part receives -----------------------------------------------------

    def graph_config(self) -> GraphConfig:
        secret = self.client_secret
        return GraphConfig(
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=secret,
            client_secret_file=self.client_secret_file,
            auth_method=self.auth_method,
            certificate_path=self.certificate_path,
            certificate_password=self.certificate_password,
            certificate_thumbprint=self.certificate_thumbprint,
            send_certificate_chain=self.send_certificate_chain,
            managed_identity_client_id=self.managed_identity_client_id,
            cloud=self.cloud,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
            ca_bundle=self.ca_bundle,
            token_cache=self.token_cache,
            max_attempts=self.graph_max_attempts,
            retry_time=self.graph_retry_time,
            rate_limit=self.graph_rate_limit,
        )

    def fetch_options(self) -> FetchOptions:
        return FetchOptions(
            graph=self.graph_config(),
            source=self.intune_source,
            ca_sources=self.ca_sources,
            export_timeout=self.export_timeout,
            max_concurrency=self.max_concurrency,
            report_raw_rows=self.report_raw_rows,
            max_snapshot_bytes=self.max_snapshot_bytes,
            fetched_at=self.fetch_stamp,
        )

    def doctor_options(self) -> DoctorOptions:
        from reconcile.doctor import DoctorOptions

        return DoctorOptions(
            graph=self.graph_config(),
            source=self.intune_source,
            ca_sources=self.ca_sources,
            connector_stale_hours=self.connector_stale_hours,
        )

    def reader_options(self) -> ReaderOptions:
        """How to read the first export (``issuer_for`` gives the others' issuers)."""
        from reconcile.ca import ReaderOptions

        given = frozenset(
            option
            for option, name in (("date_order", "date_order"), ("timezone", "ca_timezone"))
            if self.origin(name) is not Origin.DEFAULT
        )
        return ReaderOptions(
            format=self.ca_format,
            issuer=self.issuer_for(0),
            column_map=self.column_map,
            date_order=self.date_order,
            timezone=self.ca_timezone,
            encoding=self.encoding,
            legacy_encoding=self.legacy_encoding,
            given=given,
        )

    # --- paths, resolved in reconcile.paths -------------------------------------------------

    def history_path(self) -> Path:
        return self.history_db if self.history_db is not None else default_history_db()

    def evidence_path(self) -> Path:
        return self.evidence_db if self.evidence_db is not None else default_evidence_db()

    def history(self) -> HistoryOptions:
        from reconcile.history.store import HistoryOptions

        return HistoryOptions(enabled=not self.no_history, path=self.history_db)

    def retention(self) -> Retention:
        from reconcile.retention import Retention

        return Retention(out_dir=self.out_dir, keep_runs=self.keep_runs, keep_days=self.keep_days)

    def lock_file(self) -> Path:
        """The run lock: configured, else beside the history database."""
        return self.lock_path if self.lock_path is not None else lock_beside(self.history_path())


SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if "toml" in f.metadata}


def _target_type(name: str) -> Any:
    hints = typing.get_type_hints(Settings)
    hint = hints[name]
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    return hint


# Fields that hold one of a fixed set of choices, each a StrEnum owned by the part using it.
_CHOICES: dict[str, type[StrEnum]] = {
    name: kind
    for name in SETTING_FIELDS
    if isinstance(kind := _target_type(name), type) and issubclass(kind, StrEnum)
}

# Fields whose command-line flag is not simply --field-name.
_FLAG_NAMES = {
    "ca_exports": "--ca-export",
    "templates": "--template",
    "exceptions_file": "--exceptions",
    "all_rows": "--all",
    "csv_bom": "--bom",
    "auth_method": "--auth",
    "certificate_path": "--certificate",
}


def flag_for(name: str) -> str:
    """The command-line flag that sets a field, for error messages."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def discover_config(env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """RECONCILE_CONFIG, else ./reconcile.toml, else the user config dir's; None if none."""
    if env.get("RECONCILE_CONFIG"):
        return Path(env["RECONCILE_CONFIG"])
    for candidate in ((cwd or Path.cwd()) / CONFIG_NAME, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def _convert(name: str, raw: Any, origin: str, label: str | None = None) -> Any:
    target = _target_type(name)
    try:
        if typing.get_origin(target) is tuple:
            (item,) = typing.get_args(target)[:1]
            separator = SETTING_FIELDS[name].metadata["separator"]
            values = raw.split(separator) if isinstance(raw, str) else list(raw)
            values = [v.strip() if isinstance(v, str) else v for v in values]
            return tuple(Path(v) if item is Path else str(v) for v in values if v != "")
        if target is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"{raw!r} is not a boolean")
        if target is Path:
            return Path(os.path.expanduser(str(raw)))
        if target is datetime:
            return parse_as_of(raw)
        if target is int:
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a whole number")
            return int(raw)
        if target is float:
            return float(raw)
        if isinstance(target, type) and issubclass(target, StrEnum):
            # An unknown choice stays text, for ``validate`` to name with its origin.
            return target(raw) if raw in set(target) else str(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        where = "" if origin == "option" else f"{origin}: "
        raise ConfigError(f"{where}invalid value for {label or name}: {exc}") from None


def parse_as_of(raw: Any) -> datetime:
    """ISO-8601; a naive time is UTC."""
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw).strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{raw!r} is out of range") from None
    if not 1970 <= value.year <= 9000:
        raise ValueError(f"{raw!r} is out of range (years 1970 to 9000)")
    return value


def load_toml(path: Path) -> dict[str, Any]:
    """Flatten ``[table] key`` pairs into field names, rejecting unknown keys."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    by_key = {f.metadata["toml"]: name for name, f in SETTING_FIELDS.items()}
    flat: dict[str, Any] = {}
    for table, content in data.items():
        if not isinstance(content, dict):
            homes = [k for k in by_key if k.endswith(f".{table}")]
            hint = f"; did you mean {homes[0]!r}?" if homes else ""
            raise ConfigError(f"{path}: top-level key {table!r} must be a [table]{hint}")
        for key, value in content.items():
            dotted = f"{table}.{key}"
            if dotted not in by_key:
                close = difflib.get_close_matches(dotted, by_key, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{path}: unknown setting {dotted!r}{hint}")
            flat[by_key[dotted]] = value
    base = path.parent
    for name, value in list(flat.items()):
        target = _target_type(name)
        if target is Path and isinstance(value, str) and not os.path.isabs(value):
            flat[name] = str(base / os.path.expanduser(value))
        elif typing.get_origin(target) is tuple and typing.get_args(target)[0] is Path:
            items = value if isinstance(value, list) else [value]
            flat[name] = [str(base / p) if not os.path.isabs(p) else p for p in items]
    return flat


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Build Settings from flags (None means not given), env and an optional TOML file."""
    env = os.environ if env is None else env
    if config_path is None:
        config_path = discover_config(env)
    from_file = load_toml(config_path) if config_path is not None else {}
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    for name, f in SETTING_FIELDS.items():
        flag = flags.get(name)
        if flag is not None and flag != ():
            labels[name] = flag_for(name)
            values[name] = _convert(name, flag, "option", labels[name])
            origins[name] = Origin.FLAG
            continue
        env_name = f.metadata["env"]
        if env_name and env.get(env_name, "") != "":
            labels[name] = env_name
            values[name] = _convert(name, env[env_name], env_name)
            origins[name] = Origin.ENV
            continue
        if name in from_file:
            values[name] = _convert(name, from_file[name], str(config_path))
            origins[name] = Origin.CONFIG
    _warn_unknown_env(env)
    unknown = set(flags) - set(SETTING_FIELDS)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    settings = Settings(**values, origins=origins)
    validate(settings, labels)
    return settings


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    """A mistyped RECONCILE_* variable would be ignored without a word; name the one meant."""
    known = {f.metadata["env"] for f in SETTING_FIELDS.values()} | {"RECONCILE_CONFIG"}
    for name in sorted(n for n in env if n.startswith("RECONCILE_") and n not in known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        logging.getLogger("reconcile").warning("unknown environment variable %s%s", name, hint)


CA_SOURCES = tuple(CaSource)


def validate(settings: Settings, labels: Mapping[str, str] | None = None) -> None:
    """``labels`` name where a value came from (a flag or env var), for the message."""
    labels = labels or {}
    for name, choices in _CHOICES.items():
        value = getattr(settings, name)
        if not isinstance(value, choices):
            raise ConfigError(
                f"{labels.get(name, name)} must be one of {', '.join(choices)}, not {value!r}"
            )
    for source in settings.ca_sources:
        if source not in CA_SOURCES:
            raise ConfigError(f"CA source must be one of {', '.join(CA_SOURCES)}, not {source!r}")
    if len(settings.ca_issuer) > 1 and len(settings.ca_issuer) != len(settings.ca_exports):
        raise ConfigError(
            f"{len(settings.ca_issuer)} CA issuers for {len(settings.ca_exports)} CA exports: "
            "give one issuer for all exports, or one per export in the same order"
        )
    if not 0 <= settings.max_reject_ratio <= 1:
        name = labels.get("max_reject_ratio", "ca.max_reject_ratio")
        raise ConfigError(f"{name} must be between 0 and 1")
    if settings.grace_hours < 0:
        raise ConfigError(f"{labels.get('grace_hours', 'grace_hours')} must not be negative")
    if settings.expiry_days < 0:
        raise ConfigError(f"{labels.get('expiry_days', 'expiry_days')} must not be negative")
    if settings.connector_stale_hours <= 0:
        name = labels.get("connector_stale_hours", "connector_stale_hours")
        raise ConfigError(f"{name} must be positive")
    if settings.max_concurrency < 1:
        raise ConfigError("max_concurrency must be at least 1")
    if settings.max_snapshot_bytes < 1:
        raise ConfigError("max_snapshot_bytes must be at least 1")
    for entry in settings.report_status_codes:
        code, sep, text = entry.partition("=")
        if not sep or not code.strip() or not text.strip():
            raise ConfigError(f"report_status_codes entry {entry!r} is not code=text")
    if settings.graph_max_attempts < 1 or settings.graph_rate_limit < 1:
        raise ConfigError("graph.max_attempts and graph.rate_limit must be at least 1")
    if settings.graph_retry_time < 0 or settings.export_timeout <= 0:
        raise ConfigError("graph.retry_time must not be negative, export_timeout must be positive")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(settings.ca_timezone)
    except (ValueError, KeyError, OSError):
        raise ConfigError(
            f"ca_timezone {settings.ca_timezone!r} is not a known time zone"
        ) from None
