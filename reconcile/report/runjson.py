"""The bundle's contract: which files it holds, run.json and the manifest, as one definition.

``bundle`` writes them, ``verify`` reads them back and recomputes the data files, ``retention``
reads them to know what it may remove. Fields added in later releases have defaults, so a
folder written by an older reconcile still reads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

MANIFEST = "manifest-sha256.txt"
RUN_JSON = "run.json"
INPUTS_DIR = "inputs"
UNKNOWN_STEM = "unknown-to-ca"
SUMMARY = "summary.txt"
FORMULA_ESCAPING = "leading apostrophe before = + - @ TAB CR LF NUL"


def data_stem(all_rows: bool) -> str:
    """certificates.* with --all, else findings.*."""
    return "certificates" if all_rows else "findings"


class JsonRows(list[Any]):
    """A JSON array whose items are made as run.json is written, never held together: the
    views list every certificate they hold. A list to ``json`` (whose indenting encoder
    iterates it), empty to everything else; ``make`` gives a fresh iterator each time."""

    def __init__(self, make: Callable[[], Iterator[Any]], count: int):
        super().__init__()
        self._make = make
        self._count = count

    def __iter__(self) -> Iterator[Any]:
        return self._make()

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list) and len(self) == len(other) and list(self) == list(other)

    __hash__ = None


@dataclass(frozen=True, slots=True)
class RecordedInput:
    path: str
    absolute_path: str | None = None
    kind: str = ""
    format: str = ""
    sha256: str = ""
    rows: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class RecordedSettings:
    """The settings the run used that verify needs to recompute it; None (or empty) means the
    folder's reconcile did not record it, and the recomputation takes the default."""

    ca_exports: tuple[str, ...] = ()
    ca_sources: tuple[str, ...] = ()
    ca_format: str | None = None
    ca_issuer: tuple[str, ...] = ()
    column_map: str | None = None
    date_order: str | None = None
    ca_timezone: str | None = None
    max_reject_ratio: float | None = None
    allow_empty: bool | None = None
    device_pattern: str | None = None
    report_delivered: tuple[str, ...] = ()
    report_status_codes: tuple[str, ...] = ()
    snapshot: str | None = None
    all_rows: bool | None = None
    expiry_days: int | None = None
    ca_config: str | None = None
    connector_stale_hours: float | None = None


@dataclass(frozen=True, slots=True)
class RejectSummary:
    count: int = 0
    first: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CsvFormat:
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    line_terminator: str = "CRLF"
    formula_escaping: str = FORMULA_ESCAPING


@dataclass(frozen=True, slots=True)
class BundledInput:
    """One input copied into the bundle: ``file`` is relative to the bundle, ``of`` where it
    was read from, ``sha256`` the digest of the uncompressed bytes (what run_id is built on)."""

    role: str
    file: str
    of: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMeta:
    """run.json: provenance an auditor (and ``reconcile verify``) can check the report against.
    The field order is the file's key order."""

    tool: str
    versions: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    argv: tuple[str, ...] = ()
    as_of: str
    grace_hours: float = 0.0
    templates: tuple[str, ...] = ()
    intune_sources: tuple[str, ...] = ()
    tenant_id: str | None = None
    inputs: tuple[RecordedInput, ...] = ()
    settings: RecordedSettings = RecordedSettings()
    counts: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    duplicate_rows: int = 0
    notes: tuple[str, ...] = ()
    views: dict[str, Any] = field(default_factory=dict)
    rejects: RejectSummary = RejectSummary()
    csv: CsvFormat = CsvFormat()
    exit_code: int = 0
    bundle_inputs: str = "reference"
    bundled: tuple[BundledInput, ...] = ()

    def dumps(self) -> str:
        return "".join(self._chunks())

    def write(self, handle: IO[str]) -> None:
        """run.json written as it is encoded: the views' rows are made one at a time."""
        for chunk in self._chunks():
            handle.write(chunk)

    def _chunks(self) -> Iterator[str]:
        # asdict would copy the views' rows into lists; they go in as they are.
        data = dataclasses.asdict(dataclasses.replace(self, views={}))
        data["views"] = self.views
        yield from json.JSONEncoder(indent=2).iterencode(data)
        yield "\n"


class NotRunJson(ValueError):
    """The file is not a run.json reconcile wrote (or one this reconcile cannot read)."""


class _ViewCounts(msgspec.Struct):
    """The views' part of run.json without their rows: msgspec skips what it does not name."""

    counts: Any = msgspec.UNSET


def load(path: Path, view_rows: bool = False) -> RunMeta:
    """run.json read back; raises NotRunJson (and OSError when it cannot be read).

    Without ``view_rows`` the views keep only their counts: verify and retention read the
    provenance, and the rows were 53 MB of a 1M run's 60 MB run.json (as Python objects,
    several times that)."""
    text = path.read_bytes()
    try:
        # msgspec checks UTF-8 only in what it decodes; the views' rows it skips are checked here.
        text.decode("utf-8")
        raw = msgspec.json.decode(text, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        raise NotRunJson("not written by reconcile") from None
    except (ValueError, msgspec.DecodeError) as exc:
        raise NotRunJson(f"not valid JSON: {exc}") from None
    try:
        fields = {k: msgspec.json.decode(v) for k, v in raw.items() if k != "views"}
        if "views" in raw:
            fields["views"] = _views(raw["views"], view_rows)
    except msgspec.DecodeError as exc:
        raise NotRunJson(f"not valid JSON: {exc}") from None
    if fields.get("tool") != "reconcile":
        raise NotRunJson("not written by reconcile")
    try:
        return msgspec.convert(fields, RunMeta)
    except msgspec.ValidationError as exc:
        raise NotRunJson(f"malformed: {exc}") from None


def _views(raw: msgspec.Raw, rows: bool) -> object:
    if rows:
        return msgspec.json.decode(raw)
    try:
        counted = msgspec.json.decode(raw, type=_ViewCounts)
    except msgspec.ValidationError:
        # Not an object: convert() says so as for any other field of the wrong type.
        return msgspec.json.decode(raw)
    return {} if counted.counts is msgspec.UNSET else {"counts": counted.counts}


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


def manifest_text(entries: list[tuple[str, str]]) -> str:
    """``sha256sum -c`` format, sorted by name."""
    return "\n".join(f"{digest}  {name}" for digest, name in sorted(entries, key=lambda e: e[1]))


def bundle_files(directory: Path) -> list[str]:
    """Every regular file under the folder, as manifest-style relative names."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() or p.is_symlink()
    )
