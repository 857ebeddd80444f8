"""The location service: the same tests against the memory and the Redis backend."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from switch.store.bans import MemoryBanStore
from switch.store.location import Binding, LocationStore, MemoryLocationStore
from switch.store.redis_state import RedisLocationStore, decode_binding, encode_binding
from switch.store.state import StateError, open_state

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
AOR = "demo/1001"

NewStore = Callable[[], LocationStore]


def binding(contact: str = "sip:1001@192.0.2.1:5060", **fields: object) -> Binding:
    values: dict[str, object] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": NOW + 60,
        "call_id": "call-1",
        "cseq": 1,
        "registered_at": NOW,
    }
    values.update(fields)
    return Binding(**values)  # type: ignore[arg-type]


def test_key_is_contact_without_rfc5626_values() -> None:
    assert binding().key == "sip:1001@192.0.2.1:5060"
    # +sip.instance alone (no reg-id) is not an outbound registration.
    assert binding(instance="<urn:uuid:1>").key == "sip:1001@192.0.2.1:5060"


def test_key_is_instance_and_reg_id_with_rfc5626_values() -> None:
    assert binding(instance="<urn:uuid:1>", reg_id=2).key == "<urn:uuid:1>/2"


def test_json_round_trip() -> None:
    full = binding(
        q=0.5,
        instance="<urn:uuid:1>",
        reg_id=1,
        path=("<sip:edge.example;lr>", "<sip:core.example;lr>"),
        transport="wss",
        source=("198.51.100.7", 40000),
        local=("127.0.0.1", 8080),
        conn_id=12,
        node="node-a",
        user_agent="webphone/1.0",
    )
    assert decode_binding(encode_binding(full)) == full
    assert decode_binding(encode_binding(binding())) == binding()


async def test_put_get_and_expiry(new_locations: NewStore) -> None:
    store = new_locations()
    b = binding()
    await store.put(b, now=NOW)
    assert await store.get(AOR, NOW) == [b]
    assert await store.get(AOR, NOW + 59.9) == [b]
    assert await store.get(AOR, NOW + 60) == []  # expires_at <= now: gone
    assert await store.get("demo/9999", NOW) == []
    assert await store.count(NOW) == 1
    assert await store.count(NOW + 60) == 0


async def test_write_prunes_expired_bindings(new_locations: NewStore) -> None:
    store = new_locations()
    await store.put(binding("sip:a@192.0.2.1", expires_at=NOW + 10), now=NOW)
    await store.put(binding("sip:b@192.0.2.2", expires_at=NOW + 100), now=NOW)
    later = binding("sip:c@192.0.2.3", expires_at=NOW + 120, registered_at=NOW + 20)
    assert [b.contact for b in await store.apply(AOR, [later], NOW + 20)] == [
        "sip:c@192.0.2.3",
        "sip:b@192.0.2.2",
    ]
    assert await store.count(NOW + 20) == 2


async def test_replace_by_contact(new_locations: NewStore) -> None:
    store = new_locations()
    await store.put(binding(cseq=1), now=NOW)
    refreshed = binding(cseq=2, expires_at=NOW + 3600)
    await store.put(refreshed, now=NOW)
    assert await store.get(AOR, NOW) == [refreshed]
    other = binding("sip:1001@192.0.2.99:5062")
    await store.put(other, now=NOW)
    assert len(await store.get(AOR, NOW)) == 2


async def test_rfc5626_binding_replaced_by_instance_and_reg_id(new_locations: NewStore) -> None:
    store = new_locations()
    first = binding("sip:1001@203.0.113.1:1111;transport=tcp", instance="<urn:uuid:x>", reg_id=1)
    await store.put(first, now=NOW)
    # Same device, same reg-id, new flow and new Contact: the old binding goes.
    moved = binding("sip:1001@203.0.113.1:2222;transport=tcp", instance="<urn:uuid:x>", reg_id=1)
    await store.put(moved, now=NOW)
    assert await store.get(AOR, NOW) == [moved]
    # A second flow of the same device (another reg-id) is a binding of its own.
    second = binding("sip:1001@203.0.113.1:3333;transport=tcp", instance="<urn:uuid:x>", reg_id=2)
    await store.put(second, now=NOW)
    assert {b.key for b in await store.get(AOR, NOW)} == {"<urn:uuid:x>/1", "<urn:uuid:x>/2"}


async def test_order_is_q_then_newest(new_locations: NewStore) -> None:
    store = new_locations()
    old_high = binding("sip:a@192.0.2.1", q=1.0, registered_at=NOW - 10)
    new_high = binding("sip:b@192.0.2.2", q=1.0, registered_at=NOW)
    low = binding("sip:c@192.0.2.3", q=0.1, registered_at=NOW + 1)
    for b in (low, old_high, new_high):
        await store.put(b, now=NOW)
    assert await store.get(AOR, NOW) == [new_high, old_high, low]


async def test_apply_puts_and_removes_in_one_step(new_locations: NewStore) -> None:
    store = new_locations()
    a, b, c = (binding(f"sip:{n}@192.0.2.1") for n in "abc")
    assert await store.apply(AOR, [a, b], NOW) == [a, b]
    after = await store.apply(AOR, [a.key, c, "sip:absent@192.0.2.1"], NOW)
    assert {x.contact for x in after} == {b.contact, c.contact}
    assert {x.contact for x in await store.get(AOR, NOW)} == {b.contact, c.contact}
    assert await store.apply(AOR, [b.key, c.key], NOW) == []
    assert await store.get(AOR, NOW) == []
    assert await store.aors("demo", NOW) == []


async def test_apply_refuses_a_binding_of_another_aor(new_locations: NewStore) -> None:
    store = new_locations()
    with pytest.raises(ValueError, match="demo/1002"):
        await store.apply(AOR, [binding(aor="demo/1002")], NOW)


async def test_concurrent_applies_lose_nothing(new_locations: NewStore) -> None:
    node_a, node_b = new_locations(), new_locations()
    stores = [node_a, node_b]
    await asyncio.gather(
        *(
            stores[i % 2].apply(AOR, [binding(f"sip:1001@192.0.2.{i}:5060", cseq=i)], NOW)
            for i in range(50)
        )
    )
    assert len(await node_a.get(AOR, NOW)) == 50
    assert len(await node_b.get(AOR, NOW)) == 50
    assert await node_b.count(NOW) == 50


async def test_remove_and_remove_all(new_locations: NewStore) -> None:
    store = new_locations()
    a, b = binding("sip:a@192.0.2.1"), binding("sip:b@192.0.2.2")
    await store.apply(AOR, [a, b], NOW)
    await store.remove(AOR, a.key)
    await store.remove(AOR, "sip:absent@192.0.2.1")  # not an error
    assert await store.get(AOR, NOW) == [b]
    await store.remove_all(AOR)
    assert await store.get(AOR, NOW) == []
    assert await store.count(NOW) == 0
    assert await store.aors("demo", NOW) == []
    await store.remove_all("demo/nobody")


async def test_remove_flow(new_locations: NewStore) -> None:
    store = new_locations()
    ws = {"transport": "wss", "node": "node-a", "conn_id": 7}
    phone = binding("sip:x@invalid;transport=ws", instance="<urn:uuid:p>", reg_id=1, **ws)
    other_aor = dataclasses.replace(phone, aor="demo/1002", contact="sip:y@invalid;transport=ws")
    udp = binding("sip:1001@192.0.2.5:5060")
    same_conn_other_node = binding("sip:z@invalid;transport=ws", node="node-b", conn_id=7)
    moved = binding("sip:m@invalid;transport=ws", instance="<urn:uuid:m>", reg_id=1, **ws)
    await store.apply(AOR, [phone, udp, same_conn_other_node, moved], NOW)
    await store.put(other_aor, now=NOW)
    # The device behind `moved` re-registered over a new connection before 7 died.
    moved_again = dataclasses.replace(moved, conn_id=8, contact="sip:m2@invalid;transport=ws")
    await store.put(moved_again, now=NOW)

    removed = await store.remove_flow("node-a", 7)
    assert sorted(b.contact for b in removed) == sorted([phone.contact, other_aor.contact])
    assert {b.contact for b in await store.get(AOR, NOW)} == {
        udp.contact,
        same_conn_other_node.contact,
        moved_again.contact,
    }
    assert await store.get("demo/1002", NOW) == []
    assert await store.aors("demo", NOW) == [AOR]
    assert await store.remove_flow("node-a", 7) == []
    assert [b.contact for b in await store.remove_flow("node-a", 8)] == [moved_again.contact]


async def test_aors_of_a_tenant(new_locations: NewStore) -> None:
    store = new_locations()
    await store.put(binding(aor="demo/1002"), now=NOW)
    await store.put(binding(aor="demo/1001", expires_at=NOW + 10), now=NOW)
    await store.put(binding(aor="acme/1001"), now=NOW)
    assert await store.aors("demo", NOW) == ["demo/1001", "demo/1002"]
    assert await store.aors("acme", NOW) == ["acme/1001"]
    assert await store.aors("demo", NOW + 10) == ["demo/1002"]
    assert await store.aors("nobody", NOW) == []
    assert await store.count(NOW) == 3


async def test_nodes_see_each_others_bindings(new_locations: NewStore) -> None:
    node_a, node_b = new_locations(), new_locations()
    b = binding(node="node-a", conn_id=3, transport="tcp", source=("198.51.100.1", 5555))
    await node_a.put(b, now=NOW)
    assert await node_b.get(AOR, NOW) == [b]
    await node_b.remove(AOR, b.key)
    assert await node_a.get(AOR, NOW) == []


# --- Redis specifics -------------------------------------------------------------


async def test_redis_keys_have_ttls(redis_clients: Callable[[], Redis], prefix: str) -> None:
    client = redis_clients()
    store = RedisLocationStore(client, prefix)
    b = binding(expires_at=NOW + 60, node="node-a", conn_id=9)
    await store.apply(AOR, [b, binding("sip:late@192.0.2.9", expires_at=NOW + 30)], NOW)
    # The hash lives as long as its latest binding; so does the flow index.
    for key in (store.aor_key(AOR), store.flow_key("node-a", 9)):
        assert 59_000 < await client.pttl(key) <= 60_000
    assert await client.hlen(store.aor_key(AOR)) == 2
    assert await client.zscore(store.tenant_key("demo"), AOR) == NOW + 60
    # The last binding removed: the hash is gone and the tenant forgets the AOR.
    await store.apply(AOR, [b.key, "sip:late@192.0.2.9"], NOW)
    assert await client.exists(store.aor_key(AOR)) == 0
    assert await client.zscore(store.tenant_key("demo"), AOR) is None


async def test_redis_apply_is_one_round_trip(
    redis_clients: Callable[[], Redis], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_clients()
    store = RedisLocationStore(client, prefix)
    await store.apply(AOR, [binding()], NOW)  # loads the script
    calls: list[tuple] = []
    real = client.execute_command

    async def counting(*args: object, **options: object) -> object:
        calls.append(args)
        return await real(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    await store.apply(AOR, [binding(cseq=2), binding("sip:x@192.0.2.8")], NOW)
    assert [c[0] for c in calls] == ["EVALSHA"]


def test_memory_store_is_a_location_store() -> None:
    assert isinstance(MemoryLocationStore(), LocationStore)


# --- open_state: what a node gets --------------------------------------------------


async def test_open_state_memory() -> None:
    state = await open_state("memory", "", "node-a")
    try:
        assert isinstance(state.locations, MemoryLocationStore)
        assert isinstance(state.bans, MemoryBanStore)
    finally:
        await state.close()


async def test_open_state_redis_nodes_share_bindings_and_bans(redis_url: str) -> None:
    node_a = await open_state("redis", redis_url, "node-a", prefix="state-test:")
    node_b = await open_state("redis", redis_url, "node-b", prefix="state-test:")
    try:
        made = binding(node="node-a", conn_id=1, transport="tcp")
        await node_a.locations.apply(AOR, [made], NOW)
        assert await node_b.locations.get(AOR, NOW) == [made]
        await node_a.bans.ban("203.0.113.9", 600, NOW)
        assert await node_b.bans.is_banned("203.0.113.9", NOW)
    finally:
        await node_a.locations.remove_all(AOR)
        await node_a.bans.unban("203.0.113.9")
        await node_a.close()
        await node_b.close()


async def test_open_state_errors() -> None:
    with pytest.raises(StateError, match="unknown state backend 'etcd'"):
        await open_state("etcd", "", "n")
    with pytest.raises(StateError, match="redis_url is required"):
        await open_state("redis", "", "n")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        StateError, match=rf"cannot reach Redis at redis://:\*\*\*@127.0.0.1:{port}"
    ):
        await open_state("redis", f"redis://:hunter2@127.0.0.1:{port}/0", "n", connect_timeout=2)
