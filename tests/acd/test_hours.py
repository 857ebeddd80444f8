"""A queue's business hours: a tenant calendar read on the ACD's clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from switch.apps.acd.hours import TenantCalendar
from switch.config import Hours

OFFICE = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": ["10:00-12:00"]
}


def at(text: str, zone: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def calendar(zone: str, **days: object) -> TenantCalendar:
    return TenantCalendar("office", {"office": Hours.model_validate({"timezone": zone, **days})})


def test_open_hours_are_local_wall_clock_across_daylight_saving() -> None:
    office = calendar("Europe/London", **OFFICE)
    # 2025-03-28 is a Friday in GMT, 2025-03-31 a Monday in BST (UTC+1).
    for day in ("2025-03-28", "2025-03-31"):
        assert not office.is_open(at(f"{day}T07:59:59", "Europe/London"))
        assert office.is_open(at(f"{day}T08:00", "Europe/London"))
        assert office.is_open(at(f"{day}T17:59:59", "Europe/London"))
        assert not office.is_open(at(f"{day}T18:00", "Europe/London"))
    # The same UTC instant, 07:30 UTC, is closed in winter and open in summer.
    winter = datetime(2025, 3, 28, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    summer = datetime(2025, 3, 31, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert (office.is_open(winter), office.is_open(summer)) == (False, True)


def test_weekends_and_holidays() -> None:
    office = calendar("America/New_York", **OFFICE, holidays=["2025-07-04", "12-25"])
    assert office.is_open(at("2025-07-05T11:00", "America/New_York"))  # Saturday morning
    assert not office.is_open(at("2025-07-05T13:00", "America/New_York"))
    assert not office.is_open(at("2025-07-06T11:00", "America/New_York"))  # Sunday
    assert not office.is_open(at("2025-07-04T11:00", "America/New_York"))  # a holiday
    assert office.is_open(at("2025-07-03T11:00", "America/New_York"))
    assert not office.is_open(at("2026-12-25T11:00", "America/New_York"))  # every year
    # Holidays are dates in the calendar's zone: 4 July 02:00 UTC is still the 3rd there.
    always = calendar("America/New_York", **{key: ["00:00-24:00"] for key in OFFICE},
                      sun=["00:00-24:00"], holidays=["2025-07-04"])  # fmt: skip
    assert always.is_open(at("2025-07-04T02:00", "UTC"))
    assert not always.is_open(at("2025-07-04T05:00", "UTC"))


def test_a_day_may_run_to_midnight() -> None:
    office = calendar("UTC", wed=["00:00-24:00"], thu=["00:00-24:00"])
    assert office.is_open(at("2025-01-01T23:59:59", "UTC"))
    assert office.is_open(at("2025-01-02T00:00", "UTC"))
    assert not office.is_open(at("2025-01-03T00:00", "UTC"))  # Friday: not listed, closed
