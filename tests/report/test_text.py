"""fit_table and wrap: the one way every command's text fits the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from reconcile.doctor import Check, render_checks
from reconcile.model import FindingDetail
from reconcile.report import text
from reconcile.report.historytext import format_run_details
from reconcile.report.text import fit_table, wrap
from tests.helpers import assert_fits, columns, examples

SERIAL = "6100000452A7753E56A5C29302000000000452AB"  # 40 hex digits
HEADERS = ("status", "serial", "device", "next step")
ROWS = [
    ("not_installed", SERIAL, "Conference Room Display Building 7", "revoke: the device is gone"),
    ("not_reported", "0A", "PC-1", ""),
]
# The hidden part of an OSC-8 link has spaces: wrapping raw text could split the sequence.
OSC8 = "\x1b]8;;https://evil.example/ a b c\x1b\\click me\x1b]8;;\x1b\\"


def test_without_a_width_or_when_it_fits_the_table_is_tabulate_s():
    plain = tabulate(ROWS, headers=HEADERS, tablefmt="simple")
    assert fit_table(ROWS, HEADERS, None) == plain
    assert fit_table(ROWS, HEADERS, 200) == plain


def test_wrapped_columns_share_the_room_and_keep_whole_words():
    text = fit_table(ROWS, HEADERS, 90, wrapped=(2, 3), min_room=10)
    assert_fits(text, 90)
    assert " ".join(text.splitlines()[0].split()) == " ".join(HEADERS)
    assert SERIAL in text
    assert "Conference" in text and "Building" in text and "Build\n" not in text


def test_split_tables_repeat_the_first_column():
    text = fit_table(ROWS, HEADERS, 60, split=True)
    tables = text.split("\n\n")
    assert len(tables) > 1
    assert all(t.splitlines()[0].split()[0] == "status" for t in tables)
    assert all(len(line) <= 60 for line in text.splitlines())


def test_blocks_when_nothing_else_fits_leave_out_empty_fields():
    text = fit_table(ROWS, HEADERS, 60, title=2)
    first, second = text.split("\n\n")
    assert first.splitlines()[0] == f"not_installed  {SERIAL}"
    assert "  next step: revoke: the device is gone" in first
    assert second.splitlines() == ["not_reported  0A", "  device: PC-1"]


def test_a_serial_wider_than_the_line_stays_whole_on_a_line_of_its_own():
    text = wrap(f"serial {SERIAL} of device PC-1", 30)
    assert text.splitlines() == ["serial", f"  {SERIAL}", "  of device PC-1"]
    assert_fits(text, 30)


@pytest.mark.parametrize("width", [20, 40, 80])
def test_history_details_are_sanitised_before_they_wrap(width):
    detail = FindingDetail(
        SERIAL, f"Room {OSC8} Display \x1b[31m red \x1b[0m", "not_reported", datetime.now(UTC), 3
    )
    text = format_run_details([detail], width)
    assert "\x1b" not in text and "evil.example" not in text
    assert "click me" in text


@pytest.mark.parametrize("width", [40, 80, 200])
def test_doctor_checks_keep_the_whole_fix_and_are_sanitised_before_they_wrap(width):
    fix = (
        "grant the app DeviceManagementConfiguration.Read.All (application) and admin consent "
        "in Entra ID > App registrations > API permissions, then run `reconcile doctor` again"
    )
    checks = [Check("deviceConfigurations", False, f"HTTP 403 from Graph {OSC8}", fix)]
    text = render_checks(checks, width)
    assert_fits(text, width)
    assert "\x1b" not in text and "evil.example" not in text
    if width == 200:  # a table: the fix column, its wrapped lines joined
        assert text.splitlines()[0].split() == ["check", "detail", "fix"]
        assert fix == columns(text)[3]
    else:  # one block per check
        assert text.startswith("FAIL  deviceConfigurations\n")
        assert fix in " ".join(text.split())


_CELLS = st.one_of(
    st.sampled_from(["", " ", "0", "01", "7", "-3", "1.5", "2.25", "1e5", "1E5", "nan", "inf"]),
    st.sampled_from(["True", "False", "0x1F", "A1", "DESKTOP-01", "  padded  ", "ünï", "全角"]),
    st.integers(-(10**6), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(str),
    st.text(alphabet="abcXYZ019.- ", max_size=12),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_CELLS, min_size=n, max_size=n))))
def test_a_table_written_a_chunk_at_a_time_is_tabulate_s_byte_for_byte(
    rows: list[list[str]],
) -> None:
    headers = ("status", "serial", "device", "next step")[: len(rows[0]) if rows else 1]
    expected = tabulate(rows, headers=headers, tablefmt="simple")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text, "STREAM_ROWS", 2)
        assert "\n".join(text.table_lines(rows, headers)) == expected


def test_a_long_table_is_tabulated_a_chunk_at_a_time_with_sentinels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [["not_reported", f"{n:X}", "PC-" + "x" * (n % 7)] for n in range(50)]
    rows[37][1] = "1E5"  # a float to tabulate: the column is still text, and this its widest
    monkeypatch.setattr(text, "STREAM_ROWS", 8)
    calls: list[int] = []
    real = text.tabulate

    def counting(data: list[list[str]], **kwargs: object) -> str:
        calls.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr(text, "tabulate", counting)
    lines = list(text.table_lines(rows, ("status", "serial", "device")))
    assert lines == real(rows, headers=("status", "serial", "device"), tablefmt="simple").split(
        "\n"
    )
    assert len(calls) == 7 and max(calls) < 20
