"""Applications on a live node: calls the node answers itself, through a Channel.

Each test registers an application of its own through the mapping the node
is built with (as `switch.apps.builtin_apps` gives the echo test), points
DID 300 of the demo at it, and calls that DID: from SIPp (RFC 4733 from
sip-tester's captures, keys by SIP INFO), from a test phone on UDP (keys
A-D with packets lost and doubled, keys as tones in noisy audio on an
"inband" trunk, a prompt heard by its frequency, barge-in), and from a
browser (aiortc over SIP-over-WebSocket) to the echo test.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from switch.apps.builtin import builtin_apps
from switch.call.app import AppCall
from switch.config import demo_config_text, load_config
from switch.media import g711
from switch.media.channel import Channel, Closed
from switch.media.dtmf.digits import DIGITS, Digit, DigitBegin
from switch.media.dtmf.events import event_packets
from switch.media.dtmf.inband import ZERO_DBM0, generate
from switch.media.player import ToneItem
from switch.media.tones import Step, Tone
from switch.node import Node, StartError
from switch.sip.message import Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, sip_address
from tests.integration.test_calls import _in_dialog, _media_address, _next_response
from tests.media.audio import peaks, rms
from tests.support.sipclient import UdpPhone
from tests.support.sipp import free_port, needs_sipp, run_sipp

HEADER = struct.Struct("!BBHII")
DID = "300"
PCAPS = Path("/usr/share/sip-tester")
TIMEOUT = 30


class Collector:
    """A test application: answers, keeps every event its channel reports."""

    def __init__(self) -> None:
        self.events: list = []
        self.calls: list[AppCall] = []
        self.channel: Channel | None = None
        self.answered = asyncio.Event()
        self.done = asyncio.Event()

    async def __call__(self, call: AppCall) -> None:
        self.calls.append(call)
        self.channel = await call.answer()
        self.answered.set()
        await self.listen(self.channel)

    async def listen(self, channel: Channel) -> None:
        while True:
            event = await channel.events.get()
            self.events.append(event)
            if isinstance(event, Closed):
                break
        self.done.set()

    @property
    def digits(self) -> str:
        return "".join(e.digit for e in self.events if isinstance(e, Digit))

    @property
    def begins(self) -> str:
        return "".join(e.digit for e in self.events if isinstance(e, DigitBegin))


@contextlib.asynccontextmanager
async def app_node(
    tmp_path: Path, apps: dict, app: str, changes: dict[str, str] | None = None
) -> AsyncIterator[Node]:
    """The demo node with `apps` added and DID 300 answered by `app`."""
    text = demo_config_text()
    changes = {
        '[tenants.demo.dids."300"]\napp = "echo"': f'[tenants.demo.dids."300"]\napp = "{app}"',
        "keepalive = 30 ": "keepalive = 0 ",
        **(changes or {}),
    }
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "node.toml"
    path.write_text(text)
    every = {**builtin_apps(), **apps}
    config = load_config(path, apps=every).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / "data"
    )
    node = Node(config, every)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def _offer(port: int, codecs: str = "0 101", host: str = "127.0.0.1") -> str:
    maps = {
        "0": "a=rtpmap:0 PCMU/8000",
        "8": "a=rtpmap:8 PCMA/8000",
        "101": "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16",
    }
    lines = "\r\n".join(maps[c] for c in codecs.split())
    return (
        f"v=0\r\no=caller 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {codecs}\r\n{lines}\r\n"
    )


def _invite(trunk: UdpPhone, offer: str, did: str = DID) -> str:
    return "\r\n".join([
        f"INVITE sip:{did}@demo.invalid SIP/2.0",
        f"Via: {trunk.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        "From: \"Ann Caller\" <sip:+442079460001@carrier.invalid>;tag=c1",
        f"To: <sip:{did}@demo.invalid>",
        f"Call-ID: app-{secrets.token_hex(6)}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:caller@127.0.0.1:{trunk.address[1]}>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(offer)}",
        "",
        offer,
    ])  # fmt: skip


class RtpSocket(asyncio.DatagramProtocol):
    """The caller's media socket: what the node sends, with arrival times."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        self.packets.append((time.monotonic(), data))

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def payloads(self, pt: int) -> list[bytes]:
        return [d[12:] for _, d in self.packets if d[1] & 0x7F == pt]


