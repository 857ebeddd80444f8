"""Routing without sockets: DIDs from trunks, dial strings from agents."""

from __future__ import annotations

import time

import pytest

from switch.call.routing import App, Rejection, Router, Target
from switch.config import demo_config_text, load_config, load_demo_config
from switch.registrar.guard import Caller
from switch.sip.flow import Flow
from switch.sip.locate import Hop, LocateError
from switch.store.location import Binding, MemoryLocationStore

TRUNK = Caller("demo", "trunk", "demo-trunk")
AGENT = Caller("demo", "agent", "1001")


@pytest.fixture
def store() -> MemoryLocationStore:
    return MemoryLocationStore()


@pytest.fixture
def router(store) -> Router:
    return Router(load_demo_config(), store)


async def test_a_forwarded_did_goes_out_through_its_trunk(router):
    target = await router.route(TRUNK, "400")
    assert target == Target("sip:+444000@127.0.0.1:5090", Flow("udp", ("127.0.0.1", 5090)),
                            "trunk", "demo-trunk", number="+444000", setup_timeout=5.0)  # fmt: skip


async def test_an_unknown_did_is_404(router):
    assert await router.route(TRUNK, "999") == Rejection(404, "Not Found (no DID '999')")


async def test_an_ivr_did_runs_the_ivr_app_with_its_flow_and_a_queue_did_the_queue_app(router):
    assert await router.route(TRUNK, "100") == App("ivr", "demo")
    assert await router.route(TRUNK, "200") == App("queue", "support")


async def test_the_echo_did_is_an_app_the_node_answers(router):
    assert await router.route(TRUNK, "300") == App("echo")


async def test_an_agent_dials_out_with_the_prefix_stripped(router):
    target = await router.route(AGENT, "95551234")
    assert isinstance(target, Target)
    assert target.uri == "sip:+445551234@127.0.0.1:5090" and target.kind == "trunk"


@pytest.mark.parametrize("dialled", ["9005551234", "9+495551234"])
async def test_international_is_refused_unless_the_route_allows_it(router, dialled):
    rejection = await router.route(AGENT, dialled)
    assert isinstance(rejection, Rejection) and rejection.status == 403


async def test_an_agent_calls_a_registered_agent_at_its_preferred_device(router, store):
    now = time.time()
    for contact, q, source in [("sip:a@10.0.0.1", 0.5, 5061), ("sip:b@10.0.0.2", 1.0, 5062)]:
        await store.put(
            Binding("demo/1002", contact, now + 600, "c", 1, q=q, source=("198.51.100.9", source))
        )
    target = await router.route(AGENT, "1002")
    assert target == Target("sip:b@10.0.0.2", Flow("udp", ("198.51.100.9", 5062)), "agent", "1002")


async def test_an_agent_who_is_not_registered_is_480(router):
    rejection = await router.route(AGENT, "1003")
    assert isinstance(rejection, Rejection) and rejection.status == 480


async def test_a_dial_string_that_matches_nothing_is_404(router):
    rejection = await router.route(AGENT, "7777")
    assert isinstance(rejection, Rejection) and rejection.status == 404


# -- trunks given by host name: located by DNS ---------------------------------------------


class FakeLocate:
    """Hops by host name, or a LocateError; remembers what it was asked."""

    def __init__(self, hops: dict[str, list[Hop]]) -> None:
        self.hops = hops
        self.asked: list[tuple[str, int, str | None]] = []

    async def __call__(self, host: str, port: int, transport: str | None) -> list[Hop]:
        self.asked.append((host, port, transport))
        if host not in self.hops:
            raise LocateError(f"{host} does not exist in DNS (NXDOMAIN)")
        return self.hops[host]


def _config_with(tmp_path, changes: dict[str, str]):
    text = demo_config_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "switch.toml"
    path.write_text(text)
    return load_config(path)


CARRIER_HOPS = [Hop("udp", "192.0.2.1", 5070), Hop("tcp", "192.0.2.2", 5060)]


async def test_a_trunk_named_by_domain_goes_to_its_servers_in_dns_order(tmp_path, store):
    config = _config_with(tmp_path, {'"127.0.0.1:5090"': '"carrier.example"'})
    locate = FakeLocate({"carrier.example": CARRIER_HOPS})
    target = await Router(config, store, locate=locate).route(TRUNK, "400")
    assert locate.asked == [("carrier.example", 0, "udp")]  # the demo says udp
    # The carrier's domain in the Request-URI, as it expects; DNS says where to send.
    hops = [(t.uri, t.flow, t.name, t.number) for t in (target, *target.fallbacks)]
    assert hops == [
        ("sip:+444000@carrier.example", Flow("udp", ("192.0.2.1", 5070)), "demo-trunk", "+444000"),
        ("sip:+444000@carrier.example", Flow("tcp", ("192.0.2.2", 5060)), "demo-trunk", "+444000"),
    ]
    assert all(t.setup_timeout == 5.0 and not t.fallbacks for t in target.fallbacks)


