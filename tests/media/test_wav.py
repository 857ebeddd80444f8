"""WAV files: round trips at every supported rate, what other writers
produce (extra chunks, streamed sizes, WAVE_FORMAT_EXTENSIBLE), bad files
refused with errors that say what was found and what to do, resampling."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from switch.media.tones import BEEP, Step, Tone, render
from switch.media.wav import (
    Audio,
    WavError,
    header,
    parse_wav,
    read_prompt,
    read_wav,
    resample,
    wav_bytes,
    write_wav,
)
from tests.media.audio import goertzel, peaks

PCM = struct.pack("<8h", 0, 1, -1, 32767, -32768, 1234, -4321, 7)


def _wav(fmt: bytes, data: bytes, *, extra: bytes = b"", data_size: int | None = None) -> bytes:
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(tag=1, channels=1, rate=8000, bits=16) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip(tmp_path, rate, channels):
    audio = Audio(PCM, rate, channels)
    path = tmp_path / "a.wav"
    write_wav(path, audio)
    assert read_wav(path) == audio
    assert path.read_bytes()[:44] == header(rate, channels, len(PCM))
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left


def test_audio_length():
    audio = Audio(bytes(16000), 8000)
    assert audio.samples == 8000 and audio.duration == 1.0
    assert Audio(bytes(16000), 8000, 2).duration == 0.5


def test_the_header_is_what_sox_writes():
    data = wav_bytes(Audio(PCM, 8000))
    riff, size, wave, fmt, fmt_size = struct.unpack_from("<4sI4s4sI", data)
    assert (riff, size, wave, fmt, fmt_size) == (b"RIFF", 36 + 16, b"WAVE", b"fmt ", 16)
    assert struct.unpack_from("<HHIIHH", data, 20) == (1, 1, 8000, 16000, 2, 16)


def test_other_chunks_are_skipped_and_odd_chunks_padded():
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd size, one pad byte
    extra += b"fact" + struct.pack("<I", 4) + struct.pack("<I", 8)
    assert parse_wav(_wav(_fmt(), PCM, extra=extra)).pcm == PCM


def test_a_streamed_size_runs_to_the_end_of_the_file():
    # espeak-ng --stdout and other streaming writers do not know the size.
    for placeholder in (0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF):
        assert parse_wav(_wav(_fmt(), PCM, data_size=placeholder)).pcm == PCM


def test_wave_format_extensible_pcm():
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = _fmt(tag=0xFFFE) + struct.pack("<HHI", 22, 16, 4) + guid
    assert parse_wav(_wav(fmt, PCM)) == Audio(PCM, 8000)
    floats = _fmt(tag=0xFFFE) + struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 3) + guid[2:]
    with pytest.raises(WavError, match="32-bit float"):
        parse_wav(_wav(floats, PCM))


def test_a_cut_off_last_sample_is_dropped():
    assert parse_wav(_wav(_fmt(), PCM + b"\x01")).pcm == PCM


@pytest.mark.parametrize(
    ("fmt", "found", "advice"),
    [
        (_fmt(rate=44100, channels=2), "44.1 kHz stereo 16-bit", "-r 8000 -c 1"),
        (_fmt(rate=22050), "22.05 kHz mono 16-bit", "-r 8000 -c 1"),
        (_fmt(bits=8), "8 kHz mono 8-bit", "-b 16"),
        (_fmt(bits=24, rate=48000), "48 kHz mono 24-bit", "-r 48000 -c 1 -b 16"),
        (_fmt(tag=7, bits=8), "8 kHz mono G.711 µ-law", "-e signed-integer"),
        (_fmt(tag=6, bits=8), "8 kHz mono G.711 A-law", "-e signed-integer"),
        (_fmt(tag=0x55), "8 kHz mono MP3", "sox"),
        (_fmt(tag=0x1234), "8 kHz mono format 0x1234", "sox"),
        (_fmt(channels=6), "8 kHz 6-channel 16-bit", "-c 1"),
    ],
)
def test_unsupported_formats_say_what_they_are_and_how_to_convert(fmt, found, advice):
    with pytest.raises(WavError) as err:
        parse_wav(_wav(fmt, PCM), "prompt.wav")
    message = str(err.value)
    assert message.startswith(f"prompt.wav is {found}:")
    assert "convert it with sox prompt.wav" in message and advice in message


def test_the_example_of_the_issue(tmp_path):
    path = tmp_path / "prompt.wav"
    path.write_bytes(_wav(_fmt(rate=44100, channels=2), PCM))
    with pytest.raises(WavError) as err:
        read_prompt(path)
    assert f"{path} is 44.1 kHz stereo 16-bit" in str(err.value)
    assert f"sox {path} -r 8000 -c 1 -b 16 -e signed-integer" in str(err.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "is empty"),
        (b"ID3\x03\x00" + bytes(100), "not a WAV file"),
        (b"RIFF" + struct.pack("<I", 4) + b"WAVE", "no fmt chunk"),
        (b"RIFF" + struct.pack("<I", 28) + b"WAVEfmt " + struct.pack("<I", 16) + _fmt(), "no data"),
        (b"RIFF" + struct.pack("<I", 12) + b"WAVEdata" + struct.pack("<I", 0), "data before"),
        (
            b"RIFF" + struct.pack("<I", 12) + b"WAVEfmt " + struct.pack("<I", 16) + b"\x01",
            "damaged",
        ),
        (_wav(_fmt(), PCM, data_size=1000), "truncated: its header says 1000 bytes"),
    ],
)
def test_broken_files(data, match):
    with pytest.raises(WavError, match=match):
        parse_wav(data, "broken.wav")


def test_a_missing_file(tmp_path):
    with pytest.raises(WavError, match=r"cannot read .*nothing\.wav: No such file"):
        read_wav(tmp_path / "nothing.wav")


def test_prompts_must_be_mono_but_recordings_read_back_in_stereo(tmp_path):
    write_wav(tmp_path / "rec.wav", Audio(PCM, 8000, 2))
    assert read_wav(tmp_path / "rec.wav").channels == 2
    with pytest.raises(WavError, match=r"prompts and music are mono; convert it with sox .* -c 1"):
        read_prompt(tmp_path / "rec.wav")


def test_a_list_chunk_after_the_data():
    # As Audacity and others write it; espeak-ng's own output is in test_tts.
    data = _wav(_fmt(rate=16000), PCM) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    assert parse_wav(data) == Audio(PCM, 16000)


@pytest.mark.parametrize(
    ("rate", "to_rate"), [(48000, 8000), (8000, 16000), (16000, 8000), (22050, 8000), (8000, 48000)]
)
def test_resampling_keeps_the_pitch_and_the_length(rate, to_rate):
    tone = render(Tone((Step((1000,), 1000),)), rate)
    out = resample(tone, rate, to_rate)
    assert len(out) == 2 * to_rate
    assert peaks(out, to_rate, 1) == pytest.approx([1000], abs=2)


def test_downsampling_removes_what_would_fold_back():
    # 5 kHz at 48 kHz has no place at 8 kHz: without the low-pass filter it
    # would come out as a 3 kHz alias.
    t = np.arange(48000) / 48000
    pcm = (10000 * np.sin(2 * np.pi * 5000 * t)).astype("<i2").tobytes()
    out = resample(pcm, 48000, 8000)
    beep = resample(render(BEEP, 48000), 48000, 8000)
    assert goertzel(out, 8000, 3000) < goertzel(beep, 8000, 1000) / 1000


def test_resampling_nothing():
    assert resample(b"", 8000, 16000) == b""
    assert resample(PCM, 8000, 8000) is PCM


def test_any_rate_for_audio_the_node_converts_itself():
    assert parse_wav(_wav(_fmt(rate=22050), PCM), any_rate=True) == Audio(PCM, 22050)
    with pytest.raises(WavError, match="0 kHz"):
        parse_wav(_wav(_fmt(rate=0), PCM), any_rate=True)


def test_the_advice_is_ready_to_paste_in_a_shell():
    with pytest.raises(WavError) as err:
        parse_wav(_wav(_fmt(rate=44100), PCM), "/srv/prompts/main menu.wav")
    assert str(err.value).endswith(
        "convert it with sox '/srv/prompts/main menu.wav' -r 8000 -c 1 -b 16 -e signed-integer "
        "'/srv/prompts/main menu-8k.wav'"
    )


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("switch.media.wav.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_wav(tmp_path / "a.wav", Audio(PCM, 8000))
    assert list(tmp_path.iterdir()) == []
