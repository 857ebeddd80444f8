"""Conditions of `branch`: what is known about the call, the clock and the queues.

Each condition is a small frozen class with `holds(facts)`. `Facts` is what
the engine knows at that moment: the call's values for templates, the time
in the flow's zone, the tenant's calendars and a read-only view of queues.
Nothing here does I/O: queue state comes through the `QueueInfo` the
runner gives the engine.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from switch.config import Hours, TimeRange

from .template import Template, text


@dataclass(frozen=True)
class QueueState:
    """One queue as the IVR sees it; estimated_wait is None when unknown."""

    agents_available: int = 0
    waiting: int = 0
    estimated_wait: float | None = None


class QueueInfo(Protocol):
    """Read-only queue state for `branch` (the ACD provides it)."""

    def queue_state(self, tenant: str, queue: str) -> QueueState: ...


class NoQueueInfo:
    """For a node without queues yet: no agents, nobody waiting, wait unknown."""

    def queue_state(self, tenant: str, queue: str) -> QueueState:
        return QueueState()


@dataclass(frozen=True)
class Facts:
    tenant: str
    scope: Mapping[str, Any]  # caller, call, vars: what templates read
    now: datetime  # aware, in the flow's time zone
    calendars: Mapping[str, Hours]
    queues: QueueInfo


@dataclass(frozen=True)
class Bounds:
    """min <= value <= max; a side left None is open."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class NumberIs:
    """caller: or did: one of these patterns ("*" any digits, "?" one character)."""

    which: Literal["caller", "did"]
    patterns: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        scope = facts.scope
        number = text(scope["caller"]["number"] if self.which == "caller" else scope["call"]["did"])
        return any(fnmatch.fnmatchcase(number, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class VarIs:
    """var: NAME with one test: equals, in, empty, matches, or min/max as numbers."""

    name: str
    equals: Template | None = None
    one_of: tuple[Template, ...] = ()
    empty: bool | None = None
    matches: re.Pattern[str] | None = None
    bounds: Bounds | None = None

    def holds(self, facts: Facts) -> bool:
        value = text(facts.scope["vars"].get(self.name))
        if self.equals is not None:
            return value == self.equals.render(facts.scope)
        if self.one_of:
            return value in {item.render(facts.scope) for item in self.one_of}
        if self.empty is not None:
            return (value == "") == self.empty
        if self.matches is not None:
            return self.matches.fullmatch(value) is not None
        if self.bounds is not None:
            return self.bounds.holds(_number(value))
        return value != ""  # var alone: set and not empty


@dataclass(frozen=True)
class TimeIs:
    """time: "09:00-17:00" (or a list): the flow's clock is inside one range."""

    ranges: tuple[TimeRange, ...]

    def holds(self, facts: Facts) -> bool:
        minute = facts.now.hour * 60 + facts.now.minute
        return any(time_range.holds(minute) for time_range in self.ranges)


@dataclass(frozen=True)
class DayIs:
    """days: "mon-fri": today, on the flow's clock, is one of them."""

    days: frozenset[int]

    def holds(self, facts: Facts) -> bool:
        return facts.now.weekday() in self.days


@dataclass(frozen=True)
class CalendarIs:
    """open: NAME (opening hours, not a holiday) or holiday: NAME, of a tenant calendar."""

    what: Literal["open", "holiday"]
    calendar: str

    def holds(self, facts: Facts) -> bool:
        hours = facts.calendars[self.calendar]
        return hours.is_open(facts.now) if self.what == "open" else hours.is_holiday(facts.now)


@dataclass(frozen=True)
class QueueIs:
    """queue: NAME with agents_available, waiting or estimated_wait within bounds."""

    queue: str
    measure: Literal["agents_available", "waiting", "estimated_wait"]
    bounds: Bounds

    def holds(self, facts: Facts) -> bool:
        state = facts.queues.queue_state(facts.tenant, self.queue)
        return self.bounds.holds(getattr(state, self.measure))


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return all(condition.holds(facts) for condition in self.conditions)


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return any(condition.holds(facts) for condition in self.conditions)


@dataclass(frozen=True)
class Not:
    condition: Condition

    def holds(self, facts: Facts) -> bool:
        return not self.condition.holds(facts)


Condition = NumberIs | VarIs | TimeIs | DayIs | CalendarIs | QueueIs | AllOf | AnyOf | Not
