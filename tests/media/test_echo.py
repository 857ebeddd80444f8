"""The echo test target, pure: the delay exact to the sample, the prompt
first, lost frames, and the beep."""

from __future__ import annotations

import numpy as np
import pytest

from switch.media.echo import Echo, EchoError, beep


def ramp(start: int, count: int) -> bytes:
    """Samples numbered start, start + 1, ...: where each one went is plain to see."""
    return (np.arange(start, start + count) % 30000 + 1).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2")


def echo_of(echo: Echo, sizes: list[int]) -> tuple[bytes, bytes]:
    sent, heard = bytearray(), bytearray()
    for size in sizes:
        frame = ramp(len(sent) // 2, size)
        sent += frame
        out = echo.receive(frame)
        assert len(out) == len(frame)
        heard += out
    return bytes(sent), bytes(heard)


@pytest.mark.parametrize(
    ("rate", "delay_ms", "delay_samples"),
    [(8000, 500, 4000), (8000, 37.5, 300), (8000, 0.125, 1), (16000, 250, 4000), (48000, 20, 960)],
)
def test_what_comes_back_is_what_went_in_exactly_delay_samples_later(rate, delay_ms, delay_samples):
    echo = Echo(rate, delay_ms)
    assert echo.delay_samples == delay_samples
    frame = rate // 50
    sent, heard = echo_of(echo, [frame] * 60)
    expected = np.concatenate([np.zeros(delay_samples, "<i2"), samples(sent)])[: len(sent) // 2]
    assert np.array_equal(samples(heard), expected)


def test_frames_of_any_size_keep_the_delay():
    echo = Echo(8000, 30)  # 240 samples: not a whole number of 20 ms frames
    sent, heard = echo_of(echo, [160, 80, 240, 1, 159, 320, 160] * 10)
    assert np.array_equal(samples(heard)[240:], samples(sent)[:-240])
    assert not samples(heard)[:240].any()


def test_no_delay_is_a_loopback():
    echo = Echo(8000, 0)
    sent, heard = echo_of(echo, [160] * 5)
    assert heard == sent


def test_the_prompt_plays_first_and_the_echo_starts_after_it():
    prompt = [bytes([i]) * 320 for i in range(1, 4)]
    echo = Echo(8000, 10, prompt=prompt)  # 80 samples
    assert echo.prompting
    said_during = ramp(0, 160)
    assert [echo.receive(said_during) for _ in range(3)] == prompt  # the caller is not echoed
    assert echo.prompting
    first = ramp(1000, 160)
    out = echo.receive(first)  # the prompt is over: this frame is the first echoed
    assert not echo.prompting
    assert not samples(out)[:80].any()
    assert np.array_equal(samples(out)[80:], samples(first)[:80])
    second = ramp(2000, 160)
    out = echo.receive(second)
    assert np.array_equal(samples(out), np.concatenate([samples(first)[80:], samples(second)[:80]]))


def test_a_prompt_from_a_generator_and_an_empty_one():
    echo = Echo(8000, 0, prompt=beep(duration_ms=40))
    assert len(echo.receive(None)) == 320 and len(echo.receive(None)) == 320
    frame = ramp(0, 160)
    assert echo.receive(frame) == frame
    empty = Echo(8000, 0, prompt=[])
    assert empty.receive(frame) == frame


def test_a_missing_frame_is_echoed_as_silence():
    echo = Echo(8000, 20)
    first = ramp(0, 160)
    echo.receive(first)
    assert echo.receive(None) == first  # the lost frame's turn: we get the one before
    assert echo.receive(ramp(500, 160)) == bytes(320)  # ... and then its silence
    assert len(Echo(48000, 0).receive(None)) == 1920


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Echo(8000, -1), "echo delay -1 ms"),
        (lambda: Echo(8000, float("nan")), "echo delay nan ms"),
        (lambda: Echo(8000, 60_000), "between 0 and 10000 ms"),
        (lambda: Echo(11025, 0, ptime_ms=10), "whole number of samples"),
        (lambda: Echo(8000, 0).receive(b"\0\0\0"), "frame of 3 bytes"),
    ],
)
def test_bad_input_gets_a_clear_error(make, message):
    with pytest.raises(EchoError, match=message):
        make()


def test_beep_is_a_tone_of_its_frequency_length_and_level():
    frames = list(beep(8000, 1000, duration_ms=310, level_dbm0=-13))
    assert len(frames) == 16 and {len(f) for f in frames} == {320}  # 310 ms -> 16 frames
    pcm = samples(b"".join(frames)).astype(np.float64)
    assert not pcm[2480:].any()  # padded with silence after 310 ms
    tone = pcm[:2400]
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.fft.rfftfreq(len(tone), 1 / 8000)[spectrum.argmax()] == 1000
    # -13 dBm0 is 16.14 dB below the 3.14 dBm0 full-scale sine.
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(tone**2)) / (32767 / np.sqrt(2)))
    assert rms_dbfs == pytest.approx(-16.14, abs=0.05)
    assert len(list(beep(48000, 440, duration_ms=20))) == 1
