"""Auto-detection, forced formats and whole-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import ConfigError, InputError


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("certutil-en.csv", "certutil"),
        ("certutil-malformed.csv", "certutil"),
        ("pspki-issued.csv", "pspki"),
        ("pspki-revoked.csv", "pspki"),
        ("ejbca-certificatedata.csv", "ejbca"),
        ("openssl-index.txt", "openssl-index"),
    ],
)
def test_auto_detection(ca_fixtures: Path, fixture: str, expected: str) -> None:
    with ExportReader(ca_fixtures / fixture, ReaderOptions()) as reader:
        assert reader.format == expected


def test_a_certutil_map_does_not_stop_other_formats(ca_fixtures: Path) -> None:
    options = ReaderOptions(column_map=ca_fixtures / "certutil-columns-es.toml")
    with ExportReader(ca_fixtures / "pspki-issued.csv", options) as reader:
        assert reader.format == "pspki"


def test_a_mapped_map_still_lets_certutil_be_detected(ca_fixtures: Path) -> None:
    options = ReaderOptions(column_map=ca_fixtures / "mapped-inventory.toml")
    with ExportReader(ca_fixtures / "certutil-en.csv", options) as reader:
        assert reader.format == "certutil"
    with ExportReader(ca_fixtures / "mapped-inventory.csv", options) as reader:
        assert reader.format == "mapped"


def test_shared_columns_only_is_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("SerialNumber,NotBefore\n0a,1/1/2026\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"could be pspki or ejbca; pass --ca-format"):
        ExportReader(path, ReaderOptions())
    with ExportReader(path, ReaderOptions(format="ejbca")) as reader:
        assert reader.format == "ejbca"


def test_forced_format_that_does_not_fit(ca_fixtures: Path) -> None:
    with pytest.raises(InputError, match=r"not a pspki export: no 'SerialNumber' column; headers"):
        ExportReader(ca_fixtures / "certutil-en.csv", ReaderOptions(format="pspki"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\r\n  \r\n\r\n", "only blank lines"),
        (b"#TYPE Selected.System.Object\r\n", "only a PowerShell #TYPE line"),
        (b"\x00\x01\x02garbage\xff", "not a CA export reconcile recognises"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        ExportReader(path, ReaderOptions())
    assert caught.value.path == str(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the file"):
        ExportReader(tmp_path / "missing.csv", ReaderOptions())
    with pytest.raises(InputError, match="cannot read the file"):
        ExportReader(tmp_path, ReaderOptions())


def test_header_list_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(",".join(f"col{i}" for i in range(50)) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"'col29' and 20 more"):
        ExportReader(path, ReaderOptions())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "xml"}, "CA format must be one of"),
        ({"date_order": "dym"}, "date order"),
        ({"timezone": "Mars/Olympus"}, "not a known zone"),
        ({"encoding": "klingon"}, "unknown text encoding"),
        ({"legacy_encoding": "klingon"}, "unknown text encoding"),
    ],
)
def test_invalid_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReaderOptions(**options)  # type: ignore[arg-type]


def test_options_from_settings(tmp_path: Path) -> None:
    from reconcile.settings import resolve

    settings = resolve(
        {
            "ca_format": "certutil",
            "ca_issuer": "CA1",
            "date_order": "dmy",
            "ca_timezone": "Europe/Paris",
        },
        env={},
    )
    options = settings.reader_options()
    assert (options.format, options.issuer, options.date_order, options.timezone) == (
        "certutil",
        "CA1",
        "dmy",
        "Europe/Paris",
    )
    assert (options.encoding, options.legacy_encoding, options.column_map) == (None, "cp1252", None)
