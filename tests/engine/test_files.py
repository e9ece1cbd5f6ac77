"""The byte pass counts lines and finds their starts exactly as Python's line iteration does."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from reconcile.engine.files import scan

PIECES = st.sampled_from([b"\n", b"\r", b"\r\n", b"{", b"x", b"NaN", b"\x01", b"\n{"])


@given(st.lists(PIECES, max_size=40), st.sampled_from([1, 2, 3]))
def test_scan_counts_lines_like_python(pieces: list[bytes], _: int) -> None:
    data = b"".join(pieces)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(data)
        facts = scan(path, (b"NaN", b"\x01"), b"\r", b"\n", with_offsets=True, line_start=b"{")
        with path.open("rb") as handle:
            lines = list(handle)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.lines == len(lines)
    assert facts.offsets is not None
    assert list(facts.offsets) == [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    plain = all(line.startswith(b"{") for line in lines)
    clean = b"NaN" not in data and b"\x01" not in data and data.count(b"\r") == data.count(b"\r\n")
    assert facts.suspicious is not (plain and clean)
