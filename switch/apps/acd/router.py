"""Routing decisions: pure functions of the records, the index and the time.

Nothing here writes. `pick` finds the next pair to offer among the callers
and agents an input touched; the engine commits it (store.py) and asks
again until nothing is left. The order it applies is the package's:

1. A caller may be offered to an agent when the agent is available, a
   member of the caller's queue, has waited out their tier's wait (tier 1:
   none) and has the skill levels the caller still requires after
   relaxation; not while the caller is kept for a sticky agent (to anyone
   else), nor to an agent who let this caller's offer ring out within the
   ring timeout.
2. Among the pairs that may be made, the caller ranked first wins: lowest
   rank key (enqueued_at - priority_step x (priority + queue weight)), then
   earliest arrival (seq). For one agent, callers kept for them as their
   sticky agent come before the others.
3. The caller's queue's strategy picks among the agents who may take it
   (strategies.py), lowest tier first.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .explain import LIMIT, Explanation
from .index import Index
from .model import AgentRecord, Entry
from .rules import EPSILON, QueueRules, need

__all__ = ["Pick", "best_caller", "eligible_agents", "explain", "pick"]

Get = Callable[[str, str], Any]
# Callers looked at one by one, in rank order, before best_caller turns to group heads.
SCAN = 32


@dataclass(frozen=True, slots=True)
class Pick:
    entry: Entry
    agents: list[AgentRecord]  # every agent who may take it now (the strategy chooses)
    why: str  # "caller X waiting" or "agent Y available"


def eligible_agents(index: Index, get: Get, entry: Entry, now: float) -> list[AgentRecord]:
    """Available agents who may take `entry` now."""
    rules = index.queues[entry.queue]
    wait = now - entry.enqueued_at + EPSILON
    kept = entry.sticky if entry.sticky and now < entry.sticky_until else ""
    found = []
    for agent_id in index.free[entry.queue]:
        if kept and agent_id != kept:
            continue
        agent = get("agent", agent_id)
        if agent.status != "available":  # the index lags a write by another node
            continue
        if kept:  # a sticky agent is reached whatever their tier
            opens = need(agent, rules, entry.skills, tiers=False)
        else:
            opens = index.need(agent, entry.queue, entry.skills)
        if wait >= opens and not (entry.skip and entry.skips(agent_id, now)):
            found.append(agent)
    return found


def best_caller(index: Index, get: Get, agent: AgentRecord, now: float) -> Entry | None:
    """The caller `agent` is offered next: one kept for them first, else the best-ranked
    waiting caller of their queues they may take now."""
    kept = None
    for caller in index.kept.get(agent.id, ()):
        entry = get("entry", caller)
        if (
            entry.status == "waiting"
            and now < entry.sticky_until
            and now - entry.enqueued_at + EPSILON
            >= need(agent, index.queues[entry.queue], entry.skills, tiers=False)
            and not entry.skips(agent.id, now)
            and (kept is None or entry.rank < kept.rank)
        ):
            kept = entry
    if kept is not None:
        return kept
    special = index.special
    best: tuple[float, int, str] | None = None

    def blocked(caller: str) -> bool:
        entry = get("entry", caller)
        if entry.sticky and now < entry.sticky_until and entry.sticky != agent.id:
            return True
        return entry.skips(agent.id, now)

    for queue in agent.queues:
        groups = index.groups_of(agent, queue)
        needs = index.group_needs[agent.id]
        waiting = index.waiting[queue]
        # Most of the time a caller near the front will do: look at the first
        # few in rank order. Past them, look at the head of each group this
        # agent may take instead of at every caller (skills mode: most callers
        # may be for someone else), so that the worst case stays short.
        for key, seq, caller, group, enqueued_at in waiting[:SCAN]:
            if best is not None and (key, seq) >= best[:2]:
                break
            if now - enqueued_at + EPSILON < needs[group]:
                continue
            if caller in special and blocked(caller):
                continue
            best = (key, seq, caller)
            break
        else:
            if len(waiting) <= SCAN:
                continue
            for group, opens in groups:
                for key, seq, caller, _, enqueued_at in index.by_group[group]:
                    if best is not None and (key, seq) >= best[:2]:
                        break
                    if now - enqueued_at + EPSILON < opens:
                        break  # in a group rank is arrival: nobody behind waited longer
                    if caller in special and blocked(caller):
                        continue
                    best = (key, seq, caller)
                    break
    return get("entry", best[2]) if best is not None else None


def pick(index: Index, get: Get, now: float, callers: set[str], agents: set[str]) -> Pick | None:
    """The best pair among touched `callers` and `agents`, or None.

    Callers and agents that can make no pair are removed from the sets, so
    that asking again after the engine committed a pick only looks at the rest.
    """
    best: Pick | None = None
    for caller in list(callers):
        entry = get("entry", caller)
        if entry is None or entry.status != "waiting":
            callers.discard(caller)
            continue
        found = eligible_agents(index, get, entry, now)
        if not found:
            callers.discard(caller)
        elif best is None or entry.rank < best.entry.rank:
            best = Pick(entry, found, f"caller {caller} waiting")
    for agent_id in list(agents):
        agent = get("agent", agent_id)
        if agent is None or agent.status != "available":
            agents.discard(agent_id)
            continue
        entry = best_caller(index, get, agent, now)
        if entry is None:
            agents.discard(agent_id)
        elif best is None or entry.rank < best.entry.rank:
            best = Pick(entry, [], f"agent {agent_id} available")
    if best is not None and not best.agents:
        best = Pick(best.entry, eligible_agents(index, get, best.entry, now), best.why)
    return best


def explain(
    index: Index,
    get: Get,
    entry: Entry,
    chosen: list[AgentRecord],
    ranked: list[AgentRecord],
    now: float,
    trigger: str,
    queues: dict[str, QueueRules],
) -> Explanation:
    """The explanation of offering `entry` to `chosen`, taken before the commit."""
    ahead: list[Entry] = []
    more = 0
    for queue in chosen[0].queues:
        waiting = index.waiting[queue]
        end = bisect.bisect_left(waiting, entry.rank)
        room = max(0, LIMIT - len(ahead))
        ahead.extend(get("entry", item[2]) for item in waiting[: min(end, room)])
        more += max(0, end - room)
    waiting = index.waiting[entry.queue]
    start = bisect.bisect_right(waiting, (*entry.rank, "\uffff"))
    behind = tuple(get("entry", item[2]) for item in waiting[start : start + 3])
    eligible = {agent.id for agent in ranked}
    others: Iterable[str] = (a for a in index.free[entry.queue] if a not in eligible)
    other_records = []
    for agent_id in others:
        if len(other_records) >= LIMIT:
            break
        other_records.append(get("agent", agent_id))
    return Explanation(
        trigger,
        entry,
        tuple(chosen),
        tuple(ranked),
        tuple(other_records),
        tuple(ahead),
        behind,
        more,
        now,
        queues,
    )
