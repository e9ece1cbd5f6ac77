"""AD CS `certutil -view ... csv` exports.

Headers are the CA's localized column display names, so the dialect is built from the shipped
English map plus, when given, the user's map for another language. Nulls print as `EMPTY`, dates
in the server's culture, and certutil appends status lines after the last row.
"""

from __future__ import annotations

import re

from reconcile.ca.columns import ColumnMap, english_certutil_map
from reconcile.ca.dates import CultureDates
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import Dialect, certutil_request_id

NAME = CaFormat.CERTUTIL
# "Maximum Row Index: 5", "5 Rows", "CertUtil: -view command completed successfully." and
# their translations: a label with a count, a count with a word, or the tool's own prefix.
# "  32 Row Properties, Total Size = 1110, Max Size = 76, Ave Size = 34" (statistics, with commas).
_TRAILER = re.compile(
    r"^(?:CertUtil:.*|[^\d,]{3,}:\s*\d+|\d+\s+\w+\.?"
    r"|\d+\s+[^,=\d]+(?:,\s*[^,=\d]+=\s*\d+)+)$",
    re.IGNORECASE,
)


def is_trailer(cell: str) -> bool:
    """True for a certutil status line after the data (a whole physical line)."""
    return _TRAILER.match(cell.strip()) is not None


def column_map(user_map: ColumnMap | None) -> ColumnMap:
    """The English map, overlaid by a user's certutil map (their headers take precedence)."""
    english = english_certutil_map()
    if user_map is None or user_map.format != NAME:
        return english
    return ColumnMap(
        source=user_map.source,
        format=NAME,
        columns={**english.columns, **user_map.columns},
        null_values=english.null_values | user_map.null_values,
        labels={**english.labels, **user_map.labels},
    )


def dialect(columns: ColumnMap, dates: CultureDates) -> Dialect:
    return Dialect(
        name=NAME,
        columns=columns.columns,
        nulls=frozenset({""}) | columns.null_values,
        serial_base=16,
        dates=dates,
        request_id=certutil_request_id,
        trailers=True,
    )
