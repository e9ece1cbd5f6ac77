"""Writing outputs: single files (--csv, --json) and the --out-dir bundle an auditor receives.

A bundle is built whole in a hidden sibling folder and swapped into place by one rename, so a
reader sees the previous complete bundle or the new complete one, never a mix. By default it
holds gzip copies of the inputs it was computed from (``inputs/``), so ``reconcile verify``
needs nothing but the folder; ``manifest-sha256.txt`` (``sha256sum -c`` format) lists every file.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from reconcile import __version__
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.snapshot import METADATA as SNAPSHOT_METADATA
from reconcile.model import RunResult, Verdict
from reconcile.report import csvout, jsonl, table, viewsout
from reconcile.report.atomic import staging_dir, swap_dir, write_atomic
from reconcile.settings import Settings
from reconcile.timeparse import iso_z
from reconcile.views import View, ViewRow

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
                "absolute_path": str(Path(i.path).absolute()),
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
            "column_map": str(settings.column_map.absolute()) if settings.column_map else None,
            "date_order": settings.date_order,
            "ca_timezone": settings.ca_timezone,
            "max_reject_ratio": settings.max_reject_ratio,
            "allow_empty": settings.allow_empty,
            "device_pattern": settings.device_pattern,
            "report_delivered": list(settings.report_delivered),
            "snapshot": str(settings.snapshot or settings.save_snapshot or "") or None,
            "all_rows": settings.all_rows,
            "expiry_days": settings.expiry_days,
            "ca_config": settings.ca_config,
            "connector_stale_hours": settings.connector_stale_hours,
        },
        "counts": result.counts(),
        "findings": len(result.findings),
        "duplicate_rows": result.duplicate_rows,
        "notes": list(result.notes),
        "views": _views_json(result),
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


def _views_json(result: RunResult) -> dict[str, Any]:
    views = result.views
    if views is None:
        return {}
    out: dict[str, Any] = {"expiry_days": views.expiry_days, "counts": views.counts()}
    for view in View:
        out[view.value] = [
            dict(zip(viewsout.header(view), row, strict=False))
            for row in _view_rows(view, views.rows(view), result.run_id)
        ]
    health = views.connectors
    if health is not None:
        out["connectors"] = [
            {
                "kind": c.kind,
                "name": c.name,
                "machine": c.machine,
                "state": c.state,
                "version": c.version,
                "last_seen": iso_z(c.last_seen),
                "stale": health.is_stale(c),
            }
            for c in health.connectors
        ]
        out["connector_warnings"] = health.warning_lines()
    return out


def _view_rows(view: View, rows: Sequence[ViewRow], run_id: str) -> list[list[str]]:
    import csv
    import io

    buffer = io.StringIO()
    viewsout.write_view(buffer, view, rows, run_id)
    return list(csv.reader(io.StringIO(buffer.getvalue())))[1:]


def view_files(result: RunResult, encoding: str) -> list[tuple[str, Writer, str, str | None]]:
    """revoked-installed.csv, expiring.csv, revocation-plan.csv (header only when empty) and
    the plan script(s) for the run's CA kinds."""
    views = result.views
    if views is None:
        return []
    files: list[tuple[str, Writer, str, str | None]] = [
        (
            f"{view.value}.csv",
            functools.partial(
                viewsout.write_view, view=view, rows=views.rows(view), run_id=result.run_id
            ),
            encoding,
            "",
        )
        for view in View
    ]
    formats = [i.format for i in result.inputs if i.kind == "ca-export"]
    # Cloud PKI's leaves come from the snapshot, not an export: their plan rows name the kind.
    formats += [r.ca_format for r in views.revocation_plan]
    files.extend(
        (
            f"revocation-plan.{suffix}",
            functools.partial(
                viewsout.write_script,
                views=views,
                suffix=suffix,
                run_id=result.run_id,
                as_of=iso_z(result.as_of),
            ),
            "utf-8",
            None,
        )
        for suffix in viewsout.script_suffixes(formats)
    )
    return files


def write_view_csv(path: Path, view: View, result: RunResult, settings: Settings) -> None:
    rows = result.views.rows(view) if result.views is not None else ()
    write_atomic(
        path,
        lambda h: viewsout.write_view(h, view, rows, result.run_id),
        encoding=csvout.csv_encoding(settings.csv_bom),
        newline="",
    )


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

INPUTS_DIR = "inputs"


def safe_name(name: str) -> bool:
    """A manifest entry is a relative path inside the bundle: no '..', no absolute path."""
    if not name or "\\" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def read_manifest(directory: Path) -> list[tuple[str, str]] | None:
    """(sha256, name) per manifest line; None when any line is malformed or unsafe."""
    try:
        lines = (directory / MANIFEST).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    entries = []
    for line in lines:
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not safe_name(name):
            return None
        entries.append((digest, name))
    return entries


