"""An application's caller put through to someone else (`AppCall.connect`), on a live node.

The demo trunk calls DID 300, answered by a test application that plays a
tone (the "music on hold") and connects the caller onward: to agents
registered from UDP test phones, to an external number through the demo
trunk's outbound route. Audio is checked by content: each side sends a tone
of its own and the other side must hear that frequency through the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from switch.call.app import AppCall, Connected, NotConnected
from switch.media import g711
from switch.media.player import ToneItem
from switch.media.tones import Step, Tone
from switch.media.wav import read_wav
from switch.media.webrtc_sdp import is_webrtc
from switch.sip.message import Request, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, sip_address
from tests.integration.test_apps import HEADER, RtpSocket, app_node, trunk_call
from tests.integration.test_calls import _in_dialog, _media_address, _next_response
from tests.integration.test_recording import _json_of
from tests.integration.test_webrtc_calls import CONTACT as WS_CONTACT
from tests.integration.test_webrtc_calls import _final as ws_final
from tests.integration.test_webrtc_calls import _register as ws_register
from tests.integration.test_webrtc_calls import _request as ws_request
from tests.media.audio import peaks, rms
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone, WsBrowser, authorization, register_agent

MOH_HZ = 600.0  # what the application plays while the agent rings
SORRY_HZ = 900.0  # what it plays when the connect failed
CALLER_HZ = 440.0
AGENT_HZ = 1300.0


def _tone(hz: float) -> list[ToneItem]:
    return [ToneItem(Tone((Step((hz,), 1000),), level=-10))]


class Connector:
    """A test application: answers, plays MOH_HZ, connects; on failure plays SORRY_HZ."""

    def __init__(self, target, timeout: float = 10.0, keep_playing: bool = True, **kw) -> None:
        self.target = target
        self.timeout = timeout
        self.keep_playing = keep_playing
        self.kw = kw
        self.results: list[Connected | NotConnected] = []
        self.calls: list[AppCall] = []
        self.done = asyncio.Event()
        self.returned = asyncio.Event()

    async def __call__(self, call: AppCall) -> None:
        self.calls.append(call)
        channel = await call.answer()
        channel.play(_tone(MOH_HZ), loop=True)
        try:
            result = await call.connect(
                self.target, timeout=self.timeout, keep_playing=self.keep_playing, **self.kw
            )
            self.results.append(result)
            self.done.set()
            if isinstance(result, NotConnected):
                channel.play(_tone(SORRY_HZ), loop=True)  # the application goes on
                await call.wait_ended()
        finally:
            self.returned.set()


def _sdp(port: int, codecs: str = "0 101") -> str:
    maps = {"0": "a=rtpmap:0 PCMU/8000", "8": "a=rtpmap:8 PCMA/8000",
            "101": "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16"}  # fmt: skip
    lines = "\r\n".join(maps[c] for c in codecs.split())
    return (
        f"v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {codecs}\r\n{lines}\r\n"
    )


def _reply(phone: UdpPhone, invite: Request, status: int, tag: str, sdp: str = "", to=None) -> None:
    headers = [("Contact", f"<sip:agent@{phone.address[0]}:{phone.address[1]}>")]
    if sdp:
        headers.append(("Content-Type", "application/sdp"))
    response = make_response(invite, status, to_tag=tag, headers=headers, body=sdp.encode())
    phone.send(bytes(response), to)


async def _next(phone: UdpPhone, method: str, timeout: float = 5.0) -> Request:
    while True:
        msg = await phone.receive(timeout)
        if isinstance(msg, Request) and msg.method == method:
            return msg


def _pcmu_tone(hz: float, seconds: float) -> list[bytes]:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    return [g711.ulaw_encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


async def _talk(sock: RtpSocket, to: tuple[str, int], hz: float, seconds: float, ssrc: int):
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, payload in enumerate(_pcmu_tone(hz, seconds)):
        sock.transport.sendto(HEADER.pack(0x80, 0, n, 160 * n, ssrc) + payload, to)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


def _heard(sock: RtpSocket, since: float = 0.0, pt: int = 0) -> bytes:
    return b"".join(
        g711.ulaw_decode(d[12:]) for t, d in sock.packets if t >= since and d[1] & 0x7F == pt
    )


def _loud(pcm: bytes) -> bytes:
    """The 20 ms frames of `pcm` that carry sound."""
    frames = [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]
    return b"".join(f for f in frames if rms(f) > 300)


@contextlib.asynccontextmanager
async def agent_phone(node, ext: str, host: str = "127.0.0.1") -> AsyncIterator[UdpPhone]:
    async with UdpPhone(sip_address(node), host=host) as phone:
        _, ok = await register_agent(phone, ext, f"agent{ext}")
        assert ok.status == 200
        yield phone


@contextlib.asynccontextmanager
async def rtp_socket() -> AsyncIterator[RtpSocket]:
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.transport.close()


# -- connected to an agent -----------------------------------------------------------------------


async def test_connect_to_an_agent_bridges_audio_both_ways_and_the_agent_hangs_up(tmp_path):
    app = Connector("1001")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        trunk_call(node) as (trunk, caller_media, _answered, node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE")
        assert invite.uri_text.startswith("sip:1001@127.0.0.1:")
        node_b = _media_address(invite.body)
        assert node_b != node_a and b"PCMU" in invite.body
        assert "+442079460001" in invite.get("From")  # the caller's number, as it came
        _reply(agent, invite, 180, "ag1")
        await asyncio.sleep(0.6)
        # While it rings the caller hears the application's music.
        assert peaks(_heard(caller_media)[-4000:], 8000, 1) == pytest.approx([MOH_HZ], abs=15)
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        ack = await _next(agent, "ACK")
        assert ack.call_id == invite.call_id
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, Connected)
        assert (result.kind, result.name, result.target) == ("agent", "1001", "1001")
        await asyncio.wait_for(app.returned.wait(), 5)  # the app returned: no hang-up for that
        since = time.monotonic()
        await asyncio.gather(
            _talk(caller_media, node_a, CALLER_HZ, 1.0, 0x1111),
            _talk(agent_media, node_b, AGENT_HZ, 1.0, 0x2222),
        )
        await asyncio.sleep(0.2)
        to_agent = _loud(_heard(agent_media))
        to_caller = _loud(_heard(caller_media, since))
        assert len(to_agent) >= 8000 and len(to_caller) >= 8000  # half a second at least
        assert peaks(to_agent, 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
        assert peaks(to_caller[-8000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
        # The caller's stream stayed one stream (its SSRC) across the change of source.
        ssrcs = {HEADER.unpack_from(d)[4] for _, d in caller_media.packets}
        assert len(ssrcs) == 1
        # The agent hangs up: the caller gets the BYE.
        bye = _in_dialog_from(agent, invite, ack_tag="ag1", cseq=1, method="BYE")
        agent.send(bye)
        assert (await _next_response(agent, 200)).cseq.method == "BYE"
        caller_bye = await _next(trunk, "BYE")
        trunk.send(bytes(make_response(caller_bye, 200)))
        await _settle(node)
    (call,) = ended
    assert call.hangup.by == "callee" and call.state == "ended"
    assert call.target.kind == "agent" and call.target.name == "1001"
    assert call.quality["b"].packets_received >= 40 and call.quality["a"].packets_received >= 40
    assert app.calls[0].ended


def _in_dialog_from(phone: UdpPhone, invite: Request, ack_tag: str, cseq: int, method: str) -> str:
    """A request from the callee's side of the dialog `invite` made."""
    host, port = phone.address
    contact = invite.get("Contact").strip("<>")
    return "\r\n".join([
        f"{method} {contact} SIP/2.0",
        f"Via: {phone.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: {invite.get('To')};tag={ack_tag}",
        f"To: {invite.get('From')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:agent@{host}:{port}>",
        "Content-Length: 0",
        "",
        "",
    ])  # fmt: skip


