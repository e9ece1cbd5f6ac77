"""Terminal text helpers every text formatter shares: safe external text, wrapping, tables
that fit the terminal."""

from __future__ import annotations

import functools
import itertools
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import tabulate as tabulate_module
from tabulate import tabulate

from reconcile.terminal import safe

GAP = 2
"""tabulate's "simple" format puts two spaces between columns."""


def printable(text: str | None, width: int | None = None) -> str:
    """External text made terminal-safe; shortened with … only when ``width`` is given."""
    clean = safe(text)
    if width is None or len(clean) <= width:
        return clean
    return clean[: width - 1] + "…"


def wrap(text: str, width: int | None, indent: str = "  ") -> str:
    """Each line of ``text`` wrapped at whole words to ``width`` (None: left as is).

    A word longer than the width (a 40-digit serial, a thumbprint) stays whole on its own
    line rather than being split where the admin would copy it from.
    """
    if width is None:
        return text
    return "\n".join(
        "\n".join(
            textwrap.wrap(
                line,
                width,
                subsequent_indent=indent,
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
        or line
        for line in text.split("\n")
    )


STREAM_ROWS = 4096
"""Rows tabulated at a time when a table is written whole (summary.txt): more and the table
is written a chunk at a time (see ``table_lines``)."""

Row = Sequence[str]


def joined(parts: Iterable[str], sep: str = "\n") -> Iterator[str]:
    """``sep.join(parts)`` in pieces, for text written as it is made."""
    first = True
    for part in parts:
        yield part if first else sep + part
        first = False


def table_lines(rows: Sequence[Row], headers: Sequence[str]) -> Iterator[str]:
    """The lines of ``tabulate(rows, headers, tablefmt="simple")``, holding a chunk of rows at
    a time: summary.txt lists every finding, and a run may have half a million.

    tabulate pads every column to its widest cell and aligns it by its most generic type, so
    each chunk is tabulated with a few sentinel rows that carry, per column, the widest cell,
    the most decimals and the most generic type of the whole table; their lines are dropped.
    ``rows`` is read three times. Short tables, and any with a cell tabulate would treat as
    coloured or multi-line, are tabulated whole as before.
    """
    sentinels = _sentinels(rows, headers) if len(rows) > STREAM_ROWS else None
    if sentinels is None:
        yield from tabulate(list(rows), headers=headers, tablefmt="simple").split("\n")
        return
    skip = 2
    source = iter(rows)
    while chunk := list(itertools.islice(source, STREAM_ROWS)):
        lines = tabulate([*sentinels, *chunk], headers=headers, tablefmt="simple").split("\n")
        yield from lines[:2][2 - skip :]
        yield from lines[2 + len(sentinels) :]
        skip = 0


_CACHED_CELLS = 1 << 16
"""Distinct cells whose tabulate facts are remembered: a findings table's statuses, issuers,
profiles and next steps repeat on every row, and tabulate's type and format rules read each
cell's text alone."""


_TAB: Any = tabulate_module
_WIDTH = _TAB._align_column_choose_width_fn(
    False, _TAB.wcwidth is not None and _TAB.WIDE_CHARS_MODE, False
)
_FORMATS = (_TAB._DEFAULT_FLOATFMT, _TAB._DEFAULT_INTFMT, _TAB._DEFAULT_MISSINGVAL)


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _cell_type(cell: str) -> type | None:
    """tabulate's type of a cell, or None when it holds ANSI codes or line breaks."""
    if _TAB._ansi_codes.search(cell) or _TAB._multiline_codes.search(cell):
        return None
    return cast(type, _TAB._type(cell, True, True))


@functools.lru_cache(maxsize=_CACHED_CELLS)
def _cell_metrics(cell: str, kind: type) -> tuple[tuple[int, int], ...]:
    """((metric, value), ...) of a cell in a column of ``kind``: decimals and the width before
    them for numbers, the stripped width for text (tabulate's alignment rules)."""
    text = _TAB._format(cell, kind, *_FORMATS, has_invisible=False)
    if kind in (int, float):
        decimals = _TAB._afterpoint(text)
        return (0, decimals), (1, _WIDTH(text) - decimals)
    return ((2, _WIDTH(text.strip())),)


def _sentinels(rows: Iterable[Row], headers: Sequence[str]) -> list[Row] | None:
    """Rows that give every chunk the whole table's column types, widths and decimal
    alignment (tabulate's own rules, read from its helpers); None when a cell has ANSI codes
    or line breaks, which change tabulate's width rules for the whole table."""
    columns = len(headers)
    generic: list[type] = [bool] * columns
    typed: list[Row | None] = [None] * columns
    for row in rows:
        for j, cell in enumerate(row):
            cell_type = _cell_type(cell)
            if cell_type is None:
                return None
            kind = _TAB._more_generic(generic[j], cell_type)
            if kind is not generic[j]:
                generic[j], typed[j] = kind, row
    best: dict[tuple[int, int], tuple[int, Row]] = {}
    for row in rows:
        for j, cell in enumerate(row):
            for metric, value in _cell_metrics(cell, generic[j]):
                key = (j, metric)
                if key not in best or value > best[key][0]:
                    best[key] = (value, row)
    chosen = [row for row in typed if row is not None] + [row for _v, row in best.values()]
    unique: dict[int, Row] = {id(row): row for row in chosen}
    return list(unique.values())


def fits(text: str, width: int | None) -> bool:
    return width is None or all(len(line) <= width for line in text.splitlines())


def fit_table(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str],
    width: int | None,
    *,
    title: int = 1,
    wrapped: Sequence[int] = (),
    min_room: int = 24,
    split: bool = False,
) -> str:
    """``rows`` as columns when they fit ``width``; else the ``wrapped`` columns' cells wrap
    at whole words while each keeps ``min_room``; else (``split``) the other columns go into
    narrower tables, each repeating the first ``title`` columns; else one block per row whose
    fields wrap at whole words. Nothing is shortened; without a width nothing is wrapped.
    """
    table = tabulate(rows, headers=headers, tablefmt="simple")
    if width is None or fits(table, width):
        return table
    cells = [[str(c) for c in row] for row in rows]
    if wrapped:
        narrow = _widths(cells, headers, [i for i in range(len(headers)) if i not in wrapped])
        room = width - sum(narrow) - GAP * (len(headers) - 1)
        natural = _widths(cells, headers, wrapped)
        if room >= min_room * len(wrapped):
            caps: list[int | None] = [None] * len(headers)
            for i, cap in zip(wrapped, _share(room, natural), strict=True):
                caps[i] = cap
            table = tabulate(
                rows,
                headers=headers,
                tablefmt="simple",
                maxcolwidths=caps,
                break_long_words=False,
                break_on_hyphens=False,
            )
            if fits(table, width):
                return table
    if split and (tables := _split(rows, headers, width, title)) is not None:
        return tables
    return _blocks(cells, headers, width, title)


def _widths(cells: list[list[str]], headers: Sequence[str], columns: Sequence[int]) -> list[int]:
    return [max([len(headers[i]), *(len(r[i]) for r in cells)]) for i in columns]


def _share(room: int, natural: list[int]) -> list[int]:
    """``room`` split between wrapped columns: none wider than it needs, the rest shared."""
    caps = [0] * len(natural)
    left, open_ = room, list(range(len(natural)))
    while open_:
        each = left // len(open_)
        done = [i for i in open_ if natural[i] <= each]
        if not done:
            for i in open_:
                caps[i] = each
            break
        for i in done:
            caps[i] = natural[i]
            left -= natural[i]
            open_.remove(i)
    return caps


def _columns(rows: Sequence[Sequence[object]], headers: Sequence[str], cols: list[int]) -> str:
    return tabulate(
        [[row[i] for i in cols] for row in rows],
        headers=[headers[i] for i in cols],
        tablefmt="simple",
    )


def _split(
    rows: Sequence[Sequence[object]], headers: Sequence[str], width: int, title: int
) -> str | None:
    """The columns after the first ``title`` grouped into tables that each fit ``width``,
    or None when one column alone does not."""
    keys = list(range(title))
    groups: list[list[int]] = []
    for i in range(title, len(headers)):
        if groups and fits(_columns(rows, headers, [*keys, *groups[-1], i]), width):
            groups[-1].append(i)
        elif fits(_columns(rows, headers, [*keys, i]), width):
            groups.append([i])
        else:
            return None
    return "\n\n".join(_columns(rows, headers, [*keys, *g]) for g in groups)


def _blocks(cells: list[list[str]], headers: Sequence[str], width: int, title: int) -> str:
    """One block per row: the first ``title`` cells on a line, then a line per other field
    that has a value."""
    blocks = []
    for row in cells:
        fields = zip(headers[title:], row[title:], strict=True)
        lines = ["  ".join(row[:title]), *(f"  {n}: {c}" for n, c in fields if c)]
        blocks.append(wrap("\n".join(lines), width, indent="    "))
    return "\n\n".join(blocks)
