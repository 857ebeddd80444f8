"""The ACD's records: agents, waiting callers, reservations, queue memory.

Every record is immutable and carries a `version`. A change is a new record
with the version one higher (`record._replace(...)`), written to the store
by compare-and-set (store.py), so that two nodes deciding from the same
snapshot cannot both win: the second write finds the version moved and fails.

Records are NamedTuples rather than frozen dataclasses: a decision makes
several new records, and _replace costs a sixth of dataclasses.replace
(measured; the ACD bench is about that).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

__all__ = [
    "STAFFED",
    "AgentRecord",
    "Callback",
    "Entry",
    "QueueMemory",
    "Reservation",
    "Served",
    "Status",
]

Status = Literal["logged-out", "available", "reserved", "on-call", "wrap-up", "not-ready"]
# Agents who count as staffing a queue (join_empty, leave_when_empty, EWT):
# logged in and taking calls, now or after the current one.
STAFFED = frozenset({"available", "reserved", "on-call", "wrap-up"})

_EMPTY: Mapping = MappingProxyType({})


class AgentRecord(NamedTuple):
    """One agent as the ACD sees them."""

    id: str
    queues: Mapping[str, int] = _EMPTY  # queue -> tier (1 first)
    skills: Mapping[str, int] = _EMPTY  # skill -> level 1..10
    weight: int = 1  # weighted-random
    position: int = 0  # linear order: the agent's place in the config
    status: Status = "logged-out"
    reason: str = ""  # why not ready
    since: float = 0.0  # when status last changed
    version: int = 0
    devices: frozenset[str] = frozenset()  # live devices (browser flows, phones)
    idle_since: float = 0.0  # when the agent last became available (longest-idle)
    missed: int = 0  # offers rung out in a row
    # Answered ACD calls (fewest-calls) and talk seconds (least-talk-time), per queue.
    calls: Mapping[str, int] = _EMPTY
    talk: Mapping[str, float] = _EMPTY
    reservation: str = ""  # while reserved
    call_queue: str = ""  # queue of the current or last call (its wrap-up time)
    call_started: float = 0.0  # when the current call was answered
    wrapup_until: float = 0.0
    wrapup_cap: float = 0.0  # the latest an extension may take wrap-up to
    # Where presence brings the agent back when a device returns: the status
    # and reason they had when the last device went away.
    resume: tuple[Status, str] | None = None


class Callback(NamedTuple):
    """A caller who hung up to be called back; their entry keeps its place."""

    number: str
    mode: Literal["agent-first", "customer-first"]
    requested_at: float
    dialled: bool = False  # set once, by the write that reserves the agent: never dialled twice


class Entry(NamedTuple):
    """A caller waiting in a queue (or waiting to be called back)."""

    id: str  # the call's id
    queue: str
    enqueued_at: float  # first joined any queue: seniority, tiers, relaxation, sticky
    joined_at: float  # joined this queue: max_wait
    seq: int  # arrival order, breaks ties in rank
    priority: int  # 0..9
    skills: tuple[tuple[str, int], ...]  # required skill levels, sorted (a signature)
    key: float  # rank key: lower is offered first (rules.rank_key)
    number: str = ""  # the caller's number, E.164 (VIP lists, sticky agent)
    status: Literal["waiting", "reserved"] = "waiting"
    reservation: str = ""
    sticky: str = ""  # the agent who served this number last
    sticky_until: float = 0.0
    # Agents who let this caller's offer ring out, and until when they are
    # not offered it again (the queue's ring timeout).
    skip: tuple[tuple[str, float], ...] = ()
    callback: Callback | None = None
    callback_offered: bool = False
    ewt: float | None = None  # the estimate given when the caller joined
    hops: int = 0  # queues this caller was sent on to by exits
    asked: tuple[tuple[str, int], ...] = ()  # the skills the IVR asked for (kept across queues)
    version: int = 0

    @property
    def rank(self) -> tuple[float, int]:
        return (self.key, self.seq)

    def skips(self, agent: str, now: float) -> bool:
        return any(who == agent and now < until for who, until in self.skip)


class Reservation(NamedTuple):
    """One caller held for one agent (or, for ringall, one group rung together).

    Written in the same compare-and-set as the entry and agents it holds;
    every reservation expires (`expires_at`) and is then released.
    """

    id: str
    entry: str
    queue: str
    agents: tuple[str, ...]
    at: float
    expires_at: float
    kind: Literal["offer", "callback"] = "offer"
    # customer-first callbacks: the customer is dialled before the agent rings.
    stage: Literal["ringing", "dialling"] = "ringing"
    version: int = 0


class QueueMemory(NamedTuple):
    """What a queue remembers between decisions (round-robin's last agent)."""

    name: str
    rr_last: tuple[int, str] | None = None  # (position, agent id) last offered
    version: int = 0


class Served(NamedTuple):
    """Who served a caller's number last (sticky agent)."""

    number: str
    agent: str
    at: float
    version: int = 0


def frozen_map(data: Mapping | None = None) -> Mapping:
    """A read-only mapping for a record's field."""
    return MappingProxyType(dict(data or {}))
