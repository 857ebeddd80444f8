"""A queue's business hours: one of its tenant's calendars, on the ACD's clock.

The calendars themselves are the tenant's (`[tenants.X.hours.NAME]`,
`switch.config.Hours`: weekly opening ranges in local wall-clock time in an
IANA zone, minus holidays), the same ones the IVR's conditions read, so an
office's hours are written once. The ACD only asks `is_open(now)` with `now`
in seconds since the epoch (its virtual clock in tests). A queue's calendar
is looked up by name at each question, in a mapping the node may update in
place: `switch reload` changes a calendar for the IVR and the queues at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from switch.config import Hours

__all__ = ["OpenHours", "TenantCalendar"]


class OpenHours(Protocol):
    def is_open(self, now: float) -> bool:
        """True when `now` (seconds since the epoch) is inside the opening hours."""
        ...


@dataclass(frozen=True, slots=True)
class TenantCalendar:
    """The tenant's calendar `name`, read on the ACD's clock."""

    name: str
    calendars: Mapping[str, Hours]  # the tenant's, by name

    @property
    def hours(self) -> Hours:
        return self.calendars[self.name]

    def is_open(self, now: float) -> bool:
        return self.hours.is_open(datetime.fromtimestamp(now, UTC))
