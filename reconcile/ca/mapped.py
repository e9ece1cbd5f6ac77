"""Any other CSV, described by a user's column map (`format = "mapped"`).

The map names the columns, the serial base and the date encoding; values that mean revoked in a
`status` column are listed in the map, because every product spells them differently.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from reconcile.ca.columns import ColumnMap
from reconcile.ca.dates import CultureDates, epoch_millis, epoch_seconds
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import DateCell, Dialect, StatusRule

NAME = CaFormat.MAPPED
_CACHE_LIMIT = 1 << 16


def _pattern(fmt: str, tz: tzinfo) -> DateCell:
    cache: dict[str, datetime] = {}

    def parse(text: str) -> datetime:
        value = cache.get(text)
        if value is None:
            try:
                value = datetime.strptime(text.strip(), fmt)
            except ValueError:
                raise ValueError(f"{text.strip()[:60]!r} does not match {fmt!r}") from None
            if value.tzinfo is None:
                value = value.replace(tzinfo=tz)
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise ValueError(f"{text.strip()[:60]!r} is out of range") from None
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[text] = value
        return value

    return parse


def date_cell(fmt: str, culture: CultureDates, tz: tzinfo) -> DateCell:
    if fmt in ("culture", "iso"):
        # The culture parser takes ISO-8601 too; "iso" only documents the intent.
        return culture
    if fmt == "epoch-ms":
        return epoch_millis
    if fmt == "epoch-s":
        return epoch_seconds
    return _pattern(fmt, tz)


def _status_rule(values: frozenset[str]) -> StatusRule:
    def rule(text: str) -> bool | None:
        return True if text.strip().casefold() in values else None

    return rule


def dialect(columns: ColumnMap, culture: CultureDates, tz: tzinfo) -> Dialect:
    return Dialect(
        name=NAME,
        columns=columns.columns,
        nulls=frozenset({""}) | columns.null_values,
        serial_base=columns.serial_base,
        dates=date_cell(columns.date_format, culture, tz),
        status_rule=_status_rule(columns.revoked_values) if columns.revoked_values else None,
        delimiter=columns.delimiter,
    )
