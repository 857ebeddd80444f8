"""DTMF across calls through a live node, checked by content at the far ends.

A carrier's call comes in on the demo trunk (from 127.0.0.1) to an agent's
desk phone (registered from 127.0.0.2); each end is a real UDP socket
sending a 20 ms PCMU stream in real time. The trunk's `dtmf` setting decides
what each side must get: all sixteen keys, each exactly once, in the form
that side takes (RFC 4733 events, SIP INFO, tones at -20 dBm0 in noise),
both ways at once, with end packets and start packets duplicated on the way
in. A browser agent speaking Opus to a PCMU trunk (transcoded) is in
`test_dtmf_webrtc` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from switch.media.dtmf import DIGITS
from switch.media.dtmf.info import parse_info
from switch.node import Node
from switch.sip.errors import ParseError
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.integration.test_webrtc_calls import _final as ws_final
from tests.integration.test_webrtc_calls import _register as ws_register
from tests.integration.test_webrtc_calls import _request as ws_text
from tests.support.browser import Browser
from tests.support.rtpend import (
    RtpEnd,
    fields,
    keys_in_audio,
    keys_in_events,
    noise,
    pcmu,
    with_events,
    with_keys_in_band,
)
from tests.support.sipclient import UdpPhone, WsBrowser, authorization, register_agent
from tests.support.sipclient import invite as invite_text

SECONDS = 5.0  # of media each way: 16 keys at 220 ms from 0.5 s, and room after
TRUNK_SSRC, AGENT_SSRC = 0x7A0C, 0xA6E7


def _sdp(port: int, events: bool) -> str:
    formats = "0 101" if events else "0"
    lines = [
        "v=0", "o=x 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
    ]  # fmt: skip
    if events:
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"]
    return "\r\n".join(lines) + "\r\n"


def _media(body: bytes) -> tuple[str, int]:
    sdp = parse_sdp(body)
    audio = sdp.media[0]
    connection = sdp.media_connection(audio)
    assert connection is not None
    return connection.host, audio.port


async def _request(phone: UdpPhone, method: str, timeout: float = 10.0) -> Request:
    while True:
        msg = await phone.receive(timeout)
        if isinstance(msg, Request) and msg.method == method:
            return msg


async def _final(phone: UdpPhone, timeout: float = 10.0) -> Response:
    while True:
        msg = await phone.receive(timeout)
        if isinstance(msg, Response) and msg.status >= 200:
            return msg


@dataclass
class TrunkCall:
    """A carrier's call on the demo trunk answered by agent 1001's desk phone."""

    node: Node
    trunk: UdpPhone  # the carrier's SIP
    agent: UdpPhone  # the desk phone's SIP
    trunk_media: RtpEnd
    agent_media: RtpEnd
    to_node_from_trunk: tuple[str, int]  # the relay port of the trunk's leg
    to_node_from_agent: tuple[str, int]  # the relay port of the agent's leg
    offer_to_agent: bytes
    answer_to_trunk: Response
    infos: list[Request] = field(default_factory=list)  # INFOs the node sent the carrier
    cseq: int = 1

    def in_dialog(self, method: str, body: bytes = b"", content_type: str = "") -> str:
        """A request of the carrier's inside its call (it is leg A's UAC)."""
        if method != "ACK":
            self.cseq += 1
        answered = self.answer_to_trunk
        lines = [
            f"{method} {answered.contact[0].uri} SIP/2.0",
            f"Via: {self.trunk.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {answered.get('From')}",
            f"To: {answered.get('To')}",
            f"Call-ID: {answered.call_id}",
            f"CSeq: {self.cseq} {method}",
            *([f"Content-Type: {content_type}"] if content_type else []),
            f"Content-Length: {len(body)}",
            "",
            "",
        ]
        return "\r\n".join(lines) + body.decode()

    async def answer_infos(self, until: float) -> None:
        """Keep the carrier's SIP answering: 200 to each INFO (kept) until `until`."""
        loop = asyncio.get_running_loop()
        while (left := until - loop.time()) > 0:
            try:
                msg = await self.trunk.receive(left)
            except TimeoutError:
                return
            except ParseError:
                continue  # RTCP for the media socket's port + 1, which may be this one
            if isinstance(msg, Request):
                if msg.method == "INFO":
                    self.infos.append(msg)
                self.trunk.send(bytes(make_response(msg, 200)), sip_address(self.node))


