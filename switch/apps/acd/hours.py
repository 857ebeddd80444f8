"""Business hours and holidays of a queue, in an IANA time zone.

Opening ranges are local wall-clock times, so a queue open 08:00-18:00 in
Europe/London opens at 08:00 on both sides of a daylight-saving change.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo

__all__ = ["Calendar"]


class Calendar:
    """Weekly opening ranges (minutes since local midnight, Monday first) minus holidays."""

    def __init__(
        self,
        zone: str,
        week: Iterable[Iterable[tuple[int, int]]],
        holidays: Iterable[date] = (),
    ) -> None:
        self.zone_name = zone or "UTC"
        self.zone: tzinfo = UTC if self.zone_name == "UTC" else zoneinfo.ZoneInfo(self.zone_name)
        self.week = tuple(tuple(sorted(day)) for day in week)
        if len(self.week) != 7:
            raise ValueError(f"a week has 7 days, got {len(self.week)}")
        self.holidays = frozenset(holidays)

    def is_open(self, now: float) -> bool:
        """True when `now` (seconds since the epoch) is inside the opening hours."""
        local = datetime.fromtimestamp(now, self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(start <= minute < end for start, end in self.week[local.weekday()])

    def __repr__(self) -> str:
        return f"Calendar({self.zone_name!r}, {self.week!r}, holidays={sorted(self.holidays)!r})"
