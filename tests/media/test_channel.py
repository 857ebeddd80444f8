"""The channel on a real relay leg: a UDP socket on loopback plays the caller.

Most tests drive the channel's clock by hand (`ManualClock`: one tick is one
20 ms frame) and read what reached the caller's socket: the packets, their
numbering, and by decoding them what they sound like. The recording and
echo tests run on the node's real media clock, in real time.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import time
import wave

import numpy as np
import pytest

from switch.media import g711
from switch.media.channel import Channel, Closed, MediaFormat, Played, Recorded
from switch.media.clock import media_clock
from switch.media.dtmf.digits import DIGITS, Digit, DigitBegin
from switch.media.dtmf.events import EventReceiver, event_packets
from switch.media.dtmf.inband import ToneDetector
from switch.media.opus import OpusDecoder
from switch.media.player import Player, Silence, ToneItem
from switch.media.relay import PortPool
from switch.media.tones import Step, Tone
from switch.sip.sdp import Codec
from tests.media.audio import peaks, rms

HEADER = struct.Struct("!BBHII")
PCMU = MediaFormat("pcmu", 0, 8000, 101, 8000)


class ManualClock:
    """The media clock, advanced by the test: `run(n)` is n frames."""

    def __init__(self) -> None:
        self.ticks: list = []

    def add(self, tick) -> None:
        self.ticks.append(tick)

    def remove(self, tick) -> None:
        if tick in self.ticks:
            self.ticks.remove(tick)

    def run(self, frames: int = 1, send: int = 1, skip: int = 0) -> None:
        for _ in range(frames):
            for tick in list(self.ticks):
                tick(time.monotonic(), send, skip)


class Phone(asyncio.DatagramProtocol):
    """The caller's RTP socket: what it gets, and a way to send."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        self.packets.append((time.monotonic(), data))
        self.arrived.set()

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    async def settle(self, count: int, timeout: float = 2.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count and time.monotonic() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.05)
            except TimeoutError:
                pass
        await asyncio.sleep(0.01)
        return [data for _, data in self.packets]


def _free_range() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1] & ~1


@pytest.fixture
async def line():
    """(leg, phone, pool): a relay leg whose endpoint is the phone's socket."""
    loop = asyncio.get_running_loop()
    base = _free_range()
    pool = PortPool("127.0.0.1", base - 400 if base > 20000 else base + 400, base + 1000)
    leg = await pool.leg()
    _, phone = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    leg.expect(phone.address)
    yield leg, phone
    leg.close()
    phone.transport.close()


def _unpack(packet: bytes) -> tuple[int, int, int, int, int]:
    _first, flags, seq, ts, ssrc = HEADER.unpack_from(packet)
    return flags >> 7, flags & 0x7F, seq, ts, ssrc


def _tone(freq: float, ms: int, level: float = -10.0) -> ToneItem:
    return ToneItem(Tone((Step((freq,), ms),), level=level), ms)


def _drain(channel: Channel) -> list:
    out = []
    while not channel.events.empty():
        out.append(channel.events.get_nowait())
    return out


def _send(phone: Phone, leg, packet: bytes) -> None:
    phone.transport.sendto(packet, ("127.0.0.1", leg.port))


def _event_rtp(digit: str, ts: int, seq: int, ssrc: int = 0x5150, pt: int = 101) -> list[bytes]:
    out = []
    for i, p in enumerate(event_packets(digit, ts, 0.1)):
        flags = (0x80 if p.marker else 0) | pt
        out.append(HEADER.pack(0x80, flags, (seq + i) & 0xFFFF, p.timestamp, ssrc) + p.payload)
    return out


