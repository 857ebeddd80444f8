"""A supervisor listens to, whispers to, barges into a live call (`Calls.supervise`), live.

The demo trunk calls DID 300; a test application connects it to agent 1001
(a UDP test phone): an ordinary bridged call, leg B the agent's. Agent 1002
(another UDP phone) is the supervisor the node dials. Each party sends a
tone of its own, all the time: the caller CALLER_HZ, the agent AGENT_HZ,
the supervisor SUPERVISOR_HZ; what each one hears is checked by content.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time

import numpy as np
import pytest

from switch.call.supervise import (
    AlreadySupervised,
    BadMode,
    BadRequest,
    NoAgentLeg,
    NoSuchCall,
    NotAnswered,
    SupervisionEnded,
    SupervisorUnreachable,
)
from switch.media import g711
from switch.media.webrtc_sdp import is_webrtc
from switch.sip.message import Request, make_response
from tests.integration.conftest import running_node, sip_address
from tests.integration.test_acd_calls import _status, _until, queue_call, queue_node
from tests.integration.test_app_connect import (
    Connector,
    _browser_answers,
    _in_dialog_from,
    _next,
    _reply,
    _sdp,
    _settle,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import HEADER, RtpSocket, app_node, trunk_call
from tests.integration.test_calls import _agent_calls, _in_dialog, _media_address, _next_response
from tests.integration.test_calls import _sdp as _plain_sdp
from tests.integration.test_webrtc_calls import _register as ws_register
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone, WsBrowser, register_agent

CALLER_HZ = 440.0
AGENT_HZ = 1300.0
SUPERVISOR_HZ = 2200.0
BROWSER_HZ = 1000.0  # what the browser supervisor sends


def _frames(hz: float, seconds: float) -> list[bytes]:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (6000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    return [g711.ulaw_encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


async def _talk(sock: RtpSocket, to: tuple[str, int], hz: float, ssrc: int) -> None:
    """Send `hz` to `to` every 20 ms until cancelled."""
    loop = asyncio.get_running_loop()
    frames = _frames(hz, 1.0)
    start = loop.time()
    n = 0
    while True:
        payload = frames[n % len(frames)]
        sock.transport.sendto(HEADER.pack(0x80, 0, n & 0xFFFF, 160 * n, ssrc) + payload, to)
        n += 1
        await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))


def _heard(sock: RtpSocket, since: float, until: float) -> bytes:
    return b"".join(
        g711.ulaw_decode(d[12:]) for t, d in sock.packets if since <= t < until and d[1] & 0x7F == 0
    )


def _share(pcm: bytes, hz: float) -> float:
    """The part of the energy of `pcm` within 20 Hz of `hz`."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    total = spectrum.sum()
    return float(spectrum[np.abs(freqs - hz) < 20].sum() / total) if total else 0.0


def _tones(pcm: bytes) -> set[float]:
    """Which of the three tones `pcm` carries (each with a tenth of the energy at least)."""
    return _tones_of(pcm, (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ))


def _tones_of(pcm: bytes, candidates: tuple[float, ...]) -> set[float]:
    assert len(pcm) >= 4000, f"only {len(pcm)} bytes heard"
    return {hz for hz in candidates if _share(pcm, hz) > 0.1}


def _heard_since(sock: RtpSocket, seconds: float) -> bytes:
    """What `sock` heard in the last `seconds`."""
    now = time.monotonic()
    return _heard(sock, now - seconds, now)


