"""Opus through libopus: a tone survives, losses are concealed, bad input is refused."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from switch.media.opus import OpusDecoder, OpusEncoder, OpusError


def tone(freq: float, rate: int, seconds: float, amplitude: float = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def frames(pcm: bytes, rate: int, ms: int = 20) -> list[bytes]:
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def peak_frequency(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


@pytest.mark.parametrize("rate", [48000, 16000, 8000])
def test_a_tone_comes_back_at_its_frequency_and_level(rate):
    encoder, decoder = OpusEncoder(rate), OpusDecoder(rate)
    source = tone(1000, rate, 1.0)
    out = b"".join(decoder.decode(encoder.encode(f)) for f in frames(source, rate))
    assert len(out) == len(source)
    settled = out[len(out) // 5 :]  # past the codec's start-up
    assert abs(peak_frequency(settled, rate) - 1000) < 10
    assert abs(20 * math.log10(rms(settled) / rms(source))) < 1


def test_payloads_are_compact_at_the_configured_bitrate():
    encoder = OpusEncoder(48000, bitrate=24000)
    sizes = [len(encoder.encode(f)) for f in frames(tone(440, 48000, 1.0), 48000)]
    # 24 kbit/s in 20 ms frames is 60 bytes a frame on average (VBR varies).
    assert 30 < sum(sizes) / len(sizes) < 90


def test_concealment_fills_a_lost_frame_with_audio_like_its_neighbours():
    encoder, decoder = OpusEncoder(48000), OpusDecoder(48000)
    payloads = [encoder.encode(f) for f in frames(tone(500, 48000, 0.5), 48000)]
    for p in payloads[:10]:
        decoder.decode(p)
    filled = decoder.conceal()
    assert len(filled) == 1920  # the last frame's length: 20 ms
    assert rms(filled) > 1000  # continues the tone rather than silence
    assert len(decoder.conceal(samples=480)) == 960  # a 10 ms gap


def test_fec_rebuilds_a_lost_frame_from_the_next_payload():
    source = tone(700, 48000, 1.0)
    encoder = OpusEncoder(48000, fec=True, expected_loss=20)
    payloads = [encoder.encode(f) for f in frames(source, 48000)]
    lost = 30
    reference = OpusDecoder(48000)
    clean = [reference.decode(p) for p in payloads]

    with_fec, plain = OpusDecoder(48000), OpusDecoder(48000)
    for p in payloads[:lost]:
        with_fec.decode(p)
        plain.decode(p)
    recovered = with_fec.conceal(payloads[lost + 1])
    concealed = plain.conceal()
    # The FEC copy is a lower-rate encoding of the same frame: closer to the
    # clean decode than a guess made from the past alone.
    err_fec = rms_difference(recovered, clean[lost])
    err_plc = rms_difference(concealed, clean[lost])
    assert len(recovered) == 1920
    assert err_fec < err_plc


def rms_difference(a: bytes, b: bytes) -> float:
    x = np.frombuffer(a, dtype="<i2").astype(float)
    y = np.frombuffer(b, dtype="<i2").astype(float)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def test_an_empty_payload_is_concealed():
    encoder, decoder = OpusEncoder(8000), OpusDecoder(8000)
    decoder.decode(encoder.encode(tone(300, 8000, 0.02)))
    assert len(decoder.decode(b"")) == 320


def test_a_corrupt_payload_raises_opus_error_and_the_decoder_carries_on():
    encoder, decoder = OpusEncoder(48000), OpusDecoder(48000)
    good = encoder.encode(tone(440, 48000, 0.02))
    # TOC byte of code 3 (arbitrary frame count) with a frame count of zero.
    with pytest.raises(OpusError, match="cannot decode"):
        decoder.decode(b"\x03\x00")
    assert isinstance(OpusError("x"), ValueError)
    assert len(decoder.decode(good)) == 1920
    # A corrupt payload after a loss: concealment without FEC, no exception.
    assert len(decoder.conceal(b"\x03\x00")) == 1920


def test_frames_opus_cannot_code_are_refused_with_the_sizes_it_can():
    encoder = OpusEncoder(48000)
    with pytest.raises(OpusError, match="1920 bytes for 20 ms"):
        encoder.encode(b"\0" * 1000)
    assert len(encoder.encode(b"\0" * 1920 * 3)) > 0  # 60 ms is allowed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 44100}, "Opus works at"),
        ({"bitrate": 1000}, "bitrate"),
        ({"complexity": 11}, "complexity"),
        ({"expected_loss": 101}, "percentage"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OpusEncoder(**kwargs)


def test_a_bad_gap_length_is_refused():
    decoder = OpusDecoder(48000)
    with pytest.raises(ValueError, match=r"multiple of 2\.5 ms"):
        decoder.conceal(samples=100)
    with pytest.raises(ValueError, match="Opus works at"):
        OpusDecoder(44100)


def test_a_missing_libopus_is_named_with_the_package_to_install():
    # A fresh interpreter where ctypes finds no library named "opus".
    code = (
        "import ctypes.util, os, sys\n"
        "ctypes.util.find_library = lambda name: None\n"
        "os.path.exists = lambda path: False\n"
        "try:\n"
        "    import switch.media.opus\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert "apt-get install libopus0" in out.stdout