@contextlib.asynccontextmanager
async def trunk_call(
    node: Node, codecs: str = "0 101"
) -> AsyncIterator[tuple[UdpPhone, RtpSocket, Response, tuple[str, int]]]:
    """The demo trunk calls DID 300: (trunk, media socket, the 200, the node's media address)."""
    loop = asyncio.get_running_loop()
    _, media = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
    try:
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(media.port, codecs)))
            answered = await _next_response(trunk, 200)
            trunk.send(_in_dialog(trunk, "ACK", answered, cseq=1))
            yield trunk, media, answered, _media_address(answered.body)
    finally:
        media.transport.close()


def _events(digit: str, ts: int, seq: int, duration: float = 0.1) -> list[bytes]:
    out = []
    for i, p in enumerate(event_packets(digit, ts, duration)):
        flags = (0x80 if p.marker else 0) | 101
        out.append(HEADER.pack(0x80, flags, (seq + i) & 0xFFFF, p.timestamp, 0x4242) + p.payload)
    return out


# -- (a) RFC 4733 ----------------------------------------------------------------------------


@needs_sipp
@pytest.mark.skipif(not (PCAPS / "dtmf_2833_0.pcap").exists(), reason="sip-tester's captures")
async def test_every_key_sipp_has_a_capture_of_is_heard_once(tmp_path):
    collector = Collector()
    async with app_node(tmp_path, {"collect": collector}, "collect") as node:
        ended = ended_calls(node)
        result = await run_sipp(
            "app_uac_rfc4733.xml", sip_address(node), timeout=TIMEOUT,
            extra=["-s", DID, "-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM))],
        )  # fmt: skip
        assert result.ok, result.output
        await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.digits == collector.begins == "0123456789*#"
    (call,) = collector.calls
    assert (call.caller.number, call.caller.tenant, call.did) == ("+442079460123", "demo", DID)
    assert ended[0].hangup.by == "caller"


async def test_keys_a_to_d_through_lost_end_packets_and_duplicates(tmp_path):
    collector = Collector()
    async with (
        app_node(tmp_path, {"collect": collector}, "collect") as node,
        trunk_call(node) as (trunk, media, answered, node_media),
    ):
        await collector.answered.wait()
        assert parse_sdp(answered.body).media[0].formats == ["0", "101"]
        ts, seq = 16000, 1000
        for n, digit in enumerate("ABCD"):
            packets = _events(digit, ts, seq, duration=0.12)
            seq, ts = seq + len(packets), ts + 4000
            if n % 2 == 0:
                packets = packets[:-3] + packets[-2:-1]  # two of the three end packets lost
            # Every packet twice; the last key: every end lost (it times out).
            packets = [p for p in packets for _ in range(2)] if n != 3 else packets[:-3]
            for packet in packets:
                media.transport.sendto(packet, node_media)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.digits == collector.begins == "ABCD"


# -- (b) SIP INFO ----------------------------------------------------------------------------


@needs_sipp
async def test_keys_by_sip_info_are_heard_once_and_a_bad_one_is_still_answered(tmp_path):
    collector = Collector()
    async with app_node(tmp_path, {"collect": collector}, "collect") as node:
        result = await run_sipp(
            "app_uac_info.xml", sip_address(node), timeout=TIMEOUT, extra=["-s", DID]
        )
        assert result.ok, result.output
        await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.digits == collector.begins == "1234567890*#ABCD"


async def test_info_that_is_no_dtmf_gets_415_and_a_reinvite_keeps_the_codec(tmp_path):
    collector = Collector()
    async with (
        app_node(tmp_path, {"collect": collector}, "collect") as node,
        trunk_call(node, "8 0 101") as (trunk, media, answered, node_media),
    ):
        assert parse_sdp(answered.body).media[0].formats == ["8", "101"]  # the offer's first
        info = _in_dialog(trunk, "INFO", answered, cseq=2, sdp="hello")
        trunk.send(info.replace("application/sdp", "text/plain"))
        refused = await _next_response(trunk, 415)
        assert "application/dtmf-relay" in refused.get("Accept")
        # A session refresh by re-INVITE: the same codec, the same port, a=sendrecv.
        trunk.send(_in_dialog(trunk, "INVITE", answered, cseq=3, sdp=_offer(media.port, "8 0 101")))
        again = await _next_response(trunk, 200)
        assert again.cseq.method == "INVITE"
        trunk.send(_in_dialog(trunk, "ACK", again, cseq=3))
        assert _media_address(again.body) == node_media
        assert parse_sdp(again.body).media[0].formats == ["8", "101"]
        assert (
            parse_sdp(again.body).origin.sess_version
            == parse_sdp(answered.body).origin.sess_version
        )
        # An offer without PCMA is refused: the channel speaks what it agreed.
        trunk.send(_in_dialog(trunk, "INVITE", answered, cseq=4, sdp=_offer(media.port, "0")))
        assert (await _next_response(trunk, 488)).cseq.number == 4
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=5))
        await _next_response(trunk, 200)
        await asyncio.wait_for(collector.done.wait(), 5)


