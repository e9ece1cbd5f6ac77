"""The one time writer: iso_z writes what strftime would, for every time it can be given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.timeparse import iso_z
from tests.helpers import examples

_OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=examples(300))
@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.one_of(st.just(UTC), _OFFSETS),
    )
)
def test_iso_z_writes_what_strftime_writes(value):
    assert iso_z(value) == value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_iso_z_examples():
    assert iso_z(None) == ""
    assert iso_z(datetime(2026, 5, 5, 7, 4, 9, 999_999, tzinfo=UTC)) == "2026-05-05T07:04:09Z"
    plus_two = timezone(timedelta(hours=2))
    assert iso_z(datetime(2026, 1, 1, 1, 0, tzinfo=plus_two)) == "2025-12-31T23:00:00Z"
    early = datetime(999, 3, 4, tzinfo=UTC)
    assert iso_z(early) == early.strftime("%Y-%m-%dT%H:%M:%SZ")
