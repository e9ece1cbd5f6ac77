"""Terminal text helpers every text formatter shares: safe external text, wrapping, tables
that fit the terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

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
