"""Queue callbacks on a live node: the offer, the key, and the calls the node places.

Queue "support" offers a callback once the estimated wait passes 1 s. Agent
1001 (a UDP test phone) is busy with a first caller, so a second caller's
wait is long: they hear the offer, press 1 (RFC 4733), hear their number
read back, and the node hangs up. When 1001 is free again the node calls the
customer back through the demo trunk (whose outbound host is a test phone:
the carrier) and puts them through to 1001, customer first or agent first
as configured. Audio is checked by content on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from switch.apps.acd.events import (
    CallbackEnded,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    OfferEnded,
)
from switch.apps.acd_callbacks import CONFIRM, OFFER, QueueCallbacks, callable_number
from switch.sip.message import Request, make_response
from tests.integration.conftest import sip_address
from tests.integration.test_acd_calls import RING, _status, _until, queue_call, queue_node
from tests.integration.test_app_connect import (
    AGENT_HZ,
    CALLER_HZ,
    _heard,
    _loud,
    _next,
    _reply,
    _sdp,
    _settle,
    _talk,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import RtpSocket, _events, _in_dialog, _invite, _offer
from tests.integration.test_calls import _media_address, _next_response
from tests.media.audio import peaks, rms
from tests.support.sipclient import UdpPhone

CUSTOMER = "+442079460001"  # the number the demo trunk's test callers call from


@contextlib.asynccontextmanager
async def callback_node(tmp_path, mode: str) -> AsyncIterator[tuple[object, UdpPhone]]:
    """The queue node with callbacks in `mode`, its trunk's calls out going to a test phone."""
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        more = {
            "# callback = { mode": f'callback = {{ mode = "{mode}", offer_ewt = 1, '
            "dial_timeout = 5 }\n# callback = { mode",
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            # Callbacks dial the caller's number as it came (E.164): a route for those.
            'prefix = "9"\nstrip = 1': 'prefix = "+"\nstrip = 0',
            "allow_international = false": "allow_international = true",
        }
        async with queue_node(tmp_path, **more) as node:
            yield node, carrier


@dataclass
class Busy:
    """A first caller whom agent 1001 is talking to (so that the next one waits)."""

    trunk: UdpPhone
    answered: object
    invite: Request


@contextlib.asynccontextmanager
async def busy_agent(node, agent: UdpPhone) -> AsyncIterator[Busy]:
    async with rtp_socket() as agent_media, queue_call(node) as (trunk, _media, answered, _a):
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 200, "busy", _sdp(agent_media.port))
        await _next(agent, "ACK")
        await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
        yield Busy(trunk, answered, invite)


async def _end_busy(busy: Busy, agent: UdpPhone) -> None:
    busy.trunk.send(_in_dialog(busy.trunk, "BYE", busy.answered, cseq=2))
    await _next_response(busy.trunk, 200)
    bye = await _next(agent, "BYE")
    agent.send(bytes(make_response(bye, 200)))


async def _ask_for_callback(node, trunk: UdpPhone, media, node_a) -> None:
    """The waiting caller hears the offer, presses 1, hears their number, is hung up on."""
    speech = node.queues.speech
    offer = await speech.cache_path(OFFER)
    await _until(offer.exists, 10, "the offer spoken")
    await asyncio.sleep(0.8)
    assert rms(_loud(_heard(media))[-4000:]) > 300  # the offer (or the music) is heard
    for n, packet in enumerate(_events("1", 8000, 500)):
        media.transport.sendto(packet, node_a)
        await asyncio.sleep(0.01 if n < 3 else 0)
    confirm = await speech.cache_path(CONFIRM.format(number=" ".join(CUSTOMER.lstrip("+"))))
    await _until(confirm.exists, 10, "the number read back")
    bye = await _next(trunk, "BYE", timeout=20)  # after the confirmation
    trunk.send(bytes(make_response(bye, 200)))
    (asked,) = [e for e in node.queues.events if isinstance(e, CallbackRequested)]
    assert (asked.number, asked.queue) == (CUSTOMER, "support")
    assert not [e for e in node.queues.events if isinstance(e, CallerAbandoned)]