# -- (c) in-band -----------------------------------------------------------------------------


def _with_noise(pcm: bytes, snr_db: float, signal_power: float, seed: int) -> bytes:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    sigma = np.sqrt(signal_power / 10 ** (snr_db / 10))
    x += np.random.default_rng(seed).normal(0.0, sigma, len(x))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


async def _talk(media: RtpSocket, to: tuple[str, int], pcm: bytes, pt: int = 0) -> None:
    """`pcm` (8 kHz linear) to the node as PCMU, 20 ms a packet, in real time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(len(pcm) // 320):
        payload = g711.ulaw_encode(pcm[n * 320 : (n + 1) * 320])
        media.transport.sendto(HEADER.pack(0x80, pt, n, 160 * n, 0x99) + payload, to)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


async def test_an_inband_trunks_keys_are_heard_in_noisy_audio(tmp_path):
    collector = Collector()
    inband = {"setup_timeout = 5 ": 'dtmf = "inband"\nsetup_timeout = 5 '}
    async with (
        app_node(tmp_path, {"collect": collector}, "collect", inband) as node,
        trunk_call(node) as (trunk, media, answered, node_media),
    ):
        await collector.answered.wait()
        # Each key at -20 dBm0 (the pair; -23 each), 70 ms on and 70 ms off,
        # in white noise 15 dB below the pair.
        level = -23.0
        power = 2 * (ZERO_DBM0 * 10 ** (level / 20)) ** 2 / 2
        keys = b"".join(generate(d, 0.07, level) + bytes(1120) for d in DIGITS)
        pcm = _with_noise(bytes(1600) + keys + bytes(4000), 15.0, power, seed=5)
        await _talk(media, node_media, pcm)
        await asyncio.sleep(0.3)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await asyncio.wait_for(collector.done.wait(), 5)
    assert collector.digits == collector.begins == DIGITS


# -- (d) a prompt, (e) barge-in ---------------------------------------------------------------


class Prompter(Collector):
    """Answers, plays a two-tone prompt (barge-in), listens."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.played: list[str] = []

    async def __call__(self, call: AppCall) -> None:
        self.calls.append(call)
        channel = self.channel = await call.answer()
        self.answered.set()
        tone = Tone((Step((550.0, 1650.0), int(self.seconds * 1000)),), level=-12)
        playback = channel.play([ToneItem(tone, int(self.seconds * 1000))], barge_in=True)
        listening = asyncio.ensure_future(self.listen(channel))
        self.played.append(await playback)
        if self.played[-1] == "end":
            call.hangup()
        await listening


