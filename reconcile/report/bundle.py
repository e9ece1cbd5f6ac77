from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import os
import platform
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from reconcile import __version__
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.snapshot import METADATA as SNAPSHOT_METADATA
from reconcile.model import RunResult
from reconcile.report import csvout, jsonl, table, viewsout
from reconcile.report.atomic import staging_dir, swap_dir, write_atomic
from reconcile.report.document import Report
from reconcile.report.runjson import (
    INPUTS_DIR,
    MANIFEST,
    RUN_JSON,
    SUMMARY,
    UNKNOWN_STEM,
    BundledInput,
    CsvFormat,
    JsonRows,
    RecordedInput,
    RecordedSettings,
    RejectSummary,
    RunMeta,
    bundle_files,
    data_stem,
    manifest_text,
    read_manifest,
)
from reconcile.timeparse import iso_z
from reconcile.views import View, ViewRow

SECRET_FLAGS = ("--client-secret", "--certificate-password", "--webhook-url")


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What writing the outputs needs from the settings, resolved once by the CLI."""

    all_rows: bool = False
    csv_bom: bool = True
    bundle_inputs: str = "copy"
    column_map: Path | None = None
    """Copied into the bundle beside the inputs when given."""
    secrets: tuple[str, ...] = ()
    """Values masked out of the recorded command line."""
    recorded: RecordedSettings = RecordedSettings()
    """The settings block of run.json (what verify recomputes the run with)."""

    @property
    def csv_encoding(self) -> str:
        return csvout.csv_encoding(self.csv_bom)


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
    report: Report,
    options: OutputOptions,
    argv: Sequence[str],
    exit_code: int,
    bundled: Sequence[BundledInput] = (),
) -> RunMeta:
    """run.json: provenance an auditor (and ``reconcile verify``) can check the report against."""
    result = report.result
    return RunMeta(
        tool="reconcile",
        versions=_versions(),
        run_id=result.run_id,
        argv=tuple(mask_argv(argv, options.secrets)),
        as_of=iso_z(result.as_of),
        grace_hours=result.grace_hours,
        templates=result.templates,
        intune_sources=result.intune_sources,
        tenant_id=result.tenant_id,
        inputs=tuple(
            RecordedInput(
                path=i.path,
                absolute_path=str(Path(i.path).absolute()),
                kind=i.kind,
                format=i.format,
                sha256=i.sha256,
                rows=i.rows,
                rejected=i.rejected,
            )
            for i in result.inputs
        ),
        settings=options.recorded,
        counts=result.counts(),
        findings=len(result.findings),
        duplicate_rows=result.duplicate_rows,
        notes=result.notes,
        views=_views_json(result),
        rejects=RejectSummary(
            count=len(result.rejects),
            first=tuple(f"{r.source}:{r.line}: {r.reason}" for r in result.rejects[:100]),
        ),
        csv=CsvFormat(encoding=options.csv_encoding),
        exit_code=exit_code,
        bundle_inputs=options.bundle_inputs,
        bundled=tuple(bundled),
    )


def _views_json(result: RunResult) -> dict[str, Any]:
    views = result.views
    if views is None:
        return {}
    out: dict[str, Any] = {"expiry_days": views.expiry_days, "counts": views.counts()}
    for view in View:
        rows = views.rows(view)
        make = functools.partial(_view_json, view, rows, result.run_id)
        out[view.value] = JsonRows(make, len(rows))
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


def _view_json(view: View, rows: Sequence[ViewRow], run_id: str) -> Iterator[dict[str, str]]:
    """Each row as its view CSV writes it (formula-neutralised text), keyed by the header."""
    header = viewsout.header(view)
    for row in _view_rows(view, rows, run_id):
        yield dict(zip(header, row, strict=False))


def _view_rows(view: View, rows: Sequence[ViewRow], run_id: str) -> Iterator[list[str]]:
    """The view CSV's rows read back one at a time, as strings."""
    buffer = io.StringIO()
    viewsout.write_view(buffer, view, (), run_id)
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        viewsout.write_row(buffer, view, row, run_id)
        yield next(csv.reader(io.StringIO(buffer.getvalue())))


