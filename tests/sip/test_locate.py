"""RFC 3263 server location without sockets: records in, hops out."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from switch.sip.locate import (
    NXDOMAIN,
    SERVFAIL,
    TIMEOUT,
    Answer,
    Hop,
    LocateError,
    Naptr,
    Query,
    Srv,
    locate,
    order_naptr,
    order_srv,
)

ALL = ("udp", "tcp", "tls")


def run(zone: dict, host: str, port: int = 0, transport: str | None = None, **kw):
    """(hops, queries asked) of locating `host` against a dict zone.

    zone: (name, type) -> tuple of records, or NXDOMAIN/SERVFAIL/TIMEOUT.
    Missing entries answer "no records" (the name exists).
    """
    kw.setdefault("transports", ALL)
    asked: list[tuple[str, str]] = []
    steps = locate(host, port, transport, rng=random.Random(7), **kw)
    try:
        query = next(steps)
        while True:
            asked.append((query.name, query.rdtype))
            entry = zone.get((query.name, query.rdtype), ())
            answer = Answer(error=entry) if isinstance(entry, str) else Answer(tuple(entry))
            query = steps.send(answer)
    except StopIteration as done:
        return done.value, asked


def fails(zone: dict, host: str, **kw) -> str:
    with pytest.raises(LocateError) as caught:
        run(zone, host, **kw)
    return str(caught.value)


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> Naptr:
    return Naptr(order, pref, flags, service, replacement)


# -- what is asked --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "transport", "hop"),
    [
        ("192.0.2.7", 5070, None, Hop("udp", "192.0.2.7", 5070)),
        ("192.0.2.7", 0, None, Hop("udp", "192.0.2.7", 5060)),
        ("2001:db8::7", 0, "tls", Hop("tls", "2001:db8::7", 5061)),
        ("192.0.2.7", 0, "tcp", Hop("tcp", "192.0.2.7", 5060)),
    ],
)
def test_an_address_is_used_as_it_is_without_dns(host, port, transport, hop):
    assert run({}, host, port, transport) == ([hop], [])


def test_a_name_with_a_port_asks_only_for_addresses():
    zone = {("sip.example", "A"): ("192.0.2.1", "192.0.2.2"), ("sip.example", "AAAA"): ("::1",)}
    hops, asked = run(zone, "sip.example", 5080)
    assert asked == [("sip.example", "A"), ("sip.example", "AAAA")]
    assert hops == [
        Hop("udp", "192.0.2.1", 5080),
        Hop("udp", "192.0.2.2", 5080),
        Hop("udp", "::1", 5080),
    ]


def test_only_the_address_families_the_node_can_send_on_are_asked():
    zone = {("sip.example", "A"): ("192.0.2.1",), ("sip.example", "AAAA"): ("::1",)}
    assert run(zone, "sip.example", 5080, "tcp", families=("A",)) == (
        [Hop("tcp", "192.0.2.1", 5080)],
        [("sip.example", "A")],
    )


@pytest.mark.parametrize(
    ("transport", "srv_name", "port"),
    [("udp", "_sip._udp.example.com", 5060), ("tcp", "_sip._tcp.example.com", 5060),
     ("tls", "_sips._tcp.example.com", 5061)],
)  # fmt: skip
def test_a_given_transport_skips_naptr_and_asks_for_its_srv(transport, srv_name, port):
    zone = {
        (srv_name, "SRV"): (Srv(10, 0, 5999, "pbx.example.com"),),
        ("pbx.example.com", "A"): ("192.0.2.9",),
    }
    hops, asked = run(zone, "example.com", transport=transport, families=("A",))
    assert asked == [(srv_name, "SRV"), ("pbx.example.com", "A")]
    assert hops == [Hop(transport, "192.0.2.9", 5999)]
    # Without SRV records: the name's own address, on the transport's default port.
    hops, asked = run({("example.com", "A"): ("192.0.2.8",)}, "example.com", transport=transport,
                      families=("A",))  # fmt: skip
    assert asked == [(srv_name, "SRV"), ("example.com", "A")]
    assert hops == [Hop(transport, "192.0.2.8", port)]


def test_naptr_chooses_the_transport_by_order_then_preference():
    zone = {
        ("example.com", "NAPTR"): (
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
            naptr(10, 20, "SIP+D2U", "_sip._udp.example.com"),
            naptr(10, 10, "SIP+D2T", "_sip._tcp.example.com."),
        ),
        ("_sip._tcp.example.com", "SRV"): (Srv(0, 0, 5070, "tcp.example.com"),),
        ("_sip._udp.example.com", "SRV"): (Srv(0, 0, 5080, "udp.example.com"),),
        ("tcp.example.com", "A"): ("192.0.2.1",),
        ("udp.example.com", "A"): ("192.0.2.2",),
    }
    hops, asked = run(zone, "example.com", families=("A",))
    assert asked[:2] == [("example.com", "NAPTR"), ("_sip._tcp.example.com", "SRV")]
    # TCP first (order 10, preference 10); UDP is where to fail over.
    assert hops == [Hop("tcp", "192.0.2.1", 5070), Hop("udp", "192.0.2.2", 5080)]


def test_naptr_records_for_transports_the_node_lacks_or_other_flags_are_discarded():
    records = (
        naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),  # the node has no TLS
        naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com", flags="a"),  # not an SRV name
        naptr(10, 30, "E2U+sip", "!^.*$!sip:x@example.com!"),  # ENUM, not ours
        naptr(10, 40, "SIP+D2U", "_sip._udp.example.com"),
    )
    assert order_naptr(records, {"udp", "tcp"}) == [("udp", "_sip._udp.example.com")]
    assert order_naptr(records, ALL)[0] == ("tls", "_sips._tcp.example.com")


def test_without_naptr_each_transport_the_node_has_gets_an_srv_query():
    zone = {
        ("_sip._tcp.example.com", "SRV"): (Srv(0, 0, 5070, "pbx.example.com"),),
        ("pbx.example.com", "A"): ("192.0.2.1",),
    }
    hops, asked = run(zone, "example.com", transports=("tcp", "udp"), families=("A",))
    assert asked == [
        ("example.com", "NAPTR"),
        ("_sip._udp.example.com", "SRV"),  # UDP first, as Kamailio and Asterisk
        ("_sip._tcp.example.com", "SRV"),
        ("pbx.example.com", "A"),
    ]
    assert hops == [Hop("tcp", "192.0.2.1", 5070)]


def test_without_naptr_or_srv_the_name_is_reached_over_udp_on_5060():
    hops, asked = run({("example.com", "A"): ("192.0.2.1",)}, "example.com", families=("A",))
    assert asked[-1] == ("example.com", "A")
    assert hops == [Hop("udp", "192.0.2.1", 5060)]


def test_every_address_of_every_srv_target_is_a_hop_in_priority_order():
    zone = {
        ("_sip._udp.example.com", "SRV"): (
            Srv(20, 0, 5060, "backup.example.com."),
            Srv(10, 0, 5062, "main.example.com."),
            Srv(30, 0, 5062, "main.example.com."),  # the same hop again: tried once
        ),
        ("main.example.com", "A"): ("192.0.2.1", "192.0.2.2"),
        ("backup.example.com", "A"): ("192.0.2.3",),
    }
    hops, _ = run(zone, "example.com", transport="udp", families=("A",))
    assert hops == [
        Hop("udp", "192.0.2.1", 5062),
        Hop("udp", "192.0.2.2", 5062),
        Hop("udp", "192.0.2.3", 5060),
    ]


def test_an_srv_target_written_as_an_address_is_used_without_a_query():
    zone = {("_sip._udp.example.com", "SRV"): (Srv(0, 0, 5062, "192.0.2.4."),)}
    hops, asked = run(zone, "example.com", transport="udp")
    assert hops == [Hop("udp", "192.0.2.4", 5062)]
    assert asked == [("_sip._udp.example.com", "SRV")]


# -- RFC 2782 weights -------------------------------------------------------------------


def test_srv_weights_share_the_first_place_in_proportion():
    records = [Srv(10, 90, 5060, "heavy"), Srv(10, 10, 5060, "light"), Srv(5, 0, 5060, "first")]
    rng = random.Random(1)
    firsts: Counter[str] = Counter()
    for _ in range(2000):
        ordered = order_srv(records, rng)
        assert ordered[0].target == "first"  # the lower priority value always comes first
        assert sorted(r.target for r in ordered[1:]) == ["heavy", "light"]
        firsts[ordered[1].target] += 1
    assert 1700 < firsts["heavy"] < 1900  # 90% of 2000, give or take


def test_zero_weights_still_get_their_turn():
    records = [Srv(10, 0, 5060, "a"), Srv(10, 0, 5060, "b")]
    rng = random.Random(3)
    seen = {tuple(r.target for r in order_srv(records, rng)) for _ in range(200)}
    assert seen == {("a", "b"), ("b", "a")}


def test_a_zero_weight_beside_others_gets_a_small_chance():
    records = [Srv(10, 99, 5060, "weighted"), Srv(10, 0, 5060, "zero")]
    rng = random.Random(5)
    zero_first = sum(order_srv(records, rng)[0].target == "zero" for _ in range(3000))
    assert 5 < zero_first < 80  # 1 in 100, give or take


def test_the_same_seed_gives_the_same_order():
    records = [Srv(10, w, 5060, f"t{w}") for w in (1, 2, 3, 4, 5)]
    assert order_srv(records, random.Random(42)) == order_srv(records, random.Random(42))


def test_a_lone_dot_target_means_no_service():
    assert order_srv([Srv(0, 0, 0, ".")], random.Random()) == []
    zone = {("_sip._udp.example.com", "SRV"): (Srv(0, 0, 0, "."),)}
    message = fails(zone, "example.com", transport="udp")
    assert message == 'example.com offers no SIP service here (SRV target ".")'


# -- failures ------------------------------------------------------------------------------


def test_a_name_that_does_not_exist_stops_at_the_first_query():
    zone = {("nx.example", "NAPTR"): NXDOMAIN}
    with pytest.raises(LocateError, match=r"nx.example does not exist in DNS \(NXDOMAIN\)"):
        run(zone, "nx.example")
    steps = locate("nx.example", 0, None, ALL)
    assert next(steps) == Query("nx.example", "NAPTR")
    with pytest.raises(LocateError):
        steps.send(Answer(error=NXDOMAIN))  # nothing more is asked


def test_dns_servers_that_do_not_answer_stop_the_lookup():
    zone = {("_sip._udp.example.com", "SRV"): TIMEOUT}
    message = fails(zone, "example.com")
    assert message == "no answer from the DNS servers for _sip._udp.example.com SRV"


def test_a_servfail_for_naptr_is_not_the_end():
    # Some resolvers fail on NAPTR they do not know; SRV still works.
    zone = {
        ("example.com", "NAPTR"): SERVFAIL,
        ("_sip._udp.example.com", "SRV"): (Srv(0, 0, 5060, "pbx.example.com"),),
        ("pbx.example.com", "A"): ("192.0.2.1",),
    }
    hops, _ = run(zone, "example.com", families=("A",))
    assert hops == [Hop("udp", "192.0.2.1", 5060)]


def test_a_name_without_any_records_says_so():
    assert fails({}, "empty.example") == "empty.example has no NAPTR, SRV, A or AAAA records"
    assert fails({}, "empty.example", transport="tcp") == (
        "empty.example has no SRV, A or AAAA records"
    )
    assert fails({}, "empty.example", port=5060) == "empty.example has no A or AAAA records"


def test_srv_targets_without_addresses_are_reported_as_such():
    zone = {("_sip._udp.example.com", "SRV"): (Srv(0, 0, 5060, "gone.example.com"),)}
    message = fails(zone, "example.com", transport="udp")
    assert message == "the SRV targets of example.com have no A or AAAA records"


def test_servfail_is_named_when_nothing_else_was_found():
    zone = {("example.com", "A"): SERVFAIL}
    message = fails(zone, "example.com", port=5060)
    assert message == "the DNS servers failed to answer for example.com A"