class Bridged:
    """A call from the trunk bridged to agent 1001, everyone talking, and a
    supervisor's phone (agent 1002) ready to answer."""

    def __init__(
        self, node, call_id, trunk, caller, answered, agent, agent_media, sup, sup_media,
        sup_ext: str = "1002",
    ):  # fmt: skip
        self.node, self.call_id, self.trunk, self.caller = node, call_id, trunk, caller
        self.answered = answered
        self.agent, self.agent_media = agent, agent_media
        self.sup, self.sup_media, self.sup_ext = sup, sup_media, sup_ext
        self.talkers: list[asyncio.Task] = []
        self.sup_invite = None

    async def answer_supervisor(self, tag: str = "sv1") -> None:
        """The supervisor's phone answers the node's INVITE and starts talking."""
        invite = await _next(self.sup, "INVITE")
        self.sup_invite = invite
        _reply(self.sup, invite, 180, tag)
        _reply(self.sup, invite, 200, tag, _sdp(self.sup_media.port))
        await _next(self.sup, "ACK")
        node_s = _media_address(invite.body)
        self.talkers.append(
            asyncio.ensure_future(_talk(self.sup_media, node_s, SUPERVISOR_HZ, 0x3333))
        )

    async def supervise(self, mode: str, **kw):
        calls = self.node.calls
        task = asyncio.ensure_future(calls.supervise(self.call_id, [self.sup_ext], mode, **kw))
        await self.answer_supervisor()
        return await asyncio.wait_for(task, 5)

    async def window(self, seconds: float = 0.8, settle: float = 0.4) -> dict[str, set[float]]:
        """What each party heard over `seconds`, after `settle` seconds."""
        await asyncio.sleep(settle)
        since = time.monotonic()
        await asyncio.sleep(seconds)
        until = time.monotonic()
        self.rates = {  # packets a second each party got: one stream, not two interleaved
            name: sum(since <= t < until for t, _ in sock.packets) / (until - since)
            for name, sock in (("caller", self.caller), ("agent", self.agent_media))
        }
        return {
            "caller": _tones(_heard(self.caller, since, until)),
            "agent": _tones(_heard(self.agent_media, since, until)),
            "supervisor": _tones(_heard(self.sup_media, since, until))
            if self.sup_invite is not None
            else set(),
        }

    def stop_talking(self) -> None:
        for task in self.talkers:
            task.cancel()


@contextlib.asynccontextmanager
async def bridged(tmp_path):
    app = Connector("1001")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        agent_phone(node, "1002") as sup,
        rtp_socket() as agent_media,
        rtp_socket() as sup_media,
        trunk_call(node) as (trunk, caller_media, answered, node_a),
    ):
        invite = await _next(agent, "INVITE")
        node_b = _media_address(invite.body)
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        await _next(agent, "ACK")
        await asyncio.wait_for(app.done.wait(), 5)
        call_id = app.calls[0].call_id
        b = Bridged(
            node, call_id, trunk, caller_media, answered, agent, agent_media, sup, sup_media
        )
        b.talkers += [
            asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 0x1111)),
            asyncio.ensure_future(_talk(agent_media, node_b, AGENT_HZ, 0x2222)),
        ]
        try:
            yield b
        finally:
            b.stop_talking()


def _one_stream(sock: RtpSocket) -> None:
    """What a party got is one stream: one SSRC, sequence numbers one after another."""
    packets = [d for _, d in sock.packets]
    ssrcs = {HEADER.unpack_from(d)[4] for d in packets}
    assert len(ssrcs) == 1, ssrcs
    seqs = [HEADER.unpack_from(d)[2] for d in packets]
    steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)]
    assert set(steps) == {1}, sorted(set(steps))
    # Timestamps go forward a frame a packet, but where the source changed
    # (the relay restamps from the time that passed: a few such changes).
    stamps = [HEADER.unpack_from(d)[3] for d in packets]
    moves = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
    assert all(0 < m < 8000 for m in moves), sorted(set(moves))[-5:]
    assert sum(m != 160 for m in moves) <= 8, [m for m in moves if m != 160]


async def _hang_up_caller(b: Bridged) -> None:
    b.trunk.send(_in_dialog(b.trunk, "BYE", b.answered, cseq=2))
    await _next_response(b.trunk, 200)
    bye = await _next(b.agent, "BYE")
    b.agent.send(bytes(make_response(bye, 200)))


