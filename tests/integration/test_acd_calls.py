"""Queues that reach agents: the ACD service on a live node.

The demo trunk calls DID 200 (queue "support": agents 1001, 1002, 1003),
agents register from UDP test phones, and the node's `AcdService` offers
the caller to them (ring timeout 2 s, wrap-up 1 s in these tests). Audio is
checked by content: each side sends its own tone and must hear the other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.apps.acd.events import AgentChanged, CallerAbandoned, CallerAnswered, OfferEnded
from switch.config import demo_config_text, load_config
from switch.node import Node
from switch.sip.message import make_response
from tests.integration.conftest import ended_calls, sip_address
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
from tests.integration.test_apps import RtpSocket, _in_dialog, _invite, _offer
from tests.integration.test_calls import _media_address, _next_response
from tests.media.audio import peaks, rms
from tests.support.sipclient import UdpPhone, authorization, register
from tests.support.sipp import free_port, needs_sipp, run_sipp, start_far_end

RING = 2  # seconds an agent is rung (the queue's timeout)
WRAPUP = 1  # seconds of wrap-up


@contextlib.asynccontextmanager
async def queue_node(tmp_path: Path, **more: str) -> AsyncIterator[Node]:
    """The demo node with a short ring timeout and wrap-up on queue support."""
    text = demo_config_text()
    changes = {
        **more,
        "timeout = 20              #": f"timeout = {RING}              #",
        "wrapup = 10               #": f"wrapup = {WRAPUP}               #",
        "keepalive = 30 ": "keepalive = 0 ",
    }
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "node.toml"
    path.write_text(text)
    config = load_config(path).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / "data"
    )
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@contextlib.asynccontextmanager
async def queue_call(node: Node) -> AsyncIterator[tuple[UdpPhone, RtpSocket, object, tuple]]:
    """The demo trunk calls DID 200: (trunk, media socket, the 200, the node's media address)."""
    loop = asyncio.get_running_loop()
    _, media = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
    try:
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(media.port), did="200"))
            answered = await _next_response(trunk, 200)
            trunk.send(_in_dialog(trunk, "ACK", answered, cseq=1))
            yield trunk, media, answered, _media_address(answered.body)
    finally:
        media.transport.close()


async def _until(check, seconds: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.05)


def _status(node: Node, ext: str) -> tuple[str, str]:
    agent = node.queues.snapshot("demo")["agents"][ext]
    return agent["status"], agent["reason"]


async def _unregister(phone: UdpPhone, ext: str) -> None:
    call_id = secrets.token_hex(6)
    contact = f"<sip:{ext}@{phone.address[0]}:{phone.address[1]}>"
    first = await phone.request(
        register(ext, "demo.invalid", contact, phone.via, call_id=call_id, cseq=1, expires=0)
    )
    auth = authorization(first, ext, f"agent{ext}", "sip:demo.invalid")
    ok = await phone.request(
        register(
            ext, "demo.invalid", contact, phone.via, call_id=call_id, cseq=2, expires=0,
            extra=(f"Authorization: {auth}",),
        )
    )  # fmt: skip
    assert ok.status == 200


