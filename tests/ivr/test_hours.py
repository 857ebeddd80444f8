"""Tenant calendars: [tenants.X.hours.NAME] with opening times, holidays and a time zone."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from switch.config import ConfigError, load_config, parse_days, parse_time_range


def load(tmp_path: Path, text: str):
    path = tmp_path / "switch.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [line.split(": ", 1)[1] for line in caught.value.lines]


OFFICE = """
    [tenants.acme]
    timezone = "Europe/Paris"

    [tenants.acme.hours.office]
    mon = ["09:00-12:30", "13:30-18:00"]
    tue = "09:00-18:00"
    sat = ["10:00-24:00"]
    holidays = [2025-12-25, "05-01"]

    [tenants.acme.hours.night]
    timezone = "America/New_York"
    fri = ["22:00-24:00"]
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_calendars_keep_their_zone_or_take_the_tenants(tmp_path: Path) -> None:
    hours = load(tmp_path, OFFICE).tenants["acme"].hours
    assert hours["office"].timezone == "Europe/Paris"
    assert hours["night"].timezone == "America/New_York"
    assert [str(r) for r in hours["office"].mon] == ["09:00-12:30", "13:30-18:00"]
    assert [str(h) for h in hours["office"].holidays] == ["2025-12-25", "05-01"]


def test_open_and_holiday_on_the_calendars_clock(tmp_path: Path) -> None:
    office = load(tmp_path, OFFICE).tenants["acme"].hours["office"]
    # Monday 2 June 2025: Paris is UTC+2.
    assert office.is_open(at("2025-06-02T07:00:00+00:00"))  # 09:00 in Paris
    assert not office.is_open(at("2025-06-02T06:59:00+00:00"))
    assert not office.is_open(at("2025-06-02T10:45:00+00:00"))  # lunch
    assert not office.is_open(at("2025-06-02T16:00:00+00:00"))  # 18:00: closed (end excluded)
    assert office.is_open(at("2025-06-07T21:59:00+00:00"))  # Saturday 23:59
    assert not office.is_open(at("2025-06-08T10:00:00+00:00"))  # Sunday
    # Every 1 May, and Christmas 2025 only.
    assert office.is_holiday(at("2031-05-01T12:00:00+02:00"))
    assert office.is_open(at("2028-05-08T10:00:00+02:00"))  # a Monday
    assert not office.is_open(at("2028-05-01T10:00:00+02:00"))  # a Monday, and 1 May
    assert office.is_holiday(at("2025-12-25T10:00:00+01:00"))
    assert not office.is_holiday(at("2026-12-25T10:00:00+01:00"))
    # Late on 24 December in New York is already Christmas in Paris.
    assert office.is_holiday(at("2025-12-24T19:00:00-05:00"))


def test_winter_time(tmp_path: Path) -> None:
    office = load(tmp_path, OFFICE).tenants["acme"].hours["office"]
    # Monday 3 November 2025: Paris is UTC+1.
    assert office.is_open(at("2025-11-03T08:00:00+00:00"))
    assert not office.is_open(at("2025-11-03T07:30:00+00:00"))


def test_bad_calendars_say_what_to_write(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        [tenants.acme.hours.office]
        timezone = "Europe/Pariss"
        mon = ["17:00-09:00", "9-5"]
        tue = [9]
        holidays = ["02-30", "christmas"]
        opening = 1
        """,
    ) == [
        "tenants.acme.hours.office.timezone: 'Europe/Pariss' is not an IANA time zone "
        "(e.g. UTC, Europe/Paris, America/New_York); did you mean 'Europe/Paris'?",
        "tenants.acme.hours.office.mon: '17:00-09:00' ends before it starts; a range cannot "
        'cross midnight: split it in two ("17:00-24:00" and "00:00-09:00" the next day)',
        "tenants.acme.hours.office.mon: '9-5' is not a time range "
        '(HH:MM-HH:MM, e.g. "09:00-17:30")',
        "tenants.acme.hours.office.tue: expected a time range "
        '(HH:MM-HH:MM, e.g. "09:00-17:30"), got 9 (an integer)',
        "tenants.acme.hours.office.holidays: '02-30' is not a day of the calendar",
        "tenants.acme.hours.office.holidays: 'christmas' is not a date: 2025-12-25 (that day) "
        'or "12-25" (every year)',
        "tenants.acme.hours.office.opening: unknown key (expected one of fri, holidays, mon, "
        "sat, sun, thu, timezone, tue, wed)",
    ]


def test_parse_helpers() -> None:
    assert parse_time_range("08:15-24:00") == (495, 1440)
    assert parse_days("mon-wed") == {0, 1, 2}
    assert parse_days(["sat", "SUN"]) == {5, 6}
    assert parse_days("sat-mon") == {5, 6, 0}
    assert parse_days("mon,thu") == {0, 3}
    with pytest.raises(ValueError, match="did you mean 'tue'"):
        parse_days("tues")
    with pytest.raises(ValueError, match="the latest time of a day is 24:00"):
        parse_time_range("23:00-24:30")