async def test_a_prompt_is_heard_by_the_caller_then_the_app_hangs_up(tmp_path):
    prompter = Prompter(1.0)
    async with (
        app_node(tmp_path, {"prompt": prompter}, "prompt") as node,
        trunk_call(node, "8 101") as (trunk, media, _answered, _node_media),
    ):
        ended = ended_calls(node)
        bye = await asyncio.wait_for(_next_bye(trunk), 5)
        trunk.send(_ok_to(bye))
        await asyncio.wait_for(prompter.done.wait(), 5)
        pcm = b"".join(g711.alaw_decode(p) for p in media.payloads(8))
        assert 0.9 <= len(pcm) / 2 / 8000 <= 1.5
        assert peaks(pcm[: 8000 * 2 * 9 // 10], 8000, 2) == pytest.approx([550, 1650], abs=10)
        assert prompter.played == ["end"]
        await asyncio.sleep(0.05)
    assert ended[0].hangup.by == "node" and ended[0].quality["a"].packets_sent >= 45


async def _next_bye(phone: UdpPhone):
    while True:
        msg = await phone.receive()
        if getattr(msg, "method", None) == "BYE":
            return msg


def _ok_to(req, sdp: str = "", status: int = 200) -> bytes:
    headers = [("Contact", "<sip:caller@127.0.0.1>")]
    if sdp:
        headers.append(("Content-Type", "application/sdp"))
    return bytes(make_response(req, status, headers=headers, body=sdp.encode()))


async def test_a_key_stops_a_barge_in_prompt_within_two_frames(tmp_path):
    prompter = Prompter(10.0)
    async with (
        app_node(tmp_path, {"prompt": prompter}, "prompt") as node,
        trunk_call(node) as (trunk, media, answered, node_media),
    ):
        await prompter.answered.wait()
        await asyncio.sleep(0.5)
        pressed = time.monotonic()
        for packet in _events("9", 8000, 100):
            media.transport.sendto(packet, node_media)
        await asyncio.sleep(0.5)
        loud = [
            t for t, d in media.packets if d[1] & 0x7F == 0 and rms(g711.ulaw_decode(d[12:])) > 500
        ]
        assert len([t for t in loud if t < pressed]) >= 15  # the prompt was playing
        assert len([t for t in loud if t >= pressed]) <= 2  # and stopped at once
        assert prompter.played == ["digit"]
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)
        await asyncio.wait_for(prompter.done.wait(), 5)
    assert prompter.begins == prompter.digits == "9"


# -- the application's side of the call ---------------------------------------------------------


SECOND_DID = {  # DID 301: the application "other"
    '[tenants.demo.dids."400"]': (
        '[tenants.demo.dids."301"]\napp = "other"\n\n[tenants.demo.dids."400"]'
    )
}


def _cancel(invite: str) -> str:
    """The CANCEL of an INVITE `_invite` made (same Via branch, From, To, Call-ID)."""
    lines = invite.split("\r\n")
    kept = [line for line in lines if line.split(":")[0] in ("Via", "From", "To", "Call-ID")]
    uri = lines[0].split()[1]
    return "\r\n".join([
        f"CANCEL {uri} SIP/2.0", *kept, "Max-Forwards: 70", "CSeq: 1 CANCEL",
        "Content-Length: 0", "", "",
    ])  # fmt: skip


async def test_an_app_that_refuses_the_call_gives_its_status_and_hears_cancel(tmp_path):
    async def busy(call: AppCall) -> None:
        call.hangup("busy")

    waiting = asyncio.Event()
    gone: list[str] = []

    async def never_answers(call: AppCall) -> None:
        waiting.set()
        gone.append(await call.wait_ended())

    apps = {"busy": busy, "other": never_answers}
    async with app_node(tmp_path, apps, "busy", SECOND_DID) as node:
        ended = ended_calls(node)
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(4000)))
            refused = await _next_response(trunk, 486)
            assert refused.reason == "Busy Here"
        assert ended[0].hangup.status == 486
        async with UdpPhone(sip_address(node)) as trunk:
            text = _invite(trunk, _offer(4000), did="301")
            trunk.send(text)
            await asyncio.wait_for(waiting.wait(), 5)
            trunk.send(_cancel(text))
            await _next_response(trunk, 487)
            for _ in range(50):
                if gone:
                    break
                await asyncio.sleep(0.02)
        assert gone == ["cancelled before answer"]


