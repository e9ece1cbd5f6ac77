from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.errors import InputError
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import LogFormat, ParseOptions, detect


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("android-omadm-article.log", LogFormat.ANDROID),
        ("ios-profiled-article.log", LogFormat.IOS),
        ("ios-logshow-failed.log", LogFormat.IOS),
        ("windows-events.xml", LogFormat.WINDOWS_XML),
        ("windows-events-error.xml", LogFormat.WINDOWS_XML),
        ("windows-events.csv", LogFormat.WINDOWS_CSV),
        ("windows-events-error.csv", LogFormat.WINDOWS_CSV),
    ],
)
def test_detects_each_format(logs: Path, name: str, expected: LogFormat) -> None:
    assert detect(logs / name) is expected


def test_a_file_that_is_no_log_is_one_clear_line(logs: Path) -> None:
    with pytest.raises(InputError) as caught:
        parse_log(logs / "not-a-log.txt", ParseOptions(device="PC-01"))

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{logs / 'not-a-log.txt'}: not a known device log")
    assert "Android OMA-DM log" in message


def test_binary_evtx_says_how_to_export(tmp_path: Path) -> None:
    evtx = tmp_path / "Admin.evtx"
    evtx.write_bytes(b"ElfFile\x00" + bytes(200))

    with pytest.raises(InputError, match="wevtutil qe"):
        detect(evtx)


@pytest.mark.parametrize("content", [b"", b"   \n", b"\x00\x01\x02binary\x00"])
def test_empty_and_binary_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(content)

    with pytest.raises(InputError, match=r"x\.log: "):
        detect(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        detect(tmp_path / "missing.log")
