"""Generated tones, checked by what they sound like: the frequencies of
each step (FFT, Goertzel), the cadence, the level, and the hold melody."""

from __future__ import annotations

import numpy as np
import pytest

from switch.media.tones import (
    BEEP,
    COUNTRIES,
    DBM0_AMPLITUDE,
    PROGRESS_TONES,
    melody,
    progress_tone,
    render,
    silence,
)
from tests.media.audio import goertzel, peaks, rms, samples

CASES = [(c, n) for c in COUNTRIES for n in PROGRESS_TONES[c]]


@pytest.mark.parametrize(("country", "name"), CASES)
@pytest.mark.parametrize("rate", [8000, 16000])
def test_each_step_sounds_its_frequencies_for_its_time(country, name, rate):
    tone = progress_tone(country, name)
    pcm = samples(render(tone, rate))
    assert len(pcm) == rate * tone.cycle_ms // 1000
    start = 0
    for step in tone.steps:
        n = rate * step.ms // 1000
        part = pcm[start : start + n]
        if step.freqs:
            # Away from the 4 ms ramps, the step carries exactly its frequencies.
            middle = part[n // 10 : n - n // 10]
            assert peaks(middle, rate, len(step.freqs)) == pytest.approx(
                sorted(step.freqs), abs=rate / len(middle) + 1
            )
            wanted = min(goertzel(middle, rate, f) for f in step.freqs)
            assert goertzel(middle, rate, 1000) < wanted / 100
        else:
            assert not part.any()
        start += n


def test_known_cadences():
    us = progress_tone("us", "ringback")
    assert [(s.freqs, s.ms) for s in us.steps] == [((440, 480), 2000), ((), 4000)]
    uk = progress_tone("UK", "ringback")
    assert [s.ms for s in uk.steps] == [400, 200, 400, 2000]
    assert progress_tone("eu", "busy").steps[0].freqs == (425,)
    assert [s.ms for s in progress_tone("us", "busy").steps] == [500, 500]


def test_level_is_in_dbm0():
    pcm = render(progress_tone("eu", "busy"), 8000)
    on = samples(pcm)[400:3600]  # inside the first 500 ms burst, past the ramp
    expected = DBM0_AMPLITUDE * 10 ** (-13 / 20) / np.sqrt(2)
    assert rms(on) == pytest.approx(expected, rel=0.01)
    # In numbers: a full-scale sine is +3.17 dBm0, so -13 dBm0 is 16.17 dB
    # below it: an RMS of 32767 / sqrt(2) / 10^(16.17/20), about 3602.
    assert rms(on) == pytest.approx(3602, rel=0.01)


def test_steps_start_without_a_click():
    pcm = samples(render(progress_tone("eu", "busy"), 8000))
    assert abs(pcm[0]) < 50 and abs(pcm[1]) < 200
    # The ramp down at the end of the burst, too.
    assert abs(pcm[3999]) < 200


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_beep(rate):
    pcm = render(BEEP, rate)
    assert len(pcm) == 2 * rate // 4
    assert peaks(pcm, rate, 1) == pytest.approx([1000], abs=5)


def test_silence():
    assert silence(20, 8000) == bytes(320)
    assert silence(20, 16000) == bytes(640)
    assert silence(0, 8000) == b""


def test_unknown_country_or_tone_says_what_exists():
    with pytest.raises(ValueError, match=r"country 'xx'.*us, uk, eu, cn"):
        progress_tone("xx", "busy")
    with pytest.raises(ValueError, match=r"no tone 'howler'.*ringback"):
        progress_tone("us", "howler")


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_hold_melody_is_music_within_the_band(rate):
    pcm = samples(melody(rate))
    assert 8 < len(pcm) / rate < 20
    assert np.abs(pcm).max() < 32767  # not clipped
    assert rms(pcm) > 500  # audible
    spectrum = np.abs(np.fft.rfft(pcm))
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    # Its strongest notes are in the C major scale around C5 (523 Hz)...
    strongest = freqs[np.argmax(spectrum)]
    assert 500 < strongest < 900
    # ...and nothing is near the top of the band (where it would alias).
    assert spectrum[freqs > 0.45 * rate].max() < spectrum.max() / 100
    # It ends on a rest, so that it loops without a click.
    assert not pcm[-rate // 10 :].any()
