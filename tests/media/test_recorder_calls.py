"""Recording a call from its RTP: packets fed straight into the taps of two
stand-in relay ports, the clock turned by hand, the file read back."""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest

from switch.media import g711
from switch.media.call_recording import (
    CONCEAL_FRAMES,
    CallRecording,
    RecordingClock,
    opus_samples,
    rtp_payload,
)
from switch.media.opus import OpusEncoder
from switch.media.recorder import Recorder
from switch.media.wav import read_wav
from switch.sip.sdp import STATIC_PAYLOAD_TYPES, Codec
from tests.media.audio import peaks, rms

START = 1000.0  # the monotonic clock when the recording starts
TYPES = {
    **STATIC_PAYLOAD_TYPES,
    101: Codec("telephone-event", 8000, 1, 101),
    111: Codec("opus", 48000, 2, 111),
}


class Port:
    """What a recording needs of a relay port: taps, and when a packet came."""

    def __init__(self) -> None:
        self.taps: list = []
        self.last_received = 0.0

    def add_tap(self, tap) -> None:
        self.taps.append(tap)

    def remove_tap(self, tap) -> None:
        if tap in self.taps:
            self.taps.remove(tap)

    def receive(self, packet: bytes, at: float) -> None:
        self.last_received = at
        for tap in list(self.taps):
            tap(packet)


class Clock:
    """Stands for `RecordingClock`: the test turns it."""

    def __init__(self) -> None:
        self.recordings: set = set()

    def add(self, recording) -> None:
        self.recordings.add(recording)

    def discard(self, recording) -> None:
        self.recordings.discard(recording)


