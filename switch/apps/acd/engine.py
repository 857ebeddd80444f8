"""The ACD of one tenant, sans-IO: inputs and the time in, commands and events out.

    acd = Acd.from_config(tenant)
    commands = acd.login("1001", now, devices=["ws:flow-7"])
    commands = acd.join("call-42", "support", now, number="+442079460000")
    ... each command is something for the node to do (events.py) ...
    deadline = acd.next_deadline()          # wake up then, and call
    commands = acd.handle_timer(deadline)
    for event in acd.take_events(): ...     # reports, wallboard, CTI

Nothing here reads a clock, opens a socket or sleeps: the time is an
argument, so tests drive it with a virtual clock. Each input first fires the
timers due by its `now`, then applies its change, then routes the callers
and agents it touched.

This module holds the inputs and the timers; the rest of Acd is layered
under it: state.py (records, index, every change a compare-and-set
commit), placing.py (joins, limits, exits, announcements), offers.py
(routing as router.py decides, offers ending unanswered).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .agents import transition
from .errors import AcdError, OfferGone
from .events import (
    CallbackDialled,
    CallbackEnded,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    CallerMoved,
    Command,
    DialCallback,
    Event,
    Moved,
    OfferEnded,
    StopOffer,
    WrapupExtended,
)
from .model import AgentRecord, Callback, Entry, Reservation, Served
from .model import frozen_map as _map
from .offers import Offers
from .rules import MAX_PRIORITY, QueueRules, TenantRules, signature
from .state import MAX_HOPS
from .store import AcdStore

if TYPE_CHECKING:
    from switch.config import Hours, Tenant

__all__ = ["MAX_HOPS", "Acd"]


class Acd(Offers):
    """The ACD of one tenant: its queues' rules, its agents, its waiting callers."""

    @classmethod
    def from_config(
        cls,
        tenant: Tenant,
        *,
        store: AcdStore | None = None,
        rng: random.Random | None = None,
        calendars: Mapping[str, Hours] | None = None,
    ) -> Acd:
        """The ACD of one configured tenant, with its agents (logged out).
        `calendars`: where queues look their hours up (default: the tenant's)."""
        acd = cls(
            [
                QueueRules.from_config(name, queue, tenant, calendars)
                for name, queue in tenant.queues.items()
            ],
            TenantRules.from_config(tenant.acd),
            store=store,
            rng=rng,
        )
        for position, (ext, agent) in enumerate(tenant.agents.items()):
            acd.add_agent(
                ext,
                queues={queue: agent.tiers.get(queue, 1) for queue in agent.queues},
                skills=agent.skills,
                weight=agent.weight,
                position=position,
            )
        return acd

    # ------------------------------------------------------------------
    # Reading

    def entry(self, caller: str) -> Entry | None:
        return self.store.get("entry", caller)

    def reservation(self, reservation_id: str) -> Reservation | None:
        return self.store.get("reservation", reservation_id)

    def waiting(self, queue: str) -> list[str]:
        """Callers of `queue` waiting to be offered, in rank order (not those being rung)."""
        return [item[2] for item in self.index.waiting[queue]]

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def position(self, caller: str) -> int:
        """1 for the caller offered next in their queue (callers being rung not counted)."""
        return self.index.position(self._entry(caller))

    def next_deadline(self) -> float | None:
        """When handle_timer() must be called next (None: nothing pending)."""
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------
    # Agents

    def add_agent(
        self,
        agent_id: str,
        *,
        queues: Mapping[str, int],
        skills: Mapping[str, int] | None = None,
        weight: int = 1,
        position: int = 0,
    ) -> AgentRecord:
        """Add an agent (logged out), or change an existing one's queues, skills and weight."""
        for queue, tier in queues.items():
            if queue not in self.queues:
                raise AcdError(f"agent {agent_id}: no queue {queue!r} (queues: {self._names()})")
            if not 1 <= tier <= 9:
                raise AcdError(f"agent {agent_id}: tier {tier} in {queue!r} is not 1..9")
        for skill, level in (skills or {}).items():
            if not 1 <= level <= 10:
                raise AcdError(f"agent {agent_id}: skill {skill!r} level {level} is not 1..10")
        if weight < 1:
            raise AcdError(f"agent {agent_id}: weight {weight} must be at least 1")
        old = self.store.get("agent", agent_id)
        base = old or AgentRecord(agent_id)
        new = base._replace(
            queues=_map(queues),
            skills=_map(skills),
            weight=weight,
            position=position,
            version=base.version + 1,
        )
        self._apply([("agent", old, new)])
        return new

    def login(self, agent_id: str, now: float, *, devices: Iterable[str]) -> list[Command]:
        """Log an agent in with their live devices (none: not ready, "disconnected")."""
        out = self._advance(now, f"agent {agent_id} logged in")
        agent = self.agent(agent_id)
        self._transition(agent, "login", now, devices=agent.devices | frozenset(devices))
        return out + self._route(now)

    def logout(self, agent_id: str, now: float) -> list[Command]:
        out = self._advance(now, f"agent {agent_id} logged out")
        out += self._withdraw(agent_id, now, "withdrawn")
        self._transition(self.agent(agent_id), "logout", now)
        return out + self._route(now)

    def set_not_ready(self, agent_id: str, reason: str, now: float) -> list[Command]:
        """Not ready for `reason`, one of the tenant's not_ready_reasons (an offer ringing
        the agent is withdrawn; a wrap-up ends in it)."""
        try:
            self.tenant.check_reason(reason)
        except ValueError as exc:
            raise AcdError(str(exc)) from None
        out = self._advance(now, f"agent {agent_id} not ready")
        out += self._withdraw(agent_id, now, "withdrawn")
        agent = self.agent(agent_id)
        if agent.status == "wrap-up":
            self._record_handle(agent, now)
        self._transition(agent, "not-ready", now, reason)
        return out + self._route(now)

    def set_ready(self, agent_id: str, now: float) -> list[Command]:
        """Available again, from not ready or by ending wrap-up early."""
        out = self._advance(now, f"agent {agent_id} ready")
        agent = self.agent(agent_id)
        if agent.status == "not-ready" and agent.reason == "disconnected":
            raise AcdError(
                f"agent {agent_id} has no device connected: they are made ready when one connects"
            )
        if agent.status == "wrap-up":
            self._record_handle(agent, now)
        self._transition(agent, "ready", now)
        return out + self._route(now)

    def busy(self, agent_id: str, now: float) -> list[Command]:
        """The agent is on a call the ACD did not give them (a direct or outbound call).

        An offer ringing them meanwhile is pulled back (not a miss: they answered
        another call); the caller keeps their place."""
        out = self._advance(now, f"agent {agent_id} busy")
        out += self._withdraw(agent_id, now, "withdrawn")
        self._transition(self.agent(agent_id), "busy", now, call_queue="", call_started=now)
        return out + self._route(now)

    def device_up(self, agent_id: str, device: str, now: float) -> list[Command]:
        """A device of the agent is reachable (registered, WebSocket flow up, microphone on).

        An agent set not ready "disconnected" gets back what they had before.
        """
        out = self._advance(now, f"agent {agent_id} device {device} up")
        agent = self.agent(agent_id)
        self._put_agent(agent._replace(devices=agent.devices | {device}, version=agent.version + 1))
        self._presence(self.agent(agent_id), now)
        return out + self._route(now)

    def device_down(self, agent_id: str, device: str, now: float) -> list[Command]:
        """A device is gone (flow died, microphone refused, registration lapsed).

        With no device left the agent is set not ready ("disconnected") at
        once, and an offer ringing them is pulled back: the caller returns to
        its place (the front, if it was first), and it is not a miss. An
        agent on a call stays on it; the presence rule applies when it ends.
        """
        out = self._advance(now, f"agent {agent_id} device {device} down")
        agent = self.agent(agent_id)
        self._put_agent(agent._replace(devices=agent.devices - {device}, version=agent.version + 1))
        if not self.agent(agent_id).devices:
            out += self._withdraw(agent_id, now, "disconnected")
        self._presence(self.agent(agent_id), now)
        return out + self._route(now)

    def extend_wrapup(self, agent_id: str, seconds: float, now: float) -> float:
        """Add `seconds` to the agent's wrap-up, up to the queue's wrapup_max after the call
        ended; returns the new end. At the cap already: AcdError."""
        self._advance(now, f"agent {agent_id} extends wrap-up")
        if seconds <= 0:
            raise AcdError(f"extend wrap-up by a positive number of seconds, not {seconds}")
        agent = self.agent(agent_id)
        until = min(agent.wrapup_until + seconds, agent.wrapup_cap)
        if agent.status == "wrap-up" and until <= agent.wrapup_until:
            rules = self.queues.get(agent.call_queue)
            cap = rules.wrapup_max if rules else 0.0
            raise AcdError(
                f"agent {agent_id}: wrap-up is at its cap already ({cap:.0f} s after the call)"
            )
        self._transition(agent, "extend", now, wrapup_until=until)
        self._events.append(WrapupExtended(agent_id, until, now))
        self._at(until, "wrapup", agent_id)
        return until

    # ------------------------------------------------------------------
    # Callers

    def join(
        self,
        caller: str,
        queue: str,
        now: float,
        *,
        number: str = "",
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
    ) -> list[Command]:
        """A caller enters `queue` (from a DID, or the IVR, which may set priority and skills)."""
        if queue not in self.queues:
            raise AcdError(f"no queue {queue!r} (queues: {self._names()})")
        if self.store.get("entry", caller) is not None:
            raise AcdError(f"caller {caller!r} is already in queue {self._entry(caller).queue!r}")
        if not 0 <= priority <= MAX_PRIORITY:
            raise AcdError(f"caller {caller}: priority {priority} is not 0..{MAX_PRIORITY}")
        try:
            asked = signature({}, skills)
        except ValueError as exc:
            raise AcdError(f"caller {caller}: {exc}") from None
        out = self._advance(now, f"caller {caller} joined {queue}")
        seed = Entry(
            caller, queue, now, now, next(self._seq), priority, (), 0.0, number, asked=asked
        )
        out += self._place(seed, queue, now)
        return out + self._route(now)

    def hangup(self, caller: str, now: float) -> list[Command]:
        """The caller hung up before an agent answered: an abandon, with its wait.

        A caller no longer waiting (answered, sent elsewhere) is ignored: the
        node may learn of the hang-up after either.
        """
        out = self._advance(now, f"caller {caller} hung up")
        entry = self.store.get("entry", caller)
        if entry is None:
            return out + self._route(now)
        position = self.index.position(entry) if entry.status == "waiting" else 1
        if entry.status == "reserved":
            out += self._end_offer(entry.reservation, now, "caller left", miss=False)
            entry = self._entry(caller)
        self._apply([("entry", entry, None)])
        self._events.append(
            CallerAbandoned(caller, entry.queue, now - entry.enqueued_at, position, now)
        )
        return out + self._route(now)

    def answered(self, caller: str, agent_id: str, now: float) -> list[Command]:
        """The agent answered the offer of `caller`: the call is theirs.

        OfferGone if that offer is over (rang out, withdrawn): hang up the agent's leg.
        """
        out = self._advance(now, f"agent {agent_id} answered {caller}")
        entry = self.store.get("entry", caller)
        res = self.store.get("reservation", entry.reservation) if entry is not None else None
        if res is None or agent_id not in res.agents or res.stage != "ringing":
            raise OfferGone(
                f"agent {agent_id} answered caller {caller}, whose offer to them is over: "
                "hang up the agent's leg"
            )
        agent = self.agent(agent_id)
        queue = entry.queue
        self._ring[queue].append(now - res.at)
        changes: list[tuple[str, Any, Any]] = [("reservation", res, None), ("entry", entry, None)]
        record, event = transition(
            agent,
            "answer",
            now,
            "answered",
            reservation="",
            call_queue=queue,
            call_started=now,
            missed=0,
            calls=_map({**agent.calls, queue: agent.calls.get(queue, 0) + 1}),
        )
        self._events.append(event)
        changes.append(("agent", agent, record))
        others = [other for other in res.agents if other != agent_id]
        for other in others:
            before = self.agent(other)
            record, event = transition(before, "release", now, "answered elsewhere", reservation="")
            self._events.append(event)
            self._events.append(
                OfferEnded(res.id, caller, other, "answered elsewhere", record.missed, now)
            )
            changes.append(("agent", before, record))
        if entry.number and self.tenant.sticky_memory > 0:
            served = self.store.get("served", entry.number)
            version = served.version + 1 if served else 1
            changes.append(("served", served, Served(entry.number, agent_id, now, version)))
        self._apply(changes)
        if others:
            out.append(StopOffer(res.id, caller, tuple(others), "answered elsewhere"))
        callback = entry.callback
        self._events.append(
            CallerAnswered(
                caller, queue, agent_id, now - entry.enqueued_at, callback is not None, now
            )
        )
        if callback is not None and callback.mode == "agent-first":
            self._bridged[caller] = (queue, entry.enqueued_at)
            self._events.append(CallbackDialled(caller, queue, callback.number, agent_id, now))
            out.append(
                DialCallback(
                    res.id,
                    caller,
                    queue,
                    callback.number,
                    agent_id,
                    "agent-first",
                    self.queues[queue].callback_dial_timeout,
                )
            )
        return out + self._route(now)

    def declined(self, caller: str, agent_id: str, now: float) -> list[Command]:
        """The agent refused the offer (reject button, 486/603): a miss, as if it rang out."""
        out = self._advance(now, f"agent {agent_id} declined {caller}")
        entry = self.store.get("entry", caller)
        res = self.store.get("reservation", entry.reservation) if entry is not None else None
        if res is not None and agent_id in res.agents:
            out += self._end_offer(res.id, now, "declined", miss=True, only=agent_id)
        return out + self._route(now)

    def call_ended(self, agent_id: str, now: float) -> list[Command]:
        """The agent's call ended: wrap-up for its queue's time (none after a direct call)."""
        out = self._advance(now, f"agent {agent_id} call ended")
        agent = self.agent(agent_id)
        queue = agent.call_queue
        rules = self.queues.get(queue)
        wrapup = rules.wrapup if rules else 0.0
        talk = now - agent.call_started
        talked = agent.talk
        if rules is not None:
            self._talk[queue].append(talk)
            talked = _map({**agent.talk, queue: agent.talk.get(queue, 0.0) + talk})
        agent = self._transition(
            agent,
            "hangup",
            now,
            talk=talked,
            wrapup_until=now + wrapup,
            wrapup_cap=now + max(rules.wrapup_max if rules else 0.0, wrapup),
        )
        if agent.status == "wrap-up":  # not disconnected meanwhile
            if wrapup > 0:
                self._at(now + wrapup, "wrapup", agent_id)
            else:
                self._end_wrapup(agent, now)
        return out + self._route(now)

    def request_callback(self, caller: str, now: float, *, number: str = "") -> list[Command]:
        """The caller asks to be called back (at `number`, default their own). They hang up
        and keep their place and enqueue time; when their turn comes an agent is held
        for them, so callbacks dialling never outnumber the agents free for them."""
        out = self._advance(now, f"caller {caller} asked for a callback")
        entry = self._entry(caller)
        rules = self.queues[entry.queue]
        if rules.callback_mode == "off":
            raise AcdError(
                f"queue {entry.queue} does not call back: set its callback.mode to "
                '"agent-first" or "customer-first"'
            )
        number = number or entry.number
        if not number:
            raise AcdError(f"caller {caller} has no number to call back at: give one")
        if entry.callback is not None:
            raise AcdError(f"caller {caller} has already asked for a callback")
        if entry.status == "reserved":
            out += self._end_offer(entry.reservation, now, "caller left", miss=False)
            entry = self._entry(caller)
        callback = Callback(number, rules.callback_mode, now)  # type: ignore[arg-type]
        self._apply(
            [("entry", entry, entry._replace(callback=callback, version=entry.version + 1))]
        )
        self._events.append(CallbackRequested(caller, entry.queue, number, callback.mode, now))
        self.index.touched_callers.add(caller)
        return out + self._route(now)

    def move(
        self, caller: str, now: float, queue: str | None = None, front: bool = False
    ) -> list[Command]:
        """A supervisor moves a waiting caller to `queue` (None: the one they are in),
        and to its front if `front`.

        The caller keeps their enqueue time (tiers, relaxation and the aging
        rule go on from it); an offer ringing for them is withdrawn (not a
        miss). `front` ranks them ahead of everyone waiting in that queue now
        (their rank key just below the first's; so within their group they
        are the head, and an agent whose tier or skills need a longer wait
        waits for this caller's wait, not an earlier caller's).
        A queue that would not take them (closed, full, nobody staffed for
        them) is an AcdError, and the caller stays where they were.
        """
        entry = self.store.get("entry", caller)
        if entry is None:
            raise AcdError(f"caller {caller!r} is not waiting in a queue (answered or gone)")
        if queue is not None and queue not in self.queues:
            raise AcdError(f"no queue {queue!r} (queues: {self._names()})")
        target = queue or entry.queue
        if target == entry.queue and not front:
            raise AcdError(
                f"caller {caller} is in queue {target!r} already: name another queue, "
                "or ask for the front"
            )
        out = self._advance(now, f"caller {caller} moved to {target}")
        entry = self.store.get("entry", caller)
        if entry is None:  # a timer due by now sent them out first
            raise AcdError(f"caller {caller!r} left the queue before the move")
        if target != entry.queue:
            rules = self.queues[target]
            refusal = self._refusal(target, signature(rules.skills, dict(entry.asked)), now)
            if refusal is not None:
                why = {
                    "closed": "is closed now",
                    "full": "is full",
                    "empty": "has no agent staffed for this caller",
                }.get(refusal, refusal)
                raise AcdError(f"queue {target!r} {why}: caller {caller} stays in {entry.queue!r}")
        if entry.status == "reserved":
            res = self.reservation(entry.reservation)
            if res is not None and res.stage == "dialling":
                raise AcdError(f"caller {caller} is being called back now: they cannot be moved")
            out += self._end_offer(entry.reservation, now, "withdrawn", miss=False)
            entry = self._entry(caller)
        if target != entry.queue:
            self._events.append(CallerMoved(caller, entry.queue, target, "supervisor", now))
            out.append(Moved(caller, entry.queue, target))
            out += self._place(entry, target, now, entry)
            entry = self._entry(caller)
        if front:
            ahead = [item for item in self.index.waiting[target] if item[2] != caller]
            if ahead and ahead[0][:2] < entry.rank:
                first = entry._replace(key=ahead[0][0] - 1.0, version=entry.version + 1)
                self._apply([("entry", entry, first)])
        self.index.touched_callers.add(caller)
        return out + self._route(now)

    def callback_result(self, caller: str, answered: bool, now: float) -> list[Command]:
        """The customer of a callback answered (True) or could not be reached (False).

        customer-first: answered, the held agent is rung now (an Offer); not
        answered, the agent is released and the callback ends. agent-first:
        the agent was bridged already; this records the outcome.
        """
        out = self._advance(now, f"callback of {caller} {'answered' if answered else 'failed'}")
        if caller in self._bridged:
            queue, since = self._bridged.pop(caller)
            self._events.append(CallbackEnded(caller, queue, answered, now - since, now))
            return out + self._route(now)
        entry = self.store.get("entry", caller)
        res = self.store.get("reservation", entry.reservation) if entry is not None else None
        if res is None or res.stage != "dialling":
            raise AcdError(f"no callback of caller {caller} is being dialled")
        self._events.append(
            CallbackEnded(caller, entry.queue, answered, now - entry.enqueued_at, now)
        )
        if not answered:
            return out + self._drop_callback(res, now) + self._route(now)
        if not res.agents:
            # The held agent went away while the customer was dialled: the
            # customer, on the line now, waits at the place they kept.
            live = entry._replace(
                status="waiting", reservation="", callback=None, version=entry.version + 1
            )
            self._apply([("reservation", res, None), ("entry", entry, live)])
            return out + self._route(now)
        rules = self.queues[res.queue]
        ringing = res._replace(
            stage="ringing", expires_at=now + rules.ring_timeout, version=res.version + 1
        )
        self._apply([("reservation", res, ringing)])
        self._at(ringing.expires_at, "reservation", res.id)
        out.append(self._offer_command(ringing, callback=True))
        return out + self._route(now)

    # ------------------------------------------------------------------
    # Time

    def handle_timer(self, now: float) -> list[Command]:
        """Fire every timer due by `now` (offers ringing out, wrap-ups ending, waits passing)."""
        return self._advance(now, "timer") + self._route(now)

    def _advance(self, now: float, cause: str) -> list[Command]:
        out: list[Command] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, kind, key = heapq.heappop(timers)
            self._cause = f"{kind} timer of {key}"
            out += getattr(self, f"_timer_{kind}")(key, at)
            # Route as of the timer's own time, so what it opened is offered
            # before later timers (and this input) change anything.
            out += self._route(at)
        self._cause = cause
        return out

    def _timer_reservation(self, res_id: str, now: float) -> list[Command]:
        res = self.store.get("reservation", res_id)
        if res is None or res.expires_at > now:
            return []
        if res.stage == "dialling":  # the customer's phone gave no answer in time
            entry = self._entry(res.entry)
            self._events.append(
                CallbackEnded(entry.id, entry.queue, False, now - entry.enqueued_at, now)
            )
            return self._drop_callback(res, now)
        return self._end_offer(res_id, now, "no answer", miss=True)

    def _timer_wrapup(self, agent_id: str, now: float) -> list[Command]:
        agent = self.store.get("agent", agent_id)
        if agent is not None and agent.status == "wrap-up" and agent.wrapup_until <= now:
            self._end_wrapup(agent, now)
        return []

    def _timer_wait(self, caller: str, now: float) -> list[Command]:
        """A wait after which more agents may take the caller (tier, relaxation, sticky, skip)."""
        entry = self.store.get("entry", caller)
        if entry is not None:
            sticky = entry.sticky if now < entry.sticky_until else ""
            skip = tuple((who, until) for who, until in entry.skip if now < until)
            if sticky != entry.sticky or skip != entry.skip:
                new = entry._replace(sticky=sticky, skip=skip, version=entry.version + 1)
                self._apply([("entry", entry, new)])
            self.index.touched_callers.add(caller)
        return []

    def _timer_max_wait(self, caller: str, now: float) -> list[Command]:
        entry = self.store.get("entry", caller)
        if entry is None or entry.status != "waiting" or entry.callback is not None:
            return []  # being rung: checked again if the offer ends unanswered
        rules = self.queues[entry.queue]
        if rules.max_wait and now - entry.joined_at >= rules.max_wait:
            return self._exit(entry, "max_wait", now)
        return []

    def _timer_announce(self, caller: str, now: float) -> list[Command]:
        entry = self.store.get("entry", caller)
        if entry is None or entry.callback is not None:
            return []
        self._at(now + self.queues[entry.queue].announce_every, "announce", caller)
        return self._announce(entry, now) if entry.status == "waiting" else []
