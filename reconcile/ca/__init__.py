"""CA issued-certificate exports in, CaCertificate records (or Rejects) out, one streaming pass.

    reader = ExportReader(path, ReaderOptions.from_settings(settings))   # may raise InputError
    for item in reader:                       # CaCertificate | Reject, in file order
        ...
    reader.input_file()                       # sha256, rows, rejects for run.json

Formats: certutil, pspki, ejbca, openssl-index and mapped (docs/ca-exports.md). Only a file that
cannot be read as any (or the requested) format raises; a bad row is a Reject with its line.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.ca import openssl_index
from reconcile.ca.certutil import is_trailer
from reconcile.ca.columns import MAP_FORMATS, ColumnMap, load_column_map
from reconcile.ca.dates import CultureDates, zone
from reconcile.ca.detect import Detector
from reconcile.ca.table import Converter, build_converter
from reconcile.ca.textsource import TextSource
from reconcile.errors import ConfigError, InputError
from reconcile.model import CaCertificate, InputFile, Reject

if TYPE_CHECKING:
    from _csv import Reader

    from reconcile.settings import Settings

__all__ = ["FORMATS", "ExportReader", "ReaderOptions"]

FORMATS = ("auto", "certutil", "pspki", "ejbca", "openssl-index", "mapped")
DATE_ORDERS = ("mdy", "dmy", "ymd")
KIND = "ca-export"

log = logging.getLogger("reconcile.ca")


@dataclass(frozen=True)
class ReaderOptions:
    """How to read CA exports; invalid values raise ConfigError at construction."""

    format: str = "auto"
    issuer: str | None = None
    column_map: Path | None = None
    date_order: str = "mdy"
    timezone: str = "UTC"
    encoding: str | None = None
    legacy_encoding: str = "cp1252"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"CA format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.date_order not in DATE_ORDERS:
            raise ConfigError(
                f"date order must be one of {', '.join(DATE_ORDERS)}, not {self.date_order!r}"
            )
        if self.format == "mapped" and self.column_map is None:
            raise ConfigError("the mapped CA format needs a column map (--column-map)")
        try:
            zone(self.timezone)
        except (ValueError, KeyError, OSError):
            raise ConfigError(f"CA time zone {self.timezone!r} is not a known zone") from None
        for name in (self.encoding, self.legacy_encoding):
            if name is None:
                continue
            try:
                codecs.lookup(name)
            except LookupError:
                raise ConfigError(f"unknown text encoding {name!r}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> ReaderOptions:
        return cls(
            format=settings.ca_format,
            issuer=settings.issuer_for(0),
            column_map=settings.column_map,
            date_order=settings.date_order,
            timezone=settings.ca_timezone,
            encoding=settings.encoding,
            legacy_encoding=settings.legacy_encoding,
        )

    def load_map(self) -> ColumnMap | None:
        """The user's column map, if it applies to the requested format."""
        if self.column_map is None or self.format not in ("auto", *MAP_FORMATS):
            return None
        default = self.format if self.format in MAP_FORMATS else None
        loaded = load_column_map(self.column_map, default)
        if self.format in MAP_FORMATS and loaded.format != self.format:
            raise ConfigError(
                f"{self.column_map}: the column map says format = {loaded.format!r} "
                f"but the CA format is {self.format!r}"
            )
        return loaded


