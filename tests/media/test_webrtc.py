"""The WebRTC leg: SDP translation (pure), packet transcoding, and a live leg
between the node's relay and an aiortc browser on loopback (ICE, DTLS-SRTP,
RTP both ways, checked by the tone each side hears)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import numpy as np
import pytest

from switch.media import g711
from switch.media.relay import MediaSession, PortPool, anchor
from switch.media.transcode import CodecChoice
from switch.media.webrtc import PacketTranscoder, WebRtcLeg, fingerprint
from switch.media.webrtc_sdp import (
    PLAIN_EXTRA,
    WEBRTC_EXTRA,
    LocalTransport,
    answer_codecs,
    codecs_of,
    is_webrtc,
    remote_transport,
    to_plain,
    to_webrtc,
)
from switch.sip.sdp import Codec, SdpError, parse_sdp
from tests.media.audio import peaks
from tests.support.browser import Browser

BROWSER_OFFER = (
    b"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    b"a=msid-semantic:WMS *\r\n"
    b"m=audio 50000 UDP/TLS/RTP/SAVPF 111 0 126\r\nc=IN IP4 127.0.0.1\r\n"
    b"a=sendrecv\r\na=mid:0\r\na=msid:a b\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    b"a=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\na=ssrc:1 cname:x\r\n"
    b"a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n"
    b"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
    b"a=end-of-candidates\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    b"a=fingerprint:sha-256 ab:CD:01\r\na=setup:actpass\r\n"
)
PLAIN_OFFER = (
    b"v=0\r\no=trunk 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
)
LOCAL = LocalTransport("node", "p" * 22, ("sha-256", "AA:BB"), "actpass",
                       ("1 1 udp 2130706431 203.0.113.5 30000 typ host",))  # fmt: skip
OPUS = Codec("opus", 48000, 2, 111)
PCMU = Codec("PCMU", 8000, 1, 0)


def test_a_browser_sdp_is_told_from_a_plain_one():
    assert is_webrtc(BROWSER_OFFER)
    assert not is_webrtc(PLAIN_OFFER)
    assert not is_webrtc(b"not sdp")
    # Without its fingerprint it is still a browser's, refused for what it lacks
    assert is_webrtc(BROWSER_OFFER.replace(b"a=fingerprint:sha-256 ab:CD:01\r\n", b""))


def test_the_browser_end_is_read_from_its_sdp():
    remote = remote_transport(BROWSER_OFFER)
    assert (remote.ufrag, remote.pwd, remote.setup) == ("abcd", "0123456789012345678901", "actpass")
    assert remote.fingerprints == (("sha-256", "AB:CD:01"),)
    assert remote.candidates == ("1 1 udp 2130706431 127.0.0.1 50000 typ host",)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"a=fingerprint:sha-256 ab:CD:01\r\n", "a=fingerprint"),
        (b"a=ice-ufrag:abcd\r\n", "ice-ufrag"),
    ],
)
def test_a_webrtc_sdp_without_its_transport_is_refused_with_the_reason(line, says):
    with pytest.raises(SdpError, match=says):
        remote_transport(BROWSER_OFFER.replace(line, b""))


def test_to_plain_strips_webrtc_and_offers_what_the_node_can_transcode_to():
    sdp = parse_sdp(to_plain(BROWSER_OFFER, PLAIN_EXTRA))
    audio = sdp.media[0]
    assert audio.proto == "RTP/AVP"
    names = [n for n, _ in audio.attributes + sdp.attributes]
    for gone in ("candidate", "ice-ufrag", "ice-pwd", "fingerprint", "setup", "rtcp-mux",
                 "group", "mid", "ssrc", "extmap", "rtcp-fb", "rtcp"):  # fmt: skip
        assert gone not in names
    assert audio.formats == ["111", "0", "126", "8"]  # PCMU was there; PCMA added
    assert audio.rtpmaps()[8].name == "PCMA"


def test_to_webrtc_adds_the_nodes_ice_dtls_and_bundle_and_opus():
    body = to_webrtc(PLAIN_OFFER, LOCAL, WEBRTC_EXTRA)
    assert is_webrtc(body)
    sdp = parse_sdp(body)
    audio = sdp.media[0]
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert sdp.get("group") == "BUNDLE 0" and audio.get("mid") == "0"
    assert audio.get("setup") == "actpass" and audio.has("rtcp-mux")
    assert audio.get("fingerprint") == "sha-256 AA:BB"
    assert audio.get_all("candidate") == list(LOCAL.candidates)
    assert audio.formats == ["0", "8", "101", "111"]
    assert audio.rtpmaps()[111].name == "opus"
    back = remote_transport(body)  # what a browser reads of it
    assert (back.ufrag, back.pwd) == ("node", "p" * 22)


def test_an_answer_sharing_a_codec_with_the_offer_passes_through():
    answer = PLAIN_OFFER.replace(b"0 8 101", b"0 101")
    body, choice = answer_codecs(answer, codecs_of(BROWSER_OFFER))
    assert choice is not None and choice.passthrough
    assert parse_sdp(body).media[0].formats == ["0", "101"]


def test_an_answer_with_no_common_codec_is_transcoded_to_the_receivers_codec():
    opus_only = BROWSER_OFFER.replace(b"111 0 126", b"111 126")
    body, choice = answer_codecs(PLAIN_OFFER, codecs_of(opus_only))
    assert choice is not None and not choice.passthrough
    assert (choice.a.name, choice.b.name) == ("opus", "PCMU")
    audio = parse_sdp(body).media[0]
    # The receiver's telephone-event stays: DTMF is mapped across the transcoder.
    assert audio.formats == ["111", "126"] and audio.rtpmaps()[111].rtpmap == "opus/48000/2"
    assert audio.rtpmaps()[126].rtpmap == "telephone-event/8000"
    assert choice.a_event == Codec("telephone-event", 8000, 1, 126)
    assert choice.b_event == Codec("telephone-event", 8000, 1, 101)


def _rtp(pt: int, seq: int, ts: int, payload: bytes, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def _tone_ulaw(freq: float, start: int, count: int = 160) -> bytes:
    t = (start + np.arange(count)) / 8000
    return g711.ulaw_encode((8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


def test_packet_transcoder_restamps_for_the_target_codec():
    there = PacketTranscoder(PCMU, OPUS)
    back = PacketTranscoder(OPUS, PCMU)
    pcm = []
    for i in range(50):
        (opus,) = there.convert(_rtp(0, i, 160 * i, _tone_ulaw(400, 160 * i)))
        _, pt, _, ts, ssrc = struct.unpack_from("!BBHII", opus)
        assert (pt & 0x7F, ts, ssrc) == (111, 960 * i, 0x1234)
        (ulaw,) = back.convert(opus)
        assert struct.unpack_from("!BBHII", ulaw)[1] & 0x7F == 0
        pcm.append(g711.ulaw_decode(ulaw[12:]))
    assert peaks(b"".join(pcm[10:]), 8000, 1) == pytest.approx([400], abs=15)
    # telephone-event (another payload type) and garbage are dropped, not raised
    assert there.convert(_rtp(101, 1, 0, b"\x01\x00\x00\xa0")) == []
    assert there.convert(b"\x00") == []
    assert there.dropped == 1


def test_a_buffered_transcoder_plays_frames_in_order_and_conceals_the_lost(monkeypatch):
    """On a call the transcoders are buffered: packets wait in a jitter
    buffer and leave on the media clock's ticks, in order, one a frame; a
    lost frame is concealed, and the output's timeline has no hole."""
    from switch.media import packet_transcoder

    clock = [100.0]
    monkeypatch.setattr(packet_transcoder, "_monotonic", lambda: clock[0])
    there = PacketTranscoder(PCMU, OPUS, buffered=True)
    order = [0, 2, 1, 3, 4, 6, 7, 8, 9, *range(10, 40)]  # 1 late, 5 lost
    sent: list[bytes] = []
    for n, i in enumerate(order):
        clock[0] = 100.0 + 0.02 * n
        assert there.convert(_rtp(0, i, 160 * i, _tone_ulaw(400, 160 * i))) == []  # buffered
        sent += there.tick(clock[0])
    for _ in range(10):  # the rest of what was buffered plays out
        if there.buffer.played + there.buffer.lost == 40:
            break
        clock[0] += 0.02
        sent += there.tick(clock[0])
    assert there.buffer.lost == 1 and there.buffer.played == 39
    headers = [struct.unpack_from("!BBHII", p) for p in sent]
    assert len(sent) == 40  # each of the 40 frames, the lost one concealed
    assert {h[1] & 0x7F for h in headers} == {111} and {h[4] for h in headers} == {0x1234}
    assert [h[3] - headers[0][3] for h in headers] == [960 * k for k in range(40)]
    assert [(h[2] - headers[0][2]) & 0xFFFF for h in headers] == list(range(40))
    # A stream that stops is concealed for 100 ms, then the output stops too.
    for _ in range(20):
        clock[0] += 0.02
        sent += there.tick(clock[0])
    assert len(sent) == 40 + packet_transcoder.MAX_CONCEALED
    sent = sent[:40]
    # Through the other way, the tone is still a clean 400 Hz.
    back = PacketTranscoder(OPUS, PCMU)
    pcm = b"".join(g711.ulaw_decode(u[12:]) for p in sent for u in back.convert(p))
    assert peaks(pcm[1600:], 8000, 1) == pytest.approx([400], abs=15)