async def test_listen_whisper_barge_live_and_stop_restores_the_relay(tmp_path):
    async with bridged(tmp_path) as b:
        before = await b.window()
        assert before["caller"] == {AGENT_HZ} and before["agent"] == {CALLER_HZ}

        sup = await b.supervise("listen")
        assert sup.mode == "listen" and sup.to == ("1002",) and sup.target.startswith("sip:1002@")
        assert b.sup_invite.get("From").startswith('"Supervision"')
        (listed,) = b.node.calls.supervisions(b.call_id)
        assert listed is sup and listed.to_dict()["mode"] == "listen"
        heard = await b.window()
        assert heard["supervisor"] == {CALLER_HZ, AGENT_HZ}
        assert heard["caller"] == {AGENT_HZ} and heard["agent"] == {CALLER_HZ}

        sup.set_mode("whisper")  # the agent hears the supervisor, the caller does not
        heard = await b.window()
        assert heard["agent"] == {CALLER_HZ, SUPERVISOR_HZ}
        assert heard["caller"] == {AGENT_HZ}
        assert heard["supervisor"] == {CALLER_HZ, AGENT_HZ}
        # The mix replaces the caller's packets toward the agent (not added to them).
        assert 40 <= b.rates["agent"] <= 56 and 40 <= b.rates["caller"] <= 56, b.rates

        sup.set_mode("barge")  # both hear the supervisor
        heard = await b.window()
        assert heard["agent"] == {CALLER_HZ, SUPERVISOR_HZ}
        assert heard["caller"] == {AGENT_HZ, SUPERVISOR_HZ}
        assert heard["supervisor"] == {CALLER_HZ, AGENT_HZ}
        assert 40 <= b.rates["agent"] <= 56 and 40 <= b.rates["caller"] <= 56, b.rates

        sup.set_mode("listen")
        heard = await b.window()
        assert heard["caller"] == {AGENT_HZ} and heard["agent"] == {CALLER_HZ}

        sup.set_mode("barge")
        await asyncio.sleep(0.3)
        sup.stop()  # the supervisor is hung up, the relay is as it was
        bye = await _next(b.sup, "BYE")
        assert bye.call_id == b.sup_invite.call_id
        b.sup.send(bytes(make_response(bye, 200)))
        assert sup.ended.is_set() and b.node.calls.supervisions(b.call_id) == []
        b.sup_invite = None
        heard = await b.window()
        assert heard["caller"] == {AGENT_HZ} and heard["agent"] == {CALLER_HZ}
        b.stop_talking()
        await asyncio.sleep(0.1)
        # Across every change each party got one stream, nothing lost or repeated.
        _one_stream(b.agent_media)
        _one_stream(b.caller)
        await _hang_up_caller(b)
        await _settle(b.node)


async def test_whisper_from_the_start_and_the_supervisor_hangs_up_the_call_goes_on(tmp_path):
    async with bridged(tmp_path) as b:
        sup = await b.supervise("whisper")
        heard = await b.window()
        assert heard["agent"] == {CALLER_HZ, SUPERVISOR_HZ} and heard["caller"] == {AGENT_HZ}
        # The supervisor hangs up.
        b.sup.send(_in_dialog_from(b.sup, b.sup_invite, ack_tag="sv1", cseq=1, method="BYE"))
        assert (await _next_response(b.sup, 200)).cseq.method == "BYE"
        await asyncio.wait_for(sup.ended.wait(), 2)
        assert sup.end_reason == "the supervisor hung up"
        assert b.node.calls.supervisions(b.call_id) == []
        b.sup_invite = None
        heard = await b.window()
        assert heard["caller"] == {AGENT_HZ} and heard["agent"] == {CALLER_HZ}
        assert len(b.node.calls) == 1
        await _hang_up_caller(b)
        await _settle(b.node)


async def test_the_call_ends_and_the_supervisor_is_hung_up(tmp_path):
    async with bridged(tmp_path) as b:
        sup = await b.supervise("barge")
        heard = await b.window()
        assert heard["caller"] == {AGENT_HZ, SUPERVISOR_HZ}
        await _hang_up_caller(b)
        bye = await _next(b.sup, "BYE")
        assert bye.call_id == b.sup_invite.call_id
        b.sup.send(bytes(make_response(bye, 200)))
        assert sup.ended.is_set() and sup.end_reason == "the call ended"
        await _settle(b.node)
        assert b.node.calls.supervisions(b.call_id) == []
        with pytest.raises(SupervisionEnded, match=r"has ended \(the call ended\): start a new"):
            sup.set_mode("listen")


