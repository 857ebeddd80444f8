"""Estimated wait time: a short replay of the routing rules on the current state.

Erlang C answers "how long does an average new caller wait" for one pool of
identical agents. A queue here is not one pool: agents sit in several queues
with tiers and skill levels, and callers ahead of this one need skills this
one may not. So instead of a formula, the estimate replays routing forward
from the snapshot, with expected times in place of random ones:

1. Every staffed agent gets the time they are expected to be free: now if
   available; the end of wrap-up if wrapping up; for an agent on a call,
   the expected rest of the talk plus the queue's mean wrap-up; for an agent
   being rung, a whole handle time from now.
2. The agent free first takes the first caller, in rank order, among those
   ahead of ours (and ours) that they may take at that moment (the same
   rules.need the router uses, so tiers and relaxation open on time), and is
   free again one mean handle time of that caller's queue later.
3. When an agent takes our caller, that moment is the estimate.

Handle times are the recent ones of each queue (answer to available again,
mean of the last HISTORY), DEFAULT_TALK plus the queue's wrap-up before
there are any. Callers who will join later with a higher priority, and
callers ahead who will hang up, are not foreseen: the simulation test
measures what that costs (README, ACD section).

With an M/M/c queue and one pool this is the position form of Erlang C: the
k-th caller in line waits for k+1 completions among c busy agents, k+1
handle times / c on average. Past AHEAD_LIMIT callers ahead the replay stops
and the wait is extrapolated at the rate it measured.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable, Iterable, Mapping, Sequence

from .model import AgentRecord, Entry
from .rules import EPSILON

__all__ = ["AHEAD_LIMIT", "DEFAULT_TALK", "HISTORY", "History", "estimate", "replay"]

AHEAD_LIMIT = 300
DEFAULT_TALK = 180.0
HISTORY = 100


class History:
    """Recent talk and handle times per queue, to draw a replay's times from."""

    def __init__(
        self,
        talk: Mapping[str, Iterable[float]],
        handle: Mapping[str, Iterable[float]],
        wrapup: Mapping[str, float],
        rng: random.Random,
    ) -> None:
        self.talk = {queue: sorted(times) for queue, times in talk.items()}
        self.handles = {queue: list(times) for queue, times in handle.items()}
        self.random = rng.random
        self.wrapup = {}
        self.mean_handle = {}
        for queue, times in self.talk.items():
            mean_talk = sum(times) / len(times) if times else DEFAULT_TALK
            handles = self.handles.get(queue)
            mean = sum(handles) / len(handles) if handles else mean_talk + wrapup.get(queue, 0.0)
            self.mean_handle[queue] = mean
            self.wrapup[queue] = max(mean - mean_talk, 0.0) if handles else wrapup.get(queue, 0.0)

    def handle(self, queue: str) -> float:
        """A handle time (answer to available again) of a recent call of `queue`."""
        handles = self.handles.get(queue)
        if handles:
            return handles[int(self.random() * len(handles))]
        return self.mean_handle.get(queue, DEFAULT_TALK)

    def free_at(self, agent: AgentRecord, reserved_for: str, now: float) -> float:
        """When `agent` may be free for another caller."""
        if agent.status == "available":
            return now
        if agent.status == "wrap-up":
            return max(now, agent.wrapup_until)
        if agent.status == "reserved":
            return now + self.handle(reserved_for) if reserved_for else now
        queue = agent.call_queue
        talks = self.talk.get(queue)
        if talks is None:  # a call outside the ACD
            return now + DEFAULT_TALK
        # A recent call that lasted longer than this one so far: the rest of
        # it is what this one may still take.
        elapsed = now - agent.call_started
        longer = bisect.bisect_right(talks, elapsed)
        if longer < len(talks):
            rest = talks[longer + int(self.random() * (len(talks) - longer))] - elapsed
        else:  # no history yet, or longer than every recent call
            rest = max(DEFAULT_TALK - elapsed, DEFAULT_TALK / 4)
        return now + rest + self.wrapup[queue]


def estimate(
    target: Entry,
    ahead: Sequence[Entry],
    agents: Sequence[AgentRecord],
    free_at: Callable[[AgentRecord], float],
    handle: Callable[[str], float],
    need: Callable[[AgentRecord, Entry], float],
    now: float,
    runs: int = 1,
) -> float | None:
    """Seconds until `target` is offered to an agent (the mean of `runs` replays),
    or None if no agent ever may.

    `ahead`: waiting callers ranked before the target, in rank order;
    `agents`: every staffed agent; `free_at(agent)`: when they are free
    (drawn anew for each replay); `handle(queue)`: a handle time of a call of
    that queue (drawn); `need(agent, entry)`: the wait after which the agent
    may take the entry (rules.need).
    """
    waits = []
    for _ in range(runs):
        wait = replay(target, ahead, agents, free_at, handle, need, now)
        if wait is None:
            return None
        waits.append(wait)
    return sum(waits) / len(waits)


def replay(
    target: Entry,
    ahead: Sequence[Entry],
    agents: Sequence[AgentRecord],
    free_at: Callable[[AgentRecord], float],
    handle: Callable[[str], float],
    need: Callable[[AgentRecord, Entry], float],
    now: float,
) -> float | None:
    """One replay of routing from the snapshot: the wait of `target` in it."""
    pending = [*ahead[:AHEAD_LIMIT], target]
    extra = max(0, len(ahead) - AHEAD_LIMIT)
    heap = [(free_at(agent), agent.position, agent.id, agent) for agent in agents]
    heapq.heapify(heap)
    served = 0
    while heap:
        at, position, agent_id, agent = heapq.heappop(heap)
        taken = None
        soonest = None
        for index, entry in enumerate(pending):
            if entry.queue not in agent.queues:
                continue
            opens = entry.enqueued_at + need(agent, entry)
            if opens <= at + EPSILON:
                taken = index
                break
            if soonest is None or opens < soonest:
                soonest = opens
        if taken is None:
            if soonest is not None and soonest != float("inf"):
                heapq.heappush(heap, (soonest, position, agent_id, agent))
            continue
        entry = pending.pop(taken)
        if entry is target:
            wait = max(0.0, at - now)
            if extra and served:
                # The replay covered `served` callers ahead in `wait`: the rest at that pace.
                wait += wait / served * extra
            return wait
        served += 1
        heapq.heappush(heap, (at + handle(entry.queue), position, agent_id, agent))
    return None
