"""Views over the ACD's records that routing reads instead of scanning them all.

Derived entirely from the records: `entry_changed` and `agent_changed` are
told every write (old record, new record) and keep

- waiting[queue]: callers waiting to be offered, sorted by rank
  (key, seq, caller, group, enqueued_at), the group interning the
  (queue, skills) signature so that an agent's need for it is one dict hit;
- free[queue]: available agents; members[queue]: every agent of the queue;
- kept[agent]: callers waiting for that sticky agent; special: callers with a
  sticky agent or skipped agents (the only ones the fast path must read);
- needs[agent][group]: rules.need, cached (an agent's skills change only
  through add_agent, which forgets their cache);
- touched callers and agents: those whose change may make a new pair,
  routed at the end of the current input.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from .model import AgentRecord, Entry
from .rules import QueueRules, need

__all__ = ["Index", "Sig"]

Sig = tuple[tuple[str, int], ...]
Item = tuple[float, int, str, int, float]  # key, seq, caller, group, enqueued_at


class Index:
    def __init__(self, queues: Iterable[QueueRules]) -> None:
        self.queues = {rules.name: rules for rules in queues}
        self.waiting: dict[str, list[Item]] = {name: [] for name in self.queues}
        self.count: dict[str, int] = {name: 0 for name in self.queues}  # entries, any status
        self.free: dict[str, set[str]] = {name: set() for name in self.queues}
        self.members: dict[str, set[str]] = {name: set() for name in self.queues}
        self.kept: dict[str, set[str]] = defaultdict(set)
        self.special: set[str] = set()
        self.groups: dict[tuple[str, Sig], int] = {}
        self.sigs: dict[int, Sig] = {}
        self.needs: dict[str, dict[int, float]] = defaultdict(dict)
        self.touched_callers: set[str] = set()
        self.touched_agents: set[str] = set()

    def group(self, queue: str, sig: Sig) -> int:
        group = self.groups.get((queue, sig))
        if group is None:
            group = self.groups[(queue, sig)] = len(self.groups)
            self.sigs[group] = sig
        return group

    def need(self, agent: AgentRecord, queue: str, sig: Sig) -> float:
        """rules.need, cached per agent and signature."""
        group = self.group(queue, sig)
        needs = self.needs[agent.id]
        value = needs.get(group)
        if value is None:
            value = needs[group] = need(agent, self.queues[queue], sig)
        return value

    def position(self, entry: Entry) -> int:
        """Callers waiting ahead of `entry` in its queue, plus one."""
        return bisect.bisect_left(self.waiting[entry.queue], entry.rank) + 1

    def agent_changed(self, old: AgentRecord | None, new: AgentRecord | None) -> None:
        if old is not None:
            for queue in old.queues:
                self.members[queue].discard(old.id)
                self.free[queue].discard(old.id)
            if new is None or new.queues != old.queues or new.skills != old.skills:
                self.needs.pop(old.id, None)
        if new is None:
            return
        available = new.status == "available"
        for queue in new.queues:
            self.members[queue].add(new.id)
            if available:
                self.free[queue].add(new.id)
        if available and (old is None or old.status != "available"):
            self.touched_agents.add(new.id)

    def entry_changed(self, old: Entry | None, new: Entry | None) -> None:
        if old is not None:
            if old.status == "waiting":
                waiting = self.waiting[old.queue]
                index = bisect.bisect_left(waiting, old.rank)
                if index < len(waiting) and waiting[index][2] == old.id:
                    del waiting[index]
            if old.sticky:
                self.kept[old.sticky].discard(old.id)
            self.special.discard(old.id)
            self.count[old.queue] -= 1
        if new is None:
            return
        self.count[new.queue] += 1
        if new.status == "waiting":
            group = self.group(new.queue, new.skills)
            bisect.insort(self.waiting[new.queue], (*new.rank, new.id, group, new.enqueued_at))
            if old is None or old.status != "waiting" or old.queue != new.queue:
                self.touched_callers.add(new.id)
        if new.sticky:
            self.kept[new.sticky].add(new.id)
        if new.sticky or new.skip:
            self.special.add(new.id)

    def ahead(self, rank: tuple[float, int]) -> list[Item]:
        """Waiting callers of every queue ranked before `rank`, in rank order."""
        items: list[Item] = []
        for waiting in self.waiting.values():
            items.extend(waiting[: bisect.bisect_left(waiting, rank)])
        items.sort()
        return items
