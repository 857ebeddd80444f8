"""Two ACD nodes on one Redis: agents shared and reserved atomically, callers each node's own."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from switch.apps.acd import Acd, OfferGone, QueueRules
from switch.apps.acd.codec import decode, encode
from switch.apps.acd.events import Offer, StopOffer
from switch.apps.acd.state import ORPHAN_GRACE
from switch.store.acd_redis import RedisAcdStore

from .support import offers

QUEUE = "q"
AGENTS = [f"a{n}" for n in range(5)]
Node = Callable[[str], Acd]


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def new_node(redis_url: str, prefix: str) -> Iterator[Node]:
    """Makes an ACD node (its own store and client) of one tenant on the test Redis."""
    stores: list[RedisAcdStore] = []

    def make(name: str, *, ring_timeout: float = 20.0) -> Acd:
        store = RedisAcdStore(redis_url, "t1", name, encode=encode, decode=decode, prefix=prefix)
        stores.append(store)
        queue = QueueRules("q", wrapup=0, ring_timeout=ring_timeout)
        acd = Acd([queue], store=store, rng=random.Random(len(stores)), node=name)
        for position, agent in enumerate(AGENTS):
            acd.add_agent(agent, queues={"q": 1}, position=position)
        return acd

    yield make
    for store in stores:
        store.close()


def records(redis_url: str, prefix: str) -> dict[str, dict[str, object]]:
    """What Redis holds now, read in one atomic HGETALL: kind -> key -> record."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        values = client.hgetall(f"{prefix}acd:t1:val")
    finally:
        client.close()
    out: dict[str, dict[str, object]] = {}
    for field, stored in values.items():
        kind, _, key = field.partition(":")
        out.setdefault(kind, {})[key] = decode(kind, stored.partition(" ")[2])
    return out


def check_no_double_reservation(
    state: dict[str, dict[str, object]], live: tuple[str, ...] = ("n1", "n2")
) -> None:
    """No agent in two reservations, no caller of a live node in two; records agree."""
    holder: dict[str, str] = {}
    for res in state.get("reservation", {}).values():
        for agent in res.agents:  # type: ignore[attr-defined]
            assert agent not in holder, f"{agent} held by {holder.get(agent)} and {res.id}"  # type: ignore[attr-defined]
            holder[agent] = res.id  # type: ignore[attr-defined]
    for agent in state.get("agent", {}).values():
        if agent.status == "reserved":  # type: ignore[attr-defined]
            assert holder.get(agent.id) == agent.reservation, agent  # type: ignore[attr-defined]
        else:
            assert agent.id not in holder, agent  # type: ignore[attr-defined]
    callers: dict[str, str] = {}
    for key, entry in state.get("entry", {}).items():
        if key.partition("/")[0] not in live:
            continue  # a dead node's callers: gone with it, dropped when it restarts
        if entry.status == "reserved":  # type: ignore[attr-defined]
            res = state["reservation"][entry.reservation]  # type: ignore[attr-defined]
            assert res.entry == entry.id  # type: ignore[attr-defined]
            callers[key] = entry.reservation  # type: ignore[attr-defined]
    assert len(set(callers.values())) == len(callers)  # one caller, one reservation


def test_one_node_sees_what_the_other_does_to_an_agent(new_node: Node) -> None:
    one, two = new_node("n1"), new_node("n2")
    for agent in AGENTS:
        one.login(agent, 0.0, devices=[f"{agent}-phone"])
    one.set_not_ready("a0", "break", 1.0)
    for agent in AGENTS[1:]:
        one.busy(agent, 1.0)
    two.store.catch_up()  # type: ignore[attr-defined]
    # n2's caller is not offered to a0 (not ready here too), nor to the busy ones.
    assert offers(two.join("c1", "q", 2.0)) == []
    assert two.agent("a0").status == "not-ready"
    # a0 is made ready on n1, which has no caller for them: n2 routes its own
    # caller to a0 at its next input (here, the wake-up of the store).
    assert offers(one.set_ready("a0", 3.0)) == []
    two.store.catch_up()  # type: ignore[attr-defined]
    commands = two.handle_timer(3.1)
    assert offers(commands) == [("c1", ("a0",))]
    one.store.catch_up()  # type: ignore[attr-defined]
    assert one.agent("a0").status == "reserved"
    assert re.fullmatch(r"r1@n2\.[0-9a-f]{8}", one.agent("a0").reservation)