# -- a live leg: the node's relay and an aiortc browser on loopback ---------------------------

SECONDS = 2.5


class Trunk:
    """The plain-RTP far end: sends a PCMU tone to the node, keeps what it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.received: list[bytes] = []

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    async def run(self, to: tuple[str, int], freq: float, seconds: float) -> None:
        start = time.monotonic()
        for i in range(int(seconds * 50)):
            self.sock.sendto(_rtp(0, i, 160 * i, _tone_ulaw(freq, 160 * i)), to)
            self._drain()
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recv(2048))
            except BlockingIOError:
                return

    def heard(self) -> bytes:
        """The linear audio of the PCMU packets received."""
        return b"".join(g711.ulaw_decode(p[12:]) for p in self.received if p[1] & 0x7F == 0)


async def _call(codecs: tuple[str, ...], node_offers: bool, transcode: bool) -> None:
    pool = PortPool("127.0.0.1", 41000, 41100)
    leg = await WebRtcLeg.open(pool)
    plain = await pool.leg()
    session = MediaSession(leg, plain)
    browser = Browser(1000.0, codecs)
    trunk = Trunk()
    plain.expect(trunk.address)
    try:
        if node_offers:
            offer = to_webrtc(PLAIN_OFFER, leg.local("127.0.0.1", "actpass"), WEBRTC_EXTRA)
            offer = anchor(offer, "127.0.0.1", leg.port)[0]
            answer = (await browser.answer(offer.decode())).encode()
            leg.start(remote_transport(answer), offerer=True)
            choice = CodecChoice(codecs_of(answer)[0], PCMU)
        else:
            offer = (await browser.offer()).encode()
            body, choice = answer_codecs(PLAIN_OFFER, codecs_of(offer))
            answer = to_webrtc(body, leg.local("127.0.0.1", "active"))
            await browser.accept(anchor(answer, "127.0.0.1", leg.port)[0].decode())
            leg.start(remote_transport(offer), offerer=False)
        assert choice is not None and choice.passthrough is not transcode
        leg.transcode(choice)
        assert await asyncio.wait_for(leg.connected, 10), leg.failure
        await trunk.run(("127.0.0.1", plain.port), 400.0, SECONDS)
        # Both tones arrived at the right frequency on the other side.
        heard_by_trunk = trunk.heard()
        assert len(heard_by_trunk) > 2 * 8000 * (SECONDS - 1.5)
        assert peaks(heard_by_trunk[8000:], 8000, 1) == pytest.approx([1000], abs=15)
        heard_by_browser = browser.heard(skip=0.5)
        assert len(heard_by_browser) > 48000 * (SECONDS - 1.5)
        assert peaks(heard_by_browser[::6].copy(), 8000, 1) == pytest.approx([400], abs=15)
        assert leg.quality().packets_received > 50 * (SECONDS - 1)
        assert leg.quality().packets_sent > 50 * (SECONDS - 1)
        assert leg.quality().packets_lost == 0
        # The leg's figures are of the browser's own stream, transcoded or not
        assert leg.rtp.reception.payload_type == choice.a.payload_type
    finally:
        await browser.close()
        session.close()
        trunk.sock.close()
        await asyncio.sleep(0.05)


async def test_a_browser_offering_pcmu_talks_to_a_plain_rtp_leg_both_ways():
    await asyncio.wait_for(_call(("PCMU",), node_offers=False, transcode=False), 30)


async def test_the_node_offering_webrtc_to_a_browser_talks_both_ways():
    await asyncio.wait_for(_call(("PCMU",), node_offers=True, transcode=False), 30)


async def test_a_browser_speaking_only_opus_is_transcoded_to_pcmu_both_ways():
    await asyncio.wait_for(_call(("opus",), node_offers=False, transcode=True), 30)


async def test_a_wrong_fingerprint_fails_the_leg_with_the_reason():
    pool = PortPool("127.0.0.1", 41100, 41200)
    leg = await WebRtcLeg.open(pool)
    browser = Browser(1000.0, ("PCMU",))
    try:
        offer = (await browser.offer()).encode()
        answer = to_webrtc(answer_codecs(PLAIN_OFFER, codecs_of(offer))[0],
                           leg.local("127.0.0.1", "active"))  # fmt: skip
        await browser.accept(anchor(answer, "127.0.0.1", leg.port)[0].decode())
        remote = remote_transport(offer)
        algorithm, digest = remote.fingerprints[0]
        wrong = digest[:-2] + ("00" if digest[-2:] != "00" else "11")
        leg.start(type(remote)(**{**_fields(remote), "fingerprints": ((algorithm, wrong),)}), False)
        assert await asyncio.wait_for(leg.connected, 15) is False
        assert "fingerprint" in leg.failure
    finally:
        await browser.close()
        leg.close()


def _fields(obj: object) -> dict:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


def test_the_nodes_fingerprint_is_sha256_of_its_certificate():
    algorithm, digest = fingerprint()
    assert algorithm == "sha-256" and len(digest.split(":")) == 32


async def test_an_answerer_checking_before_the_offerer_starts_still_connects():
    # A browser that answers starts its ICE checks at once; the node starts
    # when the answer arrives (a SIP round trip later). The node's role must
    # already be controlling then, or the two end up fighting over it.
    offerer_pool = PortPool("127.0.0.1", 41200, 41300)
    answerer_pool = PortPool("127.0.0.1", 41300, 41400)
    offerer, answerer = await WebRtcLeg.open(offerer_pool), await WebRtcLeg.open(answerer_pool)
    try:
        offer = to_webrtc(PLAIN_OFFER, offerer.local("127.0.0.1", "actpass"))
        offer = anchor(offer, "127.0.0.1", offerer.port)[0]
        answer = to_webrtc(PLAIN_OFFER, answerer.local("127.0.0.1", "active"))
        answer = anchor(answer, "127.0.0.1", answerer.port)[0]
        answerer.start(remote_transport(offer), offerer=False)
        await asyncio.sleep(1.5)
        offerer.start(remote_transport(answer), offerer=True)
        both = asyncio.gather(offerer.connected, answerer.connected)
        assert await asyncio.wait_for(both, 15) == [True, True], (offerer.failure, answerer.failure)
    finally:
        offerer.close()
        answerer.close()
        await asyncio.sleep(0.05)


async def test_the_same_codec_choice_again_keeps_the_transcoders():
    leg = await WebRtcLeg.open(PortPool("127.0.0.1", 41400, 41500))
    try:
        leg.transcode(CodecChoice(OPUS, PCMU))
        inbound, outbound = leg.rtp.inbound, leg.rtp.outbound
        assert inbound is not None and outbound is not None
        leg.transcode(CodecChoice(OPUS, PCMU))  # the 200's answer after the 183's
        assert (leg.rtp.inbound, leg.rtp.outbound) == (inbound, outbound)
        leg.transcode(CodecChoice(PCMU, PCMU))  # a re-INVITE settles on a shared codec
        assert leg.rtp.inbound is None and leg.rtp.outbound is None
    finally:
        leg.close()


async def test_a_transcoded_stream_goes_on_from_the_sequence_number_the_browser_saw_last():
    """A channel's prompts went to the browser first (the node's own stream);
    the transcoder that takes over must not number its packets behind them,
    or SRTP's replay check drops them."""
    leg = await WebRtcLeg.open(PortPool("127.0.0.1", 41400, 41500))
    try:
        leg.rtp.sending.last = struct.pack("!BBHII", 0x80, 111, 0xFFFF, 960, 7) + bytes(20)
        leg.transcode(CodecChoice(OPUS, PCMU))
        assert leg.rtp.outbound is not None and leg.rtp.outbound.seq == 0  # 0xFFFF + 1
        fresh = await WebRtcLeg.open(PortPool("127.0.0.1", 41400, 41500))
        try:
            fresh.transcode(CodecChoice(OPUS, PCMU))  # nothing sent before: any start
            assert fresh.rtp.outbound is not None
        finally:
            fresh.close()
    finally:
        leg.close()
