"""G.711 tables against the standard's own arithmetic, known code words and audioop."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from switch.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # removed in Python 3.13; a second opinion where it exists
    except ImportError:
        audioop = None

EVERY_SAMPLE = np.arange(65536, dtype=np.uint16).view(np.int16).astype("<i2").tobytes()
EVERY_CODE = bytes(range(256))


# Scalar transcriptions of the G.191 reference coder, one sample at a time,
# written independently of the vector code the module uses to fill its tables.
def _search(value: int, ends: list[int]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return len(ends)


def ref_ulaw(sample: int) -> int:
    pcm = sample >> 2
    mask = 0xFF
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    pcm = min(pcm, 8159) + 33
    seg = _search(pcm, [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def ref_alaw(sample: int) -> int:
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _search(pcm, [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (1 if seg < 2 else seg)) & 0xF)) ^ mask


def ref_ulaw_decode(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0xF) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def ref_alaw_decode(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0xF) << 4
    seg = (a & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def samples(pcm: bytes) -> list[int]:
    return np.frombuffer(pcm, dtype="<i2").tolist()


def test_encoders_match_the_reference_for_every_sample():
    every = samples(EVERY_SAMPLE)
    assert list(g711.ulaw_encode(EVERY_SAMPLE)) == [ref_ulaw(s) for s in every]
    assert list(g711.alaw_encode(EVERY_SAMPLE)) == [ref_alaw(s) for s in every]


def test_decoders_match_the_reference_for_every_code():
    assert samples(g711.ulaw_decode(EVERY_CODE)) == [ref_ulaw_decode(c) for c in range(256)]
    assert samples(g711.alaw_decode(EVERY_CODE)) == [ref_alaw_decode(c) for c in range(256)]


@pytest.mark.parametrize(
    ("encode", "sample", "code"),
    [
        (g711.ulaw_encode, 0, 0xFF),
        (g711.ulaw_encode, 32767, 0x80),
        (g711.ulaw_encode, -32768, 0x00),
        (g711.ulaw_encode, 1000, 0xCE),
        (g711.ulaw_encode, -1000, 0x4E),
        (g711.alaw_encode, 0, 0xD5),
        (g711.alaw_encode, 32767, 0xAA),
        (g711.alaw_encode, -32768, 0x2A),
        (g711.alaw_encode, 1000, 0xFA),
        (g711.alaw_encode, -1000, 0x7A),
    ],
)
def test_known_code_words(encode, sample, code):
    assert encode(np.array([sample], dtype="<i2").tobytes()) == bytes([code])


@pytest.mark.parametrize(
    ("decode", "code", "sample"),
    [
        (g711.ulaw_decode, 0xFF, 0),
        (g711.ulaw_decode, 0x7F, 0),
        (g711.ulaw_decode, 0x80, 32124),
        (g711.ulaw_decode, 0x00, -32124),
        (g711.alaw_decode, 0xD5, 8),
        (g711.alaw_decode, 0x55, -8),
        (g711.alaw_decode, 0xAA, 32256),
        (g711.alaw_decode, 0x2A, -32256),
    ],
)
def test_known_decoded_values(decode, code, sample):
    assert samples(decode(bytes([code]))) == [sample]


def test_silence_constants():
    assert g711.ulaw_encode(b"\0\0") == bytes([g711.ULAW_SILENCE])
    assert g711.alaw_encode(b"\0\0") == bytes([g711.ALAW_SILENCE])


@pytest.mark.skipif(audioop is None, reason="audioop was removed in Python 3.13")
def test_same_bytes_as_audioop():
    assert g711.ulaw_encode(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert g711.alaw_encode(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)
    assert g711.ulaw_decode(EVERY_CODE) == audioop.ulaw2lin(EVERY_CODE, 2)
    assert g711.alaw_decode(EVERY_CODE) == audioop.alaw2lin(EVERY_CODE, 2)


def test_code_words_survive_a_round_trip():
    # Every code decodes to a value that encodes back to it; µ-law's
    # "negative zero" 0x7F is the one exception (it decodes to 0, which is 0xFF).
    again = g711.ulaw_encode(g711.ulaw_decode(EVERY_CODE))
    assert [c for c in range(256) if again[c] != c] == [0x7F]
    assert g711.alaw_encode(g711.alaw_decode(EVERY_CODE)) == EVERY_CODE


def test_law_to_law_conversion_is_decode_then_encode():
    assert g711.ulaw_to_alaw(EVERY_CODE) == g711.alaw_encode(g711.ulaw_decode(EVERY_CODE))
    assert g711.alaw_to_ulaw(EVERY_CODE) == g711.ulaw_encode(g711.alaw_decode(EVERY_CODE))


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_a_tone_keeps_the_signal_to_noise_ratio_of_g711(encode, decode):
    # A 1 kHz tone at -10 dBFS: G.711's companding keeps about 38 dB of SNR
    # over a wide range of levels (G.712 asks 35 dB or better at this level).
    t = np.arange(8000) / 8000
    tone = np.round(0.316 * 32767 * np.sin(2 * math.pi * 1000 * t)).astype("<i2")
    out = np.frombuffer(decode(encode(tone.tobytes())), dtype="<i2").astype(float)
    noise = out - tone
    snr = 10 * math.log10(np.sum(tone.astype(float) ** 2) / np.sum(noise**2))
    assert snr > 35


def test_an_odd_number_of_bytes_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.ulaw_encode(b"\0\0\0")
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.alaw_encode(b"\1")


def test_empty_payloads():
    assert g711.ulaw_decode(b"") == b""
    assert g711.ulaw_encode(b"") == b""