def test_a_dead_nodes_reservation_is_freed_by_the_survivor(
    new_node: Node, redis_url: str, prefix: str
) -> None:
    one, two = new_node("n1", ring_timeout=10.0), new_node("n2", ring_timeout=10.0)
    one.login("a0", 0.0, devices=["a0-phone"])
    for agent in AGENTS[1:]:
        one.login(agent, 0.0, devices=[f"{agent}-phone"])
        one.busy(agent, 0.0)
    (offer,) = [c for c in one.join("c1", "q", 1.0) if isinstance(c, Offer)]
    assert offer.agents == ("a0",) and offer.expires_at == 11.0
    one.store.close()  # type: ignore[attr-defined]  # n1 dies with a0 reserved
    assert offers(two.join("c2", "q", 2.0)) == []  # a0 is n1's
    assert two.agent("a0").status == "reserved"
    # n1's own timer would have ended it at 11.0; n2 waits ORPHAN_GRACE more.
    assert offers(two.handle_timer(11.0 + ORPHAN_GRACE - 0.1)) == []
    assert two.next_deadline() == 11.0 + ORPHAN_GRACE
    commands = two.handle_timer(11.0 + ORPHAN_GRACE)
    assert offers(commands) == [("c2", ("a0",))]  # freed, and at once offered n2's caller
    state = records(redis_url, prefix)
    assert offer.reservation not in state["reservation"]
    check_no_double_reservation(state, live=("n2",))
    released = [e for e in two.take_events() if getattr(e, "action", "") == "release"]
    assert [(e.agent, e.reason) for e in released] == [("a0", "reservation expired")]


def test_a_restarted_node_frees_the_reservations_of_its_previous_run(new_node: Node) -> None:
    one = new_node("n1", ring_timeout=10.0)
    one.login("a0", 0.0, devices=["a0-phone"])
    assert offers(one.join("c1", "q", 1.0)) == [("c1", ("a0",))]
    one.store.close()  # type: ignore[attr-defined]
    again = new_node("n1", ring_timeout=10.0)  # same name, new run: no timer of its own
    assert again.agent("a0").status == "reserved"
    assert again.next_deadline() == 11.0 + ORPHAN_GRACE
    again.handle_timer(11.0 + ORPHAN_GRACE)
    assert again.agent("a0").status == "available"