def bundle_files(directory: Path) -> list[str]:
    """Every regular file under the folder, as manifest-style relative names."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() or p.is_symlink()
    )


def _check_replaceable(directory: Path) -> None:
    """Replacing a folder removes it whole, so only an empty folder or one this tool wrote
    (every file in its manifest) may be replaced; anything else somebody put there survives."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError("exists and is not a directory", directory)
    present = bundle_files(directory)
    if not present:
        return
    entries = read_manifest(directory)
    listed = {name for _digest, name in entries or ()} | {MANIFEST}
    foreign = [name for name in present if name not in listed]
    if entries is None or foreign:
        shown = ", ".join(foreign[:3]) or MANIFEST
        raise InputError(
            f"holds files that are not part of a reconcile report ({shown}); refusing to "
            "replace it: give an empty or new folder",
            directory,
        )


@dataclass(frozen=True, slots=True)
class BundledInput:
    """One input copied into the bundle: ``file`` is relative to the bundle, ``of`` where it
    was read from, ``sha256`` the digest of the uncompressed bytes (what run_id is built on)."""

    role: str
    file: str
    of: str
    sha256: str


def _input_copies(result: RunResult, settings: Settings) -> list[tuple[BundledInput, Path]]:
    copies: list[tuple[BundledInput, Path]] = []
    snapshot: Path | None = None
    for index, item in enumerate(result.inputs, start=1):
        source = Path(item.path)
        if item.kind == "snapshot":
            snapshot = source.parent
            rel = f"{INPUTS_DIR}/snapshot/{source.name}.gz"
        elif item.kind == "exceptions":
            rel = f"{INPUTS_DIR}/exceptions/{source.name}.gz"
        else:
            rel = f"{INPUTS_DIR}/ca/{index}-{source.name}.gz"
        copies.append((BundledInput(item.kind, rel, item.path, item.sha256), source))
    if snapshot is not None:
        meta = snapshot / SNAPSHOT_METADATA
        rel = f"{INPUTS_DIR}/snapshot/{SNAPSHOT_METADATA}.gz"
        copies.append((BundledInput("snapshot-metadata", rel, str(meta), sha256_file(meta)), meta))
    if settings.column_map is not None:
        path = settings.column_map
        rel = f"{INPUTS_DIR}/column-map/{path.name}.gz"
        copies.append((BundledInput("column-map", rel, str(path), sha256_file(path)), path))
    return copies


def _gzip_copy(source: Path, target: Path, expected: str) -> None:
    """Deterministic gzip (no name, no mtime); level 1 is 3-4x faster than 6 for about 15 %
    more bytes. The copy must be the bytes the run read."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        raw.flush()
        os.fsync(raw.fileno())
    if digest.hexdigest() != expected:
        raise IncompleteDataError(f"{source}: changed while the run read it; no report written")


def write_bundle(
    directory: Path,
    result: RunResult,
    settings: Settings,
    argv: Sequence[str],
    exit_code: int,
    extra: Sequence[tuple[str, Writer]] = (),
    preamble: str = "",
) -> Path:
    """Build the whole folder in a hidden sibling, then swap it into place in one rename."""
    stem = "certificates" if settings.all_rows else "findings"
    rows = selected(result, settings)
    encoding = csvout.csv_encoding(settings.csv_bom)
    copies = _input_copies(result, settings) if settings.bundle_inputs == "copy" else []
    meta = run_metadata(result, settings, argv, exit_code)
    meta["bundle_inputs"] = settings.bundle_inputs
    meta["bundled"] = [dataclasses.asdict(copy) for copy, _source in copies]
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
        ("run.json", lambda h: h.write(json.dumps(meta, indent=2) + "\n"), "utf-8", None),
        *view_files(result, encoding),
        *((name, writer, "utf-8", None) for name, writer in extra),
    ]
    directory = directory.absolute()
    _check_replaceable(directory)
    staging = staging_dir(directory)
    try:
        for name, writer, enc, newline in files:
            with (staging / name).open("w", encoding=enc, newline=newline) as handle:
                writer(handle)
                handle.flush()
                os.fsync(handle.fileno())
        for copy, source in copies:
            _gzip_copy(source, staging / copy.file, copy.sha256)
        manifest_lines = [
            f"{sha256_file(staging / name)}  {name}" for name in bundle_files(staging)
        ]
        with (staging / MANIFEST).open("w", encoding="utf-8") as handle:
            handle.write("\n".join(sorted(manifest_lines, key=lambda line: line[66:])) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        swap_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
