"""Lossless JSON Lines: every field of every record, raw (no formula neutralisation)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

from reconcile.identity import serial_hex
from reconcile.model import IntuneCertificate, Verdict
from reconcile.timeparse import iso_z

if TYPE_CHECKING:
    from reconcile.report.document import Report


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _with_hex(record: dict[str, Any], key: str = "serial") -> dict[str, Any]:
    """Serials as hex strings: JSON consumers lose precision on 150-bit integers."""
    if record.get(key) is not None:
        record[key] = serial_hex(record[key])
    return record


def verdict_record(verdict: Verdict, run_id: str) -> dict[str, Any]:
    record = _plain(verdict)
    record["ca"] = _with_hex(record["ca"])
    if record["intune"] is not None:
        record["intune"] = _with_hex(record["intune"])
    return {"kind": "certificate", "run_id": run_id, **record}


def unknown_record(record: IntuneCertificate, run_id: str) -> dict[str, Any]:
    return {"kind": "unknown_to_ca", "run_id": run_id, "intune": _with_hex(_plain(record))}


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _write(handle: IO[str], records: Iterable[dict[str, Any]]) -> int:
    rows = 0
    for record in records:
        handle.write(dumps(record) + "\n")
        rows += 1
    return rows


def write_verdicts(handle: IO[str], verdicts: Iterable[Verdict], run_id: str) -> int:
    return _write(handle, (verdict_record(v, run_id) for v in verdicts))


def write_unknown(handle: IO[str], records: Iterable[IntuneCertificate], run_id: str) -> int:
    return _write(handle, (unknown_record(r, run_id) for r in records))


def write(handle: IO[str], report: Report) -> int:
    """findings.jsonl (certificates.jsonl with --all)."""
    return write_verdicts(handle, report.rows, report.result.run_id)


def write_unknown_to_ca(handle: IO[str], report: Report) -> int:
    """unknown-to-ca.jsonl: Intune records no CA export lists."""
    return write_unknown(handle, report.result.unknown_to_ca, report.result.run_id)
