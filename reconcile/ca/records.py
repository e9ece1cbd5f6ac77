"""Physical lines into CSV records, so that one stray quote costs one line, not a thousand.

Python's csv reader lets an unbalanced `"` run on until the next quote, however many lines
later, and the rows in between vanish inside one cell. Here a record may span lines only while
a quote is open, never more than MAX_RECORD_LINES of them, and a multi-line record must have the
header's width: otherwise its first line alone is rejected and reading resumes on the next one.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_RECORD_LINES = 32


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its first and last physical line, and its cells or why it has none."""

    start: int
    end: int
    text: str
    cells: list[str] | None
    reason: str | None = None


def _parse(lines: list[str], delimiter: str) -> list[str] | str:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        row = next(reader, [])
        if next(reader, None) is not None:
            return "more than one record"
    except csv.Error as exc:
        return f"not valid CSV: {exc}"
    return row


_Where = tuple[int, int, str, str | None]
"""First line, last line, the first line's text, and the reason when rejected here."""


def _assembled(
    lines: Iterable[str], first: int, delimiter: str, width: int | None, side: deque[_Where]
) -> Iterator[str]:
    """Yields each record's text for one shared csv reader; its provenance goes to ``side``."""
    source = iter(lines)
    pending: deque[tuple[int, str]] = deque()
    number = first - 1

    def pull() -> tuple[int, str] | None:
        nonlocal number
        if pending:
            return pending.popleft()
        line = next(source, None)
        if line is None:
            return None
        number += 1
        return number, line

    while (item := pull()) is not None:
        start, line = item
        if not line.strip():
            continue
        if line.count('"') % 2 == 0:
            side.append((start, start, line, None))
            yield line
            continue
        taken = [(start, line)]
        balanced = False
        while len(taken) < MAX_RECORD_LINES and (more := pull()) is not None:
            taken.append(more)
            if more[1].count('"') % 2:
                balanced = True
                break
        if balanced:
            parsed = _parse([t for _, t in taken], delimiter)
            if not isinstance(parsed, str) and (width is None or len(parsed) == width):
                side.append((start, taken[-1][0], line, None))
                yield "".join(t for _, t in taken)
                continue
        pending.extendleft(reversed(taken[1:]))
        side.append((start, start, line, _UNBALANCED))


_UNBALANCED = (
    "an unbalanced '\"' (a quoted cell that does not close on this line"
    f" or within the next {MAX_RECORD_LINES - 1} in a record of the header's width)"
)


def csv_records(
    lines: Iterable[str], first: int, delimiter: str, width: int | None
) -> Iterator[Record]:
    """Records of ``lines``, the first of which is physical line ``first``; blank lines skipped."""
    side: deque[_Where] = deque()
    reader = csv.reader(
        _assembled(lines, first, delimiter, width, side), delimiter=delimiter, strict=True
    )
    pop = side.popleft
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            while len(side) > 1:
                yield _alone(pop())
            start, end, text, _ = pop()
            yield Record(start, end, text, None, f"not valid CSV: {exc}")
            continue
        while len(side) > (0 if row is None else 1):
            yield _alone(pop())
        if row is None:
            return
        start, end, text, _ = pop()
        yield Record(start, end, text, row)


def _alone(where: _Where) -> Record:
    """A line without a row of its own: rejected here, or swallowed by the csv reader."""
    start, end, text, reason = where
    return Record(start, end, text, None, reason or "not valid CSV: a quote left open")