async def test_a_prompt_goes_out_as_one_stream_of_the_channels_own(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    playback = channel.play([_tone(1000, 200)])
    clock.run(15)
    packets = await phone.settle(15)
    assert len(packets) == 15
    headers = [_unpack(p) for p in packets]
    assert {h[1] for h in headers} == {0} and len({h[4] for h in headers}) == 1
    assert [h[0] for h in headers] == [1] + [0] * 14  # marker on the first packet only
    assert all((b[2] - a[2]) & 0xFFFF == 1 for a, b in itertools.pairwise(headers))
    assert all((b[3] - a[3]) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(headers))
    audio = b"".join(g711.ulaw_decode(p[12:]) for p in packets[:10])
    assert abs(peaks(audio, 8000, 1)[0] - 1000) <= 10
    # After the prompt: silence, in the same stream (the caller's side keeps hearing us).
    assert all(p[12:] == b"\xff" * 160 for p in packets[10:])
    assert await playback == "end"
    assert _drain(channel) == [Played("end")]
    channel.close()


async def test_nothing_is_sent_until_something_is_played_and_the_clock_runs_on(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    start = channel.stream.timestamp
    clock.run(5)
    assert await phone.settle(1, timeout=0.2) == []
    channel.play([_tone(500, 40)])
    clock.run(1)
    (packet,) = await phone.settle(1)
    assert _unpack(packet)[3] == (start + 5 * 160) & 0xFFFFFFFF
    channel.close()


async def test_a_late_clock_skips_frames_the_timestamps_keep_time(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    channel.play([_tone(500, 1000)])
    clock.run(1)
    clock.run(1, send=2, skip=5)  # a stall of 7 frames: 2 sent, 5 skipped
    clock.run(1)
    packets = await phone.settle(4)
    ts = [_unpack(p)[3] for p in packets]
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ts)] == [160, 160, 6 * 160]
    assert _unpack(packets[3])[0] == 1  # marker: the receiver resynchronises there
    channel.close()


async def test_every_key_by_rfc4733_once_through_loss_and_duplicates(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    ts, seq = 8000, 100
    for n, digit in enumerate(DIGITS):
        packets = _event_rtp(digit, ts, seq)
        seq += len(packets)
        ts += 8000
        if n % 3 == 0:
            packets = packets[:-3]  # every end packet lost: the next key ends it
        elif n % 3 == 1:
            packets = [p for p in packets for _ in (0, 1)]  # each packet twice
        else:
            packets = packets[1:]  # the start packet lost
        for packet in packets:
            _send(phone, leg, packet)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.5)  # the last key's ends were lost: it times out
    clock.run(1)
    events = _drain(channel)
    begins = "".join(e.digit for e in events if isinstance(e, DigitBegin))
    digits = "".join(e.digit for e in events if isinstance(e, Digit))
    assert begins == digits == DIGITS
    channel.close()


async def test_a_key_stops_a_barge_in_prompt_at_the_next_frame(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    playback = channel.play([_tone(1000, 5000)], barge_in=True)
    clock.run(5)
    _send(phone, leg, _event_rtp("5", 4000, 1)[0])  # the key goes down
    await asyncio.sleep(0.05)
    clock.run(3)
    packets = await phone.settle(8)
    assert [rms(g711.ulaw_decode(p[12:])) > 1000 for p in packets] == [True] * 5 + [False] * 3
    assert await playback == "digit"
    assert _drain(channel) == [DigitBegin("5"), Played("digit", "5")]
    channel.close()


async def test_a_prompt_without_barge_in_plays_through_keys(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    playback = channel.play(Player([_tone(1000, 200)], 8000, interruptible=False))
    clock.run(2)
    for packet in _event_rtp("1", 4000, 1):
        _send(phone, leg, packet)
    await asyncio.sleep(0.05)
    clock.run(10)
    assert await playback == "end"
    assert _drain(channel) == [DigitBegin("1"), Digit("1", 0.1), Played("end")]
    channel.close()


async def test_keys_sent_to_the_caller_are_rfc4733_in_the_same_stream(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    channel.play([_tone(600, 2000)])
    clock.run(2)
    channel.send_digits("1#")
    clock.run(30)
    packets = await phone.settle(40)
    headers = [_unpack(p) for p in packets]
    assert len({h[4] for h in headers}) == 1  # one SSRC for audio and events
    assert all((b[2] - a[2]) & 0xFFFF == 1 for a, b in itertools.pairwise(headers))
    receiver = EventReceiver()
    keys = []
    for packet, (_, pt, seq, ts, _) in zip(packets, headers, strict=True):
        if pt == 101:
            got = receiver.receive(packet[12:], ts, seq, 0.0)
            keys += [e.digit for e in got if type(e) is Digit]
    assert "".join(keys) == "1#"
    # The first key went down where the audio was: its timestamp follows the audio's.
    first_event = next(i for i, h in enumerate(headers) if h[1] == 101)
    assert headers[first_event][3] == (headers[first_event - 1][3] + 160) & 0xFFFFFFFF
    assert headers[first_event][0] == 1
    # Audio resumes after the keys, with the marker, its clock run on meanwhile:
    # over the 32 frames, the audio's timestamps moved 31 frames on.
    last_event = max(i for i, h in enumerate(headers) if h[1] == 101)
    after = headers[last_event + 1]
    assert after[1] == 0 and after[0] == 1
    audio = [h for h in headers if h[1] == 0]
    assert (audio[-1][3] - audio[0][3]) & 0xFFFFFFFF == 31 * 160
    channel.close()


async def test_keys_go_in_tones_when_the_call_has_no_telephone_event(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, MediaFormat("pcma", 8, 8000), clock=clock)
    channel.send_digits("59", duration=0.1)
    clock.run(20)
    packets = await phone.settle(16)
    assert {_unpack(p)[1] for p in packets} == {8}
    detector = ToneDetector()
    audio = b"".join(g711.alaw_decode(p[12:]) for p in packets) + bytes(1600)
    heard = [e.digit for e in detector.feed(audio) + detector.flush() if type(e) is Digit]
    assert heard == ["5", "9"]
    channel.close()


async def test_info_keys_count_once_each_and_a_fixed_mode_ignores_them(line):
    leg, _ = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    channel.info_digit(Digit("4", 0.16))
    assert _drain(channel) == [DigitBegin("4"), Digit("4", 0.16)]
    channel.close()
    strict = Channel(leg, PCMU, "rfc4733", clock=clock)
    strict.info_digit(Digit("4", 0.16))
    assert _drain(strict) == [] and strict.listener.ignored == 2
    strict.close()


async def test_an_opus_channel_plays_wideband_and_shares_what_it_encodes(line):
    leg, phone = line
    clock = ManualClock()
    opus = MediaFormat.of(Codec("opus", 48000, 2, 111), Codec("telephone-event", 48000, 1, 110))
    assert (opus.event_payload_type, opus.event_rate) == (110, 48000)
    channel = Channel(leg, opus, clock=clock)
    assert channel.rate == 16000
    prompt = [_tone(2500, 400, -12)]  # above what 8 kHz G.711 could carry
    channel.play(prompt)
    clock.run(20)
    packets = await phone.settle(20)
    headers = [_unpack(p) for p in packets]
    assert {h[1] for h in headers} == {111}
    assert all((b[3] - a[3]) & 0xFFFFFFFF == 960 for a, b in itertools.pairwise(headers))
    decoder = OpusDecoder(48000)
    pcm = b"".join(decoder.decode(p[12:]) for p in packets)
    assert abs(peaks(pcm[48000 * 2 // 10 :], 48000, 1)[0] - 2500) <= 20
    # A second caller hearing the same prompt gets the same payloads, not re-encoded.
    cache = channel.encoder.cache
    hits = cache.hits
    other = Channel(leg, opus, clock=ManualClock())
    again = Player(prompt, 16000)
    payloads = [other.encoder.encode(f) for f in again]
    assert payloads == [p[12:] for p in packets[: len(payloads)]]
    assert cache.hits - hits == len(payloads) and other.encoder._encode is None
    channel.close()
    other.close()


async def test_close_detaches_the_channel_and_closed_is_the_last_event(line):
    leg, _phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    playback = channel.play([_tone(800, 1000)])
    clock.run(2)
    channel.close("hangup")
    assert clock.ticks == [] and leg.rtp.tap is None
    assert await playback == "closed"
    assert _drain(channel) == [Played("closed"), Closed("hangup")]
    assert await channel.play([_tone(800, 100)]) == "closed"
    channel.close()  # twice: nothing more
    assert _drain(channel) == []


async def test_the_echo_sends_each_packet_back_as_it_came(line):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=ManualClock())
    channel.echo()
    sent = [HEADER.pack(0x80, 0, n, 160 * n, 0xABC) + bytes([n]) * 160 for n in range(5)]
    for packet in sent:
        _send(phone, leg, packet)
    assert await phone.settle(5) == sent
    channel.close()


async def test_a_browsers_echo_comes_back_under_the_channels_own_ssrc(line):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=ManualClock(), browser=True)
    channel.echo()
    packet = HEADER.pack(0x80, 0, 1, 160, 0xABC) + b"\x11" * 160
    _send(phone, leg, packet)
    (back,) = await phone.settle(1)
    assert back[:8] == packet[:8] and back[12:] == packet[12:]
    assert _unpack(back)[4] == channel.stream.ssrc != 0xABC
    channel.close()


class Talker:
    """The caller talking in real time: PCMU frames every 20 ms from a list."""

    def __init__(self, phone: Phone, leg, frames: list[bytes]) -> None:
        self.phone, self.leg, self.frames = phone, leg, frames
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, frame in enumerate(self.frames):
            packet = HEADER.pack(0x80, 0, n & 0xFFFF, 160 * n, 0x7777) + g711.ulaw_encode(frame)
            _send(self.phone, self.leg, packet)
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


def _speech(freq: float, seconds: float, level: float = 6000.0) -> list[bytes]:
    t = np.arange(round(seconds * 8000)) / 8000
    pcm = (level * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    return [pcm[i : i + 320] for i in range(0, len(pcm), 320)]


def _quiet(seconds: float) -> list[bytes]:
    return [bytes(320)] * round(seconds * 50)


def _wav(path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


async def test_a_recording_after_the_beep_ends_on_silence(line, tmp_path):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=media_clock())
    path = tmp_path / "message.wav"
    recording = channel.record(path, silence_seconds=0.5)
    await asyncio.sleep(0.4)  # the beep: 250 ms of 1 kHz
    beep = b"".join(g711.ulaw_decode(p[12:]) for p in await phone.settle(12))
    assert abs(peaks(beep[: 8000 * 2 // 5], 8000, 1)[0] - 1000) <= 10
    talker = Talker(phone, leg, _speech(440, 1.0) + _quiet(1.5))
    result = await asyncio.wait_for(recording, 5)
    talker.task.cancel()
    assert result.reason == "silence" and result.path == path and result.digit is None
    rate, audio = _wav(path)
    assert rate == 8000
    assert 1.1 <= len(audio) / rate <= 1.5 and result.seconds == len(audio) / rate
    assert abs(peaks(audio[: 8000 * 9 // 10].astype(float), 8000, 1)[0] - 440) <= 10
    assert [e for e in _drain(channel) if isinstance(e, Recorded)] == [Recorded(result)]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    channel.close()


async def test_a_key_ends_a_recording_and_the_key_is_not_kept(line, tmp_path):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=media_clock())
    recording = channel.record(tmp_path / "m.wav", beep=False, stop_on="#")
    talker = Talker(phone, leg, _speech(300, 3.0))
    await asyncio.sleep(0.6)
    for packet in _event_rtp("1", 90000, 5000, ssrc=0x7777):  # not a stop key
        _send(phone, leg, packet)
    await asyncio.sleep(0.2)
    for packet in _event_rtp("#", 99000, 6000, ssrc=0x7777):
        _send(phone, leg, packet)
    result = await asyncio.wait_for(recording, 3)
    talker.task.cancel()
    assert (result.reason, result.digit) == ("digit", "#")
    assert 0.5 <= result.seconds <= 1.0
    channel.close()


async def test_hanging_up_keeps_the_recording_and_silence_alone_keeps_none(line, tmp_path):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=media_clock())
    recording = channel.record(tmp_path / "m.wav", beep=False)
    talker = Talker(phone, leg, _speech(500, 2.0))
    await asyncio.sleep(0.7)
    channel.close("hangup")
    result = await recording
    talker.task.cancel()
    assert result.reason == "hangup" and result.path is not None and result.seconds > 0.4
    events = _drain(channel)
    assert isinstance(events[-1], Closed) and Recorded(result) in events
    quiet = Channel(leg, PCMU, clock=media_clock())
    silent = await asyncio.wait_for(quiet.record(tmp_path / "q.wav", beep=False,
                                                 silence_seconds=0.3), 3)  # fmt: skip
    assert (silent.path, silent.reason) == (None, "silence")
    assert not (tmp_path / "q.wav").exists()
    quiet.close()


async def test_an_echo_with_a_delay_plays_the_callers_audio_back_later(line):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=media_clock())
    channel.echo(delay_ms=200)
    talker = Talker(phone, leg, _speech(700, 1.0) + _quiet(0.6))
    await asyncio.wait_for(talker.task, 5)
    packets = await phone.settle(60)
    audio = b"".join(g711.ulaw_decode(p[12:]) for p in packets)
    levels = [rms(audio[i : i + 320]) for i in range(0, len(audio), 320)]
    loud = [i for i, level in enumerate(levels) if level > 1000]
    assert loud and 10 <= loud[0] <= 20  # 200 ms of delay, plus the jitter buffer's
    assert abs(peaks(audio[loud[0] * 320 : (loud[0] + 25) * 320], 8000, 1)[0] - 700) <= 10
    assert {_unpack(p)[4] for p in packets} == {channel.stream.ssrc}
    channel.close()


def test_a_format_is_made_from_the_negotiated_codecs():
    fmt = MediaFormat.of(Codec("PCMA", 8000, 1, 8), None, 30)
    assert fmt == MediaFormat("pcma", 8, 8000, None, 8000, 30)
    with pytest.raises(ValueError, match="PCMU, PCMA or Opus"):
        MediaFormat.of(Codec("G722", 8000, 1, 9))


async def test_a_player_at_another_rate_is_refused(line):
    leg, _ = line
    channel = Channel(leg, PCMU, clock=ManualClock())
    with pytest.raises(ValueError, match=r"rate=channel\.rate"):
        channel.play(Player([Silence(100)], 16000))
    channel.close()


async def test_a_new_play_stops_the_one_before_and_plays_are_numbered(line):
    leg, phone = line
    clock = ManualClock()
    channel = Channel(leg, PCMU, clock=clock)
    first = channel.play([_tone(1000, 1000)])
    clock.run(2)
    second = channel.play([_tone(500, 40)])
    clock.run(3)
    assert (await first, await second) == ("stopped", "end")
    assert (first.number, second.number) == (1, 2)
    assert [(e.reason, e.play) for e in _drain(channel)] == [("stopped", 1), ("end", 2)]
    packets = await phone.settle(5)
    tones = [peaks(g711.ulaw_decode(p[12:]), 8000, 1)[0] for p in packets[:4]]
    assert tones == pytest.approx([1000, 1000, 500, 500], abs=60)  # from the very next frame
    channel.close()


async def test_a_recording_that_cannot_be_written_says_why(line, tmp_path):
    leg, phone = line
    channel = Channel(leg, PCMU, clock=media_clock())
    recording = channel.record(tmp_path / "no" / "such" / "dir.wav", beep=False,
                               silence_seconds=0.3)  # fmt: skip
    talker = Talker(phone, leg, _speech(400, 0.6) + _quiet(1.0))
    result = await asyncio.wait_for(recording, 4)
    talker.task.cancel()
    assert result.path is None and result.reason == "silence"
    assert "cannot write" in result.error and "dir.wav" in result.error
    channel.close()