async def test_an_app_that_fails_gets_the_caller_a_500_or_a_bye(tmp_path, caplog):
    async def broken(call: AppCall) -> None:
        raise RuntimeError("a bug in the app")

    async def broken_later(call: AppCall) -> None:
        await call.answer()
        raise RuntimeError("a bug after the answer")

    apps = {"broken": broken, "other": broken_later}
    async with app_node(tmp_path, apps, "broken", SECOND_DID) as node:
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(4000)))
            assert (await _next_response(trunk, 500)).status == 500
        async with UdpPhone(sip_address(node)) as trunk:
            trunk.send(_invite(trunk, _offer(4000), did="301"))
            answered = await _next_response(trunk, 200)
            trunk.send(_in_dialog(trunk, "ACK", answered, cseq=1))
            bye = await asyncio.wait_for(_next_bye(trunk), 5)
            trunk.send(_ok_to(bye))
    assert "a bug in the app" in caplog.text and "a bug after the answer" in caplog.text


async def test_an_offer_the_node_cannot_speak_gets_488_before_the_app_runs(tmp_path):
    ran = []

    async def app(call: AppCall) -> None:
        ran.append(call)

    async with (
        app_node(tmp_path, {"app": app}, "app") as node,
        UdpPhone(sip_address(node)) as trunk,
    ):
        g722 = _offer(4000, "101").replace("RTP/AVP 101", "RTP/AVP 9 101")
        trunk.send(_invite(trunk, g722))
        refused = await _next_response(trunk, 488)
        assert "no codec of the offer is allowed by trunk demo-trunk" in refused.reason
        trunk.send(_invite(trunk, "v=0\r\nthis is no SDP\r\n"))
        refused = await _next_response(trunk, 488)
        assert "the offer cannot be read" in refused.reason
    assert ran == []


async def test_a_did_naming_an_app_the_node_lacks_stops_the_start(tmp_path):
    text = demo_config_text().replace('app = "echo"              #', 'app = "ivr2"              #')
    path = tmp_path / "node.toml"
    path.write_text(text)
    config = load_config(path, apps=["echo", "ivr2"]).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / "data"
    )
    node = Node(config)  # the built-in apps only
    with pytest.raises(StartError, match=r"dids\.300\.app: 'ivr2' is not an application"):
        await node.start()
    await node.stop()


# -- the echo test -------------------------------------------------------------------------------


async def test_the_echo_with_a_delay_sends_the_callers_voice_back_later(tmp_path):
    async def delayed(call: AppCall) -> None:
        channel = await call.answer()
        channel.echo(delay_ms=300)
        await call.wait_ended()

    async with (
        app_node(tmp_path, {"delayed": delayed}, "delayed") as node,
        trunk_call(node) as (trunk, media, answered, node_media),
    ):
        t = np.arange(8000) / 8000
        voice = (6000 * np.sin(2 * np.pi * 900 * t)).astype("<i2").tobytes()
        await _talk(media, node_media, voice + bytes(16000))
        pcm = [g711.ulaw_decode(p) for p in media.payloads(0)]
        loud = [i for i, frame in enumerate(pcm) if rms(frame) > 1000]
        assert loud and 14 <= loud[0] <= 25  # 300 ms, and the jitter buffer's 60
        assert peaks(b"".join(pcm[loud[0] : loud[0] + 40]), 8000, 1) == pytest.approx([900], abs=10)
        trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
        await _next_response(trunk, 200)