async def test_errors_say_what_is_wrong(tmp_path):
    async with bridged(tmp_path) as b:
        calls = b.node.calls
        with pytest.raises(NoSuchCall, match="no call 999999"):
            await calls.supervise(999999, ["1002"], "listen")
        with pytest.raises(BadMode, match="'spy' is not one of listen, whisper, barge"):
            await calls.supervise(b.call_id, ["1002"], "spy")
        with pytest.raises(NoAgentLeg, match="agent '1005' is on no leg"):
            await calls.supervise(b.call_id, ["1002"], "whisper", agent="1005")
        with pytest.raises(SupervisorUnreachable, match="1004 is not registered") as info:
            await calls.supervise(b.call_id, ["1004"], "listen")
        assert info.value.status == 480
        with pytest.raises(BadRequest, match="list of one or more targets"):
            await calls.supervise(b.call_id, "1002", "listen")  # type: ignore[arg-type]
        with pytest.raises(BadRequest, match="seconds to ring"):
            await calls.supervise(b.call_id, ["1002"], "listen", timeout=0)
        # The agent named is the callee: its leg (b) is the one whispered to.
        sup = await b.supervise("listen", agent="1001")
        assert sup.agent == "b"
        with pytest.raises(AlreadySupervised, match=f"supervision {sup.id}"):
            await calls.supervise(b.call_id, ["1002"], "barge")
        with pytest.raises(BadMode):
            sup.set_mode("loud")
        assert sup.mode == "listen"
        sup.stop()
        bye = await _next(b.sup, "BYE")
        b.sup.send(bytes(make_response(bye, 200)))
        b.sup_invite = None
        await _hang_up_caller(b)
        await _settle(b.node)


async def test_a_supervisor_who_refuses_or_does_not_answer(tmp_path):
    async with bridged(tmp_path) as b:
        calls = b.node.calls
        task = asyncio.ensure_future(calls.supervise(b.call_id, ["1002"], "listen"))
        invite = await _next(b.sup, "INVITE")
        _reply(b.sup, invite, 486, "sv1")
        with pytest.raises(SupervisorUnreachable, match="486") as info:
            await asyncio.wait_for(task, 5)
        assert info.value.status == 486
        assert calls.supervisions(b.call_id) == [] and calls.supervising == {}
        task = asyncio.ensure_future(calls.supervise(b.call_id, ["1002"], "listen", timeout=0.5))
        invite = await _next(b.sup, "INVITE")
        _reply(b.sup, invite, 180, "sv2")
        cancel = await _next(b.sup, "CANCEL")
        assert cancel.call_id == invite.call_id
        b.sup.send(bytes(make_response(cancel, 200)))
        _reply(b.sup, invite, 487, "sv2")
        with pytest.raises(SupervisorUnreachable, match=r"no answer within 0\.5 s"):
            await asyncio.wait_for(task, 5)
        assert calls.supervising == {}
        await _hang_up_caller(b)
        await _settle(b.node)


async def test_a_call_still_with_its_application_is_not_answered_for_supervision(tmp_path):
    app = Connector("1003")  # not registered: the caller stays with the application
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        trunk_call(node) as (trunk, _caller_media, answered, _node_a),
    ):
        await asyncio.wait_for(app.done.wait(), 5)
        with pytest.raises(NotAnswered, match="with an application"):
            await node.calls.supervise(app.calls[0].call_id, ["1002"], "listen")
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await _settle(node)


async def test_a_browser_supervisor_speaking_opus_barges_in(tmp_path):
    async with bridged(tmp_path) as b, WsBrowser(f"{b.node.http_url}/sip") as ws:
        await ws_register(ws)  # agent 1004's browser
        browser = Browser(BROWSER_HZ, ("opus",))
        try:
            task = asyncio.ensure_future(b.node.calls.supervise(b.call_id, ["1004"], "barge"))
            invite = await asyncio.wait_for(_browser_answers(ws, browser), 10)
            assert is_webrtc(invite.body)
            sup = await asyncio.wait_for(task, 10)
            assert sup.target.startswith("sip:") and "transport=ws" in sup.target
            await asyncio.sleep(2.0)  # ICE, DTLS, then the browser's tone
            heard = await b.window(1.0, settle=0.0)
            assert BROWSER_HZ in _tones_of(_heard_since(b.caller, 1.0), (BROWSER_HZ,))
            assert heard["caller"] >= {AGENT_HZ} and heard["agent"] >= {CALLER_HZ}
            assert _tones_of(_heard_since(b.agent_media, 1.0), (BROWSER_HZ,)) == {BROWSER_HZ}
            pcm = browser.heard(skip=1.0)
            assert len(pcm) > 24000, "the browser heard too little"
            low = (pcm[-24000::6].astype("<i2")).tobytes()
            assert _tones_of(low, (CALLER_HZ, AGENT_HZ)) == {CALLER_HZ, AGENT_HZ}
            sup.stop()
            await _hang_up_caller(b)
            await _settle(b.node)
        finally:
            await browser.close()


