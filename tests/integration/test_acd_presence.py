"""The ACD's agents on a live node: presence, busy, feature codes.

The demo node (queue "support": agents 1001, 1002, 1003; ring timeout 2 s in
these tests). Presence: a browser-like client registers over SIP on
WebSocket as JsSIP does; when its connection closes, the agent is not ready
"disconnected" at once, and an offer ringing it is pulled back: the caller
goes to the next agent well before the ring timeout; a lapsed registration
and a registration on another node (Redis) are seen too. Busy: an agent on
a direct call or a call an application put through is not offered callers.
Feature codes: an agent's desk phone dials *61..*65.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from switch.apps.acd.events import OfferEnded
from switch.node import Node
from switch.sip.message import Request, make_response
from tests.integration.conftest import running_node, sip_address
from tests.integration.test_acd_calls import (
    RING,
    _sipp_agent,
    _status,
    _unregister,
    queue_call,
    queue_node,
)
from tests.integration.test_app_connect import (
    CALLER_HZ,
    Connector,
    _heard,
    _loud,
    _next,
    _reply,
    _talk,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import _invite, _offer, app_node, trunk_call
from tests.integration.test_calls import (
    _agent_calls,
    _in_dialog,
    _next_request,
    _next_response,
    _sdp,
)
from tests.integration.test_registrar_node import _redis
from tests.media.audio import peaks
from tests.support.sipclient import UdpPhone, WsBrowser, authorization, register, register_agent
from tests.support.sipp import free_port, needs_sipp, run_sipp, start_far_end

pytestmark = pytest.mark.timeout(60)


async def ws_register(browser: WsBrowser, ext: str) -> str:
    """Register agent `ext` over the browser's WebSocket, as JsSIP does; its contact."""
    user = secrets.token_hex(4)
    contact = (
        f"<sip:{user}@{user}.invalid;transport=ws>"
        f';+sip.instance="<urn:uuid:00000000-0000-4000-8000-{secrets.token_hex(6)}>";reg-id=1'
    )
    via = f"SIP/2.0/WSS {user}.invalid"
    extra = ("Supported: path, outbound, gruu",)
    call_id = secrets.token_hex(6)
    first = await browser.request(
        register(ext, "demo.invalid", contact, via, call_id=call_id, cseq=1, extra=extra)
    )
    auth = authorization(first, ext, f"agent{ext}", "sip:demo.invalid")
    ok = await browser.request(
        register(
            ext, "demo.invalid", contact, via, call_id=call_id, cseq=2,
            extra=(*extra, f"Authorization: {auth}"),
        )
    )  # fmt: skip
    assert ok.status == 200, ok.reason
    return contact


@contextlib.asynccontextmanager
async def browser_agent(node: Node, ext: str) -> AsyncIterator[WsBrowser]:
    async with WsBrowser(f"{node.http_url}/sip") as browser:
        await ws_register(browser, ext)
        yield browser


