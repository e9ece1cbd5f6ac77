"""Helpers for the CA reader tests: read a whole export into records and rejects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.model import CaCertificate, InputFile, Reject

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ca"


@dataclass
class Result:
    format: str
    records: list[CaCertificate]
    rejects: list[Reject]
    input_file: InputFile

    def by_line(self) -> dict[int, CaCertificate]:
        return {r.line: r for r in self.records}


def read_export(path: Path, **options: Any) -> Result:
    reader = ExportReader(path, ReaderOptions(**options))
    records: list[CaCertificate] = []
    rejects: list[Reject] = []
    for item in reader:
        if isinstance(item, CaCertificate):
            records.append(item)
        else:
            assert isinstance(item, Reject)
            rejects.append(item)
    return Result(reader.format, records, rejects, reader.input_file())


@pytest.fixture
def ca_fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def read() -> Callable[..., Result]:
    return read_export
