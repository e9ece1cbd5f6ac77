"""Byte-level facts about an input file, in one pass at disk speed, beside the engine's scan.

The sha256 for run.json and the physical line count come from here, and so do the byte
patterns that decide whether DuckDB's line reader may be trusted with the file: DuckDB splits
lines on a lone CR where Python does not, and it cannot say which line held bytes that are not
valid in the file's encoding. A file showing any of them is read by the Python reader instead,
with the same result as ever, only slower.
"""

from __future__ import annotations

import codecs
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 22


@dataclass(frozen=True)
class Facts:
    sha256: str
    lines: int
    """Lines as the Python reader counts them (ended by LF, or by CRLF)."""
    suspicious: bool
    """A needle, a lone CR or an undecodable byte occurred: Python reads the file."""
    ends_with_newline: bool


_NEEDLES = ("\x00", "\x01", "\ufffd")
"""NUL and U+0001 (the engine's line reader's delimiter) mislead DuckDB; U+FFFD is where the
Python reader decoded nothing (UTF-16) or a literal replacement character: Python keeps those."""


def scan(path: Path, codec: str) -> Facts:
    """Hash ``path``, decode it strictly with ``codec`` and count its line breaks."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(codec)("strict")
    lines = returns = pairs = 0
    odd = False
    last = ""
    size = 0
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            size += len(block)
            if odd:
                continue
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                odd = True
                continue
            if not text:
                continue
            lines += text.count("\n")
            returns += text.count("\r")
            pairs += text.count("\r\n") + (last == "\r" and text[0] == "\n")
            odd = any(needle in text for needle in _NEEDLES)
            last = text[-1]
    if not odd:
        try:
            odd = bool(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            odd = True
    ends_with_newline = last == "\n"
    lines += 1 if size and not ends_with_newline else 0
    return Facts(digest.hexdigest(), lines, odd or returns != pairs, ends_with_newline)


class Scanner:
    """File scans run in a thread (hashlib and file reads release the GIL) while DuckDB works."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-scan")

    def submit(self, path: Path, codec: str) -> Future[Facts]:
        return self._pool.submit(scan, path, codec)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
