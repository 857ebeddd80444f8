"""Offers: routing the callers and agents an input touched, and offers ending unanswered."""

from __future__ import annotations

from typing import Any

from .agents import transition
from .events import (
    CallbackDialled,
    Command,
    Decided,
    DialCallback,
    Event,
    NotifyAgent,
    Offer,
    OfferEnded,
    OfferReason,
    StopOffer,
)
from .model import AgentRecord, Entry, QueueMemory, Reservation
from .placing import Placing
from .router import explain, pick
from .state import ORPHAN_GRACE
from .store import Conflict
from .strategies import choose

__all__ = ["MAX_CONFLICTS", "Offers"]

# Decisions lost to another node's write within one input before giving up
# until the next input (the store keeps the records right either way).
MAX_CONFLICTS = 8


class Offers(Placing):
    def _route(self, now: float) -> list[Command]:
        """Offer the touched callers and agents, best-ranked pair first, until none is left."""
        out: list[Command] = []
        while self._exits_due:
            entry = self.store.get("entry", self._exits_due.pop())
            if (
                entry is not None
                and entry.status == "waiting"
                and entry.callback is None
                and not self._staffed_for(entry.queue, entry.skills)
            ):
                out += self._exit(entry, "empty", now)
        index = self.index
        callers, agents = index.touched_callers, index.touched_agents
        index.touched_callers, index.touched_agents = set(), set()
        get = self.store.get
        conflicts = 0
        while callers or agents:
            found = pick(index, get, now, callers, agents)
            if found is None:
                break
            offered = self._offer(found.entry, found.agents, now, f"{self._cause}; {found.why}")
            out += offered
            callers.discard(found.entry.id)
            if not offered:
                # A conflict: another node was first. Route what it touched again,
                # from fresh records, a few times; the rest waits for the next input.
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    break
                callers |= index.touched_callers
                agents |= index.touched_agents
                index.touched_callers, index.touched_agents = set(), set()
        return out

    def _offer(
        self, entry: Entry, eligible: list[AgentRecord], now: float, trigger: str
    ) -> list[Command]:
        rules = self.queues[entry.queue]
        memory = self.store.get("queue", entry.queue)
        chosen, ranked = choose(rules.strategy, entry.queue, eligible, memory, self.rng)
        callback = entry.callback
        dialling = callback is not None and callback.mode == "customer-first"
        timeout = rules.ring_timeout + (rules.callback_dial_timeout if dialling else 0.0)
        res = Reservation(
            f"r{next(self._ids)}{self._id_suffix}",
            entry.id,
            entry.queue,
            tuple(a.id for a in chosen),
            now,
            now + timeout,
            "callback" if callback else "offer",
            "dialling" if dialling else "ringing",
            version=1,
        )
        explanation = explain(
            self.index, self.store.get, entry, chosen, ranked, now, trigger, self.queues
        )
        held = entry._replace(
            status="reserved",
            reservation=res.id,
            callback=callback._replace(dialled=True) if dialling else callback,
            version=entry.version + 1,
        )
        changes: list[tuple[str, Any, Any]] = [("entry", entry, held), ("reservation", None, res)]
        events: list[Event] = []
        for agent in chosen:
            record, event = transition(agent, "reserve", now, reservation=res.id)
            changes.append(("agent", agent, record))
            events.append(event)
        if rules.strategy == "round-robin":
            first = chosen[0]
            version = (memory.version if memory else 0) + 1
            last = (first.position, first.id)
            changes.append(("queue", memory, QueueMemory(entry.queue, last, version)))
        try:
            self._apply(changes)
        except Conflict:
            # Another node changed one of these first: what this one saw is
            # stale. Route them again from what the store holds now.
            self.index.touched_callers.add(entry.id)
            self.index.touched_agents.update(agent.id for agent in chosen)
            return []
        self.decisions += 1
        self._events.extend(events)
        self._events.append(Decided(explanation, now))
        self._at(res.expires_at, "reservation", res.id)
        if dialling:
            agent_id = res.agents[0]
            self._events.append(
                CallbackDialled(entry.id, entry.queue, callback.number, agent_id, now)
            )
            return [
                DialCallback(
                    res.id,
                    entry.id,
                    entry.queue,
                    callback.number,
                    agent_id,
                    "customer-first",
                    rules.callback_dial_timeout,
                )
            ]
        return [self._offer_command(res, callback is not None)]

    def _timer_orphan(self, res_id: str, now: float) -> list[Command]:
        """A reservation made by another node is still there ORPHAN_GRACE after it
        expired: that node is gone. Its agents are released (not a miss: nobody
        rang them that this node knows of); its caller went with its node."""
        res = self.store.get("reservation", res_id)
        if res is None or res_id in self._mine or now < res.expires_at + ORPHAN_GRACE:
            return []
        changes: list[tuple[str, Any, Any]] = [("reservation", res, None)]
        events: list[Event] = []
        released = []
        for agent_id in res.agents:
            agent = self.store.get("agent", agent_id)
            if agent is None or agent.status != "reserved" or agent.reservation != res_id:
                continue
            if not all(queue in self.queues for queue in agent.queues):
                return []  # configured otherwise here: a node that has its queues frees it
            record, event = transition(agent, "release", now, "reservation expired", reservation="")
            changes.append(("agent", agent, record))
            events.append(event)
            released.append(agent_id)
        try:
            self._apply(changes)
        except Conflict:
            return []  # another node freed them first (or the owner ended it late)
        self._events.extend(events)
        for agent_id in released:
            self._presence(self.agent(agent_id), now)
        return []

    def _offer_command(self, res: Reservation, callback: bool) -> Offer:
        devices = tuple(
            (agent_id, tuple(sorted(self.agent(agent_id).devices))) for agent_id in res.agents
        )
        return Offer(res.id, res.entry, res.queue, res.agents, devices, res.expires_at, callback)

    def _withdraw(self, agent_id: str, now: float, reason: OfferReason) -> list[Command]:
        """Pull back the offer ringing (or held for) this agent, if any: not a miss."""
        agent = self.agent(agent_id)
        if agent.status != "reserved":
            return []
        return self._end_offer(agent.reservation, now, reason, miss=False, only=agent_id)

    def _drop_callback(self, res: Reservation, now: float) -> list[Command]:
        """A customer-first callback whose customer was not reached: release the agent."""
        entry = self._entry(res.entry)
        changes: list[tuple[str, Any, Any]] = [("reservation", res, None), ("entry", entry, None)]
        for agent_id in res.agents:
            agent = self.agent(agent_id)
            record, event = transition(agent, "release", now, "callback failed", reservation="")
            self._events.append(event)
            changes.append(("agent", agent, record))
        self._apply(changes)
        for agent_id in res.agents:
            self._presence(self.agent(agent_id), now)
        return [StopOffer(res.id, entry.id, res.agents, "callback failed")] if res.agents else []

    def _end_offer(
        self,
        res_id: str,
        now: float,
        reason: OfferReason,
        *,
        miss: bool,
        only: str | None = None,
    ) -> list[Command]:
        """An offer ends unanswered, for all its agents or `only` one of a ringall group.

        The caller waits again with its rank unchanged: ahead of everyone it
        ranked ahead of, at the front if it was first. Agents who let it ring
        out (miss) are not offered it again for the ring timeout, and are set
        not ready ("missed calls") after the tenant's max_missed in a row.
        """
        res = self.store.get("reservation", res_id)
        if res is None:
            return []
        rules = self.queues[res.queue]
        leaving = [only] if only is not None else list(res.agents)
        staying = tuple(a for a in res.agents if a not in leaving)
        entry = self._entry(res.entry)
        changes: list[tuple[str, Any, Any]] = []
        out: list[Command] = []
        limit = self.tenant.max_missed
        over: list[str] = []
        for agent_id in leaving:
            agent = self.agent(agent_id)
            missed = agent.missed + 1 if miss else agent.missed
            record, event = transition(agent, "release", now, reason, reservation="", missed=missed)
            self._events.append(event)
            self._events.append(OfferEnded(res.id, entry.id, agent_id, reason, missed, now))
            changes.append(("agent", agent, record))
            if miss and limit and missed >= limit:
                over.append(agent_id)
        # Also for an agent held while a customer-first callback is dialled: released.
        out.append(StopOffer(res.id, entry.id, tuple(leaving), reason))
        skip = entry.skip
        if miss:
            until = now + rules.ring_timeout
            skip = (*skip, *((agent_id, until) for agent_id in leaving))
            self._at(until, "wait", entry.id)
        if staying or res.stage == "dialling":
            # A ringall group rings on; a customer being dialled keeps the
            # reservation (never dialled twice) and waits for its outcome.
            held = res._replace(agents=staying, version=res.version + 1)
            changes.append(("reservation", res, held))
            changes.append(("entry", entry, entry._replace(skip=skip, version=entry.version + 1)))
        else:
            callback = entry.callback
            if callback is not None and callback.dialled:
                callback = None  # the customer is on the line: an ordinary caller again
            waiting = entry._replace(
                status="waiting",
                reservation="",
                skip=skip,
                callback=callback,
                version=entry.version + 1,
            )
            changes.append(("reservation", res, None))
            changes.append(("entry", entry, waiting))
        self._apply(changes)
        for agent_id in leaving:
            agent = self.agent(agent_id)
            if agent_id in over:
                self._transition(agent, "not-ready", now, "missed calls", missed=0)
                out.append(
                    NotifyAgent(
                        agent_id,
                        f"set not ready: the last {limit} calls offered to you were not "
                        "answered; set yourself ready to take calls again",
                    )
                )
            else:
                self._presence(agent, now)
        current = self.store.get("entry", entry.id)
        if (
            current is not None
            and current.status == "waiting"
            and current.callback is None
            and rules.max_wait
            and now - current.joined_at >= rules.max_wait
            and reason != "caller left"
        ):
            out += self._exit(current, "max_wait", now)
        return out
