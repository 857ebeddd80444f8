"""The location service: the same tests against the memory and the Redis backend."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from switch.store.bans import MemoryBanStore
from switch.store.location import ALL, Binding, LocationStore, MemoryLocationStore, OutOfOrder
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


# --- ALL: "Contact: *" -------------------------------------------------------------


async def test_all_removes_every_binding_and_its_bookkeeping(new_locations: NewStore) -> None:
    store = new_locations()
    tcp = {"transport": "tcp", "node": "node-a", "conn_id": 7}
    on_flow = binding("sip:a@192.0.2.1:5060;transport=tcp", **tcp)
    outbound = binding("sip:b@invalid;transport=ws", instance="<urn:uuid:b>", reg_id=1, **tcp)
    plain = binding("sip:c@192.0.2.3", call_id="another-call", cseq=99)
    other = binding("sip:d@192.0.2.4", aor="demo/1002", **tcp)
    await store.apply(AOR, [on_flow, outbound, plain], NOW)
    await store.put(other, now=NOW)
    assert await store.count(NOW) == 4

    assert await store.apply(AOR, [ALL], NOW) == []
    assert await store.get(AOR, NOW) == []
    assert await store.count(NOW) == 1
    assert await store.aors("demo", NOW) == ["demo/1002"]
    # The connection's other AOR is all that it still carries.
    assert await store.remove_flow("node-a", 7) == [other]
    assert await store.count(NOW) == 0
    assert await store.aors("demo", NOW) == []


async def test_all_of_an_aor_without_bindings_is_no_error(new_locations: NewStore) -> None:
    store = new_locations()
    assert await store.apply(AOR, [ALL], NOW, order=("call-1", 1), max_bindings=1) == []
    assert await store.aors("demo", NOW) == [] and await store.count(NOW) == 0


async def test_all_then_a_put_in_one_step_keeps_only_the_put(new_locations: NewStore) -> None:
    store = new_locations()
    await store.apply(AOR, [binding("sip:a@192.0.2.1"), binding("sip:b@192.0.2.2")], NOW)
    fresh = binding("sip:c@192.0.2.3", cseq=2)
    assert await store.apply(AOR, [ALL, fresh], NOW) == [fresh]
    assert await store.get(AOR, NOW) == [fresh]
    assert await store.count(NOW) == 1


# --- order: Call-ID and CSeq (RFC 3261 §10.3 step 7) ----------------------------------


async def contents(store: LocationStore, now: float = NOW) -> tuple[list[Binding], int, list[str]]:
    return await store.get(AOR, now), await store.count(now), await store.aors("demo", now)


@pytest.mark.parametrize("cseq", [5, 4, 1])
async def test_same_call_id_not_newer_is_out_of_order_and_changes_nothing(
    new_locations: NewStore, cseq: int
) -> None:
    store = new_locations()
    a = binding("sip:a@192.0.2.1", cseq=5, registered_at=NOW - 20)
    b = binding("sip:b@192.0.2.2", call_id="another-call", cseq=1, registered_at=NOW - 10)
    await store.apply(AOR, [a, b], NOW)
    before = await contents(store)
    # A put of `a` that is not newer, with a removal and a new put beside it,
    # and a limit that would evict: all or nothing.
    changes = [
        dataclasses.replace(a, cseq=cseq, expires_at=NOW + 3600, registered_at=NOW),
        b.key,
        binding("sip:new@192.0.2.9", cseq=cseq),
    ]
    with pytest.raises(OutOfOrder):
        await store.apply(AOR, changes, NOW, order=("call-1", cseq), max_bindings=1)
    assert await contents(store) == before


async def test_same_call_id_higher_cseq_refreshes(new_locations: NewStore) -> None:
    store = new_locations()
    old = binding("sip:a@192.0.2.1", cseq=5, expires_at=NOW + 10, registered_at=NOW - 3590)
    await store.put(old, now=NOW)
    later = NOW + 5
    refreshed = dataclasses.replace(old, cseq=6, expires_at=later + 3600, registered_at=later)
    assert await store.apply(AOR, [refreshed], later, order=("call-1", 6)) == [refreshed]
    assert await store.get(AOR, later + 100) == [refreshed]


@pytest.mark.parametrize("cseq", [1, 5, 6])
async def test_another_call_id_passes_with_any_cseq(new_locations: NewStore, cseq: int) -> None:
    store = new_locations()
    await store.put(binding("sip:a@192.0.2.1", call_id="rebooted-phone", cseq=5), now=NOW)
    new = binding("sip:a@192.0.2.1", cseq=cseq)
    assert await store.apply(AOR, [new], NOW, order=("call-1", cseq)) == [new]
    assert await store.apply(AOR, [binding("sip:a@192.0.2.1").key], NOW, order=("c2", 1)) == []


async def test_an_expired_binding_does_not_count(new_locations: NewStore) -> None:
    store = new_locations()
    await store.put(binding("sip:a@192.0.2.1", cseq=5, expires_at=NOW + 10), now=NOW)
    later = NOW + 10  # expires_at <= now: gone
    new = binding("sip:a@192.0.2.1", cseq=1, expires_at=later + 60, registered_at=later)
    assert await store.apply(AOR, [new], later, order=("call-1", 1)) == [new]


async def test_order_is_checked_only_against_the_bindings_touched(new_locations: NewStore) -> None:
    # The same client's other binding has a higher CSeq; a new contact is still fine.
    store = new_locations()
    a = binding("sip:a@192.0.2.1", cseq=10)
    await store.put(a, now=NOW)
    b = binding("sip:b@192.0.2.2", cseq=3)
    after = await store.apply(AOR, [b, "sip:absent@192.0.2.3"], NOW, order=("call-1", 3))
    assert {x.key for x in after} == {a.key, b.key}


async def test_a_removal_key_is_checked_too(new_locations: NewStore) -> None:
    store = new_locations()
    a = binding("sip:a@192.0.2.1", cseq=3)
    await store.put(a, now=NOW)
    for cseq in (3, 2):
        with pytest.raises(OutOfOrder):
            await store.apply(AOR, [a.key], NOW, order=("call-1", cseq))
        assert await store.get(AOR, NOW) == [a]
    assert await store.apply(AOR, [a.key], NOW, order=("call-1", 4)) == []
    assert await contents(store) == ([], 0, [])


async def test_all_checks_every_binding(new_locations: NewStore) -> None:
    store = new_locations()
    bindings = [
        binding("sip:a@192.0.2.1", cseq=1),
        binding("sip:b@192.0.2.2", cseq=5),
        binding("sip:c@192.0.2.3", call_id="another-call", cseq=99),
        binding("sip:d@192.0.2.4", cseq=50, expires_at=NOW + 1),  # expired by `later`
    ]
    await store.apply(AOR, bindings, NOW)
    later = NOW + 1
    before = await contents(store, later)
    assert len(before[0]) == 3
    with pytest.raises(OutOfOrder):  # b has CSeq 5, though a has 1
        await store.apply(AOR, [ALL], later, order=("call-1", 5))
    assert await contents(store, later) == before
    assert await store.apply(AOR, [ALL], later, order=("call-1", 6)) == []
    assert await contents(store, later) == ([], 0, [])


async def test_without_order_nothing_is_checked(new_locations: NewStore) -> None:
    store = new_locations()
    await store.put(binding("sip:a@192.0.2.1", cseq=5), now=NOW)
    older = binding("sip:a@192.0.2.1", cseq=1)
    assert await store.apply(AOR, [older], NOW) == [older]


async def test_out_of_order_on_one_node_is_seen_by_another(new_locations: NewStore) -> None:
    node_a, node_b = new_locations(), new_locations()
    made = binding("sip:a@192.0.2.1", cseq=7, node="node-a")
    await node_a.apply(AOR, [made], NOW, order=("call-1", 7))
    with pytest.raises(OutOfOrder):
        await node_b.apply(AOR, [binding("sip:a@192.0.2.1", cseq=7)], NOW, order=("call-1", 7))
    assert await node_b.get(AOR, NOW) == [made]


# --- max_bindings: the oldest make room ------------------------------------------------


def aged(*ages: int, **fields: object) -> list[Binding]:
    """Bindings sip:<age>@h registered `age` seconds ago, with different Call-IDs."""
    return [
        binding(f"sip:{age}@h", call_id=f"call-{age}", registered_at=NOW - age, **fields)
        for age in ages
    ]


def keys(bindings: list[Binding]) -> list[str]:
    return sorted(b.key for b in bindings)


async def test_the_oldest_binding_makes_room_for_a_new_one(new_locations: NewStore) -> None:
    store = new_locations()
    # Stored out of age order: the order comes from registered_at.
    await store.apply(AOR, aged(200, 300, 100), NOW)
    new = binding("sip:new@h")
    after = await store.apply(AOR, [new], NOW, max_bindings=3)
    assert keys(after) == ["sip:100@h", "sip:200@h", "sip:new@h"]
    assert await store.get(AOR, NOW) == after
    assert await store.count(NOW) == 3


async def test_as_many_old_bindings_go_as_new_ones_need(new_locations: NewStore) -> None:
    store = new_locations()
    await store.apply(AOR, aged(100, 400, 200, 300), NOW)
    after = await store.apply(AOR, [binding("sip:n1@h"), binding("sip:n2@h")], NOW, max_bindings=4)
    assert keys(after) == ["sip:100@h", "sip:200@h", "sip:n1@h", "sip:n2@h"]
    assert await store.get(AOR, NOW) == after
    assert await store.count(NOW) == 4


async def test_a_refresh_evicts_nothing(new_locations: NewStore) -> None:
    store = new_locations()
    await store.apply(AOR, aged(100, 200, 300), NOW)
    refresh = binding("sip:300@h", call_id="call-300", cseq=2)
    after = await store.apply(AOR, [refresh], NOW, order=("call-300", 2), max_bindings=3)
    assert keys(after) == ["sip:100@h", "sip:200@h", "sip:300@h"]
    assert refresh in after


async def test_a_removal_in_the_same_step_makes_room(new_locations: NewStore) -> None:
    store = new_locations()
    await store.apply(AOR, aged(100, 200, 300), NOW)
    changes = ["sip:100@h", binding("sip:new@h")]
    after = await store.apply(AOR, changes, NOW, max_bindings=3)
    assert keys(after) == ["sip:200@h", "sip:300@h", "sip:new@h"]


async def test_new_bindings_are_never_evicted_even_beyond_the_limit(
    new_locations: NewStore,
) -> None:
    store = new_locations()
    await store.apply(AOR, aged(100), NOW)
    new = [binding(f"sip:n{i}@h") for i in (1, 2, 3)]
    after = await store.apply(AOR, new, NOW, max_bindings=2)
    assert keys(after) == ["sip:n1@h", "sip:n2@h", "sip:n3@h"]
    assert await store.get(AOR, NOW) == after
    assert await store.count(NOW) == 3
    # And the next step brings the AOR back under the limit, oldest first.
    newest = binding("sip:n4@h", registered_at=NOW + 1)
    after = await store.apply(AOR, [newest], NOW + 1, max_bindings=2)
    assert len(after) == 2 and newest in after


async def test_expired_bindings_are_pruned_before_counting(new_locations: NewStore) -> None:
    store = new_locations()
    expired = aged(300, 200, expires_at=NOW + 10)  # the oldest two, gone at NOW + 10
    await store.apply(AOR, [*expired, *aged(100)], NOW)
    later = NOW + 10
    new = binding("sip:new@h", expires_at=later + 60, registered_at=later)
    after = await store.apply(AOR, [new], later, max_bindings=2)
    assert keys(after) == ["sip:100@h", "sip:new@h"]  # no live binding evicted
    assert await store.count(later) == 2


async def test_an_evicted_binding_leaves_no_bookkeeping(new_locations: NewStore) -> None:
    store = new_locations()
    tcp = {"transport": "tcp", "node": "node-a", "conn_id": 7}
    old = binding("sip:old@h;transport=tcp", registered_at=NOW - 100, **tcp)
    await store.apply(AOR, [old], NOW)
    new = binding("sip:new@h")
    assert await store.apply(AOR, [new], NOW, max_bindings=1) == [new]
    assert await store.remove_flow("node-a", 7) == []
    assert await store.get(AOR, NOW) == [new]
    assert await contents(store) == ([new], 1, [AOR])


async def test_max_bindings_limits_one_aor_only(new_locations: NewStore) -> None:
    store = new_locations()
    await store.apply("demo/1002", [binding(aor="demo/1002", registered_at=NOW - 100)], NOW)
    await store.apply(AOR, aged(100), NOW)
    after = await store.apply(AOR, [binding("sip:new@h")], NOW, max_bindings=1)
    assert keys(after) == ["sip:new@h"]
    assert len(await store.get("demo/1002", NOW)) == 1
    assert await store.aors("demo", NOW) == [AOR, "demo/1002"]


async def test_max_bindings_zero_is_the_same_on_both_backends(
    redis_clients: Callable[[], Redis], prefix: str
) -> None:
    results = []
    for store in (MemoryLocationStore(), RedisLocationStore(redis_clients(), prefix)):
        await store.apply(AOR, aged(100), NOW)
        after = await store.apply(AOR, [binding("sip:new@h")], NOW, max_bindings=0)
        results.append(keys(after))
    assert results[0] == results[1]


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


async def test_redis_all_deletes_the_aor_keys(
    redis_clients: Callable[[], Redis], prefix: str
) -> None:
    client = redis_clients()
    store = RedisLocationStore(client, prefix)
    await store.apply(AOR, [binding("sip:a@192.0.2.1"), binding("sip:b@192.0.2.2")], NOW)
    assert await client.zcard(f"{prefix}loc-all") == 2
    await store.apply(AOR, [ALL], NOW, order=("call-2", 1))
    assert await client.exists(store.aor_key(AOR)) == 0
    assert await client.zscore(store.tenant_key("demo"), AOR) is None
    assert await client.zcard(f"{prefix}loc-all") == 0


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
    # The REGISTER path: order and limit checked in the same round trip, refused or not.
    calls.clear()
    await store.apply(AOR, [binding(cseq=3)], NOW, order=("call-1", 3), max_bindings=1)
    with pytest.raises(OutOfOrder):
        await store.apply(AOR, [ALL], NOW, order=("call-1", 3), max_bindings=1)
    assert [c[0] for c in calls] == ["EVALSHA", "EVALSHA"]


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
