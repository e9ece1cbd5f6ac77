"""The byte pass beside DuckDB's line reader: Python's line count, and what it refuses."""

from __future__ import annotations

import codecs
from pathlib import Path

from reconcile.engine.files import scan


def test_the_byte_scan_counts_lines_as_python_does(tmp_path: Path) -> None:
    for data in (b"a\r\nb\r\n", b"a\r\nb", b"a\nb\r\n\r\n", b"", b"a\rb\r\n"):
        path = tmp_path / "f.csv"
        path.write_bytes(data)
        facts = scan(path, "utf-8")
        with path.open("rb") as handle:
            assert facts.lines == sum(1 for _ in handle)
        assert facts.suspicious == (b"\rb" in data)
        assert facts.ends_with_newline == data.endswith(b"\n")


def test_utf16_is_counted_in_characters_and_refused_when_it_does_not_decode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "a\r\nb\r\n".encode("utf-16-le"))
    facts = scan(path, "utf-16-le")
    assert (facts.lines, facts.suspicious, facts.ends_with_newline) == (2, False, True)
    path.write_bytes(codecs.BOM_UTF16_LE + "a\r\n".encode("utf-16-le") + b"\x00\xd8b\x00")
    assert scan(path, "utf-16-le").suspicious
    path.write_bytes(b"a,\x00b\r\n")
    assert scan(path, "utf-8").suspicious
