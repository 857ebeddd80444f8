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
and agents it touched (router.py decides; this module commits).

State is records in a store (store.py); every change is a compare-and-set
commit, and the index (index.py) follows each write.
"""

from __future__ import annotations

import heapq
import itertools
import random
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from switch.config import ExitTarget

from . import ewt as ewt_module
from .agents import transition
from .errors import AcdError, OfferGone
from .events import (
    Announce,
    CallbackDialled,
    CallbackEnded,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    CallerJoined,
    CallerMoved,
    Command,
    Decided,
    DialCallback,
    Event,
    ExitReason,
    Moved,
    NotifyAgent,
    Offer,
    OfferCallback,
    OfferEnded,
    OfferReason,
    SendTo,
    StopOffer,
    WrapupExtended,
)
from .index import Index, Sig
from .model import STAFFED, AgentRecord, Callback, Entry, QueueMemory, Reservation, Served
from .model import frozen_map as _map
from .router import explain, pick
from .rules import MAX_PRIORITY, NEVER, QueueRules, TenantRules, rank_key, signature
from .store import AcdStore, Conflict, MemoryStore, Write
from .strategies import choose

if TYPE_CHECKING:
    from switch.config import Tenant

__all__ = ["MAX_HOPS", "Acd"]

# Exits that send a caller on to another queue, at most this many per call:
# a loop of overflows (a -> b -> a) ends in a hang-up instead of spinning.
MAX_HOPS = 8
# Replays averaged for one estimated wait (ewt.py).
EWT_RUNS = 4
_HANG_UP = ExitTarget(message="")


def _key(kind: str, record: Any) -> str:
    if kind == "served":
        return record.number
    if kind == "queue":
        return record.name
    return record.id


class Acd:
    def __init__(
        self,
        queues: Iterable[QueueRules],
        tenant: TenantRules | None = None,
        *,
        store: AcdStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.queues: dict[str, QueueRules] = {rules.name: rules for rules in queues}
        self.tenant = tenant or TenantRules()
        self.store: AcdStore = store if store is not None else MemoryStore()
        self.rng = rng if rng is not None else random.Random()
        self.index = Index(self.queues.values())
        self.decisions = 0  # reservations made
        self._timers: list[tuple[float, int, str, str]] = []
        self._ticks = itertools.count()
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._events: list[Event] = []
        self._talk: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=ewt_module.HISTORY))
        self._handle: dict[str, deque[float]] = defaultdict(
            lambda: deque(maxlen=ewt_module.HISTORY)
        )
        self._ring: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=ewt_module.HISTORY))
        self._bridged: dict[str, tuple[str, float]] = {}  # agent-first callbacks: queue, since
        self._exits_due: list[str] = []  # callers of queues that emptied (leave_when_empty)
        self._cause = ""

    @classmethod
    def from_config(
        cls, tenant: Tenant, *, store: AcdStore | None = None, rng: random.Random | None = None
    ) -> Acd:
        """The ACD of one configured tenant, with its agents (logged out)."""
        acd = cls(
            [QueueRules.from_config(name, queue, tenant) for name, queue in tenant.queues.items()],
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

    def agent(self, agent_id: str) -> AgentRecord:
        record = self.store.get("agent", agent_id)
        if record is None:
            raise AcdError(f"no agent {agent_id!r} in this ACD")
        return record

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
        """The agent is on a call the ACD did not give them (a direct or outbound call)."""
        out = self._advance(now, f"agent {agent_id} busy")
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
        seed = Entry(caller, queue, now, now, next(self._seq), priority, (), 0.0, number,
                     asked=asked)  # fmt: skip
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
            agent, "answer", now, "answered", reservation="", call_queue=queue,
            call_started=now, missed=0,
            calls=_map({**agent.calls, queue: agent.calls.get(queue, 0) + 1}),
        )  # fmt: skip
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
            CallerAnswered(caller, queue, agent_id, now - entry.enqueued_at, callback is not None,
                           now)
        )  # fmt: skip
        if callback is not None and callback.mode == "agent-first":
            self._bridged[caller] = (queue, entry.enqueued_at)
            self._events.append(CallbackDialled(caller, queue, callback.number, agent_id, now))
            out.append(
                DialCallback(res.id, caller, queue, callback.number, agent_id, "agent-first",
                             self.queues[queue].callback_dial_timeout)
            )  # fmt: skip
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
            agent, "hangup", now, talk=talked, wrapup_until=now + wrapup,
            wrapup_cap=now + max(rules.wrapup_max if rules else 0.0, wrapup),
        )  # fmt: skip
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
            live = entry._replace(status="waiting", reservation="", callback=None,
                           version=entry.version + 1)  # fmt: skip
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

    def _at(self, when: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (when, next(self._ticks), kind, key))

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

    # ------------------------------------------------------------------
    # Routing

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
        while callers or agents:
            found = pick(index, get, now, callers, agents)
            if found is None:
                break
            out += self._offer(found.entry, found.agents, now, f"{self._cause}; {found.why}")
            callers.discard(found.entry.id)
            # A conflict (another node was first) touches records to route again.
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
            f"r{next(self._ids)}", entry.id, entry.queue, tuple(a.id for a in chosen), now,
            now + timeout, "callback" if callback else "offer",
            "dialling" if dialling else "ringing", version=1,
        )  # fmt: skip
        explanation = explain(self.index, self.store.get, entry, chosen, ranked, now, trigger,
                              self.queues)  # fmt: skip
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
                DialCallback(res.id, entry.id, entry.queue, callback.number, agent_id,
                             "customer-first", rules.callback_dial_timeout)
            ]  # fmt: skip
        return [self._offer_command(res, callback is not None)]

    def _offer_command(self, res: Reservation, callback: bool) -> Offer:
        devices = tuple(
            (agent_id, tuple(sorted(self.agent(agent_id).devices))) for agent_id in res.agents
        )
        return Offer(res.id, res.entry, res.queue, res.agents, devices, res.expires_at, callback)

    # ------------------------------------------------------------------
    # Changes

    def _apply(self, changes: list[tuple[str, Any, Any]]) -> None:
        """Commit (kind, old, new) changes together, then update the index.

        `old` is the record the change was computed from (None: derived from
        the version before new's, or a new record when new.version is 1);
        `new` None deletes `old`.
        """
        writes = []
        pairs = []
        get = self.store.get
        for kind, old, new in changes:
            key = _key(kind, new if new is not None else old)
            if old is not None:
                expected = old.version
                before = old  # what the commit checks is stored, if it succeeds
            else:
                expected = new.version - 1
                before = get(kind, key)
            writes.append(Write(kind, key, expected, new))  # type: ignore[arg-type]
            pairs.append((kind, before, new))
        self.store.commit(writes)
        for kind, old, new in pairs:
            if kind == "agent":
                self.index.agent_changed(old, new)
            elif kind == "entry":
                self.index.entry_changed(old, new)

    def _put_agent(self, agent: AgentRecord) -> None:
        self._apply([("agent", None, agent)])

    def _transition(
        self, agent: AgentRecord, action: str, now: float, reason: str = "", **fields: Any
    ) -> AgentRecord:
        """Apply one transition of the table, then what follows from it: presence
        (no device: not ready), and a staffing agent leaving (sticky, leave_when_empty)."""
        was_staffed = agent.status in STAFFED
        agent, event = transition(agent, action, now, reason, **fields)
        self._events.append(event)
        self._put_agent(agent)
        agent = self._presence(agent, now)
        if was_staffed and agent.status not in STAFFED:
            self._unstaffed(agent, now)
        return agent

    def _presence(self, agent: AgentRecord, now: float) -> AgentRecord:
        """Reachable iff a device is live: disconnect or reconnect to match."""
        disconnected = agent.status == "not-ready" and agent.reason == "disconnected"
        if not agent.devices and agent.status in ("available", "wrap-up", "not-ready"):
            if not disconnected:
                if agent.status == "wrap-up":
                    self._record_handle(agent, now)
                return self._transition(agent, "disconnect", now)
        elif agent.devices and disconnected:
            return self._transition(agent, "reconnect", now)
        return agent

    def _unstaffed(self, agent: AgentRecord, now: float) -> None:
        """The agent stopped taking calls: callers kept for them stop waiting for them,
        and callers of queues left with nobody to take them go (leave_when_empty)."""
        for caller in list(self.index.kept.get(agent.id, ())):
            entry = self._entry(caller)
            self._apply([("entry", entry, entry._replace(sticky="", version=entry.version + 1))])
            self.index.touched_callers.add(caller)
        for queue in agent.queues:
            if self.queues[queue].leave_when_empty:
                self._exits_due.extend(item[2] for item in self.index.waiting[queue])

    def _staffed_for(self, queue: str, sig: Sig) -> bool:
        """Some logged-in agent, ready or busy, may take such a caller (after any wait)."""
        get = self.store.get
        for agent_id in self.index.members[queue]:
            agent = get("agent", agent_id)
            if agent.status in STAFFED and self.index.need(agent, queue, sig) < NEVER:
                return True
        return False

    def _end_wrapup(self, agent: AgentRecord, now: float) -> None:
        self._record_handle(agent, now)
        self._transition(agent, "wrapup-end", now)

    def _record_handle(self, agent: AgentRecord, now: float) -> None:
        if agent.call_queue in self.queues:
            self._handle[agent.call_queue].append(now - agent.call_started)

    # ------------------------------------------------------------------
    # Callers: placing, exits, offers ending

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
        reason: ExitReason | None = None
        if rules.calendar is not None and not rules.calendar.is_open(now):
            reason = "closed"
        elif rules.max_len and self.index.count[queue] >= rules.max_len:
            reason = "full"
        elif not rules.join_empty and not self._staffed_for(queue, sig):
            reason = "empty"
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
        entry = seed._replace(queue=queue, joined_at=now, priority=priority, skills=sig,
            key=rank_key(seed.enqueued_at, priority, rules), status="waiting", reservation="",
            sticky=sticky, sticky_until=until, skip=(), ewt=None,
            version=existing.version + 1 if existing is not None else 1,
        )  # fmt: skip
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
            CallerJoined(entry.id, queue, priority, sig, self.index.position(entry), ewt, sticky,
                         now)
        )  # fmt: skip
        if rules.announce_every and entry.callback is None:
            out += self._announce(entry, now, ewt)
            self._at(now + rules.announce_every, "announce", entry.id)
        elif rules.callback_offer_ewt and entry.callback is None:
            out += self._announce(entry, now, ewt, say=False)
        return out

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
            return moved + self._place(entry._replace(hops=entry.hops + 1), target.queue, now,
                                       existing)  # fmt: skip
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
            waiting = entry._replace(status="waiting", reservation="", skip=skip,
                              callback=callback, version=entry.version + 1)  # fmt: skip
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

    # ------------------------------------------------------------------

    def _entry(self, caller: str) -> Entry:
        entry = self.store.get("entry", caller)
        if entry is None:
            raise AcdError(f"no caller {caller!r} is waiting")
        return entry

    def _names(self) -> str:
        return ", ".join(sorted(self.queues)) or "none"