async def _settle(node, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(node.calls) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert len(node.calls) == 0


async def test_the_caller_hangs_up_a_connected_call_and_the_agent_gets_the_bye(tmp_path):
    app = Connector("1001")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        trunk_call(node) as (trunk, _caller_media, answered, _node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        await _next(agent, "ACK")
        await asyncio.wait_for(app.done.wait(), 5)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        bye = await _next(agent, "BYE")
        assert bye.call_id == invite.call_id
        agent.send(bytes(make_response(bye, 200)))
        await _settle(node)
    assert ended[0].hangup.by == "caller"
    assert isinstance(app.results[0], Connected)


# -- failures: the caller stays with the application ---------------------------------------------


@pytest.mark.parametrize("status", [486, 404])
async def test_a_refusal_is_not_connected_and_the_app_goes_on(tmp_path, status):
    app = Connector("1001")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, caller_media, answered, _node_a),
    ):
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, status, "ag1")
        assert (await _next(agent, "ACK")).cseq.method == "ACK"
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, NotConnected) and result.status == status
        await _hears(caller_media, SORRY_HZ)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await _settle(node)


async def _hears(media: RtpSocket, hz: float, seconds: float = 0.6) -> None:
    """The caller hears `hz` (within a few seconds), from the node's one stream."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    for _ in range(20):
        pcm = _heard(media, start)
        if len(pcm) >= 4000 and peaks(pcm[-4000:], 8000, 1) == pytest.approx([hz], abs=15):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the caller did not hear {hz} Hz: {peaks(pcm[-4000:], 8000, 1)}")


async def test_an_agent_who_does_not_answer_in_time_gets_cancel(tmp_path):
    app = Connector("1001", timeout=1.0)
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, caller_media, answered, _node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 180, "ag1")
        cancel = await _next(agent, "CANCEL", timeout=5)
        assert cancel.call_id == invite.call_id
        agent.send(bytes(make_response(cancel, 200)))
        _reply(agent, invite, 487, "ag1")
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, NotConnected) and result.status == 480
        await _hears(caller_media, SORRY_HZ)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await _settle(node)
    assert [leg.status for leg in ended[0].legs if leg.leg == "b"] == [487]


async def test_an_agent_not_registered_is_not_connected_at_once(tmp_path):
    app = Connector("1002")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        trunk_call(node) as (trunk, caller_media, answered, _node_a),
    ):
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, NotConnected) and result.status == 480
        assert "1002" in result.reason
        await _hears(caller_media, SORRY_HZ)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)


async def test_the_caller_hangs_up_while_the_agent_rings(tmp_path):
    app = Connector("1001")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, _caller_media, answered, _node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 180, "ag1")
        await asyncio.sleep(0.2)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        cancel = await _next(agent, "CANCEL")
        assert cancel.call_id == invite.call_id
        agent.send(bytes(make_response(cancel, 200)))
        _reply(agent, invite, 487, "ag1")
        await asyncio.wait_for(app.done.wait(), 5)
        assert isinstance(app.results[0], NotConnected) and app.results[0].status == 487
        await _settle(node)
    assert ended[0].hangup.by == "caller"


# -- cancellation by the application ---------------------------------------------------------


class Withdrawer:
    """Connects in a task, then cancels it when told to; plays SORRY_HZ after."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.withdraw = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, call: AppCall) -> None:
        channel = await call.answer()
        channel.play(_tone(MOH_HZ), loop=True)
        task = asyncio.ensure_future(call.connect(self.target, timeout=20))
        await self.withdraw.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.cancelled.set()
        channel.play(_tone(SORRY_HZ), loop=True)
        await call.wait_ended()