async def _within(check, seconds: float) -> float:
    """Seconds until `check()` holds; fails after `seconds`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_a_closed_websocket_makes_the_agent_disconnected_at_once_and_back(tmp_path):
    async with queue_node(tmp_path) as node:
        browser = WsBrowser(f"{node.http_url}/sip")
        await browser.__aenter__()
        await ws_register(browser, "1001")
        # Told synchronously by the REGISTER's write: available before the 200 arrives.
        assert _status(node, "1001") == ("available", "")
        await browser.close()
        took = await _within(lambda: _status(node, "1001") == ("not-ready", "disconnected"), 0.5)
        assert took < 0.5
        async with browser_agent(node, "1001"):
            assert _status(node, "1001") == ("available", "")


async def test_a_lapsed_registration_is_noticed_within_a_second(tmp_path):
    shorter = {"min_expires = 60 ": "min_expires = 1 "}
    async with queue_node(tmp_path, **shorter) as node, agent_phone(node, "1002") as phone:
        assert _status(node, "1002") == ("available", "")
        # Re-register for 1 s and never refresh (a phone that lost power).
        call_id = secrets.token_hex(6)
        contact = f"<sip:1002@{phone.address[0]}:{phone.address[1]}>"
        first = await phone.request(
            register("1002", "demo.invalid", contact, phone.via, call_id=call_id, cseq=1)
        )
        auth = authorization(first, "1002", "agent1002", "sip:demo.invalid")
        ok = await phone.request(
            register(
                "1002", "demo.invalid", contact, phone.via, call_id=call_id, cseq=2,
                expires=1, extra=(f"Authorization: {auth}",),
            )
        )  # fmt: skip
        assert ok.status == 200
        expires = [b.expires_at for b in await node.state.locations.get("demo/1002", time.time())]
        await _within(lambda: _status(node, "1002") == ("not-ready", "disconnected"), 3)
        assert time.time() - max(expires) < 1.0  # noticed within a second of the lapse


async def test_an_offer_to_a_browser_whose_websocket_dies_goes_to_the_next_agent(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        browser_agent(node, "1001") as browser,
    ):
        await asyncio.sleep(0.05)  # 1001 idle longest: offered first
        async with agent_phone(node, "1002") as phone:
            assert _status(node, "1002") == ("available", "")
            async with queue_call(node):
                invite = await browser.receive()
                assert isinstance(invite, Request) and invite.method == "INVITE"
                await browser.send(bytes(make_response(invite, 180, to_tag="br1")).decode())
                assert _status(node, "1001")[0] == "reserved"
                closed = time.monotonic()
                await browser.close()
                # The next agent rings at once, not after the ring timeout.
                second = await _next(phone, "INVITE")
                assert time.monotonic() - closed < 0.5 < RING
                assert second.uri_text.startswith("sip:1002@127.0.0.1:")
                assert _status(node, "1001") == ("not-ready", "disconnected")
                assert _status(node, "1002")[0] == "reserved"
                ended = [e for e in node.queues.events if isinstance(e, OfferEnded)]
                assert [(e.agent, e.reason, e.missed) for e in ended] == [
                    ("1001", "disconnected", 0)
                ]


# -- busy on calls the ACD did not give ------------------------------------------------------


async def test_an_agent_on_a_direct_call_is_busy_and_the_queue_call_goes_to_another(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as alice,
        agent_phone(node, "1004", host="127.0.0.3") as carol,  # in queue sales, not support
    ):
        await asyncio.sleep(0.05)  # 1001 idle longest: the queue would offer them first
        async with agent_phone(node, "1002", host="127.0.0.2") as bob:
            # Carol dials Alice's extension; Alice answers.
            await _agent_calls(carol, "1004", "1001", _sdp("carol", "127.0.0.3", 40000))
            direct = await _next_request(alice, "INVITE")
            assert _status(node, "1001") == ("available", "")  # ringing is not busy
            alice.send(_ok(alice, direct, "al1"))
            answered = await _next_response(carol, 200)
            carol.send(_in_dialog(carol, "ACK", answered, cseq=2))
            await _within(lambda: _status(node, "1001")[0] == "on-call", 1)
            async with queue_call(node):
                offered = await _next_request(bob, "INVITE")
                assert offered.uri_text.startswith("sip:1002@127.0.0.2:")
                assert _status(node, "1002")[0] == "reserved"
                assert _status(node, "1001")[0] == "on-call"
                # Carol hangs up: Alice is free at once (no wrap-up after a direct call).
                carol.send(_in_dialog(carol, "BYE", answered, cseq=3))
                bye = await _next_request(alice, "BYE")
                alice.send(bytes(make_response(bye, 200)))
                await _within(lambda: _status(node, "1001") == ("available", ""), 1)


def _ok(phone: UdpPhone, invite: Request, tag: str) -> bytes:
    sdp = _sdp("callee", phone.address[0], 40002)
    return bytes(
        make_response(invite, 200, to_tag=tag, headers=[
            ("Contact", f"<sip:callee@{phone.address[0]}:{phone.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=sdp.encode())
    )  # fmt: skip


# -- feature codes from a desk phone ---------------------------------------------------------


async def _dial_code(phone: UdpPhone, ext: str, code: str, media) -> None:
    """Agent `ext`'s phone dials `code`; the node answers, speaks and hangs up."""
    call_id = secrets.token_hex(6)
    sdp = _sdp("agent", "127.0.0.1", media.port)
    await _agent_calls(phone, ext, code, sdp, call_id=call_id)
    answered = await _next_response(phone, 200)
    phone.send(_in_dialog(phone, "ACK", answered, cseq=2))
    bye = await _next_request(phone, "BYE")
    assert bye.call_id == call_id
    phone.send(bytes(make_response(bye, 200)))


