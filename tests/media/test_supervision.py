"""The media of a supervision (`switch.media.supervision`), driven by hand.

Real relay ports (`RtpPort`: their taps, their stream rewriting), whose
transport is a list: what the relay would send each endpoint is kept. The
media clock is a stand-in whose ticks the test calls with times of its own.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from switch.media import g711
from switch.media.dtmf_bridge import DtmfBridge, DtmfLink, LegDtmf
from switch.media.relay import LegMedia, MediaSession, RtcpPort, RtpPort
from switch.media.supervision import (
    FRAME,
    PREBUFFER,
    SupervisionMedia,
    SupervisionMediaError,
    _Inlet,
    hearers,
)
from switch.sip.sdp import Codec
from tests.integration.test_apps import HEADER
from tests.media.audio import peaks

PCMU = Codec("PCMU", 8000, 1, 0)
EVENT = Codec("telephone-event", 8000, 1, 101, "0-16")
TYPES = {0: PCMU, 101: EVENT}


class Sent:
    """A transport that keeps what is sent."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.packets.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.ticks: list = []

    def add(self, tick) -> None:
        self.ticks.append(tick)

    def remove(self, tick) -> None:
        if tick in self.ticks:
            self.ticks.remove(tick)


def _port(n: int) -> RtpPort:
    port = RtpPort()
    port.connection_made(Sent())  # type: ignore[arg-type]
    port.expect(("127.0.0.1", 40000 + n))
    return port


def _setup(mode: str, agent: str = "b"):
    a, b, s = _port(0), _port(2), _port(4)
    a.peer, b.peer = b, a
    clock = Clock()
    media = SupervisionMedia(a, b, s, lambda side: TYPES, PCMU, mode, agent, clock=clock)
    return a, b, s, media, clock


