"""Calls the node places itself (`Calls.originate`), on a live node.

Agent 1001 registers from a UDP test phone; the demo trunk's outbound host is
a UDP test phone too (the carrier). The node rings the first party, and when
they answer, puts them through to the second. Audio is checked by content:
each side sends its own tone and must hear the other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from switch.call.app import Connected, NotConnected
from switch.call.originate import OriginateError
from switch.media.webrtc_sdp import is_webrtc
from switch.sip.message import make_response
from tests.integration.conftest import ended_calls, sip_address
from tests.integration.test_app_connect import (
    AGENT_HZ,
    CALLER_HZ,
    _browser_answers,
    _heard,
    _in_dialog_from,
    _loud,
    _next,
    _reply,
    _sdp,
    _settle,
    _talk,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import app_node
from tests.integration.test_calls import _media_address, _next_response
from tests.integration.test_webrtc_calls import _register as ws_register
from tests.media.audio import peaks
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone, WsBrowser

NUMBER = "902079460999"  # through the demo's outbound route "9": +442079460999


@contextlib.asynccontextmanager
async def carrier_node(tmp_path) -> AsyncIterator[tuple[object, UdpPhone]]:
    """The demo node whose trunk sends its outbound calls to a test phone (the carrier)."""
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with app_node(tmp_path, {}, "echo", changes) as node:
            yield node, carrier


async def test_an_agent_is_rung_first_then_put_through_to_an_external_number(tmp_path):
    async with (
        carrier_node(tmp_path) as (node, carrier),
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        rtp_socket() as far_media,
    ):
        ended = ended_calls(node)
        call_id = await node.calls.originate("demo", "1001", NUMBER, timeout=5)
        placed = node.calls.placed(call_id)
        invite = await _next(agent, "INVITE")
        assert invite.uri_text.startswith("sip:1001@127.0.0.1:")
        assert NUMBER in invite.get("From")  # the agent sees whom they will talk to
        assert b"PCMU" in invite.body and b"telephone-event" in invite.body
        _reply(agent, invite, 180, "ag1")
        await asyncio.sleep(0.2)
        assert not node.calls.placed(call_id).answered.done()  # still ringing
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        await _next(agent, "ACK")
        first = await asyncio.wait_for(placed.answered, 5)
        assert isinstance(first, Connected) and (first.kind, first.name) == ("agent", "1001")
        # Answered: the node dials the number through the tenant's outbound route.
        out = await _next(carrier, "INVITE")
        assert out.uri_text.startswith("sip:+442079460999@127.0.0.1:")
        await asyncio.sleep(0.4)
        # The agent hears ringback while the number rings.
        node_a = _media_address(invite.body)
        assert len(_loud(_heard(agent_media))) > 1600
        node_sip = sip_address(node)
        _reply(carrier, out, 200, "far", _sdp(far_media.port), to=node_sip)
        await _next(carrier, "ACK")
        second = await asyncio.wait_for(placed.connected, 5)
        assert isinstance(second, Connected) and second.kind == "trunk"
        since = time.monotonic()
        await asyncio.gather(
            _talk(agent_media, node_a, AGENT_HZ, 1.0, 0x1111),
            _talk(far_media, _media_address(out.body), CALLER_HZ, 1.0, 0x2222),
        )
        await asyncio.sleep(0.2)
        to_agent = _loud(_heard(agent_media, since))
        to_far = _loud(_heard(far_media))
        assert len(to_agent) >= 8000 and len(to_far) >= 8000
        assert peaks(to_far, 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
        assert peaks(to_agent[-8000:], 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
        # The agent hangs up: the number gets the BYE.
        agent.send(_in_dialog_from(agent, invite, ack_tag="ag1", cseq=1, method="BYE"))
        assert (await _next_response(agent, 200)).cseq.method == "BYE"
        bye = await _next(carrier, "BYE")
        carrier.send(bytes(make_response(bye, 200)), node_sip)
        await _settle(node)
    (call,) = ended
    assert call.id == call_id and call.hangup.by == "caller"  # leg A: the agent
    assert call.target.kind == "trunk" and call.caller.kind == "agent"
    assert not node.calls.trunk_calls


async def test_a_browser_agent_first_speaking_opus_is_put_through_to_a_pcmu_number(tmp_path):
    async with (
        carrier_node(tmp_path) as (node, carrier),
        rtp_socket() as far_media,
        WsBrowser(f"{node.http_url}/sip") as ws,
    ):
        await ws_register(ws)  # agent 1004, from a browser
        browser = Browser(1000.0, ("opus",))
        try:
            call_id = await node.calls.originate("demo", "1004", NUMBER, timeout=10)
            placed = node.calls.placed(call_id)
            invite = await asyncio.wait_for(_browser_answers(ws, browser), 10)
            assert is_webrtc(invite.body) and b"opus" in invite.body.lower()
            first = await asyncio.wait_for(placed.answered, 5)
            assert isinstance(first, Connected) and first.name == "1004"
            # Once the browser's media is up, the number is dialled (G.711 only).
            out = await _next(carrier, "INVITE", timeout=15)
            assert not is_webrtc(out.body) and b"opus" not in out.body.lower()
            await asyncio.sleep(0.5)  # the browser hears the node's ringback meanwhile
            node_sip = sip_address(node)
            _reply(carrier, out, 200, "far", _sdp(far_media.port), to=node_sip)
            await _next(carrier, "ACK")
            assert isinstance(await asyncio.wait_for(placed.connected, 5), Connected)
            since = time.monotonic()
            await _talk(far_media, _media_address(out.body), AGENT_HZ, 3.0, 0x3333)
            to_far = _loud(_heard(far_media, since + 1.0))
            assert len(to_far) > 8000, "the number heard too little"
            assert peaks(to_far[-8000:], 8000, 1) == pytest.approx([1000], abs=15)
            heard = browser.heard(skip=1.0)
            assert len(heard) > 48000, "the browser heard too little"
            assert peaks(heard[-48000::6].copy(), 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
            carrier.send(_in_dialog_from(carrier, out, "far", 1, "BYE"), node_sip)
            await _next_response(carrier, 200)
            await _settle(node)
        finally:
            await browser.close()


async def test_a_first_party_who_does_not_answer_ends_the_call_with_the_reason(tmp_path):
    async with carrier_node(tmp_path) as (node, carrier), agent_phone(node, "1001") as agent:
        ended = ended_calls(node)
        call_id = await node.calls.originate("demo", "1001", NUMBER, timeout=1)
        placed = node.calls.placed(call_id)
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 180, "ag1")
        result = await asyncio.wait_for(placed.answered, 5)
        assert result == NotConnected(480, "Temporarily Unavailable (no answer within 1 s)")
        cancel = await _next(agent, "CANCEL")
        agent.send(bytes(make_response(cancel, 200)))
        _reply(agent, invite, 487, "ag1")
        await _settle(node)
        assert await carrier.silence(0.3)  # the second party was never dialled
        (call,) = ended
        assert call.id == call_id and call.answered_at is None
        assert (call.hangup.status, call.hangup.reason) == (480, result.reason)
        assert node.calls.placed(call_id) is None


async def test_a_refused_first_party_ends_the_call_with_their_status(tmp_path):
    async with carrier_node(tmp_path) as (node, carrier), agent_phone(node, "1001"):
        call_id = await node.calls.originate("demo", NUMBER, "1001", caller_id="+442079460000")
        placed = node.calls.placed(call_id)
        invite = await _next(carrier, "INVITE")
        assert "+442079460000" in invite.get("From")  # the number shown to the customer
        _reply(carrier, invite, 486, "far", to=sip_address(node))
        result = await asyncio.wait_for(placed.answered, 5)
        assert result.status == 486
        await _settle(node)


async def test_targets_that_cannot_be_called_raise_before_anything_is_dialled(tmp_path):
    async with carrier_node(tmp_path) as (node, carrier):
        calls = node.calls
        with pytest.raises(OriginateError, match="no tenant 'nope'"):
            await calls.originate("nope", "1001", NUMBER)
        with pytest.raises(OriginateError, match="agent 1001 is not registered"):
            await calls.originate("demo", "1001", NUMBER)  # nobody registered as 1001
        with pytest.raises(OriginateError, match="'12345' cannot be called: 404"):
            await calls.originate("demo", "12345", NUMBER)
        tls = "sip:bob@127.0.0.1:9;transport=tls"
        with pytest.raises(OriginateError, match=r"cannot be called: 400 .* not tls"):
            await calls.originate("demo", NUMBER, tls, caller_id="+442079460000")
        with pytest.raises(OriginateError, match="needs a second target"):
            await calls.originate("demo", NUMBER, " ", caller_id="+442079460000")
        with pytest.raises(OriginateError, match="needs a caller_id"):
            await calls.originate("demo", NUMBER, "sip:bob@127.0.0.1:9")
        assert await carrier.silence(0.3)
        assert len(calls) == 0


async def test_click_to_call_through_the_api_rings_the_agent_then_the_number(tmp_path):
    """POST /api/calls (an agent for themselves): 202 with the call id, the agent's
    phone rings, then the number; an unusable target is a 422 that says why."""
    import aiohttp

    async with (
        carrier_node(tmp_path) as (node, carrier),
        agent_phone(node, "1001") as agent,
        aiohttp.ClientSession(base_url=node.http_url) as http,
    ):
        resp = await http.post("/api/login", json={"username": "1001", "password": "agent1001"})
        headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        resp = await http.post("/api/calls", json={"first": "1002", "second": NUMBER},
                               headers=headers)  # fmt: skip
        assert resp.status == 403  # an agent calls from their own extension
        resp = await http.post("/api/calls", json={"first": "1001", "second": "12345"},
                               headers=headers)  # fmt: skip
        body = await resp.json()
        assert resp.status == 422 and "'12345' cannot be called" in body["message"], body
        resp = await http.post("/api/calls", json={"first": "1001", "second": NUMBER},
                               headers=headers)  # fmt: skip
        assert resp.status == 202, await resp.text()
        call_id = (await resp.json())["call_id"]
        invite = await _next(agent, "INVITE")
        assert invite.get("X-Switch-Call") == str(call_id)
        _reply(agent, invite, 200, "ag1", _sdp(9000))
        await _next(agent, "ACK")
        out = await _next(carrier, "INVITE")
        assert out.uri_text.startswith("sip:+442079460999@127.0.0.1:")
        _reply(carrier, out, 486, "far", to=sip_address(node))
        await _next(carrier, "ACK")
        placed = node.calls.placed(call_id)
        if placed is not None:
            second = await asyncio.wait_for(placed.connected, 5)
            assert isinstance(second, NotConnected) and second.status == 486
        await _settle(node)