async def test_feature_codes_from_a_desk_phone_change_the_agents_state(tmp_path):
    # (Not from 127.0.0.1: that is the demo trunk's address.)
    async with queue_node(tmp_path) as node, agent_phone(node, "1001", "127.0.0.2") as phone:
        app = node.apps["acd-codes"]
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*642", media)
            # Said, not just done: the confirmation is heard.
            assert len(_loud(_heard(media))) >= 8000  # half a second of speech, at least
        assert _status(node, "1001") == ("not-ready", "lunch")
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*63", media)
        assert _status(node, "1001") == ("available", "")
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*649", media)
        assert app.done[-1][2].ok is False and "no reason number 9" in app.done[-1][2].text
        assert _status(node, "1001") == ("available", "")
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*65", media)
        assert app.done[-1][2].text == "You are not in wrap-up."
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*62", media)
        assert _status(node, "1001")[0] == "logged-out"
        async with rtp_socket() as media:
            await _dial_code(phone, "1001", "*61", media)
        # Logged in with the device registered now: available.
        await _within(lambda: _status(node, "1001") == ("available", ""), 1)
        assert [(who, code) for who, code, _ in app.done] == [
            ("demo/1001", c) for c in ("*642", "*63", "*649", "*65", "*62", "*61")
        ]


async def test_a_feature_code_from_a_trunk_is_no_state_change(tmp_path):
    async with queue_node(tmp_path) as node, agent_phone(node, "1001"):
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(40010), did="*62"))
            refused = await _next_final(trunk)
            assert refused.status == 404
        assert _status(node, "1001") == ("available", "")


async def _next_final(phone: UdpPhone):
    while True:
        msg = await phone.receive()
        if not isinstance(msg, Request) and msg.status >= 200:
            return msg


async def test_an_agent_registered_on_another_node_is_seen_at_once(tmp_path, redis_url):
    prefix = f"t{secrets.token_hex(4)}:"
    async with (
        running_node(tmp_path, "a", _redis(redis_url, "a", prefix)) as a,
        running_node(tmp_path, "b", _redis(redis_url, "b", prefix)) as b,
    ):
        assert _status(a, "1002") == ("not-ready", "disconnected")
        async with UdpPhone(sip_address(b), host="127.0.0.2") as phone:
            _, ok = await register_agent(phone, "1002", "agent1002")
            assert ok.status == 200
            assert _status(b, "1002") == ("available", "")
            await _within(lambda: _status(a, "1002") == ("available", ""), 0.5)
            await _unregister(phone, "1002")
            await _within(lambda: _status(a, "1002") == ("not-ready", "disconnected"), 0.5)