def _tone(hz: float, frames: int) -> list[bytes]:
    t = np.arange(160 * frames) / 8000
    pcm = (6000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    return [g711.ulaw_encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


def _feed(port: RtpPort, hz: float, frames: int, ssrc: int, start: int = 0) -> list[bytes]:
    packets = [
        HEADER.pack(0x80, 0, start + n, 160 * (start + n), ssrc) + payload
        for n, payload in enumerate(_tone(hz, frames))
    ]
    for packet in packets:
        port.datagram_received(packet, port.remote)  # type: ignore[arg-type]
    return packets


def _sent(port: RtpPort) -> list[bytes]:
    return port.transport.packets  # type: ignore[union-attr]


def _audio(packets: list[bytes]) -> bytes:
    return b"".join(g711.ulaw_decode(p[12:]) for p in packets if p[1] & 0x7F == 0)


def _run(media: SupervisionMedia, ticks: int) -> None:
    now = time.monotonic()
    for i in range(ticks):
        media.tick(now + 0.2 + i * 0.02, 1, 0)


def test_who_hears_the_supervisor_in_each_mode():
    assert hearers("listen", "b") == frozenset()
    assert hearers("whisper", "b") == {"b"}
    assert hearers("whisper", "a") == {"a"}
    assert hearers("barge", "b") == {"a", "b"}
    with pytest.raises(SupervisionMediaError, match="use one of listen, whisper, barge"):
        hearers("shout", "b")
    with pytest.raises(SupervisionMediaError, match="use 'a' or 'b'"):
        hearers("listen", "c")


def test_listening_relays_the_parties_packets_as_they_came_and_the_supervisor_hears_both():
    a, b, s, media, clock = _setup("listen")
    assert clock.ticks == [media.tick]
    from_a = _feed(a, 440, 10, 0x1111)
    from_b = _feed(b, 1300, 10, 0x2222)
    assert _sent(b) == from_a and _sent(a) == from_b  # untouched, nothing added
    _run(media, 10)
    assert _sent(b) == from_a and _sent(a) == from_b
    heard = _audio(_sent(s))
    assert len(heard) >= 4 * FRAME
    assert peaks(heard[-4 * FRAME :], 8000, 2) == pytest.approx([440, 1300], abs=20)
    # Nobody hears the supervisor: what it sends is not even decoded.
    _feed(s, 2200, 5, 0x3333)
    assert media.inlets["s"].direction.packets == 0


def test_a_codec_the_mixer_cannot_encode_is_relayed_as_it_came():
    a, b, s, media, _ = _setup("whisper")
    g729 = [HEADER.pack(0x80, 18, n, 160 * n, 0x1111) + bytes(20) for n in range(5)]
    for packet in g729[:2]:
        a.datagram_received(packet, a.remote)  # type: ignore[arg-type]
    _feed(s, 2200, 5, 0x3333)
    _run(media, 5)
    for packet in g729[2:]:
        a.datagram_received(packet, a.remote)  # type: ignore[arg-type]
    assert media.outlets["b"].refused == {18} and _sent(b) == g729


def test_a_whisper_takes_the_callers_audio_toward_the_agent_and_keeps_its_keys():
    a, b, s, media, _ = _setup("whisper")
    _feed(s, 2200, 10, 0x3333)
    first = _feed(a, 440, 2, 0x1111)
    assert _sent(b) == first  # relayed until the mix toward b has their codec
    _run(media, 1)
    from_a = _feed(a, 440, 8, 0x1111, start=2)
    _run(media, 9)
    mixed = _sent(b)[2:]
    assert mixed and all(p not in from_a for p in mixed)  # taken: the mix in their place
    assert peaks(_audio(mixed)[-4 * FRAME :], 8000, 2) == pytest.approx([440, 2200], abs=20)
    # A key from the caller: relayed in the agent's stream, not mixed.
    before = len(_sent(b))
    ssrc = HEADER.unpack_from(mixed[-1])[4]
    event = HEADER.pack(0x80, 0x80 | 101, 11, 1760, 0x1111) + bytes([5, 10, 0, 160])
    again = HEADER.pack(0x80, 101, 12, 1760, 0x1111) + bytes([5, 10, 1, 64])
    a.datagram_received(event, a.remote)  # type: ignore[arg-type]
    a.datagram_received(again, a.remote)  # type: ignore[arg-type]
    keys = _sent(b)[before:]
    assert [p[12:] for p in keys] == [event[12:], again[12:]]
    assert {HEADER.unpack_from(p)[4] for p in keys} == {ssrc}  # in the agent's one stream
    assert HEADER.unpack_from(keys[0])[3] == HEADER.unpack_from(keys[1])[3]  # one key, one ts
    assert keys[0][1] == 0x80 | 101 and keys[1][1] == 101
    # The caller's side is untouched: the agent's packets reach it as they came.
    from_b = _feed(b, 1300, 3, 0x2222)
    assert _sent(a) == from_b


def test_barge_takes_both_ways_and_close_gives_the_relay_back():
    a, b, s, media, clock = _setup("barge")
    _feed(a, 440, 1, 0x1111)
    _feed(b, 1300, 1, 0x2222)
    _run(media, 1)  # the mix toward each is in the other's codec from now on
    _feed(a, 440, 5, 0x1111, start=1)
    _feed(b, 1300, 5, 0x2222, start=1)
    assert len(_sent(a)) == len(_sent(b)) == 1 + 1  # what came before, and one mixed frame
    media.set_mode("listen")
    before = len(_sent(b))
    from_a = _feed(a, 440, 3, 0x1111, start=6)
    # Relayed again (restamped into b's one stream: the source changed back).
    assert [p[12:] for p in _sent(b)[before:]] == [p[12:] for p in from_a]
    media.close()
    assert clock.ticks == [] and a.tap is None and b.tap is None and s.tap is None
    with pytest.raises(SupervisionMediaError, match="closed"):
        media.set_mode("barge")


def test_the_supervision_ends_itself_when_the_legs_are_no_longer_joined():
    a, _, _, media, clock = _setup("listen")
    lost: list[str] = []
    media.on_lost = lost.append
    a.peer = _port(6)  # a transfer joined leg a to another leg
    _run(media, 1)
    assert lost == ["the call's legs changed"] and media.closed and clock.ticks == []


def test_a_party_is_mixed_once_its_queue_has_filled_and_is_silent_when_it_runs_dry():
    assert PREBUFFER == 2
    inlet = _Inlet(_port(0), lambda: TYPES)
    one, two = b"\x01" * FRAME, b"\x02" * FRAME
    inlet.queue += one
    assert inlet.take() is None  # filling
    inlet.queue += two
    assert inlet.take() == one and inlet.take() == two
    assert inlet.take() is None and not inlet.primed  # ran dry: fills again
    inlet.queue += one
    assert inlet.take() is None


async def test_a_dtmf_bridge_sends_nothing_to_a_leg_that_hears_a_supervisors_mix():
    # Leg a in RFC 4733, leg b in-band: the bridge takes a's packets and sends
    # them on to b itself; muted, b's stream is someone else's (the mix).
    a, b = _port(0), _port(2)
    session = MediaSession(LegMedia(a, RtcpPort()), LegMedia(b, RtcpPort()))
    types = ({0: "pcmu"}, {0: 8000})
    bridge = DtmfBridge(
        LegDtmf("rfc4733", {101: 8000}, (101, 8000), *types), LegDtmf("inband", {}, None, *types)
    )
    link = DtmfLink(bridge, session, lambda *_: None)
    try:
        sent = _feed(a, 440, 3, 0x1111)
        assert len(_sent(b)) == len(sent)  # forwarded by the bridge
        link.muted = {"b"}
        _feed(a, 440, 3, 0x1111, start=3)
        assert len(_sent(b)) == len(sent)  # dropped while muted
        link.muted = set()
        _feed(a, 440, 3, 0x1111, start=6)
        assert len(_sent(b)) == 2 * len(sent)
    finally:
        link.close()
