"""Helpers for the ACD tests: build an Acd, log agents in, read commands."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from switch.apps.acd import Acd, QueueRules, TenantRules
from switch.apps.acd.events import Command, Offer


def make(
    queues: QueueRules | Iterable[QueueRules],
    agents: Mapping[str, Mapping],
    *,
    tenant: TenantRules | None = None,
    seed: int = 1,
    login: bool = True,
) -> Acd:
    """An Acd with `agents` ({id: {"queues": {q: tier}, "skills": {...}, "weight": n}}),
    added in order (their linear position) and logged in at t=0, each with one device."""
    if isinstance(queues, QueueRules):
        queues = [queues]
    acd = Acd(list(queues), tenant, rng=random.Random(seed))
    for position, (agent, spec) in enumerate(agents.items()):
        acd.add_agent(
            agent,
            queues=spec.get("queues", {q.name: 1 for q in acd.queues.values()}),
            skills=spec.get("skills"),
            weight=spec.get("weight", 1),
            position=position,
        )
    if login:
        for agent in agents:
            acd.login(agent, 0.0, devices=[f"{agent}-phone"])
    acd.take_events()
    return acd


def offers(commands: Iterable[Command]) -> list[tuple[str, tuple[str, ...]]]:
    """(caller, agents) of each Offer, in order."""
    return [(c.caller, c.agents) for c in commands if isinstance(c, Offer)]


def of_type(items: Iterable, kind: type) -> list:
    return [item for item in items if isinstance(item, kind)]


def serve(acd: Acd, agent: str, now: float) -> list[Command]:
    """The agent answers what they are offered (their reservation) at `now`."""
    res = acd.reservation(acd.agent(agent).reservation)
    assert res is not None, f"{agent} has no offer"
    return acd.answered(res.entry, agent, now)
