"""Text to speech with the real espeak-ng: English and Mandarin, at 8 and
16 kHz; rendered once, then read from the disk cache (espeak-ng is not run
again: a wrapper around it logs every run); clear errors."""

from __future__ import annotations

import asyncio
import shutil
import stat

import numpy as np
import pytest

from switch.media.tts import Speech, TtsError, cache_dir
from switch.media.wav import read_wav
from tests.media.audio import rms, samples

ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(
    ESPEAK is None, reason="needs espeak-ng (apt-get install espeak-ng)"
)


@pytest.fixture
def logged_espeak(tmp_path):
    """An espeak-ng that writes its arguments to a log before running."""
    log = tmp_path / "espeak.log"
    wrapper = tmp_path / "espeak-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {ESPEAK} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper, log


def _runs(log) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _is_speech(audio, rate: int) -> None:
    x = samples(audio.pcm)
    assert audio.rate == rate and audio.channels == 1
    assert 0.5 < audio.duration < 10
    assert rms(x) > 300  # loud enough to hear
    # Speech, not a tone: energy spread over the voice band, below Nyquist.
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    voice = spectrum[(freqs > 100) & (freqs < 3400)].sum()
    assert voice > 0.8 * spectrum.sum()


@needs_espeak
async def test_english_is_rendered_once_then_read_from_the_cache(tmp_path, logged_espeak):
    wrapper, log = logged_espeak
    speech = Speech(tmp_path / "tts", str(wrapper))
    audio = await speech.say("Thank you for calling. Please hold.", "en", 8000)
    _is_speech(audio, 8000)
    assert speech.renders == 1
    path = await speech.cache_path("Thank you for calling. Please hold.", "en", 8000)
    assert read_wav(path) == audio
    assert [p.name for p in (tmp_path / "tts").iterdir()] == [path.name]  # no temporary file
    assert len(_runs(log)) == 2  # --version, then the render

    # The same text again, and from a node started afresh: no render.
    assert await speech.say("Thank you for calling. Please hold.", "en", 8000) == audio
    again = Speech(tmp_path / "tts", str(wrapper))
    assert await again.say("  Thank you for calling. Please hold.\n", "en", 8000) == audio
    assert again.renders == 0
    assert _runs(log)[2:] == ["--version"]


@needs_espeak
async def test_mandarin_at_16_khz(tmp_path):
    speech = Speech(tmp_path)
    audio = await speech.say("您好，欢迎致电。请按一。", "cmn", 16000)  # noqa: RUF001 (Chinese text)
    _is_speech(audio, 16000)
    assert speech.renders == 1


@needs_espeak
async def test_the_cache_key_holds_voice_rate_speed_text_and_version(tmp_path):
    speech = Speech(tmp_path)
    base = await speech.cache_path("hello", "en", 8000)
    others = {
        await speech.cache_path("hello", "en", 16000),
        await speech.cache_path("hello", "en-us", 8000),
        await speech.cache_path("hello", "en", 8000, speed=200),
        await speech.cache_path("hello.", "en", 8000),
    }
    assert base not in others and len(others) == 4
    assert "eSpeak NG" in await speech.version()
    speech._version = "eSpeak NG text-to-speech: 9.99"  # an upgraded espeak-ng
    assert await speech.cache_path("hello", "en", 8000) != base


@needs_espeak
async def test_callers_asking_at_once_share_one_render(tmp_path):
    speech = Speech(tmp_path)
    results = await asyncio.gather(*(speech.say("Your call is important to us.") for _ in range(5)))
    assert speech.renders == 1
    assert all(r == results[0] for r in results)


@needs_espeak
async def test_a_damaged_cache_file_is_rendered_again(tmp_path):
    speech = Speech(tmp_path)
    path = await speech.cache_path("Goodbye.")
    tmp_path.mkdir(exist_ok=True)
    path.write_bytes(b"RIFF")  # a disk that filled up, say
    audio = await speech.say("Goodbye.")
    assert speech.renders == 1 and read_wav(path) == audio


async def test_espeak_missing_says_how_to_install_it(tmp_path, monkeypatch):
    speech = Speech(tmp_path, str(tmp_path / "no-such-espeak-ng"))
    with pytest.raises(TtsError, match="espeak-ng is not installed: apt-get install espeak-ng"):
        await speech.say("hello")
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on PATH at all
    with pytest.raises(TtsError, match="apt-get install espeak-ng"):
        await Speech(tmp_path).say("hello")


@needs_espeak
async def test_an_unknown_voice(tmp_path):
    with pytest.raises(TtsError, match=r"espeak-ng failed.*voice does not exist"):
        await Speech(tmp_path).say("hello", "nosuch")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("",), "the text is empty"),
        (("   ",), "the text is empty"),
        (("x" * 5001,), "5001 characters long: at most 5000"),
        (("hello", "--help"), "not a voice name"),
        (("hello", "en", 44100), "8000 or 16000 Hz, not 44100"),
        (("hello", "en", 8000, 10), "speed 10 is out of range"),
    ],
)
async def test_bad_requests(tmp_path, args, match):
    speech = Speech(tmp_path)
    with pytest.raises(TtsError, match=match):
        await speech.say(*args)
    assert speech.renders == 0


@needs_espeak
async def test_text_that_looks_like_options_is_only_spoken(tmp_path):
    audio = await Speech(tmp_path).say("--version -w /tmp/x.wav")
    _is_speech(audio, 8000)


def test_the_cache_lives_in_the_data_directory(tmp_path):
    assert cache_dir(tmp_path) == tmp_path / "tts"


@needs_espeak
async def test_a_cache_that_cannot_be_written(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    with pytest.raises(TtsError, match=r"cannot write the speech cache .*blocked.*writable"):
        await Speech(blocked / "tts").say("hello")