class ExportReader:
    """One CA export file, opened and recognised at construction, streamed once by iteration."""

    format: str

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        self.path = Path(path)
        self._source = str(path)
        self._options = options
        self._rows = 0
        self._rejected = 0
        self._started = False
        self._sha256: str | None = None
        self._csv_reader: Reader | None = None
        self._convert: Converter | None = None
        self._trailers = False
        self._offset = 0
        self._first_line = ""
        user_map = options.load_map()
        self._text = TextSource(self.path, options.encoding, options.legacy_encoding)
        try:
            self._recognise(user_map)
        except BaseException:
            self._text.close()
            raise

    def _next_content(self, number: int) -> tuple[str | None, int]:
        for line in self._text.lines:
            number += 1
            if line.strip():
                return line, number
        return None, number

    def _recognise(self, user_map: ColumnMap | None) -> None:
        options = self._options
        if self._text.empty:
            raise InputError("the file is empty", self._source)
        first, number = self._next_content(0)
        if first is None:
            raise InputError("the file holds only blank lines", self._source)
        if options.format in ("auto", "openssl-index") and openssl_index.looks_like(first):
            self.format = openssl_index.NAME
            self._first_line, self._offset = first, number - 1
            log.debug("%s: %s, %s", self._source, self.format, self._text.encoding)
            return
        if options.format == "openssl-index":
            raise InputError(
                f"not an OpenSSL index.txt: line {number} is {first.strip()[:80]!r}", self._source
            )
        if first.lstrip().startswith("#TYPE"):
            first, number = self._next_content(number)
            if first is None:
                raise InputError("only a PowerShell #TYPE line, no header", self._source)
        tz = zone(options.timezone)
        culture = CultureDates(options.date_order, tz)
        detector = Detector(requested=options.format, user_map=user_map, culture=culture, tz=tz)
        dialect, header, delimiter = detector.choose(first, self._source)
        self.format = dialect.name
        self._trailers = dialect.trailers
        self._offset = number
        self._csv_reader = csv.reader(self._text.lines, delimiter=delimiter, strict=True)
        self._convert = build_converter(dialect, header, source=self._source, issuer=options.issuer)
        log.debug(
            "%s: %s, %s, delimiter %r, %d columns",
            self._source,
            self.format,
            self._text.encoding,
            delimiter,
            len(header),
        )

    def __iter__(self) -> Iterator[CaCertificate | Reject]:
        if self._started:
            raise RuntimeError("an ExportReader streams its file once")
        self._started = True
        return self._stream()

    def _stream(self) -> Iterator[CaCertificate | Reject]:
        try:
            if self._convert is None:
                yield from self._index_rows()
            else:
                yield from self._csv_rows(self._convert)
            self._sha256 = self._text.sha256()
        finally:
            self._text.close()

    def _undecodable(self, start: int, end: int) -> bool:
        return any(start <= n <= end for n in self._text.undecodable)

    def _csv_rows(self, convert: Converter) -> Iterator[CaCertificate | Reject]:
        reader = self._csv_reader
        assert reader is not None
        source = self._source
        offset = self._offset
        trailers = self._trailers
        undecodable = self._text.undecodable
        last = rows = rejected = 0
        try:
            while True:
                try:
                    for row in reader:
                        start = offset + last + 1
                        last = reader.line_num
                        if not row or (
                            len(row) == 1
                            and (not row[0].strip() or (trailers and is_trailer(row[0])))
                        ):
                            continue
                        rows += 1
                        if undecodable and self._undecodable(start, offset + last):
                            rejected += 1
                            yield Reject(source, start, self._encoding_reason())
                            continue
                        try:
                            record = convert(row, start)
                        except ValueError as exc:
                            rejected += 1
                            yield Reject(source, start, str(exc))
                            continue
                        yield record
                    return
                except csv.Error as exc:
                    start = offset + last + 1
                    last = reader.line_num
                    rows += 1
                    rejected += 1
                    yield Reject(source, start, f"not valid CSV: {exc}")
        finally:
            self._rows += rows
            self._rejected += rejected

    def _index_rows(self) -> Iterator[CaCertificate | Reject]:
        convert = openssl_index.LineConverter(source=self._source, issuer=self._options.issuer)
        source = self._source
        undecodable = self._text.undecodable
        lines = chain([self._first_line], self._text.lines)
        for number, line in enumerate(lines, start=self._offset + 1):
            if not line.strip():
                continue
            self._rows += 1
            if number in undecodable:
                self._rejected += 1
                yield Reject(source, number, self._encoding_reason())
                continue
            try:
                record = convert(line, number)
            except ValueError as exc:
                self._rejected += 1
                yield Reject(source, number, str(exc))
                continue
            yield record

    def _encoding_reason(self) -> str:
        fallback = "" if self._options.encoding else f" or {self._options.legacy_encoding}"
        return f"bytes that are not valid {self._text.encoding}{fallback}"

    def input_file(self) -> InputFile:
        """Provenance for run.json; only known once every row was read."""
        if self._sha256 is None:
            raise RuntimeError("input_file() is known only after the rows were read")
        return InputFile(
            path=self._source,
            kind=KIND,
            format=self.format,
            sha256=self._sha256,
            rows=self._rows,
            rejected=self._rejected,
        )

    def close(self) -> None:
        """Release the file when the rows will not be read (iteration closes it itself)."""
        self._text.close()

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
