"""The parts of a channel, sans-IO: the media clock's pacing, the node's own RTP
stream, the frame encoder and its cache, a recording's take, and which DTMF
form counts."""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest

from switch.media import g711
from switch.media.clock import CATCH_UP, PERIOD, MediaClock, Pacer, media_clock
from switch.media.digit_listener import DigitListener
from switch.media.dtmf.digits import Digit, DigitBegin
from switch.media.dtmf.events import event_packets
from switch.media.dtmf.inband import generate
from switch.media.frame_encoder import FrameCache, FrameEncoder
from switch.media.inbound import Inbound, rtp_payload
from switch.media.opus import OpusDecoder
from switch.media.own_stream import OwnStream
from switch.media.take import KEEP, Take, TakeError
from tests.media.audio import peaks
from tests.media.test_dtmf import speech  # noqa: F401 (a fixture: ten minutes of espeak-ng)

HEADER = struct.Struct("!BBHII")


# -- the clock -------------------------------------------------------------------------


def test_a_pacer_on_time_sends_one_frame_per_deadline():
    pacer = Pacer(100.0)
    assert pacer.due(99.99) == (0, 0)
    assert pacer.due(100.0) == (1, 0)
    assert pacer.due(100.0) == (0, 0)  # the same instant twice: nothing more owed
    assert pacer.due(100.0199) == (0, 0)
    assert pacer.due(100.02) == (1, 0)
    assert pacer.next_deadline == pytest.approx(100.04)


def test_a_late_wakeup_catches_up_two_frames_and_skips_the_rest():
    pacer = Pacer(0.0)
    assert pacer.due(0.0) == (1, 0)
    assert pacer.due(0.045) == (2, 0)  # frames of 0.02 and 0.04: both still worth sending
    assert pacer.due(0.061) == (1, 0)
    # A stall of 200 ms: 10 frames owed, CATCH_UP sent, the others skipped.
    assert pacer.due(0.261) == (CATCH_UP, 10 - CATCH_UP)
    assert (pacer.late, pacer.skipped) == (2, 10 - CATCH_UP)
    assert pacer.next_deadline == pytest.approx(0.28)  # back on the grid


def test_deadlines_are_absolute_so_jittery_wakeups_do_not_drift():
    rng = np.random.default_rng(1)
    pacer = Pacer(5.0)
    now, frames = 5.0, 0
    for _ in range(5000):
        now = pacer.next_deadline + rng.uniform(0, 0.015)  # each wake-up up to 15 ms late
        send, skip = pacer.due(now)
        frames += send + skip
    # 5000 wake-ups, each on or after its deadline: exactly 5000 frames,
    # and the grid is where it started, not 5000 lateness further on.
    assert frames == 5000
    assert pacer.next_deadline == pytest.approx(5.0 + 5000 * PERIOD)


def test_a_pacer_refuses_a_period_or_catch_up_that_makes_no_sense():
    with pytest.raises(ValueError, match="period"):
        Pacer(0.0, period=0)
    with pytest.raises(ValueError, match="catch_up"):
        Pacer(0.0, catch_up=0)


async def test_one_timer_ticks_every_subscriber_in_real_time():
    clock = MediaClock()
    counts = {name: 0 for name in "abc"}

    def ticker(name):
        def tick(now, send, skip):
            counts[name] += send + skip

        return tick

    ticks = {name: ticker(name) for name in counts}
    for tick in ticks.values():
        clock.add(tick)
    start = time.monotonic()
    await asyncio.sleep(0.5)
    elapsed = time.monotonic() - start
    clock.remove(ticks["c"])
    await asyncio.sleep(0.1)
    for tick in ticks.values():
        clock.remove(tick)
    assert len(clock) == 0 and clock._handle is None
    frames = (elapsed + 0.1) / PERIOD
    assert abs(counts["a"] - frames) <= 3
    assert counts["a"] == counts["b"]
    assert counts["c"] < counts["a"] - 3  # removed: no more ticks
    # One wake-up serves every subscriber: wake-ups are frames, not frames x 3.
    assert clock.wakeups <= counts["a"]


