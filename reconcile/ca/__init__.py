"""CA issued-certificate exports in, CaCertificate records (or Rejects) out, one streaming pass.

    reader = ExportReader(path, settings.reader_options())   # may raise InputError
    for item in reader:                       # CaCertificate | Reject, in file order
        ...
    reader.input_file()                       # sha256, rows, rejects for run.json

Formats: certutil, certutil-text, pspki, ejbca, openssl-index and mapped (docs/ca-exports.md).
Only a file that cannot be read as any (or the requested) format raises; a bad row is a Reject
with its line; every physical line is a row, a Reject, or a known header, trailer or blank.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import replace as _replace
from itertools import chain, islice
from pathlib import Path

from reconcile.ca import certutil_text, openssl_index
from reconcile.ca.certutil import is_trailer, stated_rows
from reconcile.ca.columns import MAP_FORMATS, ColumnMap, load_column_map
from reconcile.ca.dates import CultureDates, DateOrder, DateScan, zone
from reconcile.ca.detect import Detector
from reconcile.ca.formats import CaFormat
from reconcile.ca.records import csv_records
from reconcile.ca.table import Converter, Dialect, build_converter
from reconcile.ca.textsource import TextSource
from reconcile.errors import ConfigError, InputError
from reconcile.model import CaCertificate, InputFile, Reject

__all__ = ["FORMATS", "CsvPlan", "ExportReader", "ReaderOptions"]

FORMATS = tuple(CaFormat)
DATE_ORDERS = tuple(DateOrder)
KIND = "ca-export"
_DATE_FIELDS = ("not_before", "not_after", "revoked_at")
_Row = tuple[int, int, list[str]]

log = logging.getLogger("reconcile.ca")


@dataclass(frozen=True)
class ReaderOptions:
    """How to read CA exports; invalid values raise ConfigError at construction.

    ``given`` names the options the user set explicitly (``date_order``, ``timezone``): a date
    order given as mdy is "configured", not "default", and a zone given as UTC is no guess.
    """

    format: str = CaFormat.AUTO
    issuer: str | None = None
    column_map: Path | None = None
    date_order: str = DateOrder.MDY
    timezone: str = "UTC"
    encoding: str | None = None
    legacy_encoding: str = "cp1252"
    given: frozenset[str] = frozenset()

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

    def load_map(self) -> ColumnMap | None:
        """The user's column map, if it applies to the requested format."""
        if self.column_map is None or self.format not in ("auto", *MAP_FORMATS):
            return None
        default = self.format if self.format in MAP_FORMATS else None
        loaded = load_column_map(self.column_map, default)
        if self.format in MAP_FORMATS and loaded.format != self.format:
            raise ConfigError(
                f"{self.column_map}: the column map says format = {str(loaded.format)!r} "
                f"but the CA format is {str(self.format)!r}"
            )
        return loaded


def skipped_line(text: str, cells: list[str], trailers: bool) -> bool:
    """A one-line record that is no row: one blank cell, or (certutil) a status line."""
    return (len(cells) == 1 and not cells[0].strip()) or (
        trailers and not text.lstrip().startswith('"') and is_trailer(text)
    )


def incomplete(stated: int, counted: int, source: str, line: int) -> InputError:
    """certutil's "N Rows" line does not count the records before it."""
    return InputError(
        f"certutil printed {stated} rows, the file holds {counted}: the "
        "export is incomplete or edited; export it again",
        source,
        line,
    )


def cut_short(source: str, line: int) -> InputError:
    """The last row has no line break and not the header's width."""
    return InputError(
        "the file ends inside a row: it was cut short (a copy or download that did "
        "not finish); export it again",
        source,
        line,
    )


@dataclass(frozen=True)
class CsvPlan:
    """A recognised header-format export, for the engine to read natively.

    ``convert`` is this reader's row converter (ValueError means a Reject with its text); rows
    start after ``header_line``; ``date_order`` is the order the date scan chose.
    """

    path: Path
    source: str
    format: str
    dialect: Dialect
    header: tuple[str, ...]
    delimiter: str
    header_line: int
    encoding: str
    forced_encoding: bool
    date_order: str | None
    issuer: str | None
    convert: Converter


_DECIMAL_DIGITS = 20
"""A hex serial this long with no letter in it is rare (a 128-bit one: about 1 in 3 million)."""
_DECIMAL_ROWS = 5