async def test_cancelling_a_connect_cancels_the_invite_and_the_caller_stays(tmp_path):
    app = Withdrawer("1001")
    async with (
        app_node(tmp_path, {"withdraw": app}, "withdraw") as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, caller_media, answered, _node_a),
    ):
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 180, "ag1")
        await asyncio.sleep(0.2)
        app.withdraw.set()
        cancel = await _next(agent, "CANCEL")
        assert cancel.call_id == invite.call_id and cancel.cseq.number == invite.cseq.number
        agent.send(bytes(make_response(cancel, 200)))
        # The agent answered as the CANCEL came: its 200 is ACKed and hung up.
        _reply(agent, invite, 200, "ag1", _sdp(9))
        assert (await _next(agent, "ACK")).call_id == invite.call_id
        assert (await _next(agent, "BYE")).call_id == invite.call_id
        await asyncio.wait_for(app.cancelled.wait(), 5)
        await _hears(caller_media, SORRY_HZ)
        assert len(node.calls) == 1  # the caller is still there
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await _settle(node)


# -- ring-all ------------------------------------------------------------------------------------


async def test_ring_all_the_first_to_answer_wins_and_the_other_gets_cancel(tmp_path):
    app = Connector(["1001", "1003"])
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as first,
        agent_phone(node, "1003", host="127.0.0.3") as second,
        rtp_socket() as second_media,
        trunk_call(node) as (trunk, caller_media, answered, node_a),
    ):
        ended = ended_calls(node)
        invite1 = await _next(first, "INVITE")
        invite2 = await _next(second, "INVITE")
        assert _media_address(invite1.body) != _media_address(invite2.body)
        _reply(first, invite1, 180, "one")
        _reply(second, invite2, 180, "two")
        await asyncio.sleep(0.2)
        _reply(second, invite2, 200, "two", _sdp(second_media.port))
        await _next(second, "ACK")
        cancel = await _next(first, "CANCEL")
        assert cancel.call_id == invite1.call_id
        first.send(bytes(make_response(cancel, 200)))
        _reply(first, invite1, 487, "one")
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, Connected) and result.name == "1003" and result.target == "1003"
        await _talk(caller_media, node_a, CALLER_HZ, 0.6, 0x1111)
        await asyncio.sleep(0.2)
        to_agent = _loud(_heard(second_media))
        assert peaks(to_agent, 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        bye = await _next(second, "BYE")
        second.send(bytes(make_response(bye, 200)))
        await _settle(node)
    legs = [(leg.party.split()[1], leg.status) for leg in ended[0].legs if leg.leg == "b"]
    assert ("demo/1001", 487) in legs


# -- an external number --------------------------------------------------------------------


async def test_an_external_number_goes_out_through_the_outbound_route(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        port = carrier.address[1]
        app = Connector("9 020 7946 0999".replace(" ", ""))
        changes = {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{port}"'}
        async with (
            app_node(tmp_path, {"connect": app}, "connect", changes) as node,
            rtp_socket() as far_media,
            trunk_call(node) as (trunk, caller_media, answered, _node_a),
        ):
            invite = await _next(carrier, "INVITE")
            assert invite.uri_text.startswith("sip:+442079460999@127.0.0.1:")
            assert "+442079460001" in invite.get("From")  # the caller's number, E.164
            node_sip = sip_address(node)
            _reply(carrier, invite, 183, "far", to=node_sip)
            _reply(carrier, invite, 200, "far", _sdp(far_media.port), to=node_sip)
            await _next(carrier, "ACK")
            await asyncio.wait_for(app.done.wait(), 5)
            (result,) = app.results
            assert isinstance(result, Connected) and result.kind == "trunk"
            assert result.name == "demo-trunk"
            await _talk(far_media, _media_address(invite.body), AGENT_HZ, 0.6, 0x3333)
            await asyncio.sleep(0.2)
            to_caller = _loud(_heard(caller_media))
            assert peaks(to_caller[-4000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
            assert node.calls.trunk_calls[("demo", "demo-trunk")] == 2  # in and out
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            bye = await _next(carrier, "BYE")
            carrier.send(bytes(make_response(bye, 200)), node_sip)
            await _settle(node)
            assert not node.calls.trunk_calls


async def test_a_number_no_route_takes_is_not_found(tmp_path):
    app = Connector("12345")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        trunk_call(node) as (trunk, _caller_media, answered, _node_a),
    ):
        await asyncio.wait_for(app.done.wait(), 5)
        (result,) = app.results
        assert isinstance(result, NotConnected) and result.status == 404
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)


# -- browsers: transcoding on the WebRTC leg ------------------------------------------------------


async def _browser_answers(ws, browser: Browser) -> Request:
    invite = await ws.receive(timeout=10)
    while not (isinstance(invite, Request) and invite.method == "INVITE"):
        invite = await ws.receive(timeout=10)
    answer = await browser.answer(invite.body.decode())
    ok = make_response(invite, 200, to_tag="ws1", headers=[
        ("Contact", WS_CONTACT), ("Content-Type", "application/sdp"),
    ], body=answer.encode())  # fmt: skip
    await ws.send(bytes(ok).decode())
    return invite


async def test_a_pcmu_caller_is_connected_to_a_browser_agent_speaking_opus(tmp_path):
    app = Connector("1004")
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        WsBrowser(f"{node.http_url}/sip") as ws,
    ):
        await ws_register(ws)
        browser = Browser(1000.0, ("opus",))
        try:
            async with trunk_call(node) as (trunk, caller_media, answered, node_a):
                invite = await asyncio.wait_for(_browser_answers(ws, browser), 10)
                assert is_webrtc(invite.body)
                names = [
                    c.name.casefold() for c in parse_sdp(invite.body).media[0].rtpmaps().values()
                ]
                assert names[0] == "pcmu" and "opus" in names  # the caller's codec, Opus added
                await asyncio.wait_for(app.done.wait(), 10)
                assert isinstance(app.results[0], Connected)
                since = time.monotonic()
                await _talk(caller_media, node_a, CALLER_HZ, 3.0, 0x1111)
                to_caller = _loud(_heard(caller_media, since + 1.0))
                assert len(to_caller) > 8000, "the caller heard too little"
                assert peaks(to_caller[-8000:], 8000, 1) == pytest.approx([1000], abs=15)
                heard = browser.heard(skip=1.0)
                assert len(heard) > 48000, "the browser heard too little"
                assert peaks(heard[-48000::6].copy(), 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
                trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
                await _next_response(trunk, 200)
        finally:
            await browser.close()


async def test_a_browser_caller_speaking_opus_is_connected_to_a_pcmu_trunk(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        app = Connector("902079460999")
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]',
        }
        async with (
            app_node(tmp_path, {"connect": app}, "connect", changes) as node,
            WsBrowser(f"{node.http_url}/sip") as ws,
            rtp_socket() as far_media,
        ):
            await ws_register(ws)
            browser = Browser(1000.0, ("opus",))
            try:
                offer = await browser.offer()
                to, call_id, tag, uri = (
                    "<sip:300@demo.invalid>",
                    "bc1",
                    "b1",
                    "sip:300@demo.invalid",
                )
                challenge = await ws.request(ws_request("INVITE", uri, 1, to, tag, call_id, offer))
                assert challenge.status == 407, challenge.reason
                creds = authorization(challenge, "1004", "agent1004", uri, "INVITE")
                await ws.send(ws_request("INVITE", uri, 2, to, tag, call_id, offer,
                                         (f"Proxy-Authorization: {creds}",)))  # fmt: skip
                answered = await ws_final(ws)
                assert answered.status == 200, answered.reason
                await browser.accept(answered.body.decode())
                contact = str(answered.contact[0].uri)
                await ws.send(ws_request("ACK", contact, 2, answered.get("To"), tag, call_id))
                # The application connects the browser to a number on the PCMU trunk.
                invite = await _next(carrier, "INVITE", timeout=15)
                assert not is_webrtc(invite.body)
                names = [
                    c.name.casefold() for c in parse_sdp(invite.body).media[0].rtpmaps().values()
                ]
                assert "pcmu" in names and "opus" not in names  # the trunk's codecs only
                node_sip = sip_address(node)
                _reply(carrier, invite, 200, "far", _sdp(far_media.port), to=node_sip)
                await _next(carrier, "ACK")
                await asyncio.wait_for(app.done.wait(), 5)
                assert isinstance(app.results[0], Connected)
                node_b = _media_address(invite.body)
                since = time.monotonic()
                await _talk(far_media, node_b, AGENT_HZ, 3.0, 0x3333)
                to_trunk = _loud(_heard(far_media, since + 1.0))
                assert len(to_trunk) > 8000, "the trunk heard too little"
                assert peaks(to_trunk[-8000:], 8000, 1) == pytest.approx([1000], abs=15)
                heard = browser.heard(skip=1.0)
                assert peaks(heard[-48000::6].copy(), 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
                await ws.send(ws_request("BYE", contact, 3, answered.get("To"), tag, call_id))
                bye = await _next(carrier, "BYE")
                carrier.send(bytes(make_response(bye, 200)), node_sip)
                await _settle(node)
            finally:
                await browser.close()


# -- recording -------------------------------------------------------------------------------------


async def test_a_connected_call_to_a_did_with_record_true_is_recorded(tmp_path):
    app = Connector("1001")
    record = {'[tenants.demo.dids."300"]\napp = "connect"': (
        '[tenants.demo.dids."300"]\napp = "connect"\nrecord = true'
    )}  # fmt: skip
    async with (
        app_node(tmp_path, {"connect": app}, "connect", record) as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        trunk_call(node) as (trunk, caller_media, answered, node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE")
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        await _next(agent, "ACK")
        await asyncio.wait_for(app.done.wait(), 5)
        node_b = _media_address(invite.body)
        await asyncio.gather(
            _talk(caller_media, node_a, CALLER_HZ, 1.5, 0x1111),
            _talk(agent_media, node_b, AGENT_HZ, 1.5, 0x2222),
        )
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        bye = await _next(agent, "BYE")
        agent.send(bytes(make_response(bye, 200)))
        await _settle(node)
        meta_path = await _json_of(tmp_path / "data")
    meta = json.loads(meta_path.read_text())
    assert meta["callee"].startswith("agent 1001 ")
    assert ended[0].recording_path.endswith(meta["file"])
    audio = read_wav(meta_path.with_name(meta["file"]))
    x = np.frombuffer(audio.pcm, "<i2").astype(np.float64)
    left, right = x[0::2], x[1::2]
    tail = slice(len(left) - 8000, len(left) - 8000 // 4)
    assert peaks(left[tail], 8000, 1) == pytest.approx([CALLER_HZ], abs=10)
    assert peaks(right[tail], 8000, 1) == pytest.approx([AGENT_HZ], abs=10)


# -- ringback, a SIP URI ---------------------------------------------------------------------------


async def test_without_keep_playing_the_caller_hears_ringback_then_the_app_again(tmp_path):
    app = Connector("1001", keep_playing=False)
    async with (
        app_node(tmp_path, {"connect": app}, "connect") as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, caller_media, answered, _node_a),
    ):
        invite = await _next(agent, "INVITE")
        started = time.monotonic()
        _reply(agent, invite, 180, "ag1")
        await asyncio.sleep(1.0)
        # The UK's ringback (the demo's country code is 44): 400 + 450 Hz.
        ringing = _loud(_heard(caller_media, started))
        assert len(ringing) >= 3200
        assert peaks(ringing, 8000, 2) == pytest.approx([400, 450], abs=15)
        _reply(agent, invite, 486, "ag1")
        await asyncio.wait_for(app.done.wait(), 5)
        assert isinstance(app.results[0], NotConnected) and app.results[0].status == 486
        await _hears(caller_media, SORRY_HZ)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await _settle(node)


async def test_a_sip_uri_is_called_as_it_is(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as bob:
        app = Connector(f"sip:bob@127.0.0.1:{bob.address[1]}")
        async with (
            app_node(tmp_path, {"connect": app}, "connect") as node,
            rtp_socket() as bob_media,
            trunk_call(node) as (trunk, _caller_media, _answered, _node_a),
        ):
            ended = ended_calls(node)
            invite = await _next(bob, "INVITE")
            assert invite.uri_text == f"sip:bob@127.0.0.1:{bob.address[1]}"
            _reply(bob, invite, 200, "bob", _sdp(bob_media.port), to=sip_address(node))
            await _next(bob, "ACK")
            await asyncio.wait_for(app.done.wait(), 5)
            (result,) = app.results
            assert isinstance(result, Connected) and result.kind == "uri"
            # Bob hangs up.
            bob.send(_in_dialog_from(bob, invite, "bob", 1, "BYE"), sip_address(node))
            caller_bye = await _next(trunk, "BYE")
            trunk.send(bytes(make_response(caller_bye, 200)))
            await _settle(node)
        assert ended[0].hangup.by == "callee"
