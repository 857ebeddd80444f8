"""Views over the ACD's records that routing reads instead of scanning them all.

Derived entirely from the records: `entry_changed` and `agent_changed` are
told every write (old record, new record) and keep

- waiting[queue]: callers waiting to be offered, in rank order, as items
  (key, seq, caller, group, enqueued_at);
- by_group[group]: the same callers per group, a group being one queue,
  one skill signature and one priority. Within a group rank order is
  arrival order, so its head is both its best-ranked and its longest-waiting
  caller: if the head has not waited long enough for an agent's tier or
  skills yet, nobody behind it has;
- groups_of(agent, queue): the groups of a queue an agent may take after
  some wait, with that wait (rules.need). Finding the caller an agent takes
  next looks at the head of each of those groups, not at every caller: in
  skills mode most callers are for someone else;
- free[queue]: available agents; members[queue]: every agent of the queue;
- kept[agent]: callers waiting for that sticky agent; special: callers with a
  sticky agent or skipped agents (the only ones the fast path must read);
- touched callers and agents: those whose change may make a new pair,
  routed at the end of the current input.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from .model import AgentRecord, Entry
from .rules import NEVER, QueueRules, need

__all__ = ["Index", "Item", "Sig"]

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
        self.groups: dict[tuple[str, Sig, int], int] = {}
        self.group_sig: list[Sig] = []
        self.by_group: list[list[Item]] = []
        self.queue_groups: dict[str, list[int]] = {name: [] for name in self.queues}
        self.needs: dict[str, dict[tuple[str, Sig], float]] = defaultdict(dict)
        # agent -> queue -> (groups of the queue looked at, [(group, need)] of those
        # with a finite need): extended when a queue gets a new group.
        self.agent_groups: dict[str, dict[str, tuple[int, list[tuple[int, float]]]]] = defaultdict(
            dict
        )
        # agent -> group -> need, for every group groups_of has looked at
        self.group_needs: dict[str, dict[int, float]] = defaultdict(dict)
        self.touched_callers: set[str] = set()
        self.touched_agents: set[str] = set()

    def group(self, entry: Entry) -> int:
        key = (entry.queue, entry.skills, entry.priority)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = len(self.by_group)
            self.group_sig.append(entry.skills)
            self.by_group.append([])
            self.queue_groups[entry.queue].append(group)
        return group

    def need(self, agent: AgentRecord, queue: str, sig: Sig) -> float:
        """rules.need, cached per agent (add_agent, which may change skills, forgets it)."""
        needs = self.needs[agent.id]
        value = needs.get((queue, sig))
        if value is None:
            value = needs[(queue, sig)] = need(agent, self.queues[queue], sig)
        return value

    def groups_of(self, agent: AgentRecord, queue: str) -> list[tuple[int, float]]:
        """(group, need) for the groups of `queue` the agent may take after some wait."""
        mine = self.agent_groups[agent.id]
        seen, found = mine.get(queue) or (0, [])
        groups = self.queue_groups[queue]
        if seen < len(groups):
            needs = self.group_needs[agent.id]
            for group in groups[seen:]:
                opens = needs[group] = self.need(agent, queue, self.group_sig[group])
                if opens != NEVER:
                    found.append((group, opens))
            mine[queue] = (len(groups), found)
        return found

    def position(self, entry: Entry) -> int:
        """Callers waiting ahead of `entry` in its queue, plus one."""
        return bisect.bisect_left(self.waiting[entry.queue], entry.rank) + 1

    def ahead(self, rank: tuple[float, int]) -> list[Item]:
        """Waiting callers of every queue ranked before `rank`, in rank order."""
        items: list[Item] = []
        for waiting in self.waiting.values():
            items.extend(waiting[: bisect.bisect_left(waiting, rank)])
        items.sort()
        return items

    def agent_changed(self, old: AgentRecord | None, new: AgentRecord | None) -> None:
        if old is not None:
            for queue in old.queues:
                self.members[queue].discard(old.id)
                self.free[queue].discard(old.id)
            if new is None or new.queues != old.queues or new.skills != old.skills:
                self.needs.pop(old.id, None)
                self.agent_groups.pop(old.id, None)
                self.group_needs.pop(old.id, None)
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
                for items in (self.waiting[old.queue], self.by_group[self.group(old)]):
                    index = bisect.bisect_left(items, old.rank)
                    if index < len(items) and items[index][2] == old.id:
                        del items[index]
            if old.sticky:
                self.kept[old.sticky].discard(old.id)
            self.special.discard(old.id)
            self.count[old.queue] -= 1
        if new is None:
            return
        self.count[new.queue] += 1
        if new.status == "waiting":
            group = self.group(new)
            item = (new.key, new.seq, new.id, group, new.enqueued_at)
            bisect.insort(self.waiting[new.queue], item)
            bisect.insort(self.by_group[group], item)
            if old is None or old.status != "waiting" or old.queue != new.queue:
                self.touched_callers.add(new.id)
        if new.sticky:
            self.kept[new.sticky].add(new.id)
        if new.sticky or new.skip:
            self.special.add(new.id)
