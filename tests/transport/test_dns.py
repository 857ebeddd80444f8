"""The DNS resolver against a real (tiny) DNS server on loopback: caching, failures."""

from __future__ import annotations

import asyncio
import time

import pytest

from switch.sip.locate import NXDOMAIN, SERVFAIL, TIMEOUT, Answer, Hop, LocateError, Query, Srv
from switch.transport.dns import Resolver
from tests.support.dns import NEVER, DnsServer
from tests.support.dns import NXDOMAIN as NX
from tests.support.dns import SERVFAIL as FAIL

CARRIER = {
    "carrier.example": {
        "NAPTR": ['10 10 "s" "SIP+D2U" "" _sip._udp.carrier.example.'],
    },
    "_sip._udp.carrier.example": {
        "SRV": ["10 60 5070 sbc1.carrier.example.", "20 0 5080 sbc2.carrier.example."],
    },
    "sbc1.carrier.example": {"A": ["127.0.0.11"]},
    "sbc2.carrier.example": {"A": ["127.0.0.12"], "AAAA": ["::1"]},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver_for(server: DnsServer, **kw) -> Resolver:
    return Resolver([("127.0.0.1", server.port)], **kw)


async def test_a_trunk_domain_is_located_through_naptr_srv_and_a():
    async with DnsServer(CARRIER) as server:
        hops = await resolver_for(server).locate("carrier.example", 0, None, ("udp", "tcp"))
    assert hops == [
        Hop("udp", "127.0.0.11", 5070),
        Hop("udp", "127.0.0.12", 5080),
        Hop("udp", "::1", 5080),
    ]
    assert server.queries[:2] == [
        ("carrier.example", "NAPTR"),
        ("_sip._udp.carrier.example", "SRV"),
    ]


async def test_records_come_back_as_the_locator_reads_them():
    async with DnsServer(CARRIER) as server:
        resolver = resolver_for(server)
        srv = await resolver.query(Query("_sip._udp.carrier.example", "SRV"))
        naptr = await resolver.query(Query("carrier.example", "NAPTR"))
        nothing = await resolver.query(Query("carrier.example", "A"))
        missing = await resolver.query(Query("nope.carrier.example", "A"))
    assert set(srv.records) == {
        Srv(10, 60, 5070, "sbc1.carrier.example"),
        Srv(20, 0, 5080, "sbc2.carrier.example"),
    }
    assert [(r.service, r.flags, r.replacement) for r in naptr.records] == [  # type: ignore[union-attr]
        ("SIP+D2U", "s", "_sip._udp.carrier.example")
    ]
    assert nothing == Answer()  # the name exists, without A records
    assert missing == Answer(error=NXDOMAIN)


async def test_answers_are_kept_for_their_ttl():
    clock = Clock()
    async with DnsServer(CARRIER, ttl=60) as server:
        resolver = resolver_for(server, clock=clock)
        first = await resolver.locate("carrier.example", 0, None, ("udp",), ("A",))
        asked = len(server.queries)
        clock.now += 59
        assert await resolver.locate("carrier.example", 0, None, ("udp",), ("A",)) == first
        assert len(server.queries) == asked  # all from the cache
        clock.now += 2
        await resolver.locate("carrier.example", 0, None, ("udp",), ("A",))
        assert len(server.queries) == 2 * asked  # expired: asked again


async def test_a_name_that_does_not_exist_is_remembered_briefly():
    clock = Clock()
    async with DnsServer({"nx.example": NX}) as server:
        resolver = resolver_for(server, clock=clock, negative_ttl=30)
        for _ in range(3):
            with pytest.raises(LocateError, match=r"nx\.example does not exist"):
                await resolver.locate("nx.example", 0, None, ("udp",))
        assert server.queries == [("nx.example", "NAPTR")]  # one query for three calls
        clock.now += 31
        server.zone["nx.example"] = {"A": ["127.0.0.5"]}  # the operator fixed the zone
        hops = await resolver.locate("nx.example", 0, None, ("udp",), ("A",))
    assert hops == [Hop("udp", "127.0.0.5", 5060)]


async def test_dns_servers_that_never_answer_time_out():
    async with DnsServer({"slow.example": NEVER}) as server:
        resolver = resolver_for(server, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(LocateError, match="no answer from the DNS servers"):
            await asyncio.wait_for(resolver.locate("slow.example", 0, None, ("udp",)), 5)
        assert time.monotonic() - started < 2
        assert await resolver.query(Query("slow.example", "A")) == Answer(error=TIMEOUT)


async def test_a_failing_server_is_not_cached_and_a_stale_answer_bridges_it():
    clock = Clock()
    async with DnsServer(CARRIER, ttl=10) as server:
        resolver = resolver_for(server, clock=clock)
        query = Query("sbc1.carrier.example", "A")
        assert (await resolver.query(query)).records == ("127.0.0.11",)
        server.zone["sbc1.carrier.example"] = FAIL
        clock.now += 11
        # Expired, and the server fails: the last good answer rather than no calls.
        assert (await resolver.query(query)).records == ("127.0.0.11",)
        # A name never seen before gets the failure itself, not cached.
        server.zone["new.carrier.example"] = FAIL
        fresh = Query("new.carrier.example", "A")
        assert await resolver.query(fresh) == Answer(error=SERVFAIL)
        server.zone["new.carrier.example"] = {"A": ["127.0.0.13"]}
        assert (await resolver.query(fresh)).records == ("127.0.0.13",)


async def test_concurrent_lookups_of_one_name_share_one_query():
    async with DnsServer(CARRIER) as server:
        resolver = resolver_for(server)
        query = Query("sbc1.carrier.example", "A")
        answers = await asyncio.gather(*(resolver.query(query) for _ in range(20)))
    assert {a.records for a in answers} == {("127.0.0.11",)}
    assert server.queries == [("sbc1.carrier.example", "A")]


async def test_a_cancelled_lookup_does_not_spoil_the_others():
    async with DnsServer(CARRIER) as server:
        resolver = resolver_for(server)
        query = Query("sbc1.carrier.example", "A")
        first = asyncio.ensure_future(resolver.query(query))
        second = asyncio.ensure_future(resolver.query(query))
        await asyncio.sleep(0)
        first.cancel()
        assert (await second).records == ("127.0.0.11",)


async def test_closing_stops_the_lookups_under_way():
    async with DnsServer({"slow.example": NEVER}) as server:
        resolver = resolver_for(server, timeout=10)
        lookup = asyncio.ensure_future(resolver.query(Query("slow.example", "A")))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(resolver.close(), 2)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(lookup, 2)
