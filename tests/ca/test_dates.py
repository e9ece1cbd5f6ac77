"""The hand-rolled date parsers against the spellings CAs print."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconcile.ca import dates
from reconcile.ca.dates import CultureDates, asn1_time, epoch_millis, epoch_seconds, zone


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("4/25/2027 7:36 PM", "mdy", utc(2027, 4, 25, 19, 36)),
        ("4/25/2027 7:36:12 PM GMT", "mdy", utc(2027, 4, 25, 19, 36, 12)),
        ("4/25/2027 7:36:12.250 PM", "mdy", utc(2027, 4, 25, 19, 36, 12, 250000)),
        ("4/25/2027 12:05 AM", "mdy", utc(2027, 4, 25, 0, 5)),
        ("4/25/2027 12:05 PM", "mdy", utc(2027, 4, 25, 12, 5)),
        ("4/25/2027 7:36 p.m.", "mdy", utc(2027, 4, 25, 19, 36)),
        ("04/25/2027 19:36", "mdy", utc(2027, 4, 25, 19, 36)),
        ("4/25/2027", "mdy", utc(2027, 4, 25)),
        ("4/25/27 7:36 PM", "mdy", utc(2027, 4, 25, 19, 36)),
        ("25/04/2027 19:36", "dmy", utc(2027, 4, 25, 19, 36)),
        ("25.04.2027 19:36:12", "dmy", utc(2027, 4, 25, 19, 36, 12)),
        ("25-04-2027 19:36", "dmy", utc(2027, 4, 25, 19, 36)),
        ("2027/04/25 19:36", "ymd", utc(2027, 4, 25, 19, 36)),
        ("2027-04-25 19:36:12", "mdy", utc(2027, 4, 25, 19, 36, 12)),  # 4 digits first: ymd
        ("2027-04-25T19:36:12Z", "dmy", utc(2027, 4, 25, 19, 36, 12)),
        ("2027-04-25T21:36:12+02:00", "mdy", utc(2027, 4, 25, 19, 36, 12)),
        ("4/25/2027 7:36 PM UTC", "mdy", utc(2027, 4, 25, 19, 36)),
    ],
)
def test_culture_dates(text: str, order: str, expected: datetime) -> None:
    assert CultureDates(order)(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "EMPTY",
        "13/25/2027",
        "4/31/2027 7:00 PM",
        "4/25/2027 13:00 PM",
        "4/25/2027 0:30 AM",
        "4/25/2027 24:00",
        "4/25/2027 7:60",
        "4/25/2027 7",
        "4/25/2027 7:36 XM",
        "4/25",
        "٤/٢٥/٢٠٢٧",
    ],
)
def test_culture_dates_refuse(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        CultureDates("mdy")(text)


def test_local_zone_and_daylight_saving() -> None:
    berlin = CultureDates("dmy", zone("Europe/Berlin"))
    assert berlin("25.01.2027 19:36") == utc(2027, 1, 25, 18, 36)  # CET
    assert berlin("25.07.2027 19:36") == utc(2027, 7, 25, 17, 36)  # CEST
    assert berlin("25.07.2027 19:36 GMT") == utc(2027, 7, 25, 19, 36)
    assert zone("utc") is UTC


def test_cache_gives_up_when_cells_do_not_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dates, "_CACHE_LIMIT", 4)
    parse = CultureDates()
    unique = [f"1/{day}/2027 7:00 AM" for day in range(1, 29)]
    assert [parse(t) for t in unique] == [utc(2027, 1, d, 7) for d in range(1, 29)]
    assert parse._cache is None
    repeating = CultureDates()
    for _ in range(10):
        assert repeating("1/1/2027 7:00 AM") == utc(2027, 1, 1, 7)
    assert repeating._cache is not None


def test_epochs() -> None:
    assert epoch_millis("1777145760000") == utc(2026, 4, 25, 19, 36)
    assert epoch_millis("-1") is None
    assert epoch_seconds("1777145760.5") == utc(2026, 4, 25, 19, 36, 0, 500000)
    assert epoch_seconds("-5") is None
    with pytest.raises(ValueError, match="past year 9999"):
        epoch_millis("999999999999999999")
    with pytest.raises(ValueError):
        epoch_millis("soon")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("251120150245Z", utc(2025, 11, 20, 15, 2, 45)),
        ("491231235959Z", utc(2049, 12, 31, 23, 59, 59)),
        ("500101000000Z", utc(1950, 1, 1)),
        ("20510101000000Z", utc(2051, 1, 1)),
    ],
)
def test_asn1_time(text: str, expected: datetime) -> None:
    assert asn1_time(text) == expected


@pytest.mark.parametrize("text", ["251120150245", "2511201502Z", "25112015024XZ", "251320150245Z"])
def test_asn1_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        asn1_time(text)