Writer = Callable[[IO[str]], object]


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of the bundle and how it is written."""

    name: str
    write: Writer
    encoding: str
    newline: str | None
    optional: bool = False
    """A folder written before the views has none of them; verify skips it when absent."""


def _view_csv(view: View, result: RunResult, encoding: str) -> BundleFile:
    rows = result.views.rows(view) if result.views is not None else ()
    write = functools.partial(viewsout.write_view, view=view, rows=rows, run_id=result.run_id)
    return BundleFile(f"{view.value}.csv", write, encoding, "", optional=True)


def _view_csvs(result: RunResult, encoding: str) -> list[BundleFile]:
    """A CSV per view (header only when empty) whenever the run computed views."""
    return [_view_csv(view, result, encoding) for view in View] if result.views is not None else []


def _scripts(result: RunResult) -> list[BundleFile]:
    """The revocation plan script(s) for the run's CA kinds."""
    if result.views is None:
        return []
    formats = [i.format for i in result.inputs if i.kind == "ca-export"]
    # Cloud PKI's leaves come from the snapshot, not an export: their plan rows name the kind.
    formats += [r.ca_format for r in result.views.revocation_plan]
    return [
        BundleFile(
            f"revocation-plan.{suffix}",
            functools.partial(
                viewsout.write_script,
                views=result.views,
                suffix=suffix,
                run_id=result.run_id,
                as_of=iso_z(result.as_of),
            ),
            "utf-8",
            None,
        )
        for suffix in viewsout.script_suffixes(formats)
    ]


def data_files(report: Report, encoding: str) -> list[BundleFile]:
    """The files computed from the inputs alone: the bundle writes them, verify rewrites them
    in this order and compares each byte for byte."""
    stem = data_stem(report.all_rows)
    return [
        BundleFile(f"{stem}.jsonl", functools.partial(jsonl.write, report=report), "utf-8", None),
        BundleFile(f"{stem}.csv", functools.partial(csvout.write, report=report), encoding, ""),
        BundleFile(
            f"{UNKNOWN_STEM}.jsonl",
            functools.partial(jsonl.write_unknown_to_ca, report=report),
            "utf-8",
            None,
        ),
        BundleFile(
            f"{UNKNOWN_STEM}.csv",
            functools.partial(csvout.write_unknown_to_ca, report=report),
            encoding,
            "",
        ),
        *_view_csvs(report.result, encoding),
    ]


def write_view_csv(path: Path, view: View, report: Report, options: OutputOptions) -> None:
    file = _view_csv(view, report.result, options.csv_encoding)
    write_atomic(path, file.write, encoding=file.encoding, newline="")


def write_csv(path: Path, report: Report, options: OutputOptions) -> None:
    write_atomic(
        path,
        functools.partial(csvout.write, report=report),
        encoding=options.csv_encoding,
        newline="",
    )


def write_json(path: Path, report: Report) -> None:
    write_atomic(path, functools.partial(jsonl.write, report=report))


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


def _input_copies(result: RunResult, options: OutputOptions) -> list[tuple[BundledInput, Path]]:
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
    if options.column_map is not None:
        path = options.column_map
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
    report: Report,
    options: OutputOptions,
    argv: Sequence[str],
    exit_code: int,
    extra: Sequence[tuple[str, Writer]] = (),
) -> Path:
    """Build the whole folder in a hidden sibling, then swap it into place in one rename."""
    copies = _input_copies(report.result, options) if options.bundle_inputs == "copy" else []
    meta = run_metadata(report, options, argv, exit_code, [copy for copy, _source in copies])
    files = [
        *data_files(report, options.csv_encoding),
        BundleFile(SUMMARY, functools.partial(table.write, report=report), "utf-8", None),
        BundleFile(RUN_JSON, meta.write, "utf-8", None),
        *_scripts(report.result),
        *(BundleFile(name, writer, "utf-8", None) for name, writer in extra),
    ]
    directory = directory.absolute()
    _check_replaceable(directory)
    staging = staging_dir(directory)
    try:
        for file in files:
            with (staging / file.name).open("w", encoding=file.encoding, newline=file.newline) as h:
                file.write(h)
                h.flush()
                os.fsync(h.fileno())
        for copy, source in copies:
            _gzip_copy(source, staging / copy.file, copy.sha256)
        entries = [(sha256_file(staging / name), name) for name in bundle_files(staging)]
        with (staging / MANIFEST).open("w", encoding="utf-8") as handle:
            handle.write(manifest_text(entries) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        swap_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
