"""Which format a header belongs to, and the one-line errors when it belongs to none.

A format is a candidate when its serial column is present and nothing points at another format:
PSPKI and EJBCA share `SerialNumber` but one is hex and the other decimal, so a header with only
shared columns is refused as ambiguous rather than guessed.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import tzinfo

from reconcile.ca import certutil, ejbca, mapped, pspki
from reconcile.ca.columns import ColumnMap, header_key
from reconcile.ca.dates import CultureDates
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import Dialect
from reconcile.errors import InputError

_DELIMITERS = (",", ";", "\t")
_MAX_LISTED = 30


def sniff_delimiter(line: str) -> str:
    """Comma unless the header clearly uses ';' (Export-Csv -UseCulture) or tabs."""
    counts = [line.count(d) for d in _DELIMITERS]
    best = max(range(len(_DELIMITERS)), key=lambda i: counts[i])
    return _DELIMITERS[best] if counts[best] else ","


def parse_header(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def describe(header: Sequence[str]) -> str:
    shown = ", ".join(repr(h.strip()[:60]) for h in header[:_MAX_LISTED])
    more = f" and {len(header) - _MAX_LISTED} more" if len(header) > _MAX_LISTED else ""
    return f"headers found: {shown or 'none'}{more}"


class Detector:
    """Builds the dialect for a header, given what the options allow."""

    def __init__(
        self, *, requested: str, user_map: ColumnMap | None, culture: CultureDates, tz: tzinfo
    ) -> None:
        self._requested = requested
        self._user_map = user_map
        certutil_map = certutil.column_map(user_map)
        self._certutil_map = certutil_map
        self.dialects: dict[str, Dialect] = {
            certutil.NAME: certutil.dialect(certutil_map, culture),
            pspki.NAME: pspki.dialect(culture),
            ejbca.NAME: ejbca.dialect(culture),
        }
        if user_map is not None and user_map.format == mapped.NAME:
            self.dialects[mapped.NAME] = mapped.dialect(user_map, culture, tz)

    def delimiter_for(self, name: str, line: str) -> str:
        fixed = self.dialects[name].delimiter if name in self.dialects else None
        return fixed or sniff_delimiter(line)

    def choose(self, line: str, path: object) -> tuple[Dialect, list[str], str]:
        """The dialect, the header cells and the delimiter for a header line."""
        sniffed = sniff_delimiter(line)
        header = parse_header(line, sniffed)
        if self._requested != "auto":
            return self._forced(line, header, path)
        keys = {header_key(h) for h in header}
        candidates: list[str] = []
        if mapped.NAME in self.dialects:
            mapped_delimiter = self.delimiter_for(mapped.NAME, line)
            mapped_header = parse_header(line, mapped_delimiter)
            if "serial" in self.dialects[mapped.NAME].fields_of(mapped_header):
                # The user wrote this map for files like this one: it wins over guessing.
                return self.dialects[mapped.NAME], mapped_header, mapped_delimiter
        if "serial" in self.dialects[certutil.NAME].fields_of(header):
            candidates.append(certutil.NAME)
        if "serialnumber" in keys:
            has_pspki = bool(keys & pspki.SIGNATURE)
            has_ejbca = bool(keys & ejbca.SIGNATURE)
            if has_pspki or not has_ejbca:
                candidates.append(pspki.NAME)
            if has_ejbca or not has_pspki:
                candidates.append(ejbca.NAME)
        if len(candidates) == 1:
            return self.dialects[candidates[0]], header, sniffed
        if candidates:
            names = " or ".join(candidates)
            raise InputError(
                f"the header could be {names}; pass --ca-format {names.split()[0]} (or another) "
                f"to say which; {describe(header)}",
                str(path),
            )
        raise InputError(self._unknown(header), str(path))

    def _forced(self, line: str, header: list[str], path: object) -> tuple[Dialect, list[str], str]:
        name = self._requested
        dialect = self.dialects[name]
        delimiter = self.delimiter_for(name, line)
        if dialect.delimiter:
            header = parse_header(line, delimiter)
        if "serial" not in dialect.fields_of(header):
            expected = {
                certutil.NAME: self._certutil_map.header_for("serial"),
                pspki.NAME: "SerialNumber",
                ejbca.NAME: "serialNumber",
                mapped.NAME: self._user_map.header_for("serial") if self._user_map else "serial",
            }[CaFormat(name)]
            hint = (
                "; for a localized CA pass --column-map with its header texts"
                if name == certutil.NAME
                else ""
            )
            raise InputError(
                f"not a {name} export: no {expected!r} column; {describe(header)}{hint}",
                str(path),
            )
        return dialect, header, delimiter

    def _unknown(self, header: list[str]) -> str:
        keys = {header_key(h) for h in header}
        if keys & set(self._certutil_map.columns):
            return (
                f"a certutil export without the "
                f"{self._certutil_map.header_for('serial')!r} column (add SerialNumber to "
                f"certutil's -out list); {describe(header)}"
            )
        if keys & (pspki.SIGNATURE | ejbca.SIGNATURE):
            return f"a PSPKI or EJBCA export without a serial number column; {describe(header)}"
        return (
            f"not a CA export reconcile recognises; {describe(header)}; for a localized certutil "
            "export pass --column-map, for any other CSV --ca-format mapped with a column map"
        )
