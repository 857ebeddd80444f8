"""Placing callers in queues and sending them out: joins, limits, exits, announcements."""

from __future__ import annotations

import random
import zlib

from switch.config import ExitTarget

from . import ewt as ewt_module
from .events import (
    Announce,
    CallerExited,
    CallerJoined,
    CallerMoved,
    Command,
    ExitReason,
    Moved,
    OfferCallback,
    SendTo,
)
from .model import STAFFED, AgentRecord, Entry
from .rules import rank_key, signature
from .state import EWT_RUNS, MAX_HOPS, AcdState

__all__ = ["Placing"]

_HANG_UP = ExitTarget(message="")


class Placing(AcdState):
    def handle_time(self, queue: str) -> float:
        """Mean recent handle time (answer to available again) of `queue`'s calls."""
        history = self._handle.get(queue)
        if history:
            return sum(history) / len(history)
        return ewt_module.DEFAULT_TALK + self.queues[queue].wrapup

    def estimate_wait(self, caller: str, now: float) -> float | None:
        """Seconds before an agent answers `caller` (ewt.py); None: no agent ever may."""
        target = self._entry(caller)
        get = self.store.get
        ahead = [get("entry", item[2]) for item in self.index.ahead(target.rank)]
        staffed = [agent for agent in self.store.all("agent") if agent.status in STAFFED]
        history = ewt_module.History(
            {name: self._talk.get(name, ()) for name in self.queues},
            {name: self._handle.get(name, ()) for name in self.queues},
            {name: rules.wrapup for name, rules in self.queues.items()},
            random.Random(zlib.crc32(f"{caller}@{now}".encode())),
        )
        reservations = {
            agent.id: get("reservation", agent.reservation).queue
            for agent in staffed
            if agent.status == "reserved"
        }
        ahead = [entry for entry in ahead if entry.id != caller]
        index = self.index

        def need_of(agent: AgentRecord, entry: Entry) -> float:
            return index.need(agent, entry.queue, entry.skills)

        wait = ewt_module.estimate(
            target,
            ahead,
            staffed,
            lambda agent: history.free_at(agent, reservations.get(agent.id, ""), now),
            history.handle,
            need_of,
            now,
            EWT_RUNS,
        )
        if wait is None:
            return None
        ring = self._ring.get(target.queue)
        return wait + (sum(ring) / len(ring) if ring else 0.0)

    def _place(
        self, seed: Entry, queue: str, now: float, existing: Entry | None = None
    ) -> list[Command]:
        """Put a caller in `queue`, or send them where its exits say.

        `seed` carries what a caller keeps across queues: enqueue time,
        arrival order, the priority and skills asked, number, callback, hops.
        `existing` is their record in the queue they leave (its version goes
        on rising: a record is never deleted and made again under one id).
        """
        rules = self.queues[queue]
        priority = seed.priority
        if seed.number in rules.vip:
            priority = max(priority, rules.vip_priority)
        sig = signature(rules.skills, dict(seed.asked))
        reason = self._refusal(queue, sig, now)
        if reason is not None:
            return self._send_out(seed._replace(queue=queue), reason, now, existing)
        sticky, until = "", 0.0
        if rules.sticky_wait and seed.number and seed.callback is None:
            served = self.store.get("served", seed.number)
            if (
                served is not None
                and now - served.at <= self.tenant.sticky_memory
                and served.agent in self.index.members[queue]
                and self.agent(served.agent).status in STAFFED
                and seed.enqueued_at + rules.sticky_wait > now
            ):
                sticky, until = served.agent, seed.enqueued_at + rules.sticky_wait
        entry = seed._replace(
            queue=queue,
            joined_at=now,
            priority=priority,
            skills=sig,
            key=rank_key(seed.enqueued_at, priority, rules),
            status="waiting",
            reservation="",
            sticky=sticky,
            sticky_until=until,
            skip=(),
            ewt=None,
            version=existing.version + 1 if existing is not None else 1,
        )
        self._apply([("entry", existing, entry)])
        for wait in rules.thresholds:
            if entry.enqueued_at + wait > now:
                self._at(entry.enqueued_at + wait, "wait", entry.id)
        if sticky:
            self._at(until, "wait", entry.id)
        if rules.max_wait and entry.callback is None:
            self._at(now + rules.max_wait, "max_wait", entry.id)
        out: list[Command] = []
        ewt = None
        if (rules.announce_every or rules.callback_offer_ewt) and entry.callback is None:
            ewt = self.estimate_wait(entry.id, now)
            self._apply([("entry", entry, entry._replace(ewt=ewt, version=entry.version + 1))])
            entry = self._entry(entry.id)
        self._events.append(
            CallerJoined(
                entry.id, queue, priority, sig, self.index.position(entry), ewt, sticky, now
            )
        )
        if rules.announce_every and entry.callback is None:
            out += self._announce(entry, now, ewt)
            self._at(now + rules.announce_every, "announce", entry.id)
        elif rules.callback_offer_ewt and entry.callback is None:
            out += self._announce(entry, now, ewt, say=False)
        return out

    def _refusal(
        self, queue: str, sig: tuple[tuple[str, int], ...], now: float
    ) -> ExitReason | None:
        """Why `queue` would not take a caller needing skills `sig` now (None: it would)."""
        rules = self.queues[queue]
        if rules.calendar is not None and not rules.calendar.is_open(now):
            return "closed"
        if rules.max_len and self.index.count[queue] >= rules.max_len:
            return "full"
        if not rules.join_empty and not self._staffed_for(queue, sig):
            return "empty"
        return None

    def _announce(
        self, entry: Entry, now: float, ewt: float | None = None, say: bool = True
    ) -> list[Command]:
        """Position and EWT for the caller; a callback offer, once, when the EWT is long."""
        rules = self.queues[entry.queue]
        if ewt is None:
            ewt = self.estimate_wait(entry.id, now)
        out: list[Command] = []
        if say:
            out.append(Announce(entry.id, entry.queue, self.index.position(entry), ewt))
        if (
            rules.callback_offer_ewt
            and not entry.callback_offered
            and entry.callback is None
            and ewt is not None
            and ewt >= rules.callback_offer_ewt
        ):
            offered = entry._replace(callback_offered=True, version=entry.version + 1)
            self._apply([("entry", entry, offered)])
            out.append(OfferCallback(entry.id, entry.queue, ewt))
        return out

    def _send_out(
        self, entry: Entry, reason: ExitReason, now: float, existing: Entry | None
    ) -> list[Command]:
        """Send a caller out of `entry.queue` where the queue's exit for `reason` says."""
        target = self.queues[entry.queue].exit(reason)
        if target.queue is not None and target.queue in self.queues and entry.hops < MAX_HOPS:
            self._events.append(CallerMoved(entry.id, entry.queue, target.queue, reason, now))
            moved: list[Command] = [Moved(entry.id, entry.queue, target.queue)]
            return moved + self._place(
                entry._replace(hops=entry.hops + 1), target.queue, now, existing
            )
        if target.queue is not None:
            target = _HANG_UP  # MAX_HOPS overflows: this caller has been sent round enough
        if existing is not None:
            self._apply([("entry", existing, None)])
        self._events.append(
            CallerExited(entry.id, entry.queue, reason, target, now - entry.enqueued_at, now)
        )
        return [SendTo(entry.id, entry.queue, reason, target)]

    def _exit(self, entry: Entry, reason: ExitReason, now: float) -> list[Command]:
        return self._send_out(entry, reason, now, entry)