class _DecimalHint:
    """Whether a column map that reads serials as hex (the default) is reading decimal ones.

    Those are no error (a hex serial may lack letters), but every serial would then miss its
    Intune record: the run turns red for the wrong reason, and the fix is one line of the map."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows = 0
        self.first = 0
        self.decimal_looking = True

    def see(self, record: CaCertificate) -> None:
        self.rows += 1
        if self.rows == 1:
            self.first = record.line
        if self.decimal_looking:
            digits = f"{record.serial:X}"
            self.decimal_looking = len(digits) >= _DECIMAL_DIGITS and digits.isdigit()

    def note(self) -> str | None:
        if self.rows < _DECIMAL_ROWS or not self.decimal_looking:
            return None
        return (
            f"{self.source}: every serial has {_DECIMAL_DIGITS} or more digits and no letter "
            f"(first at line {self.first}), read as hex: if the CA writes decimal serials, set "
            "serial_base = 10 in the column map"
        )


class ExportReader:
    """One CA export file, opened and recognised at construction, streamed once by iteration.

    Files with culture dates get a first pass over their date cells that decides the day/month
    order before any row is converted (a swap must never depend on which rows came first) and
    notes zone-less dates; it stops as soon as nothing later can change the answer.
    """

    format: str

    def __init__(self, path: Path, options: ReaderOptions) -> None:
        self.path = Path(path)
        self._source = str(path)
        self._options = options
        self._rows = 0
        self._rejected = 0
        self._started = False
        self._sha256: str | None = None
        self._convert: Converter | None = None
        self._dialect: Dialect | None = None
        self._header: list[str] = []
        self._delimiter = ","
        self._offset = 0
        self._first_line = ""
        self.notes: list[str] = []
        self.zone_note: str | None = None
        self.date_order: str | None = None
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
        tz = zone(options.timezone)
        culture = CultureDates(options.date_order, tz)
        detector = Detector(requested=options.format, user_map=user_map, culture=culture, tz=tz)
        if options.format in ("auto", certutil_text.NAME) and certutil_text.looks_like(first):
            self._recognise_text(detector, first, number)
        elif options.format == certutil_text.NAME:
            raise InputError(
                f"not certutil's text output: line {number} is {first.strip()[:80]!r} where "
                "'Schema:' or 'Row 1:' was expected",
                self._source,
            )
        else:
            if first.lstrip().startswith("#TYPE"):
                first, number = self._next_content(number)
                if first is None:
                    raise InputError("only a PowerShell #TYPE line, no header", self._source)
            dialect, header, delimiter = detector.choose(first, self._source)
            self.format = dialect.name
            self._dialect, self._header, self._delimiter = dialect, header, delimiter
            self._offset = number
        self._choose_date_order(culture)
        self._convert = build_converter(
            self._dialect_in_use(), self._header, source=self._source, issuer=options.issuer
        )
        log.debug(
            "%s: %s, %s, delimiter %r, %d columns",
            self._source,
            self.format,
            self._text.encoding,
            self._delimiter,
            len(self._header),
        )

    @property
    def options(self) -> ReaderOptions:
        return self._options

    @property
    def names_issuer(self) -> bool:
        """Whether its rows carry an issuer: configured, or an issuer (or CA name) column."""
        if self._options.issuer:
            return True
        if self._dialect is None:
            return False
        found = self._dialect.fields_of(self._header)
        return "issuer" in found or "config_string" in found

    def _dialect_in_use(self) -> Dialect:
        assert self._dialect is not None
        return self._dialect

    def _recognise_text(self, detector: Detector, first: str, number: int) -> None:
        """certutil's text output: the header is the Schema block's names or the first block's."""
        self.format = certutil_text.NAME
        dialect = _replace(detector.dialects["certutil"], name=certutil_text.NAME)
        header = self._text_header(chain([first], self._text.lines), number)
        if "serial" not in dialect.fields_of(header):
            raise InputError(
                "certutil text output without a 'Serial Number' line (add SerialNumber to "
                f"certutil's -out list); labels found: {', '.join(header[:30]) or 'none'}",
                self._source,
            )
        self._dialect, self._header = dialect, header
        # The header pass consumed lines: reopen, so the stream starts at the first line again.
        self._text.close()
        self._text = TextSource(self.path, self._options.encoding, self._options.legacy_encoding)

    def _text_header(self, lines: Iterable[str], number: int) -> list[str]:
        for item in certutil_text.parse(lines, number):
            if isinstance(item, list):
                return item
            if isinstance(item, certutil_text.Block):
                return list(item.cells)
        return []

    def _records(self, lines: Iterable[str]) -> Iterator[_Row | Reject]:
        """(first line, last line, cells) per data row, or a Reject; trailers and blanks skipped.
        certutil's "N Rows" line must count the records before it: a cut or edited export
        whose remaining rows are all valid would otherwise read as complete."""
        source = self._source
        if self.format == certutil_text.NAME:
            header = self._header
            for item in certutil_text.parse(lines, 1):
                if isinstance(item, certutil_text.Block):
                    cells = item.cells
                    yield item.line, item.line, [cells.get(name, "") for name in header]
                elif isinstance(item, certutil_text.Stray):
                    yield Reject(source, item.line, f"not part of a Row block: {item.text[:60]!r}")
            return
        trailers = self._dialect_in_use().trailers
        width = len(self._header)
        counted = 0
        last = None
        for record in csv_records(lines, self._offset + 1, self._delimiter, width):
            if record.cells is None:
                last = record
                counted += 1
                yield Reject(source, record.start, record.reason or "not valid CSV")
                continue
            if record.start == record.end and skipped_line(record.text, record.cells, trailers):
                stated = stated_rows(record.text) if trailers else None
                if stated is not None and stated != counted:
                    raise incomplete(stated, counted, source, record.start)
                if stated is not None:
                    counted = 0
                continue
            counted += 1
            last = record
            yield record.start, record.end, record.cells
        if (
            last is not None
            and not last.text.endswith(("\n", "\r"))
            and last.text.strip(" \t\x00")
            and (last.cells is None or len(last.cells) != width)
        ):
            # Every export tool ends its rows with a line break: this file was cut short (NUL
            # padding after the last line break is a reject of its own, not a cut row).
            raise cut_short(source, last.start)

    def _data_lines(self, text: TextSource) -> Iterator[str]:
        """The lines after the header (certutil text output has no header line)."""
        skip = 0 if self.format == certutil_text.NAME else self._offset
        return islice(text.lines, skip, None)

    def _choose_date_order(self, culture: CultureDates) -> None:
        """First pass: decide the order of slash dates from every date cell of the file."""
        positions = [
            i
            for f, i in self._dialect_in_use().fields_of(self._header).items()
            if f in _DATE_FIELDS
        ]
        if not positions:
            return
        scan = DateScan(self._options.date_order, given="date_order" in self._options.given)
        text = TextSource(self.path, self._options.encoding, self._options.legacy_encoding)
        try:
            for item in self._records(self._data_lines(text)):
                if isinstance(item, Reject):
                    continue
                start, _, cells = item
                for position in positions:
                    if position < len(cells) and cells[position].strip():
                        scan.see(cells[position], start)
                if scan.settled:
                    break
        finally:
            text.close()
        clash = scan.conflict()
        if clash is not None:
            raise InputError(
                f"dates disagree on their order: line {clash[0]} has a day > 12 first, line "
                f"{clash[1]} second; export the file again in one culture",
                self._source,
            )
        order = scan.order()
        culture.use(order)
        self.date_order = order
        how = scan.describe()
        if how is not None:
            self.notes.append(f"{self._source}: {how}")
            log.info("%s: %s", self._source, how)
        guessed = "timezone" not in self._options.given
        if scan.zoneless_line and guessed and self._options.timezone.upper() in ("UTC", "GMT", "Z"):
            self.zone_note = (
                f"{self._source}: dates carry no zone (first at line {scan.zoneless_line}): "
                "read as UTC; set --ca-timezone to the CA's zone"
            )
            self.notes.append(self.zone_note)

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
                lines = self._text.lines
                if self.format == certutil_text.NAME:
                    lines = self._data_lines(self._text)
                yield from self._csv_rows(self._convert, lines)
            self._sha256 = self._text.sha256()
        finally:
            self._text.close()

    def _undecodable(self, start: int, end: int) -> bool:
        return any(start <= n <= end for n in self._text.undecodable)

    def _csv_rows(
        self, convert: Converter, lines: Iterable[str]
    ) -> Iterator[CaCertificate | Reject]:
        undecodable = self._text.undecodable
        rows = rejected = 0
        hint = _DecimalHint(self._source) if self._reads_mapped_hex() else None
        try:
            for item in self._records(lines):
                rows += 1
                if isinstance(item, Reject):
                    rejected += 1
                    yield item
                    continue
                start, end, cells = item
                if undecodable and self._undecodable(start, end):
                    rejected += 1
                    yield Reject(self._source, start, self._encoding_reason())
                    continue
                try:
                    record = convert(cells, start)
                except ValueError as exc:
                    rejected += 1
                    yield Reject(self._source, start, str(exc))
                    continue
                if hint is not None:
                    hint.see(record)
                yield record
            note = hint.note() if hint is not None else None
            if note is not None:
                self.notes.append(note)
                log.warning("%s", note)
        finally:
            self._rows += rows
            self._rejected += rejected

    def _reads_mapped_hex(self) -> bool:
        return (
            self.format == CaFormat.MAPPED
            and self._dialect is not None
            and self._dialect.serial_base == 16
        )

    def _index_rows(self) -> Iterator[CaCertificate | Reject]:
        convert = openssl_index.LineConverter(source=self._source, issuer=self._options.issuer)
        source = self._source
        undecodable = self._text.undecodable
        lines = chain([self._first_line], self._text.lines)
        for number, physical in enumerate(lines, start=self._offset + 1):
            # A lone CR ends a line too: otherwise the next certificate hides inside a subject.
            for line in physical.rstrip("\r\n").split("\r"):
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

    def csv_plan(self) -> CsvPlan | None:
        """What the engine needs to read this file itself; None for index.txt and text output."""
        if self._convert is None or self._dialect is None or self.format == certutil_text.NAME:
            return None
        return CsvPlan(
            path=self.path,
            source=self._source,
            format=self.format,
            dialect=self._dialect,
            header=tuple(self._header),
            delimiter=self._delimiter,
            header_line=self._offset,
            encoding=self._text.encoding,
            forced_encoding=self._options.encoding is not None,
            date_order=self.date_order,
            issuer=self._options.issuer,
            convert=self._convert,
        )

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
