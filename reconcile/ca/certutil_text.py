"""certutil -view without the `csv` keyword: a Schema block, then `Row N:` blocks of labels.

    Schema:
      Column Name                   Localized Name                Type    MaxLength
      ----------------------------  ----------------------------  ------  ---------
      SerialNumber                  Serial Number                 String  128 -- Indexed

    Row 1:
      Issued Request ID: 0xb (11)
      Serial Number: "44000000030d20ca71500ba5c4000000000003"
      Certificate Template: "1.3.6.1.4.1.311.21.8.1.2" Intune SCEP Device
      Revocation Date: EMPTY

    Maximum Row Index: 1

    1 Rows
    CertUtil: -view command completed successfully.

Labels are the same localized column names the csv form uses as headers, so the certutil
dialect and column maps apply unchanged: each block becomes a row in the header's order.
A block runs until the next `Row N:` or a line at the left margin (the trailer); blank lines,
hex dumps of binary values and the continuation of a multi-line value belong to it. Any other
line outside a block is a reject with its number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reconcile.ca.certutil import is_trailer
from reconcile.ca.formats import CaFormat

NAME = CaFormat.CERTUTIL_TEXT
_ROW = re.compile(r"^\S.*?\s(\d+):$")
_LABEL = re.compile(r"^\s{1,4}(\S[^:]*?):(?:\s(.*))?$")
_SCHEMA_COLUMNS = re.compile(r"\s{2,}")
# `0000    30 00      0.`: the bytes of a binary value, printed at the left margin.
_HEX_DUMP = re.compile(r"^[0-9a-fA-F]{4}\s{2,}[0-9a-fA-F]{2}\b")


def looks_like(line: str) -> bool:
    """A first content line of `Schema:` or `Row 1:` is certutil's text output."""
    text = line.strip()
    return text == "Schema:" or _ROW.match(text) is not None


@dataclass(frozen=True, slots=True)
class Block:
    """One `Row N:` block: its first line and its label -> value cells."""

    line: int
    cells: dict[str, str]


@dataclass(frozen=True, slots=True)
class Stray:
    """A line that is neither part of a block nor a known header or trailer line."""

    line: int
    text: str


def _value(text: str) -> str:
    value = text.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"' and value.count('"') == 2:
        return value[1:-1]
    return value


def schema_names(lines: list[str]) -> list[str]:
    """Localized names from the Schema block's table (the second wide column)."""
    names = []
    for line in lines:
        fields = _SCHEMA_COLUMNS.split(line.strip())
        if len(fields) >= 3 and not set(fields[0]) <= {"-"} and fields[0] != "Column Name":
            names.append(fields[1])
    return names


def parse(lines: Iterable[str], first: int) -> Iterator[list[str] | Block | Stray]:
    """The schema's names (once, if there is a Schema block), then blocks and strays."""
    block: Block | None = None
    schema: list[str] | None = None
    for number, raw in enumerate(lines, start=first):
        line = raw.rstrip("\r\n")
        text = line.strip()
        if schema is not None:
            if text:
                schema.append(line)
                continue
            yield schema_names(schema)
            schema = None
            continue
        if not text:
            continue
        if text == "Schema:" and block is None:
            schema = []
            continue
        if _ROW.match(text) and not line[:1].isspace():
            if block is not None:
                yield block
            block = Block(number, {})
            continue
        if block is not None and (line[:1].isspace() or _HEX_DUMP.match(line)):
            label = _LABEL.match(line)
            if label and label.group(1) not in block.cells:
                block.cells[label.group(1)] = _value(label.group(2) or "")
            continue
        if block is not None:
            yield block
            block = None
        if is_trailer(text):
            continue
        yield Stray(number, text)
    if schema is not None:
        yield schema_names(schema)
    if block is not None:
        yield block
