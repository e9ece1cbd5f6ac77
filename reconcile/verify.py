"""`reconcile verify DIR`: prove a report folder is intact and reproducible from its inputs.

Two checks. First every file the manifest lists must still hash to its recorded sha256. Then
the run is recomputed with the settings run.json records from the inputs: by default the gzip
copies under ``inputs/`` (so the folder alone suffices, wherever it was moved), or with
``--bundle-inputs reference`` the files at the absolute paths run.json names (each must still
hash to its recorded sha256). The data files are rewritten in memory and compared byte for byte
with the saved ones. Environment variables, config files and the working directory are
ignored, so the recomputation depends on nothing but the folder and the inputs.

History and evidence columns (first_seen, age_days, new_since_last_run, evidence) come from
databases outside the inputs; they are carried over from the saved JSONL into the recomputed
rows, so everything else is still checked byte for byte.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reconcile.errors import InputError
from reconcile.model import RunResult, Verdict
from reconcile.report import table
from reconcile.report.bundle import data_files, sha256_file
from reconcile.report.document import Report
from reconcile.report.runjson import (
    MANIFEST,
    RUN_JSON,
    SUMMARY,
    NotRunJson,
    RecordedSettings,
    RunMeta,
    bundle_files,
    data_stem,
    load,
    read_manifest,
    safe_name,
)
from reconcile.settings import Settings, parse_as_of, resolve
from reconcile.views import renamed as views_renamed

ANNOTATIONS = ("first_seen", "age_days", "new_since_last_run", "evidence")


@dataclass(frozen=True, slots=True)
class Outcome:
    """``ok`` False means tampering or a different result; ``problem`` names the first file."""

    ok: bool
    checked: tuple[str, ...]
    problem: str = ""
    unlisted: tuple[str, ...] = ()


def check_manifest(directory: Path) -> Outcome:
    if not (directory / MANIFEST).is_file():
        raise InputError(f"not a reconcile report folder: {MANIFEST} is missing", directory)
    entries = read_manifest(directory)
    if entries is None:
        return Outcome(False, (), f"{MANIFEST}: malformed line or a path outside the folder")
    listed: list[str] = []
    for digest, name in entries:
        path = directory / name
        if not path.is_file() or path.is_symlink():
            return Outcome(False, tuple(listed), f"{name}: listed in the manifest but missing")
        if sha256_file(path) != digest:
            return Outcome(False, tuple(listed), f"{name}: sha256 differs from the manifest")
        listed.append(name)
    if RUN_JSON not in listed:
        return Outcome(False, tuple(listed), f"{RUN_JSON}: not listed in {MANIFEST}")
    unlisted = tuple(n for n in bundle_files(directory) if n not in listed and n != MANIFEST)
    return Outcome(True, tuple(listed), unlisted=unlisted)


class Tampered(Exception):
    """A bundled input does not decompress to the bytes run.json records."""


def _gunzip(source: Path, target: Path, expected: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with gzip.open(source, "rb") as src, target.open("wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (OSError, EOFError, zlib.error) as exc:
        raise Tampered(f"{source.name}: not a valid gzip copy: {exc}") from None
    if digest.hexdigest() != expected:
        raise Tampered(f"{source.name}: does not hold the input run.json records (sha256)")


@dataclass
class Inputs:
    """Where the recomputation reads each input, and the path the run named it by (which the
    report's ``source`` column shows)."""

    flags: dict[str, Any]
    names: dict[str, str]


def _bundled_inputs(directory: Path, meta: RunMeta, work: Path, listed: tuple[str, ...]) -> Inputs:
    found = Inputs({"ca_exports": []}, {})
    for item in meta.bundled:
        name = item.file
        if not safe_name(name) or not name.endswith(".gz"):
            raise Tampered(f"run.json: bundled file name {name!r} is not inside the folder")
        if name not in listed:
            raise Tampered(f"{name}: named in run.json but not listed in {MANIFEST}")
        target = work / name[: -len(".gz")]
        _gunzip(directory / name, target, item.sha256)
        role = item.role
        if role == "ca-export":
            found.flags["ca_exports"].append(target)
            found.names[str(target)] = item.of
        elif role in ("snapshot", "snapshot-metadata"):
            found.flags["snapshot"] = target.parent
            # Cloud PKI's leaves are CA rows read from the snapshot: they name it too.
            found.names[str(target)] = item.of
        elif role == "exceptions":
            found.flags["exceptions_file"] = target
        elif role == "column-map":
            found.flags["column_map"] = target
    return found


def _referenced_inputs(meta: RunMeta) -> Inputs:
    """--bundle-inputs reference: the inputs must still be where the run read them."""
    found = Inputs({"ca_exports": []}, {})
    missing: list[str] = []
    changed: list[str] = []
    for item in meta.inputs:
        path = Path(item.absolute_path or item.path)
        if not path.is_file():
            missing.append(str(path))
        elif sha256_file(path) != item.sha256:
            changed.append(str(path))
        if item.kind == "ca-export":
            found.flags["ca_exports"].append(path)
            found.names[str(path)] = item.path
        elif item.kind == "snapshot":
            found.flags["snapshot"] = path.parent
        elif item.kind == "exceptions":
            found.flags["exceptions_file"] = path
    if missing:
        raise InputError(
            "cannot recompute: this report names its inputs instead of holding them "
            f"(--bundle-inputs reference); input(s) missing: {', '.join(missing)}"
        )
    if changed:
        raise InputError(
            "cannot recompute: input(s) changed since the run (sha256 differs): "
            + ", ".join(changed)
        )
    return found


def recorded_settings(settings: Settings) -> RecordedSettings:
    """The settings block of run.json: what ``settings_from`` needs to recompute the run."""
    return RecordedSettings(
        ca_exports=tuple(str(p) for p in settings.ca_exports),
        ca_sources=settings.ca_sources,
        ca_format=settings.ca_format,
        ca_issuer=settings.ca_issuer,
        column_map=str(settings.column_map.absolute()) if settings.column_map else None,
        date_order=settings.date_order,
        ca_timezone=settings.ca_timezone,
        max_reject_ratio=settings.max_reject_ratio,
        allow_empty=settings.allow_empty,
        device_pattern=settings.device_pattern,
        report_delivered=settings.report_delivered,
        report_status_codes=settings.report_status_codes,
        snapshot=str(settings.snapshot or settings.save_snapshot or "") or None,
        all_rows=settings.all_rows,
        expiry_days=settings.expiry_days,
        ca_config=settings.ca_config,
        connector_stale_hours=settings.connector_stale_hours,
    )


def settings_from(meta: RunMeta, inputs: Inputs | None = None) -> Settings:
    """The run's settings as run.json recorded them; nothing from env or config files."""
    recorded = dataclasses.asdict(meta.settings)
    recorded.pop("snapshot", None)
    flags: dict[str, Any] = {
        "as_of": parse_as_of(meta.as_of),
        "grace_hours": float(meta.grace_hours),
        "templates": meta.templates,
        "no_history": True,
    }
    flags.update({name: value for name, value in recorded.items() if value is not None})
    if inputs is not None:
        flags.update({k: tuple(v) if isinstance(v, list) else v for k, v in inputs.flags.items()})
    return resolve(flags, env={}, config_path=None)


def _renamed(result: RunResult, names: dict[str, str], ca_config: str | None) -> RunResult:
    """The recomputation read copies; name every row by the path the run read it from."""

    def rename(verdict: Verdict) -> Verdict:
        original = names.get(verdict.ca.source)
        if original is None:
            return verdict
        return dataclasses.replace(verdict, ca=dataclasses.replace(verdict.ca, source=original))

    views = result.views
    return dataclasses.replace(
        result,
        verdicts=tuple(rename(v) for v in result.verdicts),
        views=views_renamed(views, names, ca_config) if views is not None else None,
    )


def _annotations(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            ca = record.get("ca") or {}
            found[(str(ca.get("source")), int(ca.get("line", 0)))] = {
                k: record.get(k) for k in ANNOTATIONS
            }
    return found


def _carry_over(verdict: Verdict, saved: dict[tuple[str, int], dict[str, Any]]) -> Verdict:
    values = saved.get((verdict.ca.source, verdict.ca.line))
    if values is None:
        return verdict
    first_seen = values["first_seen"]
    return dataclasses.replace(
        verdict,
        first_seen=parse_as_of(first_seen) if first_seen else None,
        age_days=values["age_days"],
        new_since_last_run=values["new_since_last_run"],
        evidence=values["evidence"],
    )


class _Comparison(io.RawIOBase):
    """A sink that checks the bytes written to it against the saved file as they come, so
    verify never holds a report whole: rendered in memory, a 1M run's findings.jsonl (82 MiB)
    was held three times (the text, its bytes, the saved file's bytes)."""

    def __init__(self, saved: IO[bytes]) -> None:
        self._saved = saved
        self._lines = 0
        self._at_line_start = True
        self.problem = ""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = bytes(data)
        if not self.problem and written:
            saved = self._saved.read(len(written))
            same = _same_prefix(saved, written)
            self._matched(written[:same])
            if same < len(written):
                short = same == len(saved)
                self.problem = self._difference(short and self._at_line_start)
        return len(written)

    def finish(self) -> str:
        """The first difference ("" for none), once everything is written."""
        if not self.problem and self._saved.read(1):
            self.problem = self._difference(self._at_line_start)
        return self.problem

    def _matched(self, data: bytes) -> None:
        if data:
            self._lines += data.count(b"\n")
            self._at_line_start = data.endswith(b"\n")

    def _difference(self, whole_lines: bool) -> str:
        """One file ends where the other goes on: at a line's end only the length differs."""
        if whole_lines:
            return "length differs from the recomputed report"
        return f"line {self._lines + 1} differs from the recomputed report"


def _same_prefix(a: bytes, b: bytes) -> int:
    if b.startswith(a) or a.startswith(b):
        return min(len(a), len(b))
    return next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)


def _compare(write: Callable[[IO[str]], object], encoding: str, path: Path) -> str:
    """The first difference between what ``write`` writes and the file at ``path``."""
    with path.open("rb") as saved:
        comparison = _Comparison(saved)
        with io.TextIOWrapper(
            io.BufferedWriter(comparison), encoding=encoding, newline=""
        ) as handle:
            write(handle)
            handle.flush()
            return comparison.finish()


def _recorded_results(meta: RunMeta, result: RunResult) -> str:
    """run.json's results must be the recomputed run's too: an edited count, exit code or
    input row count under a resealed manifest would otherwise verify."""
    views = result.views.counts() if result.views is not None else None
    expected: dict[str, object] = {
        "counts": result.counts(),
        "findings": len(result.findings),
        "duplicate_rows": result.duplicate_rows,
        "rejects": len(result.rejects),
        "tenant_id": result.tenant_id,
        "intune_sources": list(result.intune_sources),
        "views": views,
        "exit_code": 0 if result.clean else 1,
        "inputs": [(i.kind, i.format, i.sha256, i.rows, i.rejected) for i in result.inputs],
    }
    recorded: dict[str, object] = {
        "counts": meta.counts,
        "findings": meta.findings,
        "duplicate_rows": meta.duplicate_rows,
        "rejects": meta.rejects.count,
        "tenant_id": meta.tenant_id,
        "intune_sources": list(meta.intune_sources),
        "views": meta.views.get("counts") if meta.views else None,
        "exit_code": meta.exit_code,
        "inputs": [(i.kind, i.format, i.sha256, i.rows, i.rejected) for i in meta.inputs],
    }
    for name, want in expected.items():
        if recorded[name] != want:
            return f"{RUN_JSON}: {name} {recorded[name]!r} but the inputs give {want!r}"
    return ""


def _summary_difference(saved: str, recomputed: str) -> str:
    """summary.txt against the recomputed text; the block after its first line (what changed
    since the previous run) comes from the history database, so only it is not compared."""
    head, _, rest = recomputed.partition("\n\n")
    if not saved.startswith(head + "\n\n"):
        return f"{SUMMARY}: line 1 differs from the recomputed report"
    if saved.endswith(rest):
        return ""
    got, want = saved.splitlines(), rest.splitlines()
    for back, (line, expected) in enumerate(zip(reversed(got), reversed(want), strict=False)):
        if line != expected:
            return f"{SUMMARY}: line {len(got) - back} differs from the recomputed report"
    return f"{SUMMARY}: length differs from the recomputed report"


def recompute(
    directory: Path,
    meta: RunMeta,
    run: Callable[[Settings], RunResult],
    inputs: Inputs | None = None,
) -> str:
    """Empty string when the data files match; else the first differing file and line."""
    settings = settings_from(meta, inputs)
    saved_jsonl = directory / f"{data_stem(settings.all_rows)}.jsonl"
    if not saved_jsonl.is_file():
        return f"{saved_jsonl.name}: missing from the folder"
    result = _renamed(run(settings), inputs.names if inputs is not None else {}, settings.ca_config)
    saved = _annotations(saved_jsonl)
    verdicts = tuple(_carry_over(v, saved) for v in result.verdicts)
    result = dataclasses.replace(result, verdicts=verdicts)
    if result.run_id != meta.run_id:
        return f"{RUN_JSON}: run_id {meta.run_id} but the inputs give {result.run_id}"
    problem = _recorded_results(meta, result)
    if problem:
        return problem
    report = Report(result, all_rows=settings.all_rows)
    for file in data_files(report, meta.csv.encoding):
        path = directory / file.name
        if file.optional and not path.is_file():
            continue
        if not path.is_file():
            return f"{file.name}: missing from the folder"
        problem = _compare(file.write, file.encoding, path)
        if problem:
            return f"{file.name}: {problem}"
    summary = directory / SUMMARY
    if not summary.is_file():
        return f"{SUMMARY}: missing from the folder"
    # How the exports were read is said with the settings the run had guessed (the recorded
    # ones are all explicit), so the notes are run.json's.
    text = table.render(dataclasses.replace(result, notes=meta.notes), -1)
    return _summary_difference(summary.read_text(encoding="utf-8"), text)


def verify(directory: Path, run: Callable[[Settings], RunResult] | None = None) -> Outcome:
    """Raises InputError (exit 2) when inputs are missing; Outcome.ok False means mismatch."""
    if not directory.is_dir():
        raise InputError("not a directory", directory)
    directory = directory.absolute()
    outcome = check_manifest(directory)
    if not outcome.ok:
        return outcome
    try:
        meta = load(directory / RUN_JSON)
    except NotRunJson as exc:
        return Outcome(False, outcome.checked, f"{RUN_JSON}: {exc}")
    if run is None:
        from reconcile.pipeline import run as pipeline_run

        run = pipeline_run
    with tempfile.TemporaryDirectory(prefix="reconcile-verify-") as work:
        try:
            if meta.bundle_inputs == "copy":
                inputs = _bundled_inputs(directory, meta, Path(work), outcome.checked)
            else:
                inputs = _referenced_inputs(meta)
            problem = recompute(directory, meta, run, inputs)
        except Tampered as exc:
            problem = str(exc)
        except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            problem = f"run.json or a saved report is malformed ({type(exc).__name__}: {exc})"
    return dataclasses.replace(outcome, ok=not problem, problem=problem)
