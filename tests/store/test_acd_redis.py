"""The ACD's Redis store: compare-and-set commits across nodes, each node's replica kept fresh."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from switch.apps.acd.codec import decode, encode
from switch.apps.acd.model import AgentRecord, Entry, Reservation
from switch.store.acd import Conflict, Write
from switch.store.acd_redis import RETRY_AFTER, RedisAcdStore, StoreUnavailable

Make = Callable[..., RedisAcdStore]


@pytest.fixture
def new_store(redis_url: str, prefix: str) -> Iterator[Make]:
    """Makes stores of one tenant on the test Redis, one per 'node'; closes them after."""
    made: list[RedisAcdStore] = []

    def make(node: str, **options) -> RedisAcdStore:
        store = RedisAcdStore(
            redis_url, "t1", node, encode=encode, decode=decode, prefix=prefix, **options
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def agent(version: int = 1, **fields) -> AgentRecord:
    record = AgentRecord("a", queues={"q": 1}, status="available", version=version)
    return record._replace(**fields)


def entry(caller: str = "c1", version: int = 1, **fields) -> Entry:
    return Entry(caller, "q", 0.0, 0.0, 1, 0, (), 0.0, version=version, **fields)


def reserve(a: AgentRecord, e: Entry, res_id: str) -> list[Write]:
    res = Reservation(res_id, e.id, "q", (a.id,), 1.0, 21.0, version=1)
    return [
        Write("entry", e.id, e.version,
              e._replace(status="reserved", reservation=res_id, version=e.version + 1)),
        Write("agent", a.id, a.version,
              a._replace(status="reserved", reservation=res_id, version=a.version + 1)),
        Write("reservation", res_id, 0, res),
    ]  # fmt: skip


def test_two_nodes_reserving_one_agent_from_one_snapshot_only_one_wins(new_store: Make) -> None:
    one, two = new_store("n1"), new_store("n2")
    one.commit([Write("agent", "a", 0, agent()), Write("entry", "c1", 0, entry())])
    two.commit([Write("entry", "c1", 0, entry())])  # n2's own caller, also "c1"
    two.catch_up()
    snapshot = two.get("agent", "a")
    assert snapshot == agent()
    one.commit(reserve(agent(), entry(), "r1@n1"))
    with pytest.raises(Conflict) as caught:
        two.commit(reserve(snapshot, entry(), "r2@n2"))  # n2 has not heard of r1 yet
    assert (caught.value.kind, caught.value.key, caught.value.found) == ("agent", "a", 2)
    assert "decide again from a fresh snapshot" in str(caught.value)
    # Nothing of the losing commit was written, and n2 holds the winner's agent
    # already (the conflict refreshed it), before any message arrives.
    assert two.get("agent", "a").reservation == "r1@n1"
    assert two.get("entry", "c1").status == "waiting"
    two.catch_up()
    assert two.get("reservation", "r2@n2") is None
    assert two.get("reservation", "r1@n1").agents == ("a",)


def test_callers_are_each_nodes_own(new_store: Make) -> None:
    one, two = new_store("n1"), new_store("n2")
    one.commit([Write("entry", "c1", 0, entry("c1"))])
    two.commit([Write("entry", "c1", 0, entry("c1", skip=(("x", 1.0),)))])
    one.catch_up()
    two.catch_up()
    assert one.get("entry", "c1").skip == ()
    assert two.get("entry", "c1").skip == (("x", 1.0),)
    assert [e.id for e in one.all("entry")] == ["c1"]


def test_a_node_hears_of_the_others_changes_and_its_listener_is_told(new_store: Make) -> None:
    one = new_store("n1")
    woken: list[bool] = []
    seen: list[tuple] = []
    two = new_store("n2", wake=lambda: woken.append(True))
    woken.clear()  # the subscription's own reload
    two.listen(lambda kind, old, new: seen.append((kind, old, new)))
    one.commit([Write("agent", "a", 0, agent())])
    deadline = time.monotonic() + 5
    while not two.pending() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert woken == [True]  # from the subscriber thread, once for what is queued
    assert two.get("agent", "a") is None  # not before sync: the engine's input decides when
    two.sync()
    assert two.get("agent", "a") == agent()
    assert seen == [("agent", None, agent())]
    one.commit([Write("agent", "a", 1, None)])
    two.catch_up()
    assert two.get("agent", "a") is None
    assert seen[-1] == ("agent", agent(), None)
    # The node's own commits are not told to its listener (the engine made them).
    seen.clear()
    two.commit([Write("agent", "a", 0, agent())])
    two.catch_up()
    assert seen == []


def test_a_node_started_later_loads_every_record(new_store: Make) -> None:
    one = new_store("n1")
    one.commit([Write("agent", "a", 0, agent()), Write("entry", "c1", 0, entry())])
    one.commit(reserve(agent(), entry(), "r1@n1"))
    late = new_store("n2")
    assert late.get("agent", "a").status == "reserved"
    assert late.get("reservation", "r1@n1").expires_at == 21.0
    assert late.get("entry", "c1") is None  # n1's caller
    # n1 restarted: the callers of its previous run went with it (their calls
    # ended); a caller "c1" of the new run must not find the old one.
    again = new_store("n1")
    assert again.get("entry", "c1") is None
    again.commit([Write("entry", "c1", 0, entry())])
    assert again.get("agent", "a").status == "reserved"  # shared: freed by an orphan timer


def test_a_lost_subscription_reloads_what_it_missed(new_store: Make, redis_url: str) -> None:
    one, two = new_store("n1"), new_store("n2")
    one.commit([Write("agent", "a", 0, agent())])
    two.catch_up()
    reloads = two.reloads
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.client_kill_filter(_type="pubsub")
        one.commit([Write("agent", "a", 1, agent(2, status="not-ready", reason="lunch"))])
        deadline = time.monotonic() + 10
        while two.reloads == reloads and time.monotonic() < deadline:
            two.sync()
            time.sleep(0.01)
    finally:
        admin.close()
    two.catch_up()
    assert two.reloads > reloads
    assert two.get("agent", "a").reason == "lunch"


def test_redis_not_answering_fails_fast_and_a_late_write_comes_back(
    new_store: Make, redis_url: str
) -> None:
    one = new_store("n1")
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.execute_command("CLIENT", "PAUSE", "2500", "WRITE")
        with pytest.raises(StoreUnavailable, match="did not answer"):
            one.commit([Write("agent", "a", 0, agent())])  # times out (TIMEOUT)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="less than 2 s ago"):
            one.commit([Write("agent", "b", 0, agent()._replace(id="b"))])
        assert time.monotonic() - started < 0.05  # no wait: the loop is not held again
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    # Whether the script sent before the timeout ran or not (redis-py drops a
    # connection that timed out), the replica ends up as Redis has it.
    time.sleep(RETRY_AFTER)
    one.catch_up()
    assert one.get("agent", "a") == new_store("n9").get("agent", "a")
    assert one.get("agent", "b") is None
    one.commit([Write("agent", "b", 0, agent()._replace(id="b"))])  # up again


def test_a_new_record_must_not_exist_and_versions_must_follow(new_store: Make) -> None:
    one = new_store("n1")
    one.commit([Write("agent", "a", 0, agent(1))])
    with pytest.raises(Conflict):
        one.commit([Write("agent", "a", 0, agent(1))])
    with pytest.raises(ValueError, match="the new record's version must be 2, not 9"):
        one.commit([Write("agent", "a", 1, agent(9))])


def test_a_node_name_is_required(redis_url: str) -> None:
    with pytest.raises(ValueError, match="a node name is required"):
        RedisAcdStore(redis_url, "t1", "", encode=encode, decode=decode)


def test_a_commit_after_redis_forgot_the_script_loads_it_again(
    new_store: Make, redis_url: str
) -> None:
    one = new_store("n1")
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.script_flush()  # as after a restart of Redis
    finally:
        admin.close()
    one.commit([Write("agent", "a", 0, agent())])
    assert new_store("n2").get("agent", "a") == agent()


def test_what_a_node_remembers_to_order_messages_does_not_grow(new_store: Make) -> None:
    alone = new_store("n0")
    for n in range(1, 201):
        caller = entry(f"c{n}")
        alone.commit([Write("entry", caller.id, 0, caller)])
    assert (len(alone._newer), len(alone._own)) == (0, 0)  # nobody else: nothing to guard
    alone.close()
    one, two = new_store("n1"), new_store("n2")
    for n in range(1, 1201):
        caller = entry(f"c{n}")
        for store in (one, two):
            store.sync()  # as the engine does at each input
            store.commit([Write("entry", caller.id, 0, caller)])
        assert len(one._newer) <= 1024 + 1 and len(two._newer) <= 1024 + 1
    for store in (one, two):
        store.catch_up()
        assert (len(store._newer), len(store._own)) == (0, 0)
