"""Resampling 8 <-> 16 <-> 48 kHz: frequency and level kept, no aliasing, no clicks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switch.media.resample import Resampler, lowpass


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def in_frames(resampler: Resampler, pcm: bytes, ms: int = 20) -> bytes:
    size = resampler.rate_in * ms // 1000 * 2
    return b"".join(resampler.process(pcm[i : i + size]) for i in range(0, len(pcm), size))


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(float)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def level_db(x: np.ndarray, amplitude: float = 10000) -> float:
    return 20 * math.log10(max(np.sqrt(np.mean(x**2)), 1e-9) / (amplitude / math.sqrt(2)))


PAIRS_AND_TONES = [
    (8000, 48000, 1000),
    (8000, 48000, 3400),
    (48000, 8000, 300),
    (48000, 8000, 3400),
    (16000, 48000, 6000),
    (48000, 16000, 6000),
    (8000, 16000, 2000),
    (16000, 8000, 2000),
]


@pytest.mark.parametrize(("rate_in", "rate_out", "freq"), PAIRS_AND_TONES)
def test_a_tone_keeps_its_frequency_and_level(rate_in, rate_out, freq):
    resampler = Resampler(rate_in, rate_out)
    out = as_float(in_frames(resampler, tone(freq, rate_in)))
    assert len(out) == rate_out  # 1 s in, 1 s out
    settled = out[rate_out // 10 :]  # past the filter's delay
    assert abs(peak_frequency(settled, rate_out) - freq) < 5
    assert abs(level_db(settled)) < 1


@pytest.mark.parametrize(
    ("rate_in", "rate_out", "freq"),
    [
        (48000, 8000, 4000),
        (48000, 8000, 5000),
        (48000, 8000, 7000),
        (48000, 16000, 9000),
        (16000, 8000, 4500),
    ],
)
def test_going_down_nothing_above_the_new_nyquist_frequency_aliases_back(rate_in, rate_out, freq):
    out = as_float(in_frames(Resampler(rate_in, rate_out), tone(freq, rate_in)))
    # Unfiltered, a 5 kHz tone would come out of 8 kHz as a full-level 3 kHz one.
    assert level_db(out[rate_out // 10 :]) < -60


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 48000), (16000, 48000), (8000, 16000)])
def test_going_up_adds_no_images(rate_in, rate_out):
    out = as_float(in_frames(Resampler(rate_in, rate_out), tone(1000, rate_in)))[rate_out // 10 :]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / rate_out)
    # The first image of 1 kHz is at rate_in - 1 kHz: at least 60 dB below the tone.
    image = spectrum[np.abs(freqs - (rate_in - 1000)) < 50].max()
    assert 20 * math.log10(image / spectrum.max()) < -60


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 48000), (48000, 8000), (48000, 16000)])
def test_frames_join_without_clicks(rate_in, rate_out):
    # The same stream resampled in 20 ms frames and in one piece is the same:
    # the state carries across frame edges.
    pcm = tone(440, rate_in)
    whole = Resampler(rate_in, rate_out).process(pcm)
    framed = in_frames(Resampler(rate_in, rate_out), pcm)
    assert framed == whole
    # And past the start (where the filter rings as the tone begins from
    # silence) no step is bigger than the tone's own slope allows.
    x = as_float(framed)[rate_out // 50 :]
    assert np.max(np.abs(np.diff(x))) < 10000 * 2 * math.pi * 440 / rate_out * 1.1


def test_odd_frame_lengths_keep_the_leftover_samples():
    pcm = tone(440, 48000, 0.5)
    whole = Resampler(48000, 8000).process(pcm)
    pieces = Resampler(48000, 8000)
    out = b"".join(pieces.process(pcm[i : i + 250]) for i in range(0, len(pcm), 250))
    assert out == whole[: len(out)]
    assert len(whole) - len(out) <= 2


def test_reset_starts_from_silence():
    resampler = Resampler(8000, 48000)
    first = resampler.process(tone(440, 8000, 0.02))
    resampler.process(tone(900, 8000, 0.5))
    resampler.reset()
    assert resampler.process(tone(440, 8000, 0.02)) == first


def test_same_rate_passes_through_and_delay_is_half_the_filter():
    assert Resampler(8000, 8000).process(b"\1\2\3\4") == b"\1\2\3\4"
    assert Resampler(8000, 8000).delay == 0
    r = Resampler(8000, 48000)
    assert r.delay == (len(lowpass(48000, 8000)) - 1) / 2 / 48000
    assert r.delay < 0.005


def test_the_filter_is_flat_in_the_telephone_band():
    h = lowpass(48000, 8000)
    response = np.abs(np.fft.rfft(h, 48000))  # 1 Hz bins
    assert np.all(np.abs(20 * np.log10(response[300:3401])) < 0.1)
    assert np.all(20 * np.log10(response[4000:] + 1e-12) < -69)


def test_loud_input_is_clipped_not_wrapped():
    pcm = np.full(960, 32767, dtype="<i2").tobytes()
    out = as_float(Resampler(48000, 8000).process(pcm * 10))
    assert out.max() <= 32767 and out.min() >= -32768
    assert out[-1] > 32000


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44100, 8000), (8000, 22050)])
def test_unsupported_rates_are_refused_with_the_supported_ones(rate_in, rate_out):
    with pytest.raises(ValueError, match="rates supported are 8000, 16000, 48000"):
        Resampler(rate_in, rate_out)


def test_an_odd_number_of_bytes_is_refused():
    with pytest.raises(ValueError, match="even number of bytes"):
        Resampler(8000, 48000).process(b"\0\0\0")
