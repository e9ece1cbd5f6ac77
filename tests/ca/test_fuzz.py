"""Random bytes and mutated real exports into every reader: only InputError may escape.

Iteration must yield only CaCertificate or Reject, and the provenance counts must add up.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.ca import FORMATS, ExportReader, ReaderOptions
from reconcile.errors import InputError
from reconcile.model import CaCertificate, Reject

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ca"
EXPORTS = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".csv", ".txt"))
MAPPED = FIXTURES / "mapped-inventory.toml"
SPANISH = FIXTURES / "certutil-columns-es.toml"


def _seeds() -> list[bytes]:
    seeds = []
    for path in EXPORTS:
        raw = path.read_bytes()
        if raw.startswith(codecs.BOM_UTF16_LE):  # certutil text as PowerShell 5.1 writes it
            raw = raw.decode("utf-16").encode("utf-8")
        seeds.append(raw)
        seeds.append(codecs.BOM_UTF16_LE + raw.decode("utf-8").encode("utf-16-le"))
    return seeds


SEEDS = _seeds()
HEADERS = [s.split(b"\n", 1)[0] + b"\n" for s in SEEDS if not s.startswith(codecs.BOM_UTF16_LE)]
OPTIONS = [
    ReaderOptions(format=name, column_map=MAPPED if name == "mapped" else None, issuer="CA 1")
    for name in FORMATS
] + [
    ReaderOptions(column_map=MAPPED),
    ReaderOptions(column_map=SPANISH, date_order="dmy", timezone="Europe/Madrid"),
    ReaderOptions(encoding="utf-16-le"),
]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def read_everywhere(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        path.write_bytes(data)
        for options in OPTIONS:
            try:
                reader = ExportReader(path, options)
            except InputError as exc:
                assert "\n" not in str(exc)
                continue
            items = list(reader)
            assert all(isinstance(item, (CaCertificate, Reject)) for item in items)
            assert all(item.line >= 1 for item in items)
            info = reader.input_file()
            assert info.sha256 == hashlib.sha256(data).hexdigest()
            assert info.rows == len(items)
            assert info.rejected == sum(isinstance(item, Reject) for item in items)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "token"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "truncate":
            del data[at:]
        elif action == "dup":
            end = data.find(b"\n", at)
            data[at:at] = data[at : end + 1 if end >= 0 else len(data)]
        else:
            token = draw(
                st.sampled_from([b'"', b",", b";", b"\t", b"\r", b"\n", b"EMPTY", b"\x00"])
            )
            data[at:at] = token
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    read_everywhere(data)


@FUZZ
@given(mutated())
def test_mutated_real_exports(data: bytes) -> None:
    read_everywhere(data)


@FUZZ
@given(
    st.sampled_from(HEADERS),
    st.text(
        alphabet=st.sampled_from(list('0123456789abcdefxXZ:/ .-",;\t\r\nPAMGTEMPYV')), max_size=300
    ),
)
def test_real_headers_with_random_rows(header: bytes, rows: str) -> None:
    read_everywhere(header + rows.encode("utf-8"))