async def _browser_calls(tmp_path, apps: dict, app: str, codecs: tuple[str, ...]):
    """Agent 1004's browser (aiortc over SIP-over-WebSocket, a 1 kHz tone) calls
    DID 300 and stays 3 s: (what it heard after the first second, the node's
    answer, the call's record)."""
    from tests.integration.test_webrtc_calls import _final, _register, _request
    from tests.support.browser import Browser
    from tests.support.sipclient import WsBrowser, authorization

    # (The WebSocket comes from 127.0.0.1 too: that must not be the trunk.)
    changes = {'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]'}
    async with (
        app_node(tmp_path, apps, app, changes) as node,
        WsBrowser(f"{node.http_url}/sip") as ws,
    ):
        ended = ended_calls(node)
        await _register(ws)
        browser = Browser(1000.0, codecs)
        try:
            offer = await browser.offer()
            to, uri = f"<sip:{DID}@demo.invalid>", f"sip:{DID}@demo.invalid"
            call_id, tag = secrets.token_hex(8), "e1"
            challenge = await ws.request(_request("INVITE", uri, 1, to, tag, call_id, offer))
            assert challenge.status == 407, challenge.reason
            creds = authorization(challenge, "1004", "agent1004", uri, "INVITE")
            await ws.send(_request("INVITE", uri, 2, to, tag, call_id, offer,
                                   (f"Proxy-Authorization: {creds}",)))  # fmt: skip
            answered = await _final(ws)
            assert answered.status == 200, answered.reason
            await browser.accept(answered.body.decode())
            contact = str(answered.contact[0].uri)
            await ws.send(_request("ACK", contact, 2, answered.get("To"), tag, call_id))
            await asyncio.sleep(3.0)
            heard = browser.heard(skip=1.0)
            await ws.send(_request("BYE", contact, 3, answered.get("To"), tag, call_id))
            assert (await _final(ws)).status == 200
        finally:
            await browser.close()
        for _ in range(50):
            if ended:
                break
            await asyncio.sleep(0.05)
    return heard, answered, ended[0]


async def test_a_browser_calling_the_echo_test_hears_its_own_tone(tmp_path):
    heard, answered, call = await _browser_calls(tmp_path, {}, "echo", ("opus", "PCMU"))
    audio = parse_sdp(answered.body).media[0]
    assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.get("setup") == "active"
    assert next(c.name for c in audio.rtpmaps().values()) == "opus"
    assert len(heard) > 48000 * 1.5, "the browser heard too little of itself"
    assert peaks(heard[::6].copy(), 8000, 1) == pytest.approx([1000], abs=15)
    assert call.quality["a"].codec == "opus"
    assert call.quality["a"].packets_received > 100 and call.quality["a"].packets_sent > 100


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_a_browser_hears_a_prompt_in_its_codec(tmp_path, codec):
    prompter = Prompter(10.0)
    heard, answered, _ = await _browser_calls(tmp_path, {"prompt": prompter}, "prompt", (codec,))
    assert next(c.name for c in parse_sdp(answered.body).media[0].rtpmaps().values()) == codec
    assert len(heard) > 48000 * 1.5, "the browser heard too little of the prompt"
    assert peaks(heard[::6].copy(), 8000, 2) == pytest.approx([550, 1650], abs=15)
    assert prompter.played == ["closed"]


async def test_the_node_refreshes_an_app_call_and_ends_it_when_the_caller_is_gone(tmp_path):
    collector = Collector()
    async with app_node(tmp_path, {"collect": collector}, "collect") as node:
        assert node.calls is not None
        node.calls.session_expires, node.calls.min_se = 2, 1  # seconds, for the test
        async with trunk_call(node) as (trunk, media, answered, node_media):
            assert answered.get("Session-Expires") == "2;refresher=uas"
            refresh = await asyncio.wait_for(_next_request_of(trunk, "INVITE"), 5)
            assert refresh.call_id == answered.call_id
            assert _media_address(refresh.body) == node_media  # the SDP it has, again
            assert parse_sdp(refresh.body).media[0].formats == ["0", "101"]
            trunk.send(_ok_to(refresh, _offer(media.port)))
            again = await asyncio.wait_for(_next_request_of(trunk, "INVITE"), 5)
            trunk.send(_ok_to(again, status=481))  # the caller's side forgot the call
            bye = await asyncio.wait_for(_next_bye(trunk), 5)
            trunk.send(_ok_to(bye))
            await asyncio.wait_for(collector.done.wait(), 5)
    assert isinstance(collector.events[-1], Closed)
    assert "session refresh failed" in collector.calls[0].end_reason


async def _next_request_of(phone: UdpPhone, method: str):
    while True:
        msg = await phone.receive()
        if getattr(msg, "method", None) == method:
            return msg
