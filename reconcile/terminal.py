"""Text from CA exports, Graph and device logs made safe for a terminal.

A device name can carry an OSC-8 hyperlink disguised as plain text, CSI colour or cursor codes,
or a bidi override that reorders what the admin reads. Every command passes external text
through :func:`safe` before printing; it is the only place that decides what is stripped.
"""

from __future__ import annotations

import re

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"

# Whole escape sequences first (so an OSC-8 link's hidden URL goes with its ESC), 7-bit and
# 8-bit forms: CSI, OSC (ended by BEL or ST), and DCS/SOS/PM/APC strings.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 (but newline and tab when multi-line), DEL, C1, and the bidi embeddings, overrides and
# isolates (U+202A-202E, U+2066-2069).
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BLOCK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str | None, *, multiline: bool = False) -> str:
    """``text`` with every escape sequence and control or bidi character replaced by U+FFFD.

    One line by default (a table cell); ``multiline`` keeps newlines and tabs, for a whole
    report about to be printed.
    """
    if not text:
        return ""
    cleaned = _SEQUENCE.sub(REPLACEMENT, text)
    return (_CONTROL_BLOCK if multiline else _CONTROL_LINE).sub(REPLACEMENT, cleaned)


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_safe(line: str) -> str:
    """A JSON text with the characters ``json.dumps`` leaves raw (DEL, C1, bidi controls)
    written as ``\\uXXXX`` escapes: still the same JSON value, harmless on a terminal."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