async def _bridged(first_media, first_node, second_media, second_node) -> None:
    since = time.monotonic()
    await asyncio.gather(
        _talk(first_media, first_node, CALLER_HZ, 1.0, 0x1111),
        _talk(second_media, second_node, AGENT_HZ, 1.0, 0x2222),
    )
    await asyncio.sleep(0.2)
    to_second = _loud(_heard(second_media, since))
    to_first = _loud(_heard(first_media, since))
    assert len(to_second) >= 8000 and len(to_first) >= 8000
    assert peaks(to_second[-8000:], 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
    assert peaks(to_first[-8000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)


async def test_customer_first_the_caller_presses_1_then_is_called_back_and_bridged(tmp_path):
    async with (
        callback_node(tmp_path, "customer-first") as (node, carrier),
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        rtp_socket() as customer_media,
    ):
        node_sip = sip_address(node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with busy_agent(node, agent) as busy:
            async with queue_call(node) as (trunk, media, _answered, node_a):
                await _ask_for_callback(node, trunk, media, node_a)
            assert len(node.queues.waiting("demo")) == 0  # hung up, but still queued:
            assert node.queues.acds["demo"].entry(str(_first_entry(node))).callback is not None
            assert await carrier.silence(0.3)  # nobody dialled while 1001 is busy
            await _end_busy(busy, agent)
        # 1001 wraps up (1 s), then the node dials the customer first.
        out = await _next(carrier, "INVITE", timeout=10)
        assert out.uri_text.startswith(f"sip:{CUSTOMER}@127.0.0.1:")
        assert "<sip:200@" in out.get("From")  # shown the queue's DID
        assert _status(node, "1001")[0] == "reserved"  # held for the callback
        _reply(carrier, out, 200, "cust", _sdp(customer_media.port), to=node_sip)
        await _next(carrier, "ACK")
        # Answered: now the held agent is rung, and the customer hears the node.
        invite = await _next(agent, "INVITE", timeout=15)
        assert CUSTOMER in invite.get("From")  # the agent sees the customer's number
        _reply(agent, invite, 200, "ag2", _sdp(agent_media.port))
        await _next(agent, "ACK")
        await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on the callback")
        await _bridged(
            customer_media, _media_address(out.body), agent_media, _media_address(invite.body)
        )
        # The customer hangs up: the agent gets the BYE, then wrap-up.
        carrier.send(_bye_from(carrier, out, "cust"), node_sip)
        await _next_response(carrier, 200)
        bye = await _next(agent, "BYE")
        agent.send(bytes(make_response(bye, 200)))
        await _until(lambda: _status(node, "1001")[0] in ("wrap-up", "available"), what="done")
        await _settle(node)
    answers = [e for e in node.queues.events if isinstance(e, CallerAnswered)]
    assert [a.callback for a in answers] == [False, True]
    (ended,) = [e for e in node.queues.events if isinstance(e, CallbackEnded)]
    assert ended.answered


async def test_agent_first_the_agent_is_rung_then_the_customer_dialled_and_bridged(tmp_path):
    async with (
        callback_node(tmp_path, "agent-first") as (node, carrier),
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        rtp_socket() as customer_media,
    ):
        node_sip = sip_address(node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with busy_agent(node, agent) as busy:
            async with queue_call(node) as (trunk, media, _answered, node_a):
                await _ask_for_callback(node, trunk, media, node_a)
            await _end_busy(busy, agent)
        # The agent first: rung by the node, shown the customer's number.
        invite = await _next(agent, "INVITE", timeout=10)
        assert CUSTOMER in invite.get("From")
        assert await carrier.silence(0.3)  # the customer is not dialled before the agent answers
        _reply(agent, invite, 200, "ag2", _sdp(agent_media.port))
        await _next(agent, "ACK")
        out = await _next(carrier, "INVITE", timeout=5)
        assert out.uri_text.startswith(f"sip:{CUSTOMER}@127.0.0.1:")
        assert "<sip:200@" in out.get("From")
        _reply(carrier, out, 200, "cust", _sdp(customer_media.port), to=node_sip)
        await _next(carrier, "ACK")
        await _bridged(
            customer_media, _media_address(out.body), agent_media, _media_address(invite.body)
        )
        assert _status(node, "1001")[0] == "on-call"
        carrier.send(_bye_from(carrier, out, "cust"), node_sip)
        await _next_response(carrier, 200)
        bye = await _next(agent, "BYE")
        agent.send(bytes(make_response(bye, 200)))
        await _until(lambda: _status(node, "1001")[0] == "wrap-up", what="wrap-up")
        await _settle(node)
    (ended,) = [e for e in node.queues.events if isinstance(e, CallbackEnded)]
    assert ended.answered


async def test_a_customer_who_cannot_be_reached_ends_the_callback_and_is_not_dialled_again(
    tmp_path,
):
    async with (
        callback_node(tmp_path, "customer-first") as (node, carrier),
        agent_phone(node, "1001") as agent,
    ):
        node_sip = sip_address(node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with busy_agent(node, agent) as busy:
            async with queue_call(node) as (trunk, media, _answered, node_a):
                await _ask_for_callback(node, trunk, media, node_a)
            await _end_busy(busy, agent)
        out = await _next(carrier, "INVITE", timeout=10)
        _reply(carrier, out, 486, "cust", to=node_sip)
        await _next(carrier, "ACK")
        await _until(
            lambda: any(isinstance(e, CallbackEnded) for e in node.queues.events), what="ended"
        )
        (ended,) = [e for e in node.queues.events if isinstance(e, CallbackEnded)]
        assert not ended.answered
        # The agent is released (not rung), and nobody is dialled again.
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 released")
        assert await carrier.silence(1.0)
        assert await agent.silence(0.3)
        assert node.queues.acds["demo"].waiting("support") == []
        await _settle(node)


def _first_entry(node) -> str:
    acd = node.queues.acds["demo"]
    return next(e.id for e in acd.store.all("entry"))


def _bye_from(phone: UdpPhone, invite: Request, tag: str) -> str:
    from tests.integration.test_app_connect import _in_dialog_from

    return _in_dialog_from(phone, invite, ack_tag=tag, cseq=1, method="BYE")


def test_only_a_number_can_be_called_back():
    assert callable_number("+442079460001") and callable_number("1001")
    assert not callable_number("anonymous") and not callable_number("")
    assert not callable_number("+44 20") and not callable_number("Ann")


class _Recorder:
    """A dialler that records what it is asked to place (the guard under test is the service's)."""

    def __init__(self) -> None:
        self.placed: list[str] = []

    async def place(self, tenant, first, run, **kw):
        self.placed.append(first)
        raise AssertionError("not expected to dial")


async def test_the_service_never_dials_a_callback_twice_nor_for_an_agent_not_held(tmp_path):
    from switch.apps.acd.events import DialCallback

    async with queue_node(tmp_path) as node:
        callbacks: QueueCallbacks = node.queues.callbacks
        recorder = _Recorder()
        callbacks.dialler = recorder
        callbacks.dialled.add(("demo", "77"))
        twice = DialCallback("r9", "77", "support", CUSTOMER, "1001", "customer-first", 5)
        assert callbacks.carry("demo", twice)
        # 1001 is not reserved for r10 (not even registered): refused, not dialled.
        stray = DialCallback("r10", "78", "support", CUSTOMER, "1001", "customer-first", 5)
        assert callbacks.carry("demo", stray)
        await asyncio.sleep(0.1)
        assert recorder.placed == []


async def test_a_caller_who_withholds_their_number_is_not_offered_a_callback(tmp_path, caplog):
    caplog.set_level("INFO", logger="switch.apps.acd_callbacks")
    async with (
        callback_node(tmp_path, "customer-first") as (node, _carrier),
        agent_phone(node, "1001") as agent,
    ):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with busy_agent(node, agent) as busy:
            loop = asyncio.get_running_loop()
            _, media = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
            try:
                async with UdpPhone(sip_address(node)) as trunk:
                    invite = _invite(trunk, _offer(media.port), did="200")
                    trunk.send(invite.replace(f"{CUSTOMER}@carrier", "anonymous@anonymous"))
                    answered = await _next_response(trunk, 200)
                    trunk.send(_in_dialog(trunk, "ACK", answered, cseq=1))
                    await _until(lambda: len(node.queues.waiting("demo")) == 1, what="waiting")
                    await asyncio.sleep(1.5)
                    assert not (await node.queues.speech.cache_path(OFFER)).exists()
                    assert "withholds their number: no callback offered" in caplog.text
                    trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
                    await _next_response(trunk, 200)
            finally:
                media.transport.close()
            await _end_busy(busy, agent)
        await _settle(node)


async def test_agent_first_an_agent_who_lets_it_ring_out_is_rung_again_and_the_place_is_kept(
    tmp_path,
):
    async with (
        callback_node(tmp_path, "agent-first") as (node, carrier),
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        rtp_socket() as customer_media,
    ):
        node_sip = sip_address(node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with busy_agent(node, agent) as busy:
            async with queue_call(node) as (trunk, media, _answered, node_a):
                await _ask_for_callback(node, trunk, media, node_a)
            await _end_busy(busy, agent)
        first = await _next(agent, "INVITE", timeout=10)
        _reply(agent, first, 180, "r1")
        cancel = await _next(agent, "CANCEL", timeout=RING + 3)  # the queue's timeout
        agent.send(bytes(make_response(cancel, 200)))
        _reply(agent, first, 487, "r1")
        missed = [e for e in node.queues.events if isinstance(e, OfferEnded)]
        assert [(e.agent, e.reason) for e in missed] == [("1001", "no answer")]
        assert node.queues.acds["demo"].entry(_first_entry(node)).callback is not None
        # The callback waits at its place and 1001 is rung again (after the skip).
        again = await _next(agent, "INVITE", timeout=RING + 5)
        assert again.call_id != first.call_id
        assert await carrier.silence(0.2)  # still nobody dialled
        _reply(agent, again, 200, "r2", _sdp(agent_media.port))
        await _next(agent, "ACK")
        out = await _next(carrier, "INVITE", timeout=5)
        _reply(carrier, out, 200, "cust", _sdp(customer_media.port), to=node_sip)
        await _next(carrier, "ACK")
        await _bridged(
            customer_media, _media_address(out.body), agent_media, _media_address(again.body)
        )
        agent.send(_bye_from(agent, again, "r2"))
        await _next_response(agent, 200)
        bye = await _next(carrier, "BYE")
        carrier.send(bytes(make_response(bye, 200)), node_sip)
        await _settle(node)
