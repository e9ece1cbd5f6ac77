"""Writing outputs: single files (--csv, --json) and the --out-dir bundle an auditor receives.

Everything is staged under temporary names and renamed only once every file is complete;
``manifest-sha256.txt`` (``sha256sum -c`` format) is renamed into place last.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from reconcile import __version__
from reconcile.model import RunResult, Verdict
from reconcile.report import csvout, jsonl, table
from reconcile.report.atomic import publish, staged, write_atomic
from reconcile.settings import Settings
from reconcile.timeparse import iso_z

MANIFEST = "manifest-sha256.txt"
SECRET_FLAGS = ("--client-secret", "--certificate-password", "--webhook-url")
FORMULA_ESCAPING = "leading apostrophe before = + - @ TAB CR LF NUL"


def selected(result: RunResult, settings: Settings) -> tuple[Verdict, ...]:
    return result.verdicts if settings.all_rows else result.findings


def mask_argv(argv: Sequence[str], secrets: Sequence[str]) -> list[str]:
    """Replace secret values, whether given as ``--flag value``, ``--flag=value`` or embedded."""
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            masked.append("***")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_FLAGS:
            if eq:
                masked.append(f"{name}=***")
            else:
                masked.append(arg)
                hide_next = True
            continue
        for secret in secrets:
            if secret:
                arg = arg.replace(secret, "***")
        masked.append(arg)
    return masked


def _versions() -> dict[str, str]:
    found = {"reconcile": __version__, "python": platform.python_version()}
    for package in ("msal", "httpx", "tenacity", "typer", "tabulate"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def run_metadata(
    result: RunResult, settings: Settings, argv: Sequence[str], exit_code: int
) -> dict[str, Any]:
    """run.json: provenance an auditor (and ``reconcile verify``) can check the report against."""
    return {
        "tool": "reconcile",
        "versions": _versions(),
        "run_id": result.run_id,
        "argv": mask_argv(argv, settings.secret_values()),
        "as_of": iso_z(result.as_of),
        "grace_hours": result.grace_hours,
        "templates": list(result.templates),
        "intune_sources": list(result.intune_sources),
        "tenant_id": result.tenant_id,
        "inputs": [
            {
                "path": i.path,
                "kind": i.kind,
                "format": i.format,
                "sha256": i.sha256,
                "rows": i.rows,
                "rejected": i.rejected,
            }
            for i in result.inputs
        ],
        "settings": {
            "ca_exports": [str(p) for p in settings.ca_exports],
            "ca_sources": list(settings.ca_sources),
            "ca_format": settings.ca_format,
            "ca_issuer": list(settings.ca_issuer),
            "column_map": str(settings.column_map) if settings.column_map else None,
            "date_order": settings.date_order,
            "ca_timezone": settings.ca_timezone,
            "max_reject_ratio": settings.max_reject_ratio,
            "allow_empty": settings.allow_empty,
            "device_pattern": settings.device_pattern,
            "report_delivered": list(settings.report_delivered),
            "snapshot": str(settings.snapshot or settings.save_snapshot or "") or None,
            "all_rows": settings.all_rows,
        },
        "counts": result.counts(),
        "findings": len(result.findings),
        "duplicate_rows": result.duplicate_rows,
        "notes": list(result.notes),
        "rejects": {
            "count": len(result.rejects),
            "first": [f"{r.source}:{r.line}: {r.reason}" for r in result.rejects[:100]],
        },
        "csv": {
            "encoding": "utf-8-sig" if settings.csv_bom else "utf-8",
            "delimiter": ",",
            "line_terminator": "CRLF",
            "formula_escaping": FORMULA_ESCAPING,
        },
        "exit_code": exit_code,
    }


def write_csv(path: Path, result: RunResult, settings: Settings) -> None:
    write_atomic(
        path,
        lambda h: csvout.write_verdicts(h, selected(result, settings), result.run_id),
        encoding=csvout.csv_encoding(settings.csv_bom),
        newline="",
    )


def write_json(path: Path, result: RunResult, settings: Settings) -> None:
    write_atomic(path, lambda h: jsonl.write_verdicts(h, selected(result, settings), result.run_id))


Writer = Callable[[IO[str]], object]


def write_bundle(
    directory: Path,
    result: RunResult,
    settings: Settings,
    argv: Sequence[str],
    exit_code: int,
    extra: Sequence[tuple[str, Writer]] = (),
    preamble: str = "",
) -> Path:
    """Stage every file, then publish them; the manifest goes last."""
    stem = "certificates" if settings.all_rows else "findings"
    rows = selected(result, settings)
    encoding = csvout.csv_encoding(settings.csv_bom)
    files: list[tuple[str, Writer, str, str | None]] = [
        (f"{stem}.csv", lambda h: csvout.write_verdicts(h, rows, result.run_id), encoding, ""),
        (f"{stem}.jsonl", lambda h: jsonl.write_verdicts(h, rows, result.run_id), "utf-8", None),
        (
            "unknown-to-ca.csv",
            lambda h: csvout.write_unknown(h, result.unknown_to_ca, result.run_id),
            encoding,
            "",
        ),
        (
            "unknown-to-ca.jsonl",
            lambda h: jsonl.write_unknown(h, result.unknown_to_ca, result.run_id),
            "utf-8",
            None,
        ),
        ("summary.txt", lambda h: h.write(table.render(result, -1, preamble)), "utf-8", None),
        (
            "run.json",
            lambda h: h.write(
                json.dumps(run_metadata(result, settings, argv, exit_code), indent=2) + "\n"
            ),
            "utf-8",
            None,
        ),
        *((name, writer, "utf-8", None) for name, writer in extra),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    staged_files: list[tuple[str, Path]] = []
    try:
        for name, writer, enc, newline in files:
            with staged(directory / name, enc, newline) as (handle, tmp):
                writer(handle)
            staged_files.append((name, tmp))
        manifest_lines = [f"{sha256_file(tmp)}  {name}" for name, tmp in staged_files]
        with staged(directory / MANIFEST) as (handle, manifest_tmp):
            handle.write("\n".join(sorted(manifest_lines, key=lambda line: line[66:])) + "\n")
    except BaseException:
        for _, tmp in staged_files:
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in staged_files:
        publish(tmp, directory / name)
    publish(manifest_tmp, directory / MANIFEST)
    return directory


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
