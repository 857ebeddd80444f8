"""A phone's or a carrier's RTP end for tests: streams sent in real time, and what came back.

A stream is a list of (seconds from the start, packet). The builders make
the streams the DTMF and audio tests need: a PCMU tone or noise, keys as
RFC 4733 events in the audio's sequence space (in place of the audio while
the key is down, as phones do), keys as tones in the audio. The readers
tell what a list of received packets says, by content: the keys in its
events, the keys in its audio, the frequency of its audio.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np

from switch.media import g711
from switch.media.dtmf import Digit
from switch.media.dtmf.events import END_COPIES, EventReceiver, event_packets
from switch.media.dtmf.inband import ZERO_DBM0, ToneDetector, generate
from tests.support.sipclient import UdpPhone

HEADER = struct.Struct("!BBHII")
FRAME = 0.02  # seconds a packet
PAIR_AT_MINUS_20 = -23.0  # dBm0 per frequency: a key's pair at -20 dBm0 in all
PAIR_POWER = (ZERO_DBM0 * 10 ** (PAIR_AT_MINUS_20 / 20)) ** 2  # its mean square
Stream = list[tuple[float, bytes]]


def rtp(pt: int, seq: int, ts: int, payload: bytes, ssrc: int, marker: bool = False) -> bytes:
    flags = (0x80 if marker else 0) | pt
    return HEADER.pack(0x80, flags, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def tone(freq: float, seconds: float, amplitude: float = 8000.0) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def noise(seconds: float, seed: int = 1, level: float = 300.0) -> bytes:
    x = np.random.default_rng(seed).normal(0.0, level, round(seconds * 8000))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def pcmu(pcm: bytes, ssrc: int, pt: int = 0) -> Stream:
    """`pcm` (8 kHz linear) as PCMU packets, one every 20 ms."""
    return [
        (FRAME * i, rtp(pt, i, 160 * i, g711.ulaw_encode(pcm[320 * i : 320 * (i + 1)]), ssrc))
        for i in range(len(pcm) // 320)
    ]


def with_keys_in_band(pcm: bytes, keys: str, start: float = 0.5, snr_db: float = 15.0) -> bytes:
    """`pcm` with `keys` added at -20 dBm0 (100 ms on, 120 ms off from `start`)
    and white noise `snr_db` below a key."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64).copy()
    at = start
    for key in keys:
        sound = np.frombuffer(generate(key, 0.1, PAIR_AT_MINUS_20), "<i2")
        i = round(at * 8000)
        x[i : i + len(sound)] += sound
        at += 0.22
    sigma = np.sqrt(PAIR_POWER / 10 ** (snr_db / 10))
    x += np.random.default_rng(len(keys)).normal(0.0, sigma, len(x))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def with_events(
    pcm: bytes, keys: str, ssrc: int, start: float = 0.5, event_pt: int = 101,
    extra_ends: int = 1, repeat_start: bool = True,
) -> Stream:  # fmt: skip
    """PCMU of `pcm`, with `keys` (100 ms each, 220 ms apart from `start`) as
    RFC 4733 events in place of the audio while each is down; each end sent
    `END_COPIES + extra_ends` times, and (`repeat_start`) the start packet
    twice, as a network that duplicates would."""
    items: list[tuple[float, int, bytes, int, bool]] = []  # time, pt, payload, ts, marker
    down: list[tuple[float, float]] = []
    for k, key in enumerate(keys):
        t0 = start + 0.22 * k
        ts0 = round(t0 / FRAME) * 160  # on the audio's frame grid
        packets = event_packets(key, ts0, 0.1, end_copies=END_COPIES + extra_ends)
        if repeat_start:
            packets.insert(1, packets[0])
        items += [(t0 + p.at, event_pt, p.payload, p.timestamp, p.marker) for p in packets]
        down.append((t0 - 1e-6, t0 + 0.1 + 1e-6))
    for i in range(len(pcm) // 320):
        t = FRAME * i
        if not any(a <= t <= b for a, b in down):
            frame = g711.ulaw_encode(pcm[320 * i : 320 * (i + 1)])
            items.append((t, 0, frame, 160 * i, False))
    items.sort(key=lambda item: item[0])
    # A repeated packet is the same packet (same sequence number), as a network sends it.
    out: Stream = []
    seq = 0
    previous: tuple | None = None
    for t, pt, body, ts, marker in items:
        if previous == (pt, body, ts, marker) and marker:
            out.append((t, out[-1][1]))
            continue
        out.append((t, rtp(pt, seq, ts, body, ssrc, marker)))
        seq += 1
        previous = (pt, body, ts, marker)
    return out


def fields(packet: bytes) -> tuple[int, int, int, int]:
    """(payload type, sequence number, timestamp, SSRC)."""
    _, flags, seq, ts, ssrc = HEADER.unpack_from(packet)
    return flags & 0x7F, seq, ts, ssrc


def keys_in_events(packets: list[bytes], pt: int, rate: int = 8000) -> str:
    """The keys the telephone-events (payload type `pt`) of `packets` say, each once."""
    receiver = EventReceiver(rate)
    heard = []
    for i, packet in enumerate(packets):
        kind, seq, ts, _ = fields(packet)
        if kind == pt:
            heard += receiver.receive(packet[12:], ts, seq, i * 0.001)
    heard += receiver.handle_timer(1e9)
    return "".join(d.digit for d in heard if isinstance(d, Digit))


def keys_in_audio(packets: list[bytes], pt: int = 0) -> str:
    """The keys heard in the PCMU (`pt`) audio of `packets`, played in sequence order."""
    pcm = audio_of(packets, pt)
    detector = ToneDetector()
    heard = detector.feed(pcm) + detector.flush()
    return "".join(d.digit for d in heard if isinstance(d, Digit))


def audio_of(packets: list[bytes], pt: int = 0) -> bytes:
    """The linear audio of the PCMU packets, in sequence order (from the first)."""
    chosen = [p for p in packets if fields(p)[0] == pt]
    if not chosen:
        return b""
    first = fields(chosen[0])[1]
    chosen.sort(key=lambda p: (fields(p)[1] - first) & 0xFFFF)
    return b"".join(g711.ulaw_decode(p[12:]) for p in chosen)


class RtpEnd:
    """A UDP socket on loopback that plays streams and keeps every packet it gets.

    Its RTCP port (the next one, where the node sends reports) is held too,
    so that no other test socket (a SIP phone) gets the node's RTCP."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.phone = UdpPhone(("127.0.0.1", 9), host=host)
        self.received: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._rtcp: socket.socket | None = None

    async def __aenter__(self) -> RtpEnd:
        for _ in range(50):
            await self.phone.__aenter__()
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind((self.host, self.port + 1))
            except OSError:
                rtcp.close()
                await self.phone.__aexit__()
                self.phone = UdpPhone(("127.0.0.1", 9), host=self.host)
                continue
            self._rtcp = rtcp
            break
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._rtcp is not None:
            self._rtcp.close()
        await self.phone.__aexit__()

    @property
    def port(self) -> int:
        return self.phone.address[1]

    async def _read(self) -> None:
        while True:
            self.received.append(await self.phone._proto.messages.get())

    async def play(self, to: tuple[str, int], stream: Stream) -> None:
        """Send each packet at its time (late ones at once, in order)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, packet in stream:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.phone.send(packet, to)