async def test_whisper_to_a_browser_agent_whose_leg_is_transcoded(tmp_path):
    app = Connector("1004")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        WsBrowser(f"{node.http_url}/sip") as ws,
        agent_phone(node, "1002") as sup_phone,
        rtp_socket() as sup_media,
    ):
        await ws_register(ws)
        browser = Browser(BROWSER_HZ, ("opus",))
        talkers: list[asyncio.Task] = []
        try:
            async with trunk_call(node) as (trunk, caller_media, answered, node_a):
                await asyncio.wait_for(_browser_answers(ws, browser), 10)
                await asyncio.wait_for(app.done.wait(), 10)
                talkers.append(
                    asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 0x1111))
                )
                call_id = app.calls[0].call_id
                task = asyncio.ensure_future(
                    node.calls.supervise(call_id, ["1002"], "whisper", agent="1004")
                )
                invite = await _next(sup_phone, "INVITE")
                _reply(sup_phone, invite, 200, "sv1", _sdp(sup_media.port))
                await _next(sup_phone, "ACK")
                node_s = _media_address(invite.body)
                talkers.append(
                    asyncio.ensure_future(_talk(sup_media, node_s, SUPERVISOR_HZ, 0x3333))
                )
                sup = await asyncio.wait_for(task, 5)
                assert sup.agent == "b"
                # (aiortc sends no telephone-event: its leg is in-band, the trunk's RFC
                # 4733, and a DTMF bridge makes the agent's stream, muted for the mix.)
                (call,) = [c for c in node.calls._by_invite.values() if c.id == call_id]
                assert call.dtmf.link is not None and call.dtmf.link.muted == {"b"}
                await asyncio.sleep(2.5)
                pcm = browser.heard(skip=1.5)
                assert len(pcm) > 24000, "the browser heard too little"
                low = (pcm[-24000::6].astype("<i2")).tobytes()
                assert _tones_of(low, (CALLER_HZ, SUPERVISOR_HZ)) == {CALLER_HZ, SUPERVISOR_HZ}
                to_caller = _heard_since(caller_media, 1.0)
                assert _tones_of(to_caller, (BROWSER_HZ, SUPERVISOR_HZ)) == {BROWSER_HZ}
                to_sup = _heard_since(sup_media, 1.0)
                assert _tones_of(to_sup, (CALLER_HZ, BROWSER_HZ)) == {CALLER_HZ, BROWSER_HZ}
                trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
                await _next_response(trunk, 200)
                bye = await _next(sup_phone, "BYE")
                sup_phone.send(bytes(make_response(bye, 200)))
                await _settle(node)
        finally:
            for task in talkers:
                task.cancel()
            await browser.close()


async def test_a_queue_call_is_whispered_to_its_agent_by_default(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as agent,
        agent_phone(node, "1004") as sup_phone,  # in queue sales: not offered this caller
        rtp_socket() as agent_media,
        rtp_socket() as sup_media,
    ):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with queue_call(node) as (trunk, caller_media, answered, node_a):
            invite = await _next(agent, "INVITE")
            _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
            await _next(agent, "ACK")
            await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
            (call,) = node.calls._by_invite.values()
            b = Bridged(
                node, call.id, trunk, caller_media, answered, agent, agent_media, sup_phone,
                sup_media, sup_ext="1004",
            )  # fmt: skip
            node_b = _media_address(invite.body)
            b.talkers += [
                asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 0x1111)),
                asyncio.ensure_future(_talk(agent_media, node_b, AGENT_HZ, 0x2222)),
            ]
            try:
                sup = await b.supervise("whisper")
                assert sup.agent == "b" and call.target.name == "1001"
                heard = await b.window()
                assert heard["agent"] == {CALLER_HZ, SUPERVISOR_HZ}
                assert heard["caller"] == {AGENT_HZ}
                assert heard["supervisor"] == {CALLER_HZ, AGENT_HZ}
                await _hang_up_caller(b)
                bye = await _next(sup_phone, "BYE")
                sup_phone.send(bytes(make_response(bye, 200)))
                await _settle(node)
            finally:
                b.stop_talking()