@needs_sipp
async def test_a_sipp_agent_takes_the_caller_a_dead_browser_was_offered(tmp_path):
    """The offer rings browser 1001; its WebSocket dies; SIPp agent 1002 is rung
    at once, answers and echoes: the caller hears their own tone back."""
    async with queue_node(tmp_path) as node, browser_agent(node, "1001") as browser:
        await asyncio.sleep(0.05)  # 1001 idle longest: offered first
        port = free_port()
        registered = await run_sipp(
            "register.xml", sip_address(node), port=port, timeout=10, extra=_sipp_agent("1002")
        )
        assert registered.ok, registered.output
        assert _status(node, "1002") == ("available", "")
        agent = await start_far_end(
            "acd_agent.xml", port, ["-rtp_echo", "-mp", str(free_port())], timeout=20
        )
        async with queue_call(node) as (trunk, caller_media, answered, node_a):
            invite = await browser.receive()
            assert isinstance(invite, Request) and invite.method == "INVITE"
            closed = time.monotonic()
            await browser.close()
            await _within(lambda: _status(node, "1002")[0] == "on-call", RING)
            assert time.monotonic() - closed < RING  # not after the browser's ring timeout
            since = time.monotonic()
            await _talk(caller_media, node_a, CALLER_HZ, 1.5, 0x1111)
            await asyncio.sleep(0.3)
            echoed = _loud(_heard(caller_media, since))
            assert len(echoed) >= 8000, "no audio came back through the bridge"
            assert peaks(echoed[-8000:], 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            result = await agent
            assert result.ok, result.output
        assert _status(node, "1001") == ("not-ready", "disconnected")
        ended = [(e.agent, e.reason) for e in node.queues.events if isinstance(e, OfferEnded)]
        assert ended == [("1001", "disconnected")]


async def test_a_caller_an_application_puts_through_makes_the_agent_busy(tmp_path):
    app = Connector("1001")  # as the IVR's dial does
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001", "127.0.0.2") as agent,
        trunk_call(node) as (trunk, _media, answered, _node_a),
    ):
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 200, "ag1", _sdp("agent", "127.0.0.2", 40020))
        await _next(agent, "ACK")
        await _within(lambda: _status(node, "1001")[0] == "on-call", 1)
        assert node.queues.acds["demo"].agent("1001").call_queue == ""  # not a queue's call
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        bye = await _next(agent, "BYE")
        agent.send(bytes(make_response(bye, 200)))
        await _within(lambda: _status(node, "1001") == ("available", ""), 1)


async def test_an_agent_offered_a_caller_who_answers_a_direct_call_is_passed_over(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as alice,
        agent_phone(node, "1004", host="127.0.0.3") as carol,  # in queue sales, not support
    ):
        await asyncio.sleep(0.05)  # 1001 idle longest: offered first
        async with agent_phone(node, "1002", host="127.0.0.2") as bob:
            await _agent_calls(carol, "1004", "1001", _sdp("carol", "127.0.0.3", 40000))
            direct = await _next_request(alice, "INVITE")
            alice.send(bytes(make_response(direct, 180, to_tag="al1")))
            async with queue_call(node):
                offer = await _next_request(alice, "INVITE")  # the queue's caller, second line
                assert offer.call_id != direct.call_id
                assert _status(node, "1001")[0] == "reserved"
                alice.send(bytes(make_response(offer, 180, to_tag="al2")))
                alice.send(_ok(alice, direct, "al1"))  # Alice takes Carol's call
                answered = await _next_response(carol, 200)
                carol.send(_in_dialog(carol, "ACK", answered, cseq=2))
                cancel = await _next_request(alice, "CANCEL")
                assert cancel.call_id == offer.call_id
                alice.send(bytes(make_response(cancel, 200)))
                alice.send(bytes(make_response(offer, 487, to_tag="al2")))
                passed = await _next_request(bob, "INVITE")
                assert passed.uri_text.startswith("sip:1002@127.0.0.2:")
                assert _status(node, "1001")[0] == "on-call"
                ended = [e for e in node.queues.events if isinstance(e, OfferEnded)]
                assert [(e.agent, e.reason, e.missed) for e in ended] == [("1001", "withdrawn", 0)]


async def test_an_agent_calling_out_is_busy_until_the_call_ends(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with (
            queue_node(tmp_path, **changes) as node,
            agent_phone(node, "1001", "127.0.0.2") as alice,
        ):
            await _agent_calls(alice, "1001", "95551234", _sdp("alice", "127.0.0.2", 40030))
            out = await _next_request(carrier, "INVITE")
            assert _status(node, "1001") == ("available", "")  # dialling, not talking yet
            carrier.send(_ok(carrier, out, "cr1"), sip_address(node))
            answered = await _next_response(alice, 200)
            alice.send(_in_dialog(alice, "ACK", answered, cseq=2))
            await _within(lambda: _status(node, "1001")[0] == "on-call", 1)
            alice.send(_in_dialog(alice, "BYE", answered, cseq=3))
            bye = await _next_request(carrier, "BYE")
            carrier.send(bytes(make_response(bye, 200)), sip_address(node))
            await _within(lambda: _status(node, "1001") == ("available", ""), 1)