async def test_a_tick_that_raises_is_dropped_and_the_others_go_on():
    clock = MediaClock()
    good = []

    def bad(now, send, skip):
        raise RuntimeError("a bug")

    clock.add(bad)
    clock.add(lambda now, send, skip: good.append(send))
    await asyncio.sleep(0.1)
    assert clock.failures == 1 and len(clock) == 1 and len(good) >= 3
    clock._ticks.clear()
    clock.remove(None)


async def test_the_node_has_one_clock_per_event_loop():
    assert media_clock() is media_clock()


# -- the node's own stream ---------------------------------------------------------------


def test_the_own_stream_numbers_frames_and_keeps_time_across_gaps():
    stream = OwnStream(0, 8000, ssrc=0x1234, seq=0xFFFF, timestamp=0xFFFFFF00)
    first = HEADER.unpack_from(stream.audio(b"\xff" * 160))
    second = HEADER.unpack_from(stream.audio(b"\xff" * 160))
    assert first == (0x80, 0x80 | 0, 0xFFFF, 0xFFFFFF00, 0x1234)  # marker on the first
    assert second == (0x80, 0, 0, 0xFFFFFFA0, 0x1234)  # sequence and timestamp wrap
    stream.skip(3)  # 60 ms with nothing sent
    third = HEADER.unpack_from(stream.audio(b"\xff" * 160))
    assert third[1] == 0x80 and third[2] == 1  # a new talk spurt: marker; no seq gap
    assert third[3] == (0xFFFFFF00 + 160 * 5) & 0xFFFFFFFF
    assert stream.sent == 3


def test_events_take_the_key_downs_timestamp_and_the_streams_numbers():
    stream = OwnStream(0, 8000, ssrc=7, seq=10, timestamp=1000)
    packets = event_packets("5", stream.timestamp, 0.1)
    out = [HEADER.unpack_from(stream.event(p, 101)) for p in packets]
    assert [o[2] for o in out] == list(range(10, 10 + len(packets)))
    assert {o[3] for o in out} == {1000} and {o[4] for o in out} == {7}
    assert [o[1] >> 7 for o in out] == [1] + [0] * (len(packets) - 1)
    assert {o[1] & 0x7F for o in out} == {101}


def test_a_payload_type_outside_rtps_range_is_refused():
    with pytest.raises(ValueError, match="0-127"):
        OwnStream(128, 8000)


# -- encoding ------------------------------------------------------------------------------


def _tone(freq: float, rate: int, frames: int, level: float = 8000.0) -> list[bytes]:
    """A tone with a little noise: no two frames alike (a pure tone repeats)."""
    n = rate // 50
    t = np.arange(frames * n) / rate
    noise = np.random.default_rng(int(freq)).normal(0, 30, len(t))
    pcm = (level * np.sin(2 * np.pi * freq * t) + noise).astype("<i2").tobytes()
    return [pcm[i * 2 * n : (i + 1) * 2 * n] for i in range(frames)]


def test_g711_frames_are_the_tables_and_a_repeated_frame_is_encoded_once():
    cache = FrameCache()
    a, b = FrameEncoder("PCMU", cache), FrameEncoder("pcmu", cache)
    frames = _tone(440, 8000, 10)
    assert [a.encode(f) for f in frames] == [g711.ulaw_encode(f) for f in frames]
    assert cache.misses == 10 and cache.hits == 0
    assert [b.encode(f) for f in frames] == [g711.ulaw_encode(f) for f in frames]
    assert cache.hits == 10  # the second channel sending the prompt encoded nothing
    assert FrameEncoder("pcma", FrameCache()).encode(frames[0]) == g711.alaw_encode(frames[0])
    assert a.silence() == b"\xff" * 160


def test_live_audio_is_not_cached_and_a_full_cache_starts_again():
    cache = FrameCache(max_frames=4)
    encoder = FrameEncoder("pcmu", cache)
    frames = _tone(300, 8000, 6)
    encoder.encode(frames[0], cached=False)
    assert len(cache) == 0 and cache.misses == 0
    for frame in frames:
        encoder.encode(frame)
    assert cache.clears == 1 and len(cache) == 2


