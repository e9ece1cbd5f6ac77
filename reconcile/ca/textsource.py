"""A CA export as decoded lines, hashed while it streams.

Windows writes these files as UTF-16 (PowerShell 5.1 redirection), UTF-8 with or without a BOM,
or in the ANSI code page (cmd.exe). The encoding is sniffed from the first bytes; lines that are
not UTF-8 fall back to the legacy code page one line at a time, so a single CN with an accent in
a cp1252 file costs nothing and a UTF-8 file is never misread. The sha256 covers exactly the bytes
read, so run.json can tie the report to the file without a second pass.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.errors import InputError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_BUFFER = 1 << 20
_SNIFF = 4096
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class _HashingRaw(io.RawIOBase):
    """Feeds every byte the buffered reader pulls into sha256."""

    def __init__(self, raw: io.FileIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self._raw.readinto(buffer)
        if count:
            with memoryview(buffer) as view:
                self.digest.update(view[:count])
        return int(count or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _wide(encoding: str) -> bool:
    name = codecs.lookup(encoding).name
    return name.startswith(("utf-16", "utf-32"))


def _sniff_utf16(head: bytes) -> str | None:
    """UTF-16 written without a BOM still shows as a NUL in every other byte of ASCII text."""
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 8:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.6 and even < half * 0.1:
        return "utf-16-le"
    if even > half * 0.6 and odd < half * 0.1:
        return "utf-16-be"
    return None


class TextSource:
    """Physical lines of one file as text, numbered from 1, with undecodable lines noted."""

    def __init__(self, path: Path, encoding: str | None, legacy_encoding: str) -> None:
        self.path = path
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror or exc}", path) from None
        self._hashing = _HashingRaw(handle)
        self._buffered = io.BufferedReader(self._hashing, _BUFFER)
        self.undecodable: set[int] = set()
        self._digest: str | None = None
        try:
            head = self._buffered.peek(_SNIFF)[:_SNIFF]
        except OSError as exc:
            self.close()
            raise InputError(f"cannot read the file: {exc.strerror or exc}", path) from None
        self.empty = not head
        self.encoding, self.lines = self._open_lines(head, encoding, legacy_encoding)

    def _open_lines(
        self, head: bytes, forced: str | None, legacy: str
    ) -> tuple[str, Iterator[str]]:
        if forced is not None:
            if _wide(forced):
                return forced, self._wide_lines(forced, strip_bom=True)
            return forced, self._byte_lines(forced, None)
        for bom, name in _BOMS:
            if head.startswith(bom):
                if name == "utf-8":
                    self._buffered.read(len(bom))
                    return "utf-8-sig", self._byte_lines("utf-8", legacy)
                label = f"{name}-{'le' if bom[0] == 0xFF else 'be'}"
                return label, self._wide_lines(name, strip_bom=False)
        sniffed = _sniff_utf16(head)
        if sniffed is not None:
            return sniffed, self._wide_lines(sniffed, strip_bom=False)
        return "utf-8", self._byte_lines("utf-8", legacy)

    def _wide_lines(self, encoding: str, *, strip_bom: bool) -> Iterator[str]:
        text = io.TextIOWrapper(self._buffered, encoding=encoding, errors="replace", newline="")
        for number, line in enumerate(text, start=1):
            if number == 1 and strip_bom and line.startswith("\ufeff"):
                line = line[1:]
            if "\ufffd" in line:
                self.undecodable.add(number)
            yield line

    def _byte_lines(self, encoding: str, fallback: str | None) -> Iterator[str]:
        for number, raw in enumerate(self._buffered, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError:
                line = self._decode_fallback(raw, number, fallback)
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line

    def _decode_fallback(self, raw: bytes, number: int, fallback: str | None) -> str:
        if fallback is not None:
            try:
                return raw.decode(fallback)
            except UnicodeDecodeError:
                pass
        self.undecodable.add(number)
        return raw.decode(fallback or "utf-8", errors="replace")

    def sha256(self) -> str:
        """Hash of the whole file: whatever the lines did not consume is read now."""
        if self._digest is None:
            if not self._buffered.closed:
                while self._buffered.read(_BUFFER):
                    pass
            self._digest = self._hashing.digest.hexdigest()
        return self._digest

    def close(self) -> None:
        self._buffered.close()
