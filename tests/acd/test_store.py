"""Reservations are compare-and-set commits: two deciders cannot both win."""

from __future__ import annotations

import pytest

from switch.apps.acd import Acd, Conflict, MemoryStore, QueueRules, Write
from switch.apps.acd.engine import TIMER_RETRY
from switch.apps.acd.model import AgentRecord, Entry, Reservation

from .support import offers


def records():
    agent = AgentRecord("a", queues={"q": 1}, status="available", version=3)
    entry = Entry("c1", "q", 0.0, 0.0, 1, 0, (), 0.0, version=2)
    return agent, entry


def reserve(agent: AgentRecord, entry: Entry, res_id: str) -> list[Write]:
    res = Reservation(res_id, entry.id, "q", (agent.id,), 1.0, 21.0, version=1)
    return [
        Write("entry", entry.id, entry.version, entry._replace(status="reserved",
                                                        reservation=res_id,
                                                        version=entry.version + 1)),
        Write("agent", agent.id, agent.version, agent._replace(status="reserved",
                                                        reservation=res_id,
                                                        version=agent.version + 1)),
        Write("reservation", res_id, 0, res),
    ]  # fmt: skip


def test_the_second_of_two_decisions_from_one_snapshot_fails_whole() -> None:
    store = MemoryStore()
    agent, entry = records()
    store.commit([Write("agent", "a", None, agent), Write("entry", "c1", None, entry)])
    # Two nodes read the same snapshot and both decide a -> c1.
    first, second = reserve(agent, entry, "r1"), reserve(agent, entry, "r2")
    store.commit(first)
    with pytest.raises(Conflict) as caught:
        store.commit(second)
    assert (caught.value.kind, caught.value.key) == ("entry", "c1")
    assert "decide again from a fresh snapshot" in str(caught.value)
    # Nothing of the losing commit was written.
    assert store.get("reservation", "r2") is None
    assert store.get("agent", "a").reservation == "r1"
    assert store.get("entry", "c1").reservation == "r1"


def test_one_agent_cannot_be_reserved_for_two_callers() -> None:
    store = MemoryStore()
    agent, entry = records()
    other = Entry("c2", "q", 0.0, 0.0, 2, 0, (), 0.0, version=1)
    store.commit([Write("agent", "a", None, agent), Write("entry", "c1", None, entry),
                  Write("entry", "c2", 0, other)])  # fmt: skip
    store.commit(reserve(agent, entry, "r1"))
    with pytest.raises(Conflict) as caught:
        store.commit(reserve(agent, other, "r2"))
    assert (caught.value.kind, caught.value.key) == ("agent", "a")
    assert store.get("entry", "c2").status == "waiting"


def test_a_new_record_must_not_exist_and_versions_must_follow() -> None:
    store = MemoryStore()
    agent, _ = records()
    store.commit([Write("agent", "a", None, agent)])
    with pytest.raises(Conflict):
        store.commit([Write("agent", "a", 0, agent._replace(version=1))])
    with pytest.raises(ValueError, match="the new record's version must be 4, not 9"):
        store.commit([Write("agent", "a", 3, agent._replace(version=9))])


class Racing(MemoryStore):
    """A store another node writes to just before our first reservation."""

    def __init__(self, change) -> None:
        super().__init__()
        self.change = change
        self.raced = False

    def commit(self, writes) -> None:
        if not self.raced and any(w.kind == "reservation" for w in writes):
            self.raced = True
            super().commit([self.change(self)])
        super().commit(writes)


def test_the_engine_decides_again_after_losing_a_race() -> None:
    # Another node touched agent a (say, a skills update): our reservation
    # conflicts, and the engine offers again from the fresh record.
    def touch(store):
        agent = store.get("agent", "a")
        return Write("agent", "a", agent.version, agent._replace(version=agent.version + 1))

    store = Racing(touch)
    acd = Acd([QueueRules("q")], store=store)
    acd.add_agent("a", queues={"q": 1})
    acd.login("a", 0, devices=["p"])
    commands = acd.join("c1", "q", 1)
    assert store.raced and store.conflicts == 1
    assert offers(commands) == [("c1", ("a",))]
    assert acd.decisions == 1


def test_the_engine_does_not_offer_an_agent_another_node_reserved() -> None:
    def take(store):
        agent = store.get("agent", "a")
        taken = agent._replace(status="reserved", reservation="elsewhere",
                        version=agent.version + 1)  # fmt: skip
        return Write("agent", "a", agent.version, taken)

    store = Racing(take)
    acd = Acd([QueueRules("q")], store=store)
    acd.add_agent("a", queues={"q": 1})
    acd.login("a", 0, devices=["p"])
    assert offers(acd.join("c1", "q", 1)) == []
    assert acd.entry("c1").status == "waiting"
    assert store.get("reservation", "elsewhere") is None and store.all("reservation") == []


class Refusing(MemoryStore):
    """A store that refuses the next `refuse` commits (Redis not answering, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 0

    def commit(self, writes) -> None:
        if self.refuse:
            self.refuse -= 1
            raise Conflict("agent", "a", 0, 0)
        super().commit(writes)


def test_a_timer_whose_change_the_store_refuses_runs_again() -> None:
    store = Refusing()
    acd = Acd([QueueRules("q", ring_timeout=10)], store=store)
    acd.add_agent("a", queues={"q": 1})
    acd.login("a", 0, devices=["p"])
    assert offers(acd.join("c1", "q", 1)) == [("c1", ("a",))]
    store.refuse = 1
    assert acd.handle_timer(11) == []  # the offer's end was refused: no error
    assert acd.timer_retries == 1
    assert acd.agent("a").status == "reserved"
    assert acd.next_deadline() == 11 + TIMER_RETRY
    acd.handle_timer(11 + TIMER_RETRY)  # the offer ends now, as a miss
    assert acd.agent("a").missed == 1
    assert acd.entry("c1").status == "waiting"