def test_a_codec_a_channel_does_not_speak_is_refused():
    with pytest.raises(ValueError, match="PCMU, PCMA or Opus"):
        FrameEncoder("g722")


def test_opus_prompts_are_encoded_once_for_every_channel_and_sound_right():
    cache = FrameCache()
    first, second = FrameEncoder("opus", cache), FrameEncoder("opus", cache)
    assert first.rate == 16000
    frames = _tone(700, 16000, 25)
    one = [first.encode(f) for f in frames]
    two = [second.encode(f) for f in frames]
    assert one == two and cache.hits == 25
    assert second._encode is None  # never needed a libopus state of its own
    decoder = OpusDecoder(16000)
    pcm = b"".join(decoder.decode(p) for p in one)
    assert abs(peaks(pcm[len(pcm) // 2 :], 16000, 1)[0] - 700) <= 25


# -- the caller's audio ------------------------------------------------------------------


def test_the_payload_is_found_past_csrcs_extension_and_padding():
    plain = HEADER.pack(0x80, 0, 1, 2, 3) + b"abcd"
    assert rtp_payload(plain) == b"abcd"
    csrc = HEADER.pack(0x82, 0, 1, 2, 3) + b"\0" * 8 + b"abcd"
    assert rtp_payload(csrc) == b"abcd"
    extension = HEADER.pack(0x90, 0, 1, 2, 3) + b"\xbe\xde\x00\x01" + b"\0" * 4 + b"abcd"
    assert rtp_payload(extension) == b"abcd"
    padded = HEADER.pack(0xA0, 0, 1, 2, 3) + b"abcd" + b"\0\0\x03"
    assert rtp_payload(padded) == b"abcd"
    assert rtp_payload(b"\x80\x00") is None
    assert rtp_payload(HEADER.pack(0x90, 0, 1, 2, 3) + b"\xbe\xde\x00\x09") is None


def test_inbound_audio_is_decoded_in_order_with_gaps_concealed():
    inbound = Inbound("pcmu", 8000)
    frames = _tone(500, 8000, 10)
    order = [0, 1, 3, 2, 4, 6, 7, 8, 9]  # 3 and 2 swapped, 5 lost
    for n, i in enumerate(order):
        inbound.push(i, 160 * i, g711.ulaw_encode(frames[i]), 10.0 + 0.02 * n)
    out = inbound.pop(10.0 + 0.06 + 0.02 * 9)  # the last one's turn, after 60 ms in the buffer
    assert len(out) == 10
    assert out[5] == bytes(320)  # the lost one: silence
    assert out[2] == g711.ulaw_decode(g711.ulaw_encode(frames[2]))  # back in order


# -- a recording's take --------------------------------------------------------------------


def test_a_take_stops_on_silence_and_keeps_a_little_of_it():
    take = Take(max_seconds=10, silence_seconds=0.5)
    talk = _tone(300, 8000, 25)  # 0.5 s at about -10 dBm0
    assert all(take.feed(f) is None for f in talk)
    quiet = [bytes(320)] * 25
    reasons = [take.feed(f) for f in quiet]
    assert reasons[-1] == "silence" and reasons[:-1] == [None] * 24
    audio = take.audio("silence")
    assert take.heard
    assert len(audio) == 2 * (4000 + round(KEEP * 8000))


def test_a_take_stops_at_its_length_and_a_key_trims_its_tone():
    take = Take(max_seconds=0.2, silence_seconds=0)
    reasons = [take.feed(f) for f in _tone(300, 8000, 12)]
    assert reasons.index("max") == 9 and take.seconds == 0.2
    keyed = Take(max_seconds=5, silence_seconds=0)
    for f in _tone(300, 8000, 20):
        keyed.feed(f)
    assert len(keyed.audio("digit")) == 2 * (8000 * 4 // 10 - 800)


def test_quiet_line_noise_is_not_speech():
    take = Take(silence_seconds=1.0)
    rng = np.random.default_rng(3)
    noise = (rng.normal(0, 20, 8000)).astype("<i2").tobytes()  # about -60 dBm0
    reasons = [take.feed(noise[i : i + 320]) for i in range(0, len(noise), 320)]
    assert reasons[-1] == "silence" and not take.heard


def test_take_limits_are_checked():
    with pytest.raises(TakeError, match="max_seconds"):
        Take(max_seconds=0)
    with pytest.raises(TakeError, match="silence_seconds"):
        Take(silence_seconds=-1)


# -- which form of DTMF counts ---------------------------------------------------------------


def _events(digit: str, ts: int, seq: int, listener: DigitListener) -> list:
    out = []
    for i, p in enumerate(event_packets(digit, ts, 0.1)):
        out += listener.telephone_event(p.payload, p.timestamp, seq + i, 1.0 + p.at)
    return out


def test_auto_takes_the_first_form_a_key_comes_in_and_only_that():
    listener = DigitListener("auto", telephone_event=True)
    assert not listener.wants_audio
    assert _events("1", 1000, 1, listener) == [DigitBegin("1"), Digit("1", 0.1)]
    assert listener.latched == "rfc4733"
    assert listener.info(Digit("1", 0.1)) == []  # the same key again, by INFO: ignored
    assert listener.ignored == 2
    other = DigitListener("auto", telephone_event=True)
    assert other.info(Digit("2", 0.25)) == [DigitBegin("2"), Digit("2", 0.25)]
    assert _events("2", 5000, 1, other) == []


def test_auto_without_telephone_event_listens_to_the_audio():
    listener = DigitListener("auto", telephone_event=False)
    assert listener.wants_audio
    pcm = bytes(640) + generate("7", 0.08, -10) + bytes(960)
    out = [e for i in range(0, len(pcm), 320) for e in listener.audio(pcm[i : i + 320])]
    assert [type(e) for e in out] == [DigitBegin, Digit] and out[1].digit == "7"
    assert listener.latched == "inband" and listener.wants_audio


@pytest.mark.parametrize("mode", ["rfc4733", "info", "inband"])
def test_a_fixed_mode_hears_its_form_alone(mode):
    listener = DigitListener(mode, telephone_event=True)
    by_events = _events("3", 1000, 1, listener)
    by_info = listener.info(Digit("4", 0.1))
    assert bool(by_events) == (mode == "rfc4733")
    assert bool(by_info) == (mode == "info")
    assert listener.wants_audio == (mode == "inband")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="rfc4733, info, inband, auto"):
        DigitListener("dtmf", telephone_event=True)


def test_ten_minutes_of_speech_through_pcmu_and_the_jitter_buffer_are_no_key(speech):  # noqa: F811
    # What a channel on an "inband" trunk does with the caller's audio: G.711
    # packets arriving with jitter, the jitter buffer, the decoder, the
    # detector. Speech (the ten minutes test_dtmf.py renders with espeak-ng)
    # must give no key; a real key after it must give exactly one.
    pcm = speech + bytes(1600) + generate("5", 0.08, -20) + bytes(3200)
    inbound = Inbound("pcmu", 8000)
    listener = DigitListener("inband", telephone_event=False)
    rng = np.random.default_rng(11)
    start, heard = 50.0, []
    for n in range(len(pcm) // 320):
        payload = g711.ulaw_encode(pcm[n * 320 : (n + 1) * 320])
        arrival = start + 0.02 * n + rng.uniform(0, 0.015)
        inbound.push(n & 0xFFFF, 160 * n, payload, arrival)
        for frame in inbound.pop(start + 0.02 * n + 0.01):
            heard += listener.audio(frame)
    for frame in inbound.pop(start + 0.02 * (len(pcm) // 320) + 0.2):
        heard += listener.audio(frame)
    assert len(speech) / 2 / 8000 >= 600
    assert heard[:1] == [DigitBegin("5")] and [type(e) for e in heard] == [DigitBegin, Digit]