async def test_without_a_transport_naptr_decides_and_a_port_is_kept(tmp_path, store):
    config = _config_with(
        tmp_path,
        {
            '"127.0.0.1:5090"': '"carrier.example:5080"',
            'transport = "udp"         # udp | tcp | tls': "",
        },
    )
    locate = FakeLocate({"carrier.example": [Hop("udp", "192.0.2.1", 5080)]})
    target = await Router(config, store, locate=locate).route(AGENT, "95551234")
    assert locate.asked == [("carrier.example", 5080, "udp")]  # a port: UDP, as RFC 3263 says
    assert isinstance(target, Target) and target.uri == "sip:+445551234@carrier.example:5080"
    config = _config_with(
        tmp_path,
        {
            '"127.0.0.1:5090"': '"carrier.example"',
            'transport = "udp"         # udp | tcp | tls': "",
        },
    )
    locate = FakeLocate({"carrier.example": CARRIER_HOPS})
    await Router(config, store, locate=locate).route(AGENT, "95551234")
    assert locate.asked == [("carrier.example", 0, None)]  # NAPTR chooses


async def test_all_servers_of_the_first_trunk_come_before_the_next_trunk(tmp_path, store):
    config = _config_with(
        tmp_path,
        {
            '"127.0.0.1:5090"': '"carrier.example"',
            'trunk = "demo-trunk"\nallow_international = false': (
                'trunk = "demo-trunk"\ntrunks = ["backup", "spare"]\nallow_international = false'
            ),
            "[tenants.demo.outbound.external]": (
                '[tenants.demo.trunks.backup]\noutbound_host = "192.0.2.9:5060"\n\n'
                '[tenants.demo.trunks.spare]\noutbound_host = "spare.example"\n\n'
                "[tenants.demo.outbound.external]"
            ),
        },
    )
    locate = FakeLocate({"carrier.example": CARRIER_HOPS, "spare.example": CARRIER_HOPS[:1]})
    target = await Router(config, store, locate=locate).route(AGENT, "95551234")
    assert isinstance(target, Target)
    tried = [(t.name, t.flow.remote) for t in (target, *target.fallbacks)]
    assert tried == [
        ("demo-trunk", ("192.0.2.1", 5070)),
        ("demo-trunk", ("192.0.2.2", 5060)),
        ("backup", ("192.0.2.9", 5060)),
        ("spare", ("192.0.2.1", 5070)),
    ]
    assert all(not t.fallbacks for t in target.fallbacks)  # one flat list for the b2bua


async def test_a_trunk_domain_that_does_not_resolve_is_503_naming_it(tmp_path, store, caplog):
    config = _config_with(tmp_path, {'"127.0.0.1:5090"': '"nx.carrier.example"'})
    router = Router(config, store, locate=FakeLocate({}))
    rejection = await router.route(TRUNK, "400")
    assert rejection == Rejection(
        503, "Service Unavailable (trunk host nx.carrier.example does not resolve)"
    )
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == [
        "trunk demo/demo-trunk: cannot locate nx.carrier.example: nx.carrier.example does not "
        "exist in DNS (NXDOMAIN); check the trunk's outbound_host and the nameservers of [dns] "
        "(or the system's resolver)"
    ]


async def test_a_route_falls_over_a_trunk_that_does_not_resolve(tmp_path, store):
    config = _config_with(
        tmp_path,
        {
            '"127.0.0.1:5090"': '"nx.carrier.example"',
            'trunk = "demo-trunk"\nallow_international = false': (
                'trunk = "demo-trunk"\ntrunks = ["backup"]\nallow_international = false'
            ),
            "[tenants.demo.outbound.external]": (
                '[tenants.demo.trunks.backup]\noutbound_host = "192.0.2.9:5060"\n\n'
                "[tenants.demo.outbound.external]"
            ),
        },
    )
    target = await Router(config, store, locate=FakeLocate({})).route(AGENT, "95551234")
    assert isinstance(target, Target) and target.name == "backup" and not target.fallbacks


async def test_a_trunk_given_by_address_needs_no_dns(store):
    locate = FakeLocate({})
    target = await Router(load_demo_config(), store, locate=locate).route(TRUNK, "400")
    assert isinstance(target, Target) and target.flow.remote == ("127.0.0.1", 5090)
    assert locate.asked == []
