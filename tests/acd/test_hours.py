"""Business hours and holidays in a queue's IANA time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from switch.apps.acd.hours import Calendar

OFFICE = [[(8 * 60, 18 * 60)]] * 5 + [[(10 * 60, 12 * 60)], []]


def at(text: str, zone: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_open_hours_are_local_wall_clock_across_daylight_saving() -> None:
    calendar = Calendar("Europe/London", OFFICE)
    # 2025-03-28 is a Friday in GMT, 2025-03-31 a Monday in BST (UTC+1).
    for day in ("2025-03-28", "2025-03-31"):
        assert not calendar.is_open(at(f"{day}T07:59:59", "Europe/London"))
        assert calendar.is_open(at(f"{day}T08:00", "Europe/London"))
        assert calendar.is_open(at(f"{day}T17:59:59", "Europe/London"))
        assert not calendar.is_open(at(f"{day}T18:00", "Europe/London"))
    # The same UTC instant, 07:30 UTC, is closed in winter and open in summer.
    winter = datetime(2025, 3, 28, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    summer = datetime(2025, 3, 31, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert (calendar.is_open(winter), calendar.is_open(summer)) == (False, True)


def test_weekends_and_holidays() -> None:
    calendar = Calendar("America/New_York", OFFICE, holidays=[date(2025, 7, 4)])
    assert calendar.is_open(at("2025-07-05T11:00", "America/New_York"))  # Saturday morning
    assert not calendar.is_open(at("2025-07-05T13:00", "America/New_York"))
    assert not calendar.is_open(at("2025-07-06T11:00", "America/New_York"))  # Sunday
    assert not calendar.is_open(at("2025-07-04T11:00", "America/New_York"))  # a holiday
    assert calendar.is_open(at("2025-07-03T11:00", "America/New_York"))
    # Holidays are dates in the queue's zone: 4 July 02:00 UTC is still the 3rd in New York.
    always = Calendar("America/New_York", [[(0, 24 * 60)]] * 7, holidays=[date(2025, 7, 4)])
    assert always.is_open(at("2025-07-04T02:00", "UTC"))
    assert not always.is_open(at("2025-07-04T05:00", "UTC"))


def test_a_day_may_run_to_midnight() -> None:
    calendar = Calendar("UTC", [[(0, 24 * 60)]] * 7)
    assert calendar.is_open(at("2025-01-01T23:59:59", "UTC"))
    assert calendar.is_open(at("2025-01-02T00:00", "UTC"))


def test_a_week_has_seven_days() -> None:
    with pytest.raises(ValueError, match="a week has 7 days, got 5"):
        Calendar("UTC", OFFICE[:5])