def test_two_nodes_hammering_never_reserve_an_agent_or_a_caller_twice(
    new_node: Node, redis_url: str, prefix: str
) -> None:
    one, two = new_node("n1", ring_timeout=0.05), new_node("n2", ring_timeout=0.05)
    for agent in AGENTS:
        one.login(agent, 0.0, devices=[f"{agent}-phone"])
    two.store.catch_up()  # type: ignore[attr-defined]
    started = time.monotonic()
    errors: list[BaseException] = []
    made = {"n1": 0, "n2": 0}

    def drive(acd: Acd, name: str, seed: int) -> None:
        rng = random.Random(seed)
        held: list[tuple[str, str]] = []  # (caller, agent) offers of this node, ringing
        calls: list[str] = []  # agents on a call this node holds
        joined = 0
        try:
            # Both for the same time (not the same steps: a step that commits
            # nothing is quicker), so that they race throughout.
            for _ in range(STEPS):
                if time.monotonic() - started > DURATION:
                    break
                now = time.monotonic() - started
                commands: list = []
                pick = rng.random()
                # Callers come now and then, so that each node sometimes has
                # none: agents freed there go to the other (see README).
                if pick < 0.25 and len(acd.waiting("q")) < 3:
                    joined += 1
                    commands = acd.join(f"{name}-c{joined}", "q", now)
                elif held and pick < 0.5:
                    caller, agent = held.pop(rng.randrange(len(held)))
                    try:
                        commands = acd.answered(caller, agent, now)
                        calls.append(agent)
                    except OfferGone:
                        pass  # rang out meanwhile
                elif calls and pick < 0.8:
                    commands = acd.call_ended(calls.pop(rng.randrange(len(calls))), now)
                else:
                    commands = acd.handle_timer(now)
                for command in commands:
                    if isinstance(command, Offer):
                        made[name] += 1
                        held.append((command.caller, command.agents[0]))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=drive, args=(one, "n1", 1)),
        threading.Thread(target=drive, args=(two, "n2", 2)),
    ]
    for thread in threads:
        thread.start()
    checks = 0
    while any(t.is_alive() for t in threads):
        check_no_double_reservation(records(redis_url, prefix))  # while they race
        checks += 1
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert errors == []
    check_no_double_reservation(records(redis_url, prefix))
    # Both nodes reserved agents, and some decisions lost a race and were
    # made again (the conflicts are what the compare-and-set is for).
    assert made["n1"] >= 5 and made["n2"] >= 5, made
    assert one.store.conflicts + two.store.conflicts > 0  # type: ignore[attr-defined]
    assert checks > 5


STEPS, DURATION = 20_000, 3.0


def test_a_node_too_late_for_its_own_offer_gets_its_caller_back(new_node: Node) -> None:
    one, two = new_node("n1", ring_timeout=10.0), new_node("n2", ring_timeout=10.0)
    one.login("a0", 0.0, devices=["a0-phone"])
    (offer,) = [c for c in one.join("c1", "q", 1.0) if isinstance(c, Offer)]
    two.store.catch_up()  # type: ignore[attr-defined]
    # n1's loop stalls past the offer's end and the grace: n2 frees a0.
    two.handle_timer(11.0 + ORPHAN_GRACE)
    assert two.agent("a0").status == "available"
    one.store.catch_up()  # type: ignore[attr-defined]
    commands = one.handle_timer(11.0 + ORPHAN_GRACE + 0.5)
    stops = [c for c in commands if isinstance(c, StopOffer)]
    assert [(s.reservation, s.agents) for s in stops] == [(offer.reservation, ("a0",))]
    # c1 was not lost: waiting again, and offered again (not a miss of a0's).
    again = [c for c in commands if isinstance(c, Offer)]
    assert [(c.caller, c.agents) for c in again] == [("c1", ("a0",))]
    assert again[0].reservation != offer.reservation
    assert one.agent("a0").missed == 0


def test_an_agent_of_a_queue_this_node_does_not_have_is_left_out(
    new_node: Node, redis_url: str, prefix: str
) -> None:
    one = new_node("n1")
    store = RedisAcdStore(redis_url, "t1", "n2", encode=encode, decode=decode, prefix=prefix)
    try:
        # n2 runs another config (during a rolling change): a queue n1 lacks.
        two = Acd([QueueRules("q"), QueueRules("new")], store=store, node="n2")
        two.add_agent("z", queues={"new": 1})
        two.login("z", 0.0, devices=["z-phone"])
        one.store.catch_up()  # type: ignore[attr-defined]
        assert offers(one.join("c1", "q", 1.0)) == []  # n1 goes on; z is not its
        assert one.store.get("agent", "z").status == "available"  # stored, not indexed
        # n2 reserves z and dies: n1 cannot release an agent it cannot index,
        # and leaves it to a node that has queue "new".
        assert offers(two.join("c9", "new", 2.0)) == [("c9", ("z",))]
        store.close()
        one.store.catch_up()  # type: ignore[attr-defined]
        one.handle_timer(22.0 + ORPHAN_GRACE)
        assert one.store.get("agent", "z").status == "reserved"
    finally:
        store.close()