def tone(freq: float, seconds: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class Sender:
    """One phone: 20 ms packets of `pcm` in `codec`, sequence numbers and
    timestamps as a real one makes them."""

    def __init__(self, pcm: bytes, codec: str = "pcmu", ssrc: int = 0x1234, seq: int = 100):
        self.codec, self.ssrc, self.seq0 = codec, ssrc, seq
        frames = [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]
        if codec == "opus":
            encoder = OpusEncoder(8000, fec=False)
            self.payloads = [encoder.encode(f) for f in frames]
            self.pt, self.ticks = 111, 960
        else:
            encode = g711.ulaw_encode if codec == "pcmu" else g711.alaw_encode
            self.payloads = [encode(f) for f in frames]
            self.pt, self.ticks = (0 if codec == "pcmu" else 8), 160

    def packet(self, i: int, pt: int | None = None, payload: bytes | None = None) -> bytes:
        body = self.payloads[i] if payload is None else payload
        return rtp(self.pt if pt is None else pt, self.seq0 + i, 5000 + i * self.ticks,
                   self.ssrc, body)  # fmt: skip


class Call:
    """A recording between two stand-in ports, on a hand-turned clock."""

    def __init__(self, tmp_path, format: str = "wav", types=None) -> None:
        self.a, self.b, self.clock = Port(), Port(), Clock()
        self.now = START
        self.path = tmp_path / f"call.{format}"
        recorder = Recorder(self.path, call_id="c1", tenant="t", start=START, format=format)
        table = types or TYPES
        self.recording = CallRecording(
            recorder, self.a, self.b, lambda side: table, self.clock, now=lambda: self.now
        )

    def run(self, steps: int, send, tick_every: int = 5) -> None:
        """`steps` of 20 ms: send(i, at) sends what step i sends; a tick every 100 ms."""
        for i in range(steps):
            self.now = START + i * 0.02
            send(i, self.now)
            if i % tick_every == tick_every - 1:
                self.recording.tick(self.now)

    def stop(self):
        meta = self.recording.stop()
        self.recording.recorder.commit()
        audio = read_wav(self.path)
        x = np.frombuffer(audio.pcm, "<i2").astype(np.float64)
        return meta, x[0::2], x[1::2]


def _find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Where `needle` first occurs in `haystack`, sample for sample (-1: nowhere)."""
    for i in np.flatnonzero(haystack == needle[0]):
        if haystack[i : i + len(needle)].tolist() == needle.tolist():
            return int(i)
    return -1


def _windows(x: np.ndarray, start: float, end: float, size: float = 0.02) -> list[float]:
    """RMS of each `size` window of `x` (8 kHz) from `start` to `end` seconds."""
    n = int(size * 8000)
    return [rms(x[i : i + n]) for i in range(int(start * 8000), int(end * 8000) - n + 1, n)]


def test_the_caller_is_left_and_the_callee_right(tmp_path):
    call = Call(tmp_path)
    left, right = Sender(tone(440, 3)), Sender(tone(1000, 3), ssrc=99, seq=65500)  # seq wraps

    def send(i, at):
        call.a.receive(left.packet(i), at)
        call.b.receive(right.packet(i), at)

    call.run(150, send)
    meta, caller, agent = call.stop()
    assert peaks(caller[800:20000], 8000, 1) == pytest.approx([440], abs=3)
    assert peaks(agent[800:20000], 8000, 1) == pytest.approx([1000], abs=3)
    # Every frame arrived: what is recorded is the decoded stream, sample for
    # sample, starting where the jitter buffer played its first frame.
    expected = np.frombuffer(g711.ulaw_decode(b"".join(left.payloads)), "<i2")
    onset = _find(caller, expected[:160])
    assert 0 < onset <= 0.1 * 8000  # the buffer's delay: 60 ms, at most 100
    assert (
        caller[onset : onset + len(expected)].tolist() == expected[: len(caller) - onset].tolist()
    )

    assert meta["duration"] == pytest.approx(2.98, abs=0.2)
    direction = call.recording.sides["a"]
    assert (direction.packets, direction.ignored, direction.concealed) == (150, 0, 0)
    assert call.a.taps == [] and call.b.taps == []  # stopped: taps off
    assert call.clock.recordings == set()


def test_the_two_sides_stay_aligned(tmp_path):
    # Each side is silent but for a burst: the caller's at 1.0 s, the
    # callee's at 1.5 s. They land half a second apart in the file.
    call = Call(tmp_path)
    quiet = bytes(2 * 8000 * 3)
    burst_a = quiet[: 2 * 8000] + tone(500, 0.2) + quiet[: 2 * 8000 * 2]
    burst_b = quiet[: 2 * 12000] + tone(500, 0.2) + quiet[: 2 * 8000 * 2]
    a, b = Sender(burst_a), Sender(burst_b, ssrc=7)

    def send(i, at):
        call.a.receive(a.packet(i), at)
        call.b.receive(b.packet(i), at + 0.007)  # the callee's packets come a bit later

    call.run(140, send)
    _, caller, agent = call.stop()
    loud_a = np.flatnonzero(np.abs(caller) > 1000)
    loud_b = np.flatnonzero(np.abs(agent) > 1000)
    assert (loud_b[0] - loud_a[0]) / 8000 == pytest.approx(0.5, abs=0.011)


def test_pcma_and_opus_are_decoded(tmp_path):
    call = Call(tmp_path)
    left, right = Sender(tone(600, 2), "pcma"), Sender(tone(1200, 2), "opus", ssrc=5)

    def send(i, at):
        call.a.receive(left.packet(i), at)
        call.b.receive(right.packet(i), at)

    call.run(100, send)
    _, caller, agent = call.stop()
    assert peaks(caller[2000:14000], 8000, 1) == pytest.approx([600], abs=3)
    assert peaks(agent[2000:14000], 8000, 1) == pytest.approx([1200], abs=3)
    assert rms(agent[2000:14000]) > 3000  # Opus at its level, not concealment


def test_dtmf_events_and_comfort_noise_are_not_audio(tmp_path):
    call = Call(tmp_path)
    left, right = Sender(tone(440, 4)), Sender(tone(1000, 4), ssrc=8)
    event = bytes([5, 0x0A, 0, 160])  # RFC 4733: digit 5

    def send(i, at):
        # From 1 s to 2 s the caller's phone sends a DTMF event in place of
        # audio, then comfort noise, as phones do.
        if 50 <= i < 75:
            call.a.receive(left.packet(i, pt=101, payload=event), at)
        elif 75 <= i < 100:
            call.a.receive(left.packet(i, pt=13, payload=b"\x40"), at)
        else:
            call.a.receive(left.packet(i), at)
        call.b.receive(right.packet(i), at)

    call.run(200, send)
    _, caller, agent = call.stop()
    onset = int(np.flatnonzero(caller)[0]) / 8000
    levels = _windows(caller, onset + 1.0 + 0.02 * CONCEAL_FRAMES + 0.02, onset + 2.0)
    assert max(levels) == 0  # the event and the noise: silence after a short concealment
    assert min(_windows(caller, onset + 0.1, onset + 0.9)) > 3000
    assert min(_windows(caller, onset + 2.1, onset + 3.8)) > 3000  # audio again
    assert call.recording.sides["a"].ignored == 50
    assert peaks(agent[8000:24000], 8000, 1) == pytest.approx([1000], abs=3)


@pytest.mark.parametrize("codec", ["pcmu", "opus"])
def test_a_lost_packet_is_concealed(tmp_path, codec):
    call = Call(tmp_path)
    left = Sender(tone(440, 3), codec)
    lost = set(range(20, 140, 10))  # one packet in ten, from 0.4 s on

    def send(i, at):
        if i not in lost:
            call.a.receive(left.packet(i), at)

    call.run(150, send)
    _, caller, _ = call.stop()
    direction = call.recording.sides["a"]
    assert direction.concealed == len(lost)
    onset = int(np.flatnonzero(caller)[0]) / 8000
    # No hole of silence where a packet was lost: every 20 ms has sound.
    assert min(_windows(caller, onset, onset + 2.9)) > 500


def test_a_long_silence_from_one_side_records_silence(tmp_path):
    call = Call(tmp_path)
    left = Sender(tone(440, 4))

    def send(i, at):
        if not 50 <= i < 150:  # the phone stops sending for two seconds (on hold)
            call.a.receive(left.packet(i), at)

    call.run(200, send)
    _, caller, _ = call.stop()
    onset = int(np.flatnonzero(caller)[0]) / 8000
    assert max(_windows(caller, onset + 1.0 + 0.02 * (CONCEAL_FRAMES + 1), onset + 2.9)) == 0
    assert min(_windows(caller, onset + 3.05, onset + 3.9)) > 3000  # it resumed in place
    assert len(caller) / 8000 == pytest.approx(4.0, abs=0.15)


def test_packets_out_of_order_are_put_back_in_order(tmp_path):
    in_order, shuffled = Call(tmp_path / "1"), Call(tmp_path / "2")
    left = Sender(tone(440, 2) + tone(880, 1))
    # Each pair of packets arrives swapped, the second 5 ms after the first.
    order = [i ^ 1 for i in range(150)]

    def straight(i, at):
        in_order.a.receive(left.packet(i), at)

    def swapped(i, at):
        shuffled.a.receive(left.packet(order[i]), at + (0.005 if i % 2 else 0))

    in_order.run(150, straight)
    shuffled.run(150, swapped)
    _, expected, _ = in_order.stop()
    _, got, _ = shuffled.stop()
    # The very first packet came after its successor had started the stream:
    # late, dropped. Every one after it is played in its place.
    assert shuffled.recording.sides["a"].concealed == 0
    decoded = np.frombuffer(g711.ulaw_decode(b"".join(left.payloads)), "<i2")
    start_e, start_g = _find(expected, decoded[160:320]), _find(got, decoded[160:320])
    assert start_e > 0 and start_g > 0
    n = 148 * 160
    assert got[start_g : start_g + n].tolist() == expected[start_e : start_e + n].tolist()


def test_pause_and_resume_leave_silence_and_never_buffer_the_paused_audio(tmp_path):
    call = Call(tmp_path)
    left, right = Sender(tone(440, 4)), Sender(tone(1000, 4), ssrc=9)
    inbox_while_paused = []

    def send(i, at):
        if i == 50:
            call.recording.pause()  # at 1.0 s: the agent asks for the card number
        if i == 100:
            call.recording.resume()  # at 2.0 s
        call.a.receive(left.packet(i), at)
        call.b.receive(right.packet(i), at)
        if call.recording.paused:
            inbox_while_paused.append(len(call.recording.sides["a"].inbox))

    call.run(200, send)
    meta, caller, agent = call.stop()
    assert inbox_while_paused and set(inbox_while_paused) == {0}  # dropped at the tap
    assert meta["paused"] == [{"from": 1.0, "to": 2.0}]
    for channel in (caller, agent):
        assert not channel[8000:16000].any()  # silent, both sides
        assert rms(channel[2000:7500]) > 3000  # recorded before
        assert rms(channel[17000:30000]) > 3000  # and after
    assert call.recording.recorder.paused_intervals() == [(1.0, 2.0)]


def test_a_new_source_on_a_leg_goes_on_recording(tmp_path):
    # A blind transfer: the same port, someone else's stream (new SSRC,
    # sequence numbers and timestamps from elsewhere).
    call = Call(tmp_path)
    first, second = Sender(tone(440, 2)), Sender(tone(1500, 2), ssrc=0xBEEF, seq=40000)

    def send(i, at):
        if i < 100:
            call.b.receive(first.packet(i), at)
        elif i >= 105:  # 100 ms of nothing while the call is transferred
            call.b.receive(second.packet(i - 105), at)

    call.run(200, send)
    _, _, agent = call.stop()
    onset = int(np.flatnonzero(agent)[0])
    assert peaks(agent[onset + 1000 : onset + 14000], 8000, 1) == pytest.approx([440], abs=3)
    assert peaks(agent[onset + 18000 : onset + 28000], 8000, 1) == pytest.approx([1500], abs=3)
    assert call.recording.sides["b"].streams == 2


def test_a_leg_moved_to_another_port_is_followed(tmp_path):
    call = Call(tmp_path)
    left = Sender(tone(440, 2))
    other = Port()
    joined = Sender(tone(1500, 2), ssrc=3)

    def send(i, at):
        if i == 100:
            call.recording.move("a", other)  # an attended transfer
        if i < 100:
            call.a.receive(left.packet(i), at)
        else:
            call.a.receive(left.packet(i - 100), at)  # the old port: no longer heard
            other.receive(joined.packet(i - 100), at)

    call.run(200, send)
    _, caller, _ = call.stop()
    assert call.a.taps == [] and other.taps == []
    assert peaks(caller[20000:30000], 8000, 1) == pytest.approx([1500], abs=3)


def test_unknown_payload_types_and_garbage_are_ignored(tmp_path):
    call = Call(tmp_path, types={0: STATIC_PAYLOAD_TYPES[0]})
    left = Sender(tone(440, 2))

    def send(i, at):
        call.a.receive(left.packet(i), at)
        call.a.receive(rtp(96, i, i * 160, 0x1234, b"video?"), at)  # nothing says what 96 is
        call.a.receive(b"\x00garbage", at)
        call.a.receive(b"\x80\x00", at)

    call.run(100, send)
    _, caller, _ = call.stop()
    assert call.recording.sides["a"].ignored == 100
    assert peaks(caller[2000:14000], 8000, 1) == pytest.approx([440], abs=3)


def test_an_opus_recording_of_a_call(tmp_path):
    from switch.media.ogg import read_packets, read_pages

    call = Call(tmp_path, format="opus")
    left, right = Sender(tone(440, 2)), Sender(tone(1000, 2), ssrc=2)

    def send(i, at):
        call.a.receive(left.packet(i), at)
        call.b.receive(right.packet(i), at)

    call.run(100, send)
    meta = call.recording.stop()
    call.recording.recorder.commit()
    assert (meta["format"], meta["codec"], meta["bitrate"]) == ("opus", "opus", 32000)
    packets = read_packets(read_pages(call.path.read_bytes()))
    assert packets[0].startswith(b"OpusHead") and len(packets) > 30


def test_payload_helpers():
    assert rtp_payload(rtp(0, 1, 2, 3, b"abc")) == b"abc"
    with_csrc = bytes([0x81]) + rtp(0, 1, 2, 3, b"")[1:] + b"CSRC" + b"xy"
    assert rtp_payload(with_csrc) == b"xy"
    extension = bytes([0x90]) + rtp(0, 1, 2, 3, b"")[1:] + b"\xbe\xde\x00\x01" + b"1234" + b"pl"
    assert rtp_payload(extension) == b"pl"
    padded = bytes([0xA0]) + rtp(0, 1, 2, 3, b"")[1:] + b"data" + b"\x00\x00\x03"
    assert rtp_payload(padded) == b"data"
    assert opus_samples(OpusEncoder(8000).encode(bytes(320))) == 960
    assert opus_samples(b"") == 0
    assert opus_samples(bytes([0x03])) == 0  # code 3 without its count byte


async def test_the_shared_clock_ticks_every_recording_and_survives_a_broken_one(tmp_path):
    clock = RecordingClock(tick=0.02)
    ports = [(Port(), Port()) for _ in range(2)]
    recordings = []
    for i, (a, b) in enumerate(ports):
        recorder = Recorder(
            tmp_path / f"r{i}.wav", call_id=f"c{i}", tenant="t", start=time.monotonic()
        )
        recordings.append(CallRecording(recorder, a, b, lambda side: TYPES, clock))
    broken, working = recordings

    def fail(*args):
        raise OSError(28, "No space left on device")

    broken.recorder.feed = fail
    sender = Sender(tone(440, 1))
    loop = asyncio.get_running_loop()
    for i in range(25):
        for a, _ in ports:
            a.receive(sender.packet(i), loop.time())
        await asyncio.sleep(0.02)
    assert broken.failed == "OSError: [Errno 28] No space left on device"
    assert broken not in clock.recordings and ports[0][0].taps == []
    assert (tmp_path / ".r0.wav.partial").exists()  # left for the operator
    assert working in clock.recordings and working.sides["a"].packets == 25
    working.stop()
    assert clock._timer is None  # no recordings, no timer
