"""`reconcile verify DIR`: prove a report folder is intact and reproducible from its inputs.

Two checks. First every file the manifest lists must still hash to its recorded sha256. Then
the run is recomputed from the inputs run.json names (each must still hash to its recorded
sha256) with the settings run.json records, and the data files are rewritten in memory and
compared byte for byte with the saved ones. Environment variables and config files are
ignored, so the recomputation depends on nothing but the folder and the inputs.

History and evidence columns (first_seen, age_days, new_since_last_run, evidence) come from
databases outside the inputs; they are carried over from the saved JSONL into the recomputed
rows, so everything else is still checked byte for byte.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reconcile.errors import InputError
from reconcile.model import RunResult, Verdict
from reconcile.report import csvout, jsonl, viewsout
from reconcile.report.bundle import MANIFEST, sha256_file
from reconcile.settings import Settings, parse_as_of, resolve
from reconcile.views import View

ANNOTATIONS = ("first_seen", "age_days", "new_since_last_run", "evidence")


@dataclass(frozen=True, slots=True)
class Outcome:
    """``ok`` False means tampering or a different result; ``problem`` names the first file."""

    ok: bool
    checked: tuple[str, ...]
    problem: str = ""
    unlisted: tuple[str, ...] = ()


def check_manifest(directory: Path) -> Outcome:
    manifest = directory / MANIFEST
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(
            f"not a reconcile report folder: {MANIFEST} is missing", directory
        ) from None
    listed: list[str] = []
    for number, line in enumerate(lines, start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name or "\\" in name:
            return Outcome(False, tuple(listed), f"{MANIFEST}:{number}: malformed line")
        path = directory / name
        if not path.is_file():
            return Outcome(False, tuple(listed), f"{name}: listed in the manifest but missing")
        if sha256_file(path) != digest:
            return Outcome(False, tuple(listed), f"{name}: sha256 differs from the manifest")
        listed.append(name)
    if "run.json" not in listed:
        return Outcome(False, tuple(listed), f"run.json: not listed in {MANIFEST}")
    unlisted = tuple(
        sorted(
            p.name
            for p in directory.iterdir()
            if p.is_file() and p.name not in listed and p.name != MANIFEST
        )
    )
    return Outcome(True, tuple(listed), unlisted=unlisted)


def _check_inputs(meta: dict[str, Any]) -> None:
    missing: list[str] = []
    changed: list[str] = []
    for item in meta.get("inputs", []):
        path = Path(item["path"])
        if not path.is_file():
            missing.append(str(path))
        elif sha256_file(path) != item["sha256"]:
            changed.append(str(path))
    if missing:
        raise InputError(f"cannot recompute: input(s) missing: {', '.join(missing)}")
    if changed:
        raise InputError(
            "cannot recompute: input(s) changed since the run (sha256 differs): "
            + ", ".join(changed)
        )


def settings_from(meta: dict[str, Any]) -> Settings:
    """The run's settings as run.json recorded them; nothing from env or config files."""
    recorded = dict(meta.get("settings", {}))
    flags: dict[str, Any] = {
        "as_of": parse_as_of(meta["as_of"]),
        "grace_hours": float(meta["grace_hours"]),
        "templates": tuple(meta.get("templates", ())),
        "no_history": True,
    }
    for name, value in recorded.items():
        if value is None:
            continue
        flags[name] = tuple(value) if isinstance(value, list) else value
    for item in meta.get("inputs", []):
        if item.get("kind") == "exceptions":
            flags["exceptions_file"] = item["path"]
    return resolve(flags, env={}, config_path=None)


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


def _render(write: Callable[[IO[str]], object], encoding: str) -> bytes:
    buffer = io.StringIO(newline="")
    write(buffer)
    return buffer.getvalue().encode(encoding)


def _first_difference(name: str, expected: bytes, actual: bytes) -> str:
    for number, (want, got) in enumerate(
        zip(expected.splitlines(), actual.splitlines(), strict=False), start=1
    ):
        if want != got:
            return f"{name}: line {number} differs from the recomputed report"
    return f"{name}: length differs from the recomputed report"


def recompute(directory: Path, meta: dict[str, Any], run: Callable[[Settings], RunResult]) -> str:
    """Empty string when the data files match; else the first differing file and line."""
    settings = settings_from(meta)
    stem = "certificates" if settings.all_rows else "findings"
    saved_jsonl = directory / f"{stem}.jsonl"
    if not saved_jsonl.is_file():
        return f"{saved_jsonl.name}: missing from the folder"
    result = run(settings)
    saved = _annotations(saved_jsonl)
    verdicts = tuple(_carry_over(v, saved) for v in result.verdicts)
    result = dataclasses.replace(result, verdicts=verdicts)
    if result.run_id != meta.get("run_id"):
        return f"run.json: run_id {meta.get('run_id')} but the inputs give {result.run_id}"
    rows: Iterable[Verdict] = result.verdicts if settings.all_rows else result.findings
    rows = tuple(rows)
    encoding = str(meta.get("csv", {}).get("encoding", "utf-8-sig"))
    expected = {
        f"{stem}.jsonl": _render(lambda h: jsonl.write_verdicts(h, rows, result.run_id), "utf-8"),
        f"{stem}.csv": _render(lambda h: csvout.write_verdicts(h, rows, result.run_id), encoding),
        "unknown-to-ca.jsonl": _render(
            lambda h: jsonl.write_unknown(h, result.unknown_to_ca, result.run_id), "utf-8"
        ),
        "unknown-to-ca.csv": _render(
            lambda h: csvout.write_unknown(h, result.unknown_to_ca, result.run_id), encoding
        ),
    }
    if result.views is not None:
        # A folder from before the views has none of them; the manifest covers deletions.
        for view in View:
            if (directory / f"{view.value}.csv").is_file():
                rows_of = result.views.rows(view)
                expected[f"{view.value}.csv"] = _render(
                    functools.partial(
                        viewsout.write_view, view=view, rows=rows_of, run_id=result.run_id
                    ),
                    encoding,
                )
    for name, data in expected.items():
        path = directory / name
        if not path.is_file():
            return f"{name}: missing from the folder"
        actual = path.read_bytes()
        if actual != data:
            return _first_difference(name, data, actual)
    return ""


def verify(directory: Path, run: Callable[[Settings], RunResult] | None = None) -> Outcome:
    """Raises InputError (exit 2) when inputs are missing; Outcome.ok False means mismatch."""
    if not directory.is_dir():
        raise InputError("not a directory", directory)
    outcome = check_manifest(directory)
    if not outcome.ok:
        return outcome
    try:
        meta = json.loads((directory / "run.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        return Outcome(False, outcome.checked, f"run.json: not valid JSON: {exc}")
    if not isinstance(meta, dict) or meta.get("tool") != "reconcile":
        return Outcome(False, outcome.checked, "run.json: not written by reconcile")
    _check_inputs(meta)
    if run is None:
        from reconcile.pipeline import run as pipeline_run

        run = pipeline_run
    problem = recompute(directory, meta, run)
    return dataclasses.replace(outcome, ok=not problem, problem=problem)