async def test_the_call_ends_while_the_supervisor_rings_and_the_invite_is_cancelled(tmp_path):
    async with bridged(tmp_path) as b:
        calls = b.node.calls
        task = asyncio.ensure_future(calls.supervise(b.call_id, ["1002"], "listen"))
        invite = await _next(b.sup, "INVITE")
        _reply(b.sup, invite, 180, "sv1")
        await asyncio.sleep(0.2)
        await _hang_up_caller(b)
        cancel = await _next(b.sup, "CANCEL")
        assert cancel.call_id == invite.call_id
        b.sup.send(bytes(make_response(cancel, 200)))
        _reply(b.sup, invite, 487, "sv1")
        with pytest.raises(NoSuchCall, match="ended while the supervisor was rung"):
            await asyncio.wait_for(task, 2)
        assert calls.supervising == {} and calls._supervisor_legs == {}
        await _settle(b.node)


async def test_an_attended_transfer_of_the_call_ends_its_supervision(tmp_path):
    # Alice (1001) calls agent Bob (1002), supervised by 1004; Bob calls Carol
    # (1003) and joins Alice to her: the legs supervised are gone.
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node), host="127.0.0.3") as bob,
        UdpPhone(sip_address(node)) as carol,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        agent_phone(node, "1004") as sup_phone,
        rtp_socket() as sup_media,
    ):
        for phone, ext in ((bob, "1002"), (carol, "1003"), (alice, "1001")):
            assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200

        async def answer(callee: UdpPhone, tag: str, port: int) -> Request:
            invite = await _next(callee, "INVITE")
            callee.send(bytes(make_response(invite, 200, to_tag=tag, headers=[
                ("Contact", f"<sip:x@{callee.address[0]}:{callee.address[1]}>"),
                ("Content-Type", "application/sdp"),
            ], body=_plain_sdp(tag, "127.0.0.1", port).encode())))  # fmt: skip
            return invite

        await _agent_calls(alice, "1001", "1002", _plain_sdp("alice", "127.0.0.2", 40040),
                           call_id="call-from-1001")  # fmt: skip
        invite1 = await answer(bob, "bob1", 40042)
        answered1 = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered1, cseq=2))
        (call,) = node.calls._by_invite.values()

        task = asyncio.ensure_future(node.calls.supervise(call.id, ["1004"], "listen"))
        sup_invite = await _next(sup_phone, "INVITE")
        _reply(sup_phone, sup_invite, 200, "sv1", _sdp(sup_media.port))
        await _next(sup_phone, "ACK")
        sup = await asyncio.wait_for(task, 5)

        await _agent_calls(bob, "1002", "1003", _plain_sdp("bob", "127.0.0.1", 40044),
                           call_id="call-from-1002")  # fmt: skip
        await answer(carol, "carol1", 40046)
        answered2 = await _next_response(bob, 200)
        replaces = f"{answered2.call_id}%3Bto-tag%3D{answered2.to.tag}%3Bfrom-tag%3D" + (
            answered2.from_.tag or ""
        )
        refer = "\r\n".join([
            f"REFER {invite1.contact[0].uri} SIP/2.0",
            f"Via: {bob.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {invite1.get('To')};tag=bob1",
            f"To: {invite1.get('From')}",
            f"Call-ID: {invite1.call_id}",
            "CSeq: 1 REFER",
            f"Refer-To: <sip:1003@demo.invalid?Replaces={replaces}>",
            "Content-Length: 0",
            "",
            "",
        ])  # fmt: skip
        assert (await bob.request(refer)).status == 202
        bye = await _next(sup_phone, "BYE")
        assert bye.call_id == sup_invite.call_id
        sup_phone.send(bytes(make_response(bye, 200)))
        assert sup.ended.is_set() and sup.end_reason == "the call's legs changed"
        assert node.calls.supervisions(call.id) == [] and len(node.calls) == 1
        alice.send(_in_dialog(alice, "BYE", answered1, cseq=3))
        await _next(carol, "BYE")
