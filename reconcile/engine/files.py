"""Byte-level facts about an input file, in one pass at disk speed, beside the engine's scan.

The sha256 for run.json and the physical line count (which the snapshot's metadata promises)
come from here, as do a few byte patterns that decide whether DuckDB's reader may be trusted
with the file: DuckDB splits lines on a lone CR where Python does not, and its JSON parser
accepts NaN and trailing commas that msgspec refuses. A file showing any of them is read line
by line in Python instead, with the same result as ever, only slower.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = 1 << 22


@dataclass(frozen=True)
class Facts:
    sha256: str
    lines: int
    """Lines as Python's binary line iteration counts them (split on LF only)."""
    suspicious: bool
    """Some needle occurred: the caller reads the file line by line in Python."""
    size: int
    offsets: array[int] | None = None
    """Byte offset of each line's start, when asked for: records are read back by line."""

    def line(self, handle: BinaryIO, number: int) -> bytes:
        assert self.offsets is not None
        handle.seek(self.offsets[number - 1])
        return handle.readline()


def scan(
    path: Path,
    needles: tuple[bytes, ...],
    carriage_returns: bytes | None,
    newline: bytes,
    with_offsets: bool = False,
    line_start: bytes | None = None,
) -> Facts:
    """Hash and count ``path``; ``carriage_returns`` and ``newline`` are CR and LF as the file
    encodes them, and every CR must be followed by LF (CRLF line ends) for the file to be
    unsuspicious. In UTF-16 the byte pairs are counted at any offset, which can only raise
    false alarms or count extra lines; either way Python reads the file."""
    digest = hashlib.sha256()
    patterns = [newline, *needles]
    if line_start is not None:
        patterns.append(newline + line_start)
    first = b""
    if carriage_returns is not None:
        patterns += [carriage_returns, carriage_returns + newline]
    counts = dict.fromkeys(patterns, 0)
    keep = max(len(p) for p in patterns) - 1
    size = 0
    tail = b""
    offsets = array("q", [0]) if with_offsets else None
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            if not size:
                first = block[:1]
            if offsets is not None:
                found = block.find(b"\n")
                while found >= 0:
                    offsets.append(size + found + 1)
                    found = block.find(b"\n", found + 1)
            size += len(block)
            window = tail + block
            for pattern in counts:
                counts[pattern] += window.count(pattern) - tail.count(pattern)
            tail = window[-keep:] if keep else b""
    ends_with_newline = tail.endswith(newline) if keep else size > 0
    lines = counts[newline] + (1 if size and not ends_with_newline else 0)
    suspicious = any(counts[n] for n in needles)
    if carriage_returns is not None:
        suspicious = suspicious or counts[carriage_returns] != counts[carriage_returns + newline]
    if offsets is not None and offsets[-1] == size:
        offsets.pop()
    if line_start is not None:
        # Every line must start with it (a JSON object): else DuckDB may read a 'null' line as
        # a row of nulls, or skip a blank one, where msgspec rejects the line.
        starts = counts[newline + line_start] + (1 if first == line_start else 0)
        suspicious = suspicious or starts != lines
    return Facts(digest.hexdigest(), lines, suspicious, size, offsets)


class Scanner:
    """File scans run in a thread (hashlib and file reads release the GIL) while DuckDB works."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-scan")

    def submit(
        self,
        path: Path,
        needles: tuple[bytes, ...] = (),
        carriage_returns: bytes | None = b"\r",
        newline: bytes = b"\n",
        with_offsets: bool = False,
        line_start: bytes | None = None,
    ) -> Future[Facts]:
        return self._pool.submit(
            scan, path, needles, carriage_returns, newline, with_offsets, line_start
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def pick_lines(path: Path, wanted: Iterable[int]) -> dict[int, bytes]:
    """The raw bytes of the given 1-based lines, in one sequential pass."""
    remaining = set(wanted)
    found: dict[int, bytes] = {}
    if not remaining:
        return found
    last = max(remaining)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number in remaining:
                found[number] = raw
                if number == last:
                    break
    return found
