"""Routing without sockets: DIDs from trunks, dial strings from agents."""

from __future__ import annotations

import time

import pytest

from switch.call.routing import Rejection, Router, Target
from switch.config import load_demo_config
from switch.registrar.guard import Caller
from switch.sip.flow import Flow
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


@pytest.mark.parametrize(("did", "issue"), [("100", "#6"), ("200", "#7"), ("300", "#5")])
async def test_dids_for_services_still_to_come_say_which(router, did, issue):
    rejection = await router.route(TRUNK, did)
    assert isinstance(rejection, Rejection) and rejection.status == 480
    assert issue in rejection.reason


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