async def test_a_caller_reaches_an_agent_audio_flows_then_wrapup_and_available(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
    ):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        # Nobody else registered: not ready, disconnected.
        assert _status(node, "1002") == ("not-ready", "disconnected")
        async with queue_call(node) as (trunk, caller_media, answered, node_a):
            ended = ended_calls(node)
            invite = await _next(agent, "INVITE")
            assert invite.uri_text.startswith("sip:1001@127.0.0.1:")
            assert _status(node, "1001")[0] == "reserved"
            _reply(agent, invite, 180, "ag1")
            await asyncio.sleep(0.6)
            # While it rings the caller hears the queue's music.
            assert rms(_heard(caller_media)[-4000:]) > 300
            _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
            await _next(agent, "ACK")
            await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
            node_b = _media_address(invite.body)
            since = time.monotonic()
            await asyncio.gather(
                _talk(caller_media, node_a, CALLER_HZ, 1.0, 0x1111),
                _talk(agent_media, node_b, AGENT_HZ, 1.0, 0x2222),
            )
            await asyncio.sleep(0.2)
            to_agent = _loud(_heard(agent_media))
            to_caller = _loud(_heard(caller_media, since))
            assert len(to_agent) >= 8000 and len(to_caller) >= 8000
            assert peaks(to_agent, 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
            assert peaks(to_caller[-8000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
            # The caller hangs up: the agent gets the BYE, then wrap-up, then available.
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            bye = await _next(agent, "BYE")
            agent.send(bytes(make_response(bye, 200)))
            await _until(lambda: _status(node, "1001")[0] == "wrap-up", what="1001 in wrap-up")
            await _until(
                lambda: _status(node, "1001")[0] == "available", WRAPUP + 3, "available again"
            )
            await _settle(node)
        assert ended[0].target.name == "1001"
        (answer,) = [e for e in node.queues.events if isinstance(e, CallerAnswered)]
        assert (answer.agent, answer.queue) == ("1001", "support")


async def test_an_agent_who_does_not_answer_is_skipped_and_the_next_agent_gets_the_caller(
    tmp_path,
):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as one,
        agent_phone(node, "1002") as two,
        rtp_socket() as agent_media,
    ):
        for ext in ("1001", "1002"):
            await _until(lambda e=ext: _status(node, e)[0] == "available", what=f"{ext} up")
        phones = {"1001": one, "1002": two}
        async with queue_call(node) as (trunk, _caller_media, answered, _node_a):
            # Whoever is rung first lets it ring out.
            first, invite = await _first_invite(phones)
            _reply(phones[first], invite, 180, "x1")
            cancel = await _next(phones[first], "CANCEL", timeout=RING + 3)
            phones[first].send(bytes(make_response(cancel, 200)))
            _reply(phones[first], invite, 487, "x1")
            second = "1002" if first == "1001" else "1001"
            invite2 = await _next(phones[second], "INVITE", timeout=5)
            _reply(phones[second], invite2, 200, "x2", _sdp(agent_media.port))
            await _next(phones[second], "ACK")
            await _until(lambda: _status(node, second)[0] == "on-call", what="second on call")
            missed = [e for e in node.queues.events if isinstance(e, OfferEnded)]
            assert [(e.agent, e.reason) for e in missed] == [(first, "no answer")]
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            bye = await _next(phones[second], "BYE")
            phones[second].send(bytes(make_response(bye, 200)))
            await _settle(node)


async def _first_invite(phones: dict[str, UdpPhone]):
    async def one(ext: str):
        return ext, await _next(phones[ext], "INVITE", timeout=5)

    tasks = [asyncio.ensure_future(one(ext)) for ext in phones]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return next(iter(done)).result()


async def test_an_agent_whose_registration_goes_away_is_not_offered_calls(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as one,
        agent_phone(node, "1002") as two,
        rtp_socket() as agent_media,
    ):
        for ext in ("1001", "1002"):
            await _until(lambda e=ext: _status(node, e)[0] == "available", what=f"{ext} up")
        await _unregister(one, "1001")
        await _until(
            lambda: _status(node, "1001") == ("not-ready", "disconnected"), what="1001 disconnected"
        )
        async with queue_call(node) as (trunk, _caller_media, answered, _node_a):
            invite = await _next(two, "INVITE")
            assert invite.uri_text.startswith("sip:1002@")
            _reply(two, invite, 200, "t2", _sdp(agent_media.port))
            await _next(two, "ACK")
            assert await one.silence(0.5)  # 1001 was never rung
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            bye = await _next(two, "BYE")
            two.send(bytes(make_response(bye, 200)))
            await _settle(node)
        # Registered again: restored.
        async with agent_phone(node, "1001"):
            await _until(lambda: _status(node, "1001")[0] == "available", what="1001 back")


async def test_a_caller_who_hangs_up_while_waiting_is_an_abandon(tmp_path):
    async with queue_node(tmp_path) as node:
        async with queue_call(node) as (trunk, caller_media, answered, _node_a):
            await _until(lambda: len(node.queues.waiting("demo", "support")) == 1, what="waiting")
            (waiting,) = node.queues.waiting("demo")
            assert waiting.caller == "+442079460001" and waiting.queue == "support"
            state = node.queues.queue_state("demo", "support")
            assert (state.agents_available, state.waiting) == (0, 1)
            await asyncio.sleep(1.0)
            assert rms(_loud(_heard(caller_media))[-4000:]) > 300  # music on hold
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            await _settle(node)
        await _until(lambda: not node.queues.waiting("demo"), what="nobody waiting")
        (abandon,) = [e for e in node.queues.events if isinstance(e, CallerAbandoned)]
        assert abandon.queue == "support" and abandon.wait >= 1.0


@needs_sipp
async def test_a_sipp_agent_answers_a_queue_caller_audio_flows_then_wrapup_and_available(
    tmp_path,
):
    """The issue's SIPp bar: SIPp registers as agent 1001, then answers from
    the same port and echoes the RTP; the caller hears their own tone back."""
    async with queue_node(tmp_path) as node:
        port = free_port()
        registered = await run_sipp(
            "register.xml", sip_address(node), port=port, timeout=10, extra=_sipp_agent("1001")
        )
        assert registered.ok, registered.output
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        agent = await start_far_end(
            "acd_agent.xml", port, ["-rtp_echo", "-mp", str(free_port())], timeout=20
        )
        async with queue_call(node) as (trunk, caller_media, answered, node_a):
            await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
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
            await _until(
                lambda: _status(node, "1001")[0] in ("wrap-up", "available"), what="after call"
            )
            await _until(
                lambda: _status(node, "1001")[0] == "available", WRAPUP + 3, "available again"
            )
        statuses = [
            e.new for e in node.queues.events if isinstance(e, AgentChanged) and e.agent == "1001"
        ]
        assert statuses[-4:] == ["reserved", "on-call", "wrap-up", "available"]


def _sipp_agent(ext: str) -> list[str]:
    return [
        "-s", ext, "-au", ext, "-ap", f"agent{ext}",
        "-key", "domain", "demo.invalid", "-key", "expires", "600",
    ]  # fmt: skip


async def test_a_waiting_caller_hears_their_position_spoken_between_the_music(tmp_path):
    every = {"# announce_every = 60 ": "announce_every = 1 "}
    async with queue_node(tmp_path, **every) as node:
        spoken = tmp_path / "data" / "tts"
        async with queue_call(node) as (trunk, caller_media, answered, _node_a):
            await _until(lambda: spoken.exists() and any(spoken.iterdir()), 10, "speech rendered")
            # Nobody staffs the queue: the position, and no wait estimate.
            said = await node.queues.speech.cache_path("You are number 1 in the queue.")
            assert said.exists(), sorted(spoken.iterdir())
            await asyncio.sleep(1.0)
            assert rms(_loud(_heard(caller_media))[-4000:]) > 300
            assert len(node.queues.waiting("demo")) == 1  # still waiting after it
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            await _settle(node)
