"""Which of the agents who may take a caller is offered it.

Tiers come first: only the lowest tier among the eligible agents is
considered (a higher tier is eligible only once the caller has waited for
it, see rules.need). Within that tier, the queue's strategy orders them:

- longest-idle (default): the agent available the longest (idle_since).
- round-robin: the next agent after the one this queue offered last, in
  linear order (the queue remembers it: QueueMemory.rr_last), wrapping round.
- fewest-calls: fewest answered calls from this queue, then longest idle.
- least-talk-time: least talk time in this queue, then longest idle.
- linear: a fixed order, the agents' order in the config (position).
- random: uniformly, with the random.Random the Acd was given (seed it in tests).
- weighted-random: in proportion to the agents' weight.
- ringall: every agent of the tier is rung at once; the first to answer wins.

Ties fall to position, then agent id, so every order is total.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from switch.config import Strategy

from .model import AgentRecord, QueueMemory

__all__ = ["STRATEGIES", "choose", "figure"]

STRATEGIES: tuple[Strategy, ...] = (
    "ringall",
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "random",
    "linear",
    "weighted-random",
)


def _linear(agent: AgentRecord) -> tuple[int, str]:
    return (agent.position, agent.id)


def choose(
    strategy: Strategy,
    queue: str,
    candidates: Sequence[AgentRecord],
    memory: QueueMemory | None,
    rng: random.Random,
) -> tuple[list[AgentRecord], list[AgentRecord]]:
    """(the agents to offer the caller to, every candidate in the order considered).

    `candidates` are the agents who may take the caller now (rules.need).
    """
    if not candidates:
        return [], []
    tier = min(agent.queues[queue] for agent in candidates)
    pool = sorted((a for a in candidates if a.queues[queue] == tier), key=_linear)
    rest = sorted((a for a in candidates if a.queues[queue] != tier), key=_linear)
    if strategy == "ringall":
        return pool, pool + rest
    if strategy == "longest-idle":
        pool.sort(key=lambda a: a.idle_since)
    elif strategy == "round-robin":
        last = memory.rr_last if memory is not None else None
        if last is not None:
            # Agents after the last one offered first, then round to the start.
            pool.sort(key=lambda a: _linear(a) <= last)
    elif strategy == "fewest-calls":
        pool.sort(key=lambda a: (a.calls.get(queue, 0), a.idle_since))
    elif strategy == "least-talk-time":
        pool.sort(key=lambda a: (a.talk.get(queue, 0.0), a.idle_since))
    elif strategy == "random":
        pool.insert(0, pool.pop(rng.randrange(len(pool))))
    elif strategy == "weighted-random":
        total = sum(a.weight for a in pool)
        point = rng.random() * total
        index = 0
        while index < len(pool) - 1 and point >= pool[index].weight:
            point -= pool[index].weight
            index += 1
        pool.insert(0, pool.pop(index))
    elif strategy != "linear":
        raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    return pool[:1], pool + rest


def figure(strategy: Strategy, queue: str, agent: AgentRecord, now: float) -> str:
    """The figure `strategy` ordered `agent` by, in words (for explanations)."""
    tier = f"tier {agent.queues.get(queue, '-')}"
    if strategy == "longest-idle":
        return f"{tier}, idle {now - agent.idle_since:.0f} s"
    if strategy == "fewest-calls":
        return f"{tier}, {agent.calls.get(queue, 0)} calls, idle {now - agent.idle_since:.0f} s"
    if strategy == "least-talk-time":
        return f"{tier}, talked {agent.talk.get(queue, 0.0):.0f} s"
    if strategy in ("round-robin", "linear"):
        return f"{tier}, position {agent.position}"
    if strategy == "weighted-random":
        return f"{tier}, weight {agent.weight}"
    return tier
