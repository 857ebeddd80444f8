"""The ACD's state and how it changes: records, the index over them, timers, events.

AcdState is the base of Acd (engine.py): every change goes through
`_apply` (a compare-and-set commit to the store, then the index follows),
and every agent transition through `_transition` (the table in agents.py,
then what follows from it: presence, and a staffing agent leaving).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from . import ewt as ewt_module
from .agents import transition
from .errors import AcdError
from .events import Event
from .index import Index, Sig
from .model import STAFFED, AgentRecord, Entry
from .rules import NEVER, QueueRules, TenantRules
from .store import AcdStore, MemoryStore, Write

__all__ = ["EWT_RUNS", "MAX_HOPS", "ORPHAN_GRACE", "AcdState"]


# Exits that send a caller on to another queue, at most this many per call:
# a loop of overflows (a -> b -> a) ends in a hang-up instead of spinning.
MAX_HOPS = 8
# Replays averaged for one estimated wait (ewt.py).
EWT_RUNS = 4
# A reservation another node made (several nodes on one store) is freed here
# this long after it expired: its own node's timer had time to end it, so
# that node is gone (or cut off) and its agents would stay reserved for ever.
ORPHAN_GRACE = 5.0


def _key(kind: str, record: Any) -> str:
    if kind == "served":
        return record.number
    if kind == "queue":
        return record.name
    return record.id


class AcdState:
    def __init__(
        self,
        queues: Iterable[QueueRules],
        tenant: TenantRules | None = None,
        *,
        store: AcdStore | None = None,
        rng: random.Random | None = None,
        node: str = "",
    ) -> None:
        self.queues: dict[str, QueueRules] = {rules.name: rules for rules in queues}
        self.tenant = tenant or TenantRules()
        self.store: AcdStore = store if store is not None else MemoryStore()
        self.rng = rng if rng is not None else random.Random()
        self.index = Index(self.queues.values())
        self.decisions = 0  # reservations made
        self.timer_retries = 0  # timers run again after the store refused their change
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
        # Several nodes on one store: reservation ids carry the node and this
        # run of it (a restarted node must not reuse ids still in the store).
        self._id_suffix = f"@{node}.{self.rng.getrandbits(32):08x}" if node else ""
        self._mine: set[str] = set()  # live reservations this engine made
        self._taken: list[Any] = []  # of those, freed by another node (at the next input)
        self.store.listen(self._remote_changed)
        for res in self.store.all("reservation"):
            self._at(res.expires_at + ORPHAN_GRACE, "orphan", res.id)

    def agent(self, agent_id: str) -> AgentRecord:
        record = self.store.get("agent", agent_id)
        if record is None:
            raise AcdError(f"no agent {agent_id!r} in this ACD")
        return record

    def _at(self, when: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (when, next(self._ticks), kind, key))

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
            elif kind == "reservation":
                if new is None:
                    self._mine.discard(old.id)
                else:
                    self._mine.add(new.id)

    def _remote_changed(self, kind: str, old: Any, new: Any) -> None:
        """Another node changed a record (store.sync, or the refresh of a Conflict):
        the index follows, and a reservation it made gets a timer in case it dies."""
        if kind == "agent":
            # An agent of a queue this node does not have (its config differs,
            # during a rolling change say) is not indexed here.
            known = self.queues
            if old is not None and not all(queue in known for queue in old.queues):
                old = None
            if new is not None and not all(queue in known for queue in new.queues):
                new = None
            self.index.agent_changed(old, new)  # an agent it freed is routed here too
        elif kind == "entry":
            self.index.entry_changed(old, new)
        elif kind == "reservation" and new is not None:
            self._at(new.expires_at + ORPHAN_GRACE, "orphan", new.id)
        elif kind == "reservation" and old is not None and old.id in self._mine:
            # Another node freed this node's reservation as an orphan: this
            # node was too late ending it itself. Its caller waits again.
            self._mine.discard(old.id)
            self._taken.append(old)

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

    def _entry(self, caller: str) -> Entry:
        entry = self.store.get("entry", caller)
        if entry is None:
            raise AcdError(f"no caller {caller!r} is waiting")
        return entry

    def _names(self) -> str:
        return ", ".join(sorted(self.queues)) or "none"
