"""Why a routing decision chose its pair: the callers and agents it looked at.

Every decision carries one (events.Decided). It keeps the records the
decision saw (they are frozen, so keeping them is keeping the snapshot) and
spells out the verdicts only when asked: a decision among thousands of
callers costs a few references, and `text()` is for the debug log.

Callers listed: the chosen one, those ranked ahead of it in the chosen
agent's queues (up to LIMIT; each with the reason the agent could not take
them), and the next few ranked behind. Agents listed: the eligible ones in
the order the strategy put them, then available members of the queue who
could not take the caller, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from .model import AgentRecord, Entry
from .rules import QueueRules, why_not
from .strategies import figure

__all__ = ["LIMIT", "AgentLook", "CallerLook", "Explanation"]

LIMIT = 16


@dataclass(frozen=True, slots=True)
class CallerLook:
    caller: str
    queue: str
    priority: int
    waited: float
    key: float  # rank key: lower is offered first
    verdict: str  # "chosen", or why not


@dataclass(frozen=True, slots=True)
class AgentLook:
    agent: str
    figure: str  # what the strategy ordered by (tier, idle time, calls, ...)
    verdict: str  # "chosen", or why not


@dataclass(frozen=True, repr=False)
class Explanation:
    trigger: str  # what caused the decision: an agent freed, a caller joined, a wait passed
    entry: Entry  # the caller offered
    chosen: tuple[AgentRecord, ...]  # the agents offered it
    ranked: tuple[AgentRecord, ...]  # every eligible agent, in the order considered
    others: tuple[AgentRecord, ...]  # available members of the queue who could not take it
    ahead: tuple[Entry, ...]  # waiting callers ranked ahead, in the chosen agent's queues
    behind: tuple[Entry, ...]  # the next callers ranked behind, in the caller's queue
    more_ahead: int  # callers ranked ahead beyond those listed
    now: float
    queues: Mapping[str, QueueRules]

    def __repr__(self) -> str:
        return (
            f"<Explanation {self.trigger!r}: caller {self.caller} ({self.queue}) -> "
            f"{', '.join(self.agents)}>"
        )

    @property
    def caller(self) -> str:
        return self.entry.id

    @property
    def queue(self) -> str:
        return self.entry.queue

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(agent.id for agent in self.chosen)

    @property
    def rule(self) -> str:
        rules = self.queues[self.entry.queue]
        return (
            "callers by rank = enqueued - priority_step x (priority + queue weight), "
            f"then arrival; agents by tier, then {rules.strategy}"
        )

    def _look(self, entry: Entry, verdict: str) -> CallerLook:
        return CallerLook(
            entry.id,
            entry.queue,
            entry.priority,
            self.now - entry.enqueued_at,
            entry.key,
            verdict,
        )

    @cached_property
    def callers(self) -> tuple[CallerLook, ...]:
        agent = self.chosen[0]
        looks = [self._look(self.entry, "chosen")]
        kept = self.entry.sticky == agent.id and self.now < self.entry.sticky_until
        for entry in self.ahead:
            reason = why_not(entry, agent, self.queues[entry.queue], self.now)
            if reason is None:
                reason = (
                    f"ranks ahead, but the chosen caller was kept for {agent.id} (sticky agent)"
                    if kept
                    else "may take: ranks ahead (a routing error if you see this)"
                )
            looks.append(self._look(entry, f"not offered to {agent.id}: {reason}"))
        for entry in self.behind:
            looks.append(self._look(entry, "ranks behind"))
        return tuple(looks)

    @cached_property
    def agents_considered(self) -> tuple[AgentLook, ...]:
        rules = self.queues[self.entry.queue]
        chosen = {agent.id for agent in self.chosen}
        tier = min((a.queues.get(rules.name, 9) for a in self.ranked), default=1)
        looks = []
        for agent in self.ranked[:LIMIT]:
            if agent.id in chosen:
                verdict = "chosen"
            elif agent.queues.get(rules.name, 9) > tier:
                verdict = f"a lower tier ({tier}) had an agent"
            else:
                verdict = f"after the chosen one in {rules.strategy} order"
            looks.append(
                AgentLook(agent.id, figure(rules.strategy, rules.name, agent, self.now), verdict)
            )
        for agent in self.others[: max(0, LIMIT - len(looks))]:
            reason = why_not(self.entry, agent, rules, self.now) or "not available"
            looks.append(
                AgentLook(
                    agent.id,
                    figure(rules.strategy, rules.name, agent, self.now),
                    f"may not take this caller: {reason}",
                )
            )
        return tuple(looks)

    def text(self) -> str:
        """The decision as a few lines of text, for a debug log."""
        lines = [
            f"{self.trigger}: caller {self.caller} ({self.queue}) -> {', '.join(self.agents)}",
            f"  order: {self.rule}",
        ]
        for look in self.callers:
            lines.append(
                f"  caller {look.caller} ({look.queue}, priority {look.priority}, "
                f"waited {look.waited:.0f} s, rank {look.key:.1f}): {look.verdict}"
            )
        if self.more_ahead:
            lines.append(f"  ... and {self.more_ahead} more callers ranked ahead")
        for look in self.agents_considered:
            lines.append(f"  agent {look.agent} ({look.figure}): {look.verdict}")
        return "\n".join(lines)
