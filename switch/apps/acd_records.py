"""The ACD's events as rows for the records (issue #9), like Asterisk's
queue_log but with typed columns: `queue_events` for callers, `agent_events`
for agents' state changes.

`event_row(tenant, event)` is pure: ("queue_event" | "agent_event", row),
or None for an event that is no record (none today). `AcdRecorder(records)`
is a listener for `AcdService` (called with (tenant, event)) that keeps each
row through `Records`. Event names: joined, offered, offer_ended, answered,
abandoned, exited (an exit sent the caller out: voicemail, IVR, message),
moved (an exit sent the caller to another queue: an overflow),
callback_requested, callback_dialled, callback_ended.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .acd.events import (
    AgentChanged,
    CallbackDialled,
    CallbackEnded,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    CallerJoined,
    CallerMoved,
    Decided,
    Event,
    OfferEnded,
    WrapupExtended,
)

log = logging.getLogger("switch.records")


class RowSink(Protocol):
    def queue_event(self, row: dict[str, Any]) -> str: ...
    def agent_event(self, row: dict[str, Any]) -> str: ...


def _queue(tenant: str, event: str, at: float, queue: str | None, caller: str | None,
           agent: str | None = None, wait: float | None = None, position: int | None = None,
           reason: str | None = None, **extra: Any) -> tuple[str, dict[str, Any]]:  # fmt: skip
    row = {
        "time": at,
        "tenant": tenant,
        "queue": queue,
        "call_id": caller,
        "agent": agent,
        "event": event,
        "wait": wait,
        "position": position,
        "reason": reason,
        "extra": extra or None,
    }
    return "queue_event", row


def event_row(tenant: str, event: Event) -> tuple[str, dict[str, Any]] | None:
    """The row one ACD event becomes (see the module's docstring)."""
    if isinstance(event, AgentChanged):
        row = {"time": event.at, "tenant": tenant, "agent": event.agent, "state": event.new,
               "previous": event.old, "reason": event.reason, "queue": None}  # fmt: skip
        return "agent_event", row
    if isinstance(event, WrapupExtended):
        row = {"time": event.at, "tenant": tenant, "agent": event.agent, "state": "wrap-up",
               "previous": "wrap-up", "reason": f"extended until {event.until:.3f}",
               "queue": None}  # fmt: skip
        return "agent_event", row
    if isinstance(event, CallerJoined):
        return _queue(tenant, "joined", event.at, event.queue, event.caller,
                      position=event.position, priority=event.priority,
                      skills=[list(s) for s in event.skills], ewt=event.ewt,
                      sticky=event.sticky or None)  # fmt: skip
    if isinstance(event, Decided):
        e = event.explanation
        return _queue(tenant, "offered", event.at, e.queue, e.caller,
                      agent=",".join(e.agents), reason=e.trigger)  # fmt: skip
    if isinstance(event, OfferEnded):
        return _queue(tenant, "offer_ended", event.at, None, event.caller, agent=event.agent,
                      reason=event.reason, missed=event.missed,
                      reservation=event.reservation)  # fmt: skip
    if isinstance(event, CallerAnswered):
        return _queue(tenant, "answered", event.at, event.queue, event.caller, agent=event.agent,
                      wait=event.wait, callback=event.callback)  # fmt: skip
    if isinstance(event, CallerAbandoned):
        return _queue(tenant, "abandoned", event.at, event.queue, event.caller, wait=event.wait,
                      position=event.position)  # fmt: skip
    if isinstance(event, CallerExited):
        target = event.target.model_dump(exclude_none=True)
        return _queue(tenant, "exited", event.at, event.queue, event.caller, wait=event.wait,
                      reason=event.reason, target=target)  # fmt: skip
    if isinstance(event, CallerMoved):
        return _queue(tenant, "moved", event.at, event.new, event.caller, reason=event.reason,
                      previous=event.old)  # fmt: skip
    if isinstance(event, CallbackRequested):
        return _queue(tenant, "callback_requested", event.at, event.queue, event.caller,
                      number=event.number, mode=event.mode)  # fmt: skip
    if isinstance(event, CallbackDialled):
        return _queue(tenant, "callback_dialled", event.at, event.queue, event.caller,
                      agent=event.agent, number=event.number)  # fmt: skip
    if isinstance(event, CallbackEnded):
        return _queue(tenant, "callback_ended", event.at, event.queue, event.caller,
                      wait=event.wait, answered=event.answered)  # fmt: skip
    return None


class AcdRecorder:
    """A listener for the ACD service's events: each one becomes a row in the records."""

    def __init__(self, records: RowSink) -> None:
        self.records = records

    def __call__(self, tenant: str, event: Event) -> None:
        try:
            made = event_row(tenant, event)
        except Exception:  # a record is never worth a call: log it and go on
            log.exception("records: ACD event %r could not be made a row", event)
            return
        if made is None:
            return
        kind, row = made
        if kind == "agent_event":
            self.records.agent_event(row)
        else:
            self.records.queue_event(row)
