"""Terminal text helpers every text formatter shares: safe external text, wrapping."""

from __future__ import annotations

import textwrap

from reconcile.terminal import safe


def printable(text: str | None, width: int | None = None) -> str:
    """External text made terminal-safe; shortened with … only when ``width`` is given."""
    clean = safe(text)
    if width is None or len(clean) <= width:
        return clean
    return clean[: width - 1] + "…"


def wrap(text: str, width: int | None, indent: str = "  ") -> str:
    """Each line of ``text`` wrapped at whole words to ``width`` (None: left as is)."""
    if width is None:
        return text
    return "\n".join(
        "\n".join(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False))
        or line
        for line in text.split("\n")
    )
