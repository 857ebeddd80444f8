"""Binding changes told to subscribers, on the memory and the Redis backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from switch.store.location import Binding, LocationStore
from switch.store.location_events import BindingsChanged, LocationEvents
from switch.store.redis_state import RedisLocationStore

pytestmark = pytest.mark.timeout(30)

AOR = "demo/1001"
NewStore = Callable[[], LocationStore]


def binding(contact: str, now: float, ttl: float = 60, **fields: object) -> Binding:
    values: dict[str, object] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": now + ttl,
        "call_id": "call-1",
        "cseq": 1,
        "registered_at": now,
    }
    values.update(fields)
    return Binding(**values)  # type: ignore[arg-type]


def watch(store: LocationStore, aor: str = AOR) -> list[BindingsChanged]:
    seen: list[BindingsChanged] = []
    store.events.subscribe(seen.append, wants=lambda a: a == aor)
    return seen


async def test_register_and_removals_are_told_with_what_is_left(new_locations: NewStore) -> None:
    store = new_locations()
    seen = watch(store)
    now = time.time()
    a, b = binding("sip:a@192.0.2.1", now), binding("sip:b@192.0.2.2", now)
    await store.apply(AOR, [a, b], now)
    await store.remove(AOR, a.key)
    await store.remove_all(AOR)
    assert [(e.cause, e.contacts) for e in seen] == [
        ("register", ["sip:a@192.0.2.1", "sip:b@192.0.2.2"]),
        ("remove", ["sip:b@192.0.2.2"]),
        ("remove", []),
    ]


async def test_only_watched_aors_are_told(new_locations: NewStore) -> None:
    store = new_locations()
    seen = watch(store)
    now = time.time()
    other = binding("sip:x@192.0.2.9", now, aor="demo/2000")
    await store.put(other, now)
    await store.remove_all("demo/2000")
    assert seen == []


async def test_a_closed_flow_is_told_per_aor(new_locations: NewStore) -> None:
    store = new_locations()
    seen = watch(store)
    now = time.time()
    browser = binding("sip:ws@x.invalid;transport=ws", now, conn_id=7, node="n1", transport="ws")
    phone = binding("sip:desk@192.0.2.5", now)
    await store.apply(AOR, [browser, phone], now)
    await store.remove_flow("n1", 7)
    assert (seen[-1].cause, seen[-1].contacts) == ("flow-closed", ["sip:desk@192.0.2.5"])


async def test_unsubscribed_hears_nothing(new_locations: NewStore) -> None:
    store = new_locations()
    seen: list[BindingsChanged] = []
    stop = store.events.subscribe(seen.append)
    stop()
    now = time.time()
    await store.put(binding("sip:a@192.0.2.1", now), now)
    assert seen == []


async def test_a_lapsed_registration_is_told_by_the_timer(new_locations: NewStore) -> None:
    store = new_locations()
    seen = watch(store)
    now = time.time()
    await store.apply(
        AOR, [binding("sip:a@192.0.2.1", now, 0.3), binding("sip:b@192.0.2.2", now, 30)], now
    )
    start = time.monotonic()
    while len(seen) < 2 and time.monotonic() - start < 3:
        await asyncio.sleep(0.02)
    took = time.monotonic() - start
    assert [(e.cause, e.contacts) for e in seen] == [
        ("register", ["sip:a@192.0.2.1", "sip:b@192.0.2.2"]),
        ("expired", ["sip:b@192.0.2.2"]),
    ]
    assert 0.2 < took < 1.0, took
    await store.close()


def test_expiry_follows_refreshes_without_a_loop() -> None:
    events = LocationEvents()
    seen: list[BindingsChanged] = []
    events.subscribe(seen.append)
    now = 1000.0
    events.changed(AOR, "register", [binding("sip:a@192.0.2.1", now, 60)], now)
    # Refreshed at +30 for 60 more: the first expiry time is stale.
    events.changed(AOR, "register", [binding("sip:a@192.0.2.1", now + 30, 60)], now + 30)
    assert events.next_expiry() == now + 90
    assert events.expire(now + 60) == []
    assert events.expire(now + 89.9) == []
    told = events.expire(now + 90)
    assert [(e.cause, e.bindings) for e in told] == [("expired", ())]
    assert events.next_expiry() is None
    assert len(seen) == 3


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    events = LocationEvents()
    seen: list[BindingsChanged] = []

    def broken(event: BindingsChanged) -> None:
        raise RuntimeError("bug")

    events.subscribe(broken)
    events.subscribe(seen.append)
    events.changed(AOR, "register", [binding("sip:a@192.0.2.1", 0.0)], 0.0)
    assert len(seen) == 1


async def test_a_change_on_another_node_is_told_through_redis(redis_clients, prefix) -> None:
    here = RedisLocationStore(redis_clients(), prefix)
    there = RedisLocationStore(redis_clients(), prefix)
    seen = watch(here)
    watch(there)  # the other node watches its agents too: so it publishes their changes
    await asyncio.sleep(0.2)  # (here's subscription to the channel is made)
    now = time.time()
    b = binding("sip:a@192.0.2.1", now)
    await there.put(b, now)
    start = time.monotonic()
    while not seen and time.monotonic() - start < 3:
        await asyncio.sleep(0.01)
    assert [(e.cause, e.contacts) for e in seen] == [("register", ["sip:a@192.0.2.1"])]
    assert time.monotonic() - start < 0.5
    await there.remove_all(AOR)
    while len(seen) < 2 and time.monotonic() - start < 3:
        await asyncio.sleep(0.01)
    assert [(e.cause, e.contacts) for e in seen][1] == ("remove", [])
    await here.close()
    await there.close()