@contextlib.asynccontextmanager
async def trunk_calls_agent(
    tmp_path, dtmf: str, trunk_events: bool, agent_events: bool = True
) -> AsyncIterator[TrunkCall]:
    changes = {
        'app = "echo"              # plays back': 'agent = "1001"              # plays back',
        "max_calls = 0 ": f'dtmf = "{dtmf}"\nmax_calls = 0 ',
    }
    async with (
        running_node(tmp_path, changes=changes) as node,
        UdpPhone(sip_address(node), host="127.0.0.2") as agent,
        UdpPhone(sip_address(node)) as trunk,
        RtpEnd() as trunk_media,
        RtpEnd() as agent_media,
    ):
        assert (await register_agent(agent, "1001", "agent1001"))[1].status == 200
        offer = _sdp(trunk_media.port, trunk_events)
        length = f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}"
        text = invite_text(trunk, "07700900123", 1).replace("sip:200@", "sip:300@")
        trunk.send(text.replace("Content-Length: 0", length) + offer)
        invite = await _request(agent, "INVITE")
        answer = _sdp(agent_media.port, agent_events).encode()
        agent.send(bytes(make_response(invite, 200, to_tag="agent1", headers=[
            ("Contact", f"<sip:1001@{agent.address[0]}:{agent.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=answer)))  # fmt: skip
        answered = await _final(trunk)
        assert answered.status == 200, answered.reason
        call = TrunkCall(node, trunk, agent, trunk_media, agent_media, _media(answered.body),
                         _media(invite.body), invite.body, answered)  # fmt: skip
        trunk.send(call.in_dialog("ACK"))
        yield call


async def _talk(call: TrunkCall, trunk_stream, agent_stream, infos: str = "") -> None:
    """Both ends stream at once; the carrier sends `infos` as INFOs meanwhile
    and answers the node's INFOs; then everything in flight is let arrive."""
    loop = asyncio.get_running_loop()
    until = loop.time() + SECONDS + 1.5

    async def send_infos() -> None:
        await asyncio.sleep(0.5)
        for digit in infos:
            body = f"Signal={digit}\r\nDuration=100\r\n".encode()
            call.trunk.send(call.in_dialog("INFO", body, "application/dtmf-relay"))
            await asyncio.sleep(0.22)

    await asyncio.gather(
        call.trunk_media.play(call.to_node_from_trunk, trunk_stream),
        call.agent_media.play(call.to_node_from_agent, agent_stream),
        send_infos(),
        call.answer_infos(until),
    )


def _keys_in_infos(infos: list[Request]) -> str:
    return "".join(parse_info(i.content_type or "", i.body).digit for i in infos)


async def test_rfc4733_on_both_legs_passes_through_untouched(tmp_path):
    async with trunk_calls_agent(tmp_path, "rfc4733", trunk_events=True) as call:
        assert call.node.calls is not None
        trunk_stream = with_events(noise(SECONDS), DIGITS, TRUNK_SSRC)
        agent_stream = with_events(noise(SECONDS, seed=2), DIGITS[::-1], AGENT_SSRC)
        await _talk(call, trunk_stream, agent_stream)
        (live,) = call.node.calls._by_invite.values()
        assert live.dtmf is None or live.dtmf.link is None  # nothing converts...
        assert live.media is not None
        assert live.media.a.rtp.tap is None and live.media.b.rtp.tap is None
        # ...and nothing is tapped: every packet arrives as it was sent.
        assert sorted(call.agent_media.received) == sorted(p for _, p in trunk_stream)
        assert keys_in_events(call.agent_media.received, 101) == DIGITS
        assert keys_in_events(call.trunk_media.received, 101) == DIGITS[::-1]
        assert call.infos == []


async def test_info_trunk_and_rfc4733_agent_both_ways(tmp_path):
    async with trunk_calls_agent(tmp_path, "info", trunk_events=True) as call:
        # The trunk is shown no telephone-event; the agent is.
        assert b"telephone-event" not in call.answer_to_trunk.body
        assert b"telephone-event" in call.offer_to_agent
        ended = ended_calls(call.node)
        agent_stream = with_events(noise(SECONDS, seed=2), DIGITS, AGENT_SSRC, extra_ends=2)
        await _talk(call, pcmu(noise(SECONDS), TRUNK_SSRC), agent_stream, infos=DIGITS[::-1])
        # The carrier's INFOs reached the agent as events, each key once.
        assert keys_in_events(call.agent_media.received, 101) == DIGITS[::-1]
        # The agent's events reached the carrier as INFOs, each key once,
        # and no event packet went its way.
        assert _keys_in_infos(call.infos) == DIGITS
        assert {i.content_type for i in call.infos} == {"application/dtmf-relay"}
        assert {fields(p)[0] for p in call.trunk_media.received} == {0}
        # The audio still crossed both ways, its numbering without holes.
        trunk_got = [fields(p)[1] for p in call.trunk_media.received]
        assert len(trunk_got) == sum(1 for _, p in agent_stream if fields(p)[0] == 0)
        assert sorted(trunk_got) == list(range(trunk_got[0], trunk_got[0] + len(trunk_got)))
        call.trunk.send(call.in_dialog("BYE"))
        await _request(call.agent, "BYE")
        for _ in range(50):
            if ended:
                break
            await asyncio.sleep(0.05)
        assert ended and ended[0].dtmf is not None and ended[0].dtmf.link is None


@pytest.mark.parametrize("trunk_events", [False, True])
async def test_inband_trunk_and_rfc4733_agent_both_ways(tmp_path, trunk_events):
    async with trunk_calls_agent(tmp_path, "inband", trunk_events=trunk_events) as call:
        assert b"telephone-event" not in call.answer_to_trunk.body
        trunk_audio = with_keys_in_band(noise(SECONDS), DIGITS)
        agent_stream = with_events(noise(SECONDS, seed=2), DIGITS[::-1], AGENT_SSRC)
        await _talk(call, pcmu(trunk_audio, TRUNK_SSRC), agent_stream)
        # The carrier's tones reached the agent as events (and as tones: the audio passes).
        assert keys_in_events(call.agent_media.received, 101) == DIGITS
        assert keys_in_audio(call.agent_media.received) == DIGITS
        # The agent's events reached the carrier as tones in its audio, nothing else.
        assert keys_in_audio(call.trunk_media.received) == DIGITS[::-1]
        assert {fields(p)[0] for p in call.trunk_media.received} == {0}
        assert call.infos == []


async def test_auto_trunk_without_events_gets_tones_and_sends_tones(tmp_path):
    # Asterisk's "auto": no telephone-event negotiated with the trunk -> in-band.
    async with trunk_calls_agent(tmp_path, "auto", trunk_events=False) as call:
        trunk_audio = with_keys_in_band(noise(SECONDS), "0123456789")
        agent_stream = with_events(noise(SECONDS, seed=2), "*#ABCD", AGENT_SSRC)
        await _talk(call, pcmu(trunk_audio, TRUNK_SSRC), agent_stream)
        assert keys_in_events(call.agent_media.received, 101) == "0123456789"
        assert keys_in_audio(call.trunk_media.received) == "*#ABCD"


# -- a browser agent speaking Opus, a trunk speaking PCMU: transcoded -------------------------


class BrowserKeys:
    """RFC 4733 for the aiortc browser, which has none.

    Keys go out as a browser's insertDTMF sends them: telephone-event
    packets in place of its audio packets (the same SSRC and sequence
    numbers), 100 ms of updates then the end three times, on the
    telephone-event/48000 of its SDP. What the node sends it is caught
    decrypted, before aiortc's own routing (which would drop the events).
    """

    def __init__(self, browser: Browser, pt: int = 110) -> None:
        self.pt = pt
        self.received: list[bytes] = []
        self.sent: list[bytes] = []
        self._keys: list[tuple[float, str]] = []
        self._now = 0  # packets of the current key sent
        dtls = browser.transceiver.sender.transport
        send, handle = dtls._send_rtp, dtls._handle_rtp_data

        async def send_rtp(data: bytes) -> None:
            if not 191 < data[1] < 224:  # RTP, not RTCP
                data = self._substitute(data)
            await send(data)

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            self.received.append(data)
            if data[1] & 0x7F != self.pt:
                await handle(data, arrival_time_ms)

        dtls._send_rtp, dtls._handle_rtp_data = send_rtp, handle_rtp
        self._ts0 = 0

    def press(self, keys: str, after: float, every: float = 0.26) -> None:
        start = asyncio.get_running_loop().time() + after
        self._keys = [(start + every * k, key) for k, key in enumerate(keys)]

    def _substitute(self, data: bytes) -> bytes:
        if not self._keys or asyncio.get_running_loop().time() < self._keys[0][0]:
            return data
        _, key = self._keys[0]
        _, _, seq, ts, ssrc = fields_header(data)
        if self._now == 0:
            self._ts0 = ts
        end = self._now >= 5
        duration = min(self._now + 1, 5) * 960
        code = DIGITS.index(key)
        payload = bytes([code, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")
        flags = (0x80 if self._now == 0 else 0) | self.pt
        packet = struct.pack("!BBHII", 0x80, flags, seq, self._ts0, ssrc) + payload
        self._now += 1
        if self._now == 8:
            self._keys.pop(0)
            self._now = 0
        self.sent.append(packet)
        return packet


def fields_header(data: bytes) -> tuple[int, int, int, int, int]:
    return struct.unpack_from("!BBHII", data)


def _with_telephone_events(offer: str) -> str:
    """A browser's offer as Chrome makes it: telephone-event/48000 and /8000 beside Opus."""
    lines = offer.split("\r\n")
    out = []
    for line in lines:
        if line.startswith("m=audio "):
            line += " 110 126"
        out.append(line)
        if line.startswith("a=rtpmap:") and "opus/48000" in line:
            out += ["a=rtpmap:110 telephone-event/48000", "a=rtpmap:126 telephone-event/8000"]
    return "\r\n".join(out)


def _events_follow_the_audio(
    packets: list[bytes], event_pt: int, audio_pt: int, frame: int
) -> None:
    """Each press's timestamp is on the timeline of the audio before it (within a few frames)."""
    last_audio = None
    starts = 0
    for packet in packets:
        pt, _, ts, _ = fields(packet)
        if pt == audio_pt:
            last_audio = ts
        elif pt == event_pt and packet[1] & 0x80 and last_audio is not None:
            starts += 1
            assert 0 < (ts - last_audio) & 0xFFFFFFFF <= 8 * frame, (ts, last_audio)
    assert starts >= 16


@pytest.mark.parametrize("dtmf", ["auto", "info", "inband"])
async def test_dtmf_both_ways_between_an_opus_browser_and_a_pcmu_trunk(tmp_path, dtmf):
    await asyncio.wait_for(_browser_and_trunk_press_keys(tmp_path, dtmf), 60)


async def _carrier_answers(carrier: UdpPhone, node: Node, infos: list[Request], until: float):
    """The carrier's SIP: 200 to each request in its dialog (INFOs kept) until `until`."""
    loop = asyncio.get_running_loop()
    while (left := until - loop.time()) > 0:
        try:
            msg = await carrier.receive(left)
        except TimeoutError:
            return
        except ParseError:
            continue
        if isinstance(msg, Request):
            if msg.method == "INFO":
                infos.append(msg)
            carrier.send(bytes(make_response(msg, 200)), sip_address(node))


def _carrier_info(invite: Request, carrier: UdpPhone, cseq: int, digit: str) -> str:
    """An INFO from the carrier (leg B's UAS) in the dialog of the node's `invite`."""
    body = f"Signal={digit}\r\nDuration=100\r\n"
    return "\r\n".join([
        f"INFO {invite.contact[0].uri} SIP/2.0",
        f"Via: {carrier.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: {invite.get('To')};tag=far1",
        f"To: {invite.get('From')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {cseq} INFO",
        "Content-Type: application/dtmf-relay",
        f"Content-Length: {len(body)}",
        "",
        body,
    ])  # fmt: skip


async def _browser_and_trunk_press_keys(tmp_path, dtmf: str) -> None:
    async with UdpPhone(("127.0.0.1", 9)) as carrier, RtpEnd() as media:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]',
            "max_calls = 0 ": f'dtmf = "{dtmf}"\nmax_calls = 0 ',
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            WsBrowser(f"{node.http_url}/sip") as ws,
        ):
            await ws_register(ws)
            browser = Browser(1000.0, ("opus",))
            try:
                offer = _with_telephone_events(await browser.offer())
                opus = next(pt for pt, c in parse_sdp(offer).media[0].rtpmaps().items()
                            if c.name == "opus")  # fmt: skip
                to, call_id, tag = "<sip:95551234@demo.invalid>", secrets.token_hex(8), "b1"
                uri = "sip:95551234@demo.invalid"
                challenge = await ws.request(ws_text("INVITE", uri, 1, to, tag, call_id, offer))
                creds = authorization(challenge, "1004", "agent1004", uri, "INVITE")
                await ws.send(ws_text("INVITE", uri, 2, to, tag, call_id, offer,
                                      (f"Proxy-Authorization: {creds}",)))  # fmt: skip
                invite = await _request(carrier, "INVITE")
                offered = parse_sdp(invite.body).media[0].rtpmaps()
                events = dtmf == "auto"  # the trunk of the other modes is shown none
                assert (126 in offered) == events
                node_b = _media(invite.body)
                answer = (
                    "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    f"t=0 0\r\nm=audio {media.port} RTP/AVP 0{' 126' if events else ''}\r\n"
                    + ("a=rtpmap:126 telephone-event/8000\r\n" if events else "")
                ).encode()
                carrier.send(bytes(make_response(invite, 200, to_tag="far1", headers=[
                    ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                    ("Content-Type", "application/sdp"),
                ], body=answer)), sip_address(node))  # fmt: skip
                answered = await ws_final(ws)
                assert answered.status == 200, answered.reason
                # The browser is answered Opus with its telephone-event/48000
                # (transcoded), whatever the trunk's DTMF: the node converts.
                codecs = parse_sdp(answered.body).media[0].rtpmaps()
                assert [(pt, c.rtpmap) for pt, c in codecs.items()] == [
                    (opus, "opus/48000/2"), (110, "telephone-event/48000"),
                ]  # fmt: skip
                await browser.accept(answered.body.decode())
                contact = answered.contact[0].uri
                await ws.send(ws_text("ACK", str(contact), 2, answered.get("To"), tag, call_id))
                keys = BrowserKeys(browser)
                keys.press(DIGITS, after=0.8)
                carrier_keys = DIGITS[::-1]
                loop = asyncio.get_running_loop()
                infos: list[Request] = []

                async def carrier_infos() -> None:
                    await asyncio.sleep(0.5)
                    for cseq, digit in enumerate(carrier_keys, 1):
                        carrier.send(_carrier_info(invite, carrier, cseq, digit), sip_address(node))
                        await asyncio.sleep(0.22)

                if dtmf == "auto":
                    stream = with_events(noise(5.5), carrier_keys, TRUNK_SSRC, event_pt=126)
                elif dtmf == "inband":
                    stream = pcmu(with_keys_in_band(noise(5.5), carrier_keys), TRUNK_SSRC)
                else:
                    stream = pcmu(noise(5.5), TRUNK_SSRC)
                await asyncio.gather(
                    media.play(node_b, stream),
                    _carrier_answers(carrier, node, infos, loop.time() + 6.0),
                    *([carrier_infos()] if dtmf == "info" else []),
                )

                # Browser -> trunk: each key once, in the trunk's form (events
                # on the PCMU timeline the transcoder makes, INFOs, or tones).
                assert len(keys.sent) == 16 * 8
                if dtmf == "auto":
                    assert keys_in_events(media.received, 126) == DIGITS
                    _events_follow_the_audio(media.received, 126, 0, 160)
                elif dtmf == "info":
                    assert _keys_in_infos(infos) == DIGITS
                else:
                    assert keys_in_audio(media.received) == DIGITS
                if dtmf != "auto":
                    assert {fields(p)[0] for p in media.received} == {0}
                # Trunk -> browser: each key once (duplicated starts and ends and
                # all), as telephone-event/48000 on the Opus timeline.
                assert keys_in_events(keys.received, 110, 48000) == carrier_keys
                _events_follow_the_audio(keys.received, 110, opus, 960)

                await ws.send(ws_text("BYE", str(contact), 3, answered.get("To"), tag, call_id))
                bye = await _request(carrier, "BYE")
                carrier.send(bytes(make_response(bye, 200)), sip_address(node))
            finally:
                await browser.close()
