"""A discrete-event simulation of a call center around one Acd, with a virtual clock.

Callers arrive at random (Poisson), wait with a random patience, may take a
callback when one is offered; agents answer offers after a few seconds (or
let a few ring out, or decline), talk for a random time, wrap up, take
breaks and lose their browser now and then. Every random draw comes from one
seeded random.Random, so a run is repeatable.

The simulation checks its invariants as it goes (Violations) with its own
bookkeeping and brute force over the records, not with the engine's indexes:

- no caller is offered to two agents at once, no agent is offered two callers;
- no available agent stays idle while a waiting caller they may take has
  waited longer than the ring timeout (checked after every input: the
  engine in fact never leaves such a pair at all);
- each offer goes to the best-ranked caller the agent may take (which is
  FIFO among callers of equal priority in a queue);
- every call ends answered, abandoned, sent out by an exit, or called back.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from switch.apps.acd import Acd, QueueRules
from switch.apps.acd.events import (
    CallbackEnded,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    DialCallback,
    Moved,
    NotifyAgent,
    Offer,
    OfferCallback,
    SendTo,
    StopOffer,
)
from switch.apps.acd.model import Entry
from switch.apps.acd.rules import why_not
from switch.config import ExitTarget

SKILLS = ("english", "spanish", "french")


@dataclass
class Report:
    calls: int = 0
    outcomes: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    offers: int = 0
    decisions: int = 0
    inputs: int = 0
    waits: list[float] = field(default_factory=list)  # join -> answered, answered callers
    ewt_errors: list[float] = field(default_factory=list)  # |EWT at join - real wait|
    ewt_waits: list[float] = field(default_factory=list)  # real waits of those callers
    sim_seconds: float = 0.0
    fifo_checked: int = 0
    idle_checked: int = 0

    @property
    def mean_wait(self) -> float:
        return sum(self.ewt_waits) / len(self.ewt_waits) if self.ewt_waits else 0.0

    @property
    def ewt_mae(self) -> float:
        return sum(self.ewt_errors) / len(self.ewt_errors) if self.ewt_errors else 0.0


class Simulation:
    def __init__(
        self,
        seed: int = 7,
        calls: int = 10_000,
        agents: int = 50,
        rate: float = 0.235,  # arrivals per second
        mean_talk: float = 180.0,
        patience: float = 420.0,  # mean seconds a caller waits before hanging up
        check_every: int = 1,
    ) -> None:
        self.rng = random.Random(seed)
        self.calls = calls
        self.rate = rate
        self.mean_talk = mean_talk
        self.patience = patience
        self.check_every = check_every
        queues = [
            QueueRules(
                "support", strategy="longest-idle", ring_timeout=15, wrapup=10,
                tier_waits=(45.0,), relax=((90.0, 10),), max_wait=120.0,
                exits={"max_wait": ExitTarget(voicemail="support")},
            ),
            QueueRules(
                "sales", strategy="fewest-calls", ring_timeout=15, wrapup=15, weight=1,
                callback_mode="agent-first", callback_offer_ewt=60.0,
            ),
            QueueRules(
                "billing", strategy="round-robin", ring_timeout=15, wrapup=20,
                max_wait=90.0, exits={"max_wait": ExitTarget(queue="support")},
                callback_mode="customer-first", callback_offer_ewt=60.0,
            ),
        ]  # fmt: skip
        self.acd = Acd(queues, rng=random.Random(seed + 1))
        self.rules = {q.name: q for q in queues}
        for i in range(agents):
            member = {"support": 1 if i % 3 else 2}
            if i % 2 == 0:
                member["sales"] = 1
            if i % 5 in (0, 1):
                member["billing"] = 1
            skills = {"english": self.rng.randint(4, 10)}
            if i % 4 == 0:
                skills["spanish"] = self.rng.randint(3, 10)
            self.acd.add_agent(f"a{i:02d}", queues=member, skills=skills, position=i)
        self.agents = [f"a{i:02d}" for i in range(agents)]
        self.now = 0.0
        self.events: list[tuple[float, int, str, tuple]] = []
        self.order = itertools.count()
        self.report = Report(calls=calls)
        # The simulation's own books, to check the engine against.
        self.offered: dict[str, tuple[str, tuple[str, ...]]] = {}  # reservation -> caller, agents
        self.ringing_agent: dict[str, str] = {}  # agent -> reservation
        self.ringing_caller: dict[str, str] = {}  # caller -> reservation
        self.on_call: set[str] = set()
        self.joined_at: dict[str, float] = {}
        self.ewt: dict[str, float] = {}
        self.final: dict[str, str] = {}
        self.callback_mode: dict[str, str] = {}
        self.dialling: dict[str, str] = {}  # agent -> caller: held while a customer is dialled

    # ------------------------------------------------------------------

    def at(self, when: float, kind: str, *args) -> None:
        heapq.heappush(self.events, (when, next(self.order), kind, args))

    def run(self) -> Report:
        t = 0.0
        for i in range(self.calls):
            t += self.rng.expovariate(self.rate)
            self.at(t, "arrive", f"c{i:05d}")
        self.last_arrival = t
        for agent in self.agents:
            self.at(self.rng.uniform(0, 5), "login", agent)
        step = 0
        while True:
            deadline = self.acd.next_deadline()
            if self.events and (deadline is None or self.events[0][0] <= deadline):
                when, _, kind, args = heapq.heappop(self.events)
                self.now = max(self.now, when)
                commands = getattr(self, f"_{kind}")(*args)
            elif deadline is not None:
                self.now = max(self.now, deadline)
                commands = self.acd.handle_timer(self.now)
            else:
                break
            self.report.inputs += 1
            self.handle(commands or [])
            step += 1
            if step % self.check_every == 0:
                self.check_idle()
        self.finish()
        return self.report

    # ------------------------------------------------------------------
    # Inputs

    def _arrive(self, caller: str) -> list:
        queue = self.rng.choices(["support", "sales", "billing"], [5, 3, 2])[0]
        skills = {}
        if queue == "support":
            skills = {"spanish": 6} if self.rng.random() < 0.15 else {"english": 5}
        priority = 5 if self.rng.random() < 0.05 else 0
        number = f"+1555{self.rng.randint(0, 3000):07d}"
        self.joined_at[caller] = self.now
        commands = self.acd.join(
            caller, queue, self.now, number=number, priority=priority, skills=skills
        )
        entry = self.acd.entry(caller)
        if entry is not None and entry.status == "waiting":
            # What an announcement would tell this caller (callers rung at once hear none).
            estimate = (
                entry.ewt if entry.ewt is not None else self.acd.estimate_wait(caller, self.now)
            )
            if estimate is not None:
                self.ewt[caller] = estimate
        self.at(self.now + self.rng.expovariate(1 / self.patience), "patience", caller)
        return commands

    def _patience(self, caller: str) -> list:
        entry = self.acd.entry(caller)
        if entry is None or entry.callback is not None:
            return []
        self.ringing_caller.pop(caller, None)
        return self.acd.hangup(caller, self.now)

    def _login(self, agent: str) -> list:
        commands = self.acd.login(agent, self.now, devices=[f"{agent}-browser"])
        self.at(self.now + self.rng.uniform(1800, 5400), "break", agent)
        self.at(self.now + self.rng.uniform(600, 20000), "flap", agent)
        return commands

    def _break(self, agent: str) -> list:
        if self.now > self.last_arrival:
            return []
        record = self.acd.agent(agent)
        if record.status in ("available", "wrap-up"):
            commands = self.acd.set_not_ready(agent, "break", self.now)
            self.at(self.now + self.rng.uniform(120, 600), "back", agent)
            return commands
        self.at(self.now + 30, "break", agent)
        return []

    def _back(self, agent: str) -> list:
        record = self.acd.agent(agent)
        if record.status == "not-ready" and record.reason == "disconnected":
            self.at(self.now + 10, "back", agent)
            return []
        commands = self.acd.set_ready(agent, self.now) if record.status == "not-ready" else []
        self.at(self.now + self.rng.uniform(1800, 5400), "break", agent)
        return commands

    def _flap(self, agent: str) -> list:
        """The agent's browser drops for a few seconds (presence)."""
        if self.now > self.last_arrival or agent in self.on_call:
            return []
        commands = self.acd.device_down(agent, f"{agent}-browser", self.now)
        self.ringing_agent.pop(agent, None)
        self.at(self.now + self.rng.uniform(2, 20), "unflap", agent)
        return commands

    def _unflap(self, agent: str) -> list:
        self.at(self.now + self.rng.uniform(3000, 20000), "flap", agent)
        return self.acd.device_up(agent, f"{agent}-browser", self.now)

    def _answer(self, res_id: str, agent: str) -> list:
        if self.ringing_agent.get(agent) != res_id:
            return []
        caller, _ = self.offered[res_id]
        commands = self.acd.answered(caller, agent, self.now)
        self._offer_over(res_id)
        self.on_call.add(agent)
        talk = self.rng.lognormvariate(math.log(self.mean_talk) - 0.32, 0.8)
        self.at(self.now + talk, "hang", agent)
        return commands

    def _decline(self, res_id: str, agent: str) -> list:
        if self.ringing_agent.get(agent) != res_id:
            return []
        caller, _ = self.offered[res_id]
        self._offer_over(res_id)
        return self.acd.declined(caller, agent, self.now)

    def _hang(self, agent: str) -> list:
        self.on_call.discard(agent)
        return self.acd.call_ended(agent, self.now)

    def _customer(self, caller: str, answered: bool) -> list:
        return self.acd.callback_result(caller, answered, self.now)

    def _recover(self, agent: str) -> list:
        record = self.acd.agent(agent)
        if record.status == "not-ready" and record.reason == "missed calls":
            return self.acd.set_ready(agent, self.now)
        return []

    # ------------------------------------------------------------------
    # Commands

    def _offer_over(self, res_id: str) -> None:
        caller, agents = self.offered.pop(res_id, (None, ()))
        for agent in agents:
            if self.ringing_agent.get(agent) == res_id:
                del self.ringing_agent[agent]
        if caller is not None and self.ringing_caller.get(caller) == res_id:
            del self.ringing_caller[caller]

    def handle(self, commands: list) -> None:
        for command in commands:
            if isinstance(command, Offer):
                for agent in command.agents:
                    if self.dialling.get(agent) == command.caller:
                        del self.dialling[agent]  # the customer answered: now it rings
                self.report.offers += 1
                self.check_offer(command)
                self.offered[command.reservation] = (command.caller, command.agents)
                self.ringing_caller[command.caller] = command.reservation
                for agent in command.agents:
                    self.ringing_agent[agent] = command.reservation
                    draw = self.rng.random()
                    if draw < 0.02:
                        continue  # rings out
                    delay = self.rng.uniform(1, 6)
                    kind = "decline" if draw < 0.03 else "answer"
                    self.at(self.now + delay, kind, command.reservation, agent)
            elif isinstance(command, StopOffer):
                for agent in command.agents:
                    if self.dialling.get(agent) == command.caller:
                        del self.dialling[agent]
                caller, agents = self.offered.get(command.reservation, (None, ()))
                rest = tuple(a for a in agents if a not in command.agents)
                for agent in command.agents:
                    if self.ringing_agent.get(agent) == command.reservation:
                        del self.ringing_agent[agent]
                if rest:
                    self.offered[command.reservation] = (caller, rest)
                else:
                    self._offer_over(command.reservation)
            elif isinstance(command, OfferCallback):
                if self.rng.random() < 0.5:
                    self.handle(self.acd.request_callback(command.caller, self.now))
            elif isinstance(command, DialCallback):
                if command.mode == "customer-first":  # the agent is held, not rung
                    self.check_double(command.caller, (command.agent,), self.now)
                    self.check_rank(command.caller, command.agent, self.now)
                    self.dialling[command.agent] = command.caller
                answered = self.rng.random() < 0.9
                self.at(self.now + self.rng.uniform(5, 20), "customer", command.caller, answered)
            elif isinstance(command, NotifyAgent):
                self.at(self.now + 60, "recover", command.agent)
            elif isinstance(command, SendTo | Moved):
                pass  # outcomes are read from the events
        for event in self.acd.take_events():
            self.record(event)

    def record(self, event) -> None:
        outcome = None
        if isinstance(event, CallbackRequested):
            self.callback_mode[event.caller] = event.mode
        elif isinstance(event, CallerAnswered):
            # agent-first: the agent answers, then the customer is dialled
            # (CallbackEnded ends it); customer-first: the other way round.
            if not event.callback:
                outcome = "answered"
            elif self.callback_mode[event.caller] == "customer-first":
                outcome = "called back"
            if not event.callback:
                wait = event.at - self.joined_at[event.caller]
                self.report.waits.append(wait)
                if event.caller in self.ewt:
                    self.report.ewt_errors.append(abs(self.ewt[event.caller] - wait))
                    self.report.ewt_waits.append(wait)
        elif isinstance(event, CallerAbandoned):
            outcome = "abandoned"
        elif isinstance(event, CallerExited):
            outcome = "sent out"
        elif isinstance(event, CallbackEnded):
            if not event.answered:
                outcome = "callback unanswered"
            elif self.callback_mode[event.caller] == "agent-first":
                outcome = "called back"
        if outcome is not None:
            if event.caller in self.final:
                self.report.violations.append(
                    f"{event.caller}: ended twice ({self.final[event.caller]}, then {outcome})"
                )
            self.final[event.caller] = outcome
            self.report.outcomes[outcome] += 1

    # ------------------------------------------------------------------
    # Invariants

    def check_offer(self, offer: Offer) -> None:
        now = self.acd.reservation(offer.reservation).at
        if now < self.now:
            # A customer-first callback ringing its agent once the customer
            # answered: the decision was checked when it was dialled.
            return
        self.check_double(offer.caller, offer.agents, now)
        self.check_rank(offer.caller, offer.agents[0], now)

    def check_double(self, caller: str, agents: tuple[str, ...], now: float) -> None:
        if caller in self.ringing_caller:
            self.report.violations.append(
                f"t={now:.1f}: caller {caller} offered to {agents} while its offer "
                f"{self.ringing_caller[caller]} rings"
            )
        for agent in agents:
            if agent in self.dialling:
                self.report.violations.append(
                    f"t={now:.1f}: agent {agent} offered {caller} while held for the callback "
                    f"of {self.dialling[agent]}"
                )
            if agent in self.ringing_agent:
                self.report.violations.append(
                    f"t={now:.1f}: agent {agent} offered {caller} while ringing for "
                    f"{self.ringing_agent[agent]}"
                )
            if agent in self.on_call:
                self.report.violations.append(f"t={now:.1f}: agent {agent} offered while on a call")

    def check_rank(self, caller: str, agent_id: str, now: float) -> None:
        """The caller offered is the best-ranked one the agent may take (brute force)."""
        chosen = self.acd.entry(caller)
        agent = self.acd.agent(agent_id)
        kept = chosen.sticky == agent.id and now < chosen.sticky_until
        for entry in self._entries():
            if entry.id == chosen.id or entry.status != "waiting" or entry.joined_at > now:
                continue
            if entry.queue not in agent.queues or entry.rank >= chosen.rank or kept:
                continue
            # Its state as at the decision: an agent it let ring out since then doesn't count.
            if why_not(entry, agent, self.rules[entry.queue], now) is None:
                same = entry.queue == chosen.queue and entry.priority == chosen.priority
                self.report.violations.append(
                    f"t={now:.1f}: {agent.id} offered {chosen.id} but {entry.id} ranks ahead "
                    f"and may take it{' (FIFO broken)' if same else ''}"
                )
        self.report.fifo_checked += 1

    def _entries(self) -> list[Entry]:
        return list(self.acd.store.all("entry"))

    def check_idle(self) -> None:
        free = [a for a in self.acd.store.all("agent") if a.status == "available"]
        if not free:
            return
        for entry in self._entries():
            if entry.status != "waiting":
                continue
            rules = self.rules[entry.queue]
            for agent in free:
                if entry.queue in agent.queues and why_not(entry, agent, rules, self.now) is None:
                    waited = self.now - entry.enqueued_at
                    late = " longer than the ring timeout" if waited > rules.ring_timeout else ""
                    self.report.violations.append(
                        f"t={self.now:.1f}: {agent.id} idle while {entry.id} waits{late} "
                        f"({waited:.0f} s) and it may take it"
                    )
            self.report.idle_checked += 1

    def finish(self) -> None:
        self.report.sim_seconds = self.now
        self.report.decisions = self.acd.decisions
        left = self._entries()
        if left:
            self.report.violations.append(f"callers left in queues: {[e.id for e in left][:10]}")
        if self.acd.store.all("reservation"):
            self.report.violations.append("reservations left at the end")
        missing = [f"c{i:05d}" for i in range(self.calls) if f"c{i:05d}" not in self.final]
        if missing:
            self.report.violations.append(f"{len(missing)} calls never ended: {missing[:10]}")
        by_state = defaultdict(int)
        for agent in self.agents:
            by_state[self.acd.agent(agent).status] += 1
        if by_state.get("reserved") or by_state.get("on-call"):
            self.report.violations.append(f"agents stuck at the end: {dict(by_state)}")
