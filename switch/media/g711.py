"""G.711 µ-law (PCMU) and A-law (PCMA), by lookup tables.

Audio inside the node is "linear": 16-bit signed little-endian mono PCM, as
bytes. G.711 payloads are one byte per sample at 8 kHz.

The per-sample arithmetic is the segment (chord) coding of ITU-T G.711
§3 and §4, written once in vector form to fill the tables when the module is
imported; it gives the same bytes as the reference coder of ITU-T G.191 (and
as Python's old ``audioop``):

- µ-law works on the 14 most significant bits of a sample, adds the bias of
  33, and keeps the segment (3 bits) and four mantissa bits, all inverted.
- A-law works on the 13 most significant bits and has no bias; its even bits
  are inverted (XOR 0x55).

Decoding is a 256-entry table of 16-bit values, applied with two
``bytes.translate`` calls (one per output byte) interleaved into the
output: no Python loop per sample. Encoding is a 65536-entry table indexed
by the sample itself (numpy fancy indexing). Both cost a few microseconds
for a 20 ms frame (160 samples); tests/media/test_g711.py prints the figure.

``ulaw_to_alaw`` and ``alaw_to_ulaw`` convert between the two laws in one
``bytes.translate`` by decoding and re-encoding each of the 256 code words.
This is what a decode/encode pair would give, not the slightly different
conversion tables of G.711 Tables 3 and 4.
"""

from __future__ import annotations

import numpy as np

ULAW_SILENCE = 0xFF  # what 0 encodes to in µ-law
ALAW_SILENCE = 0xD5  # and in A-law

_ULAW_BIAS = 0x84  # 33 in 14-bit, as the 16-bit value G.711 decoders return
_ULAW_CLIP = 8159  # largest 14-bit magnitude µ-law represents, before the bias


def _segment(magnitude: np.ndarray, first_end: int) -> np.ndarray:
    """The G.711 segment of each magnitude: segment s ends at (first_end + 1) << s, less one.

    Values past the last segment get 8, which the callers clip.
    """
    ends = np.array([((first_end + 1) << s) - 1 for s in range(8)])
    return np.searchsorted(ends, magnitude, side="left")


def _ulaw_encode(samples: np.ndarray) -> np.ndarray:
    pcm = samples.astype(np.int64) >> 2  # 14-bit, arithmetic shift like G.191
    negative = pcm < 0
    magnitude = np.where(negative, -pcm, pcm)
    magnitude = np.minimum(magnitude, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, 0x3F)
    code = (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _ulaw_decode(codes: np.ndarray) -> np.ndarray:
    u = ~codes.astype(np.int64) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _alaw_encode(samples: np.ndarray) -> np.ndarray:
    pcm = samples.astype(np.int64) >> 3  # 13-bit
    negative = pcm < 0
    # One's complement for negatives: A-law has no code for -0, so -1..-8
    # (16-bit -8..-1) land in the first step below zero.
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = _segment(magnitude, 0x1F)
    mantissa = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa)
    return (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)


def _alaw_decode(codes: np.ndarray) -> np.ndarray:
    a = codes.astype(np.int64) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ALL_CODES = np.arange(256, dtype=np.uint8)
# Every 16-bit sample in the order its little-endian bytes read as uint16.
_ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view(np.int16)

ULAW_DECODE: np.ndarray = _ulaw_decode(_ALL_CODES)  # code -> int16 sample
ALAW_DECODE: np.ndarray = _alaw_decode(_ALL_CODES)
_ULAW_ENCODE = _ulaw_encode(_ALL_SAMPLES)  # uint16 view of a sample -> code
_ALAW_ENCODE = _alaw_encode(_ALL_SAMPLES)


def _byte_tables(decode: np.ndarray) -> tuple[bytes, bytes]:
    as_bytes = decode.astype("<i2").view(np.uint8).reshape(256, 2)
    return as_bytes[:, 0].tobytes(), as_bytes[:, 1].tobytes()


_ULAW_LOW, _ULAW_HIGH = _byte_tables(ULAW_DECODE)
_ALAW_LOW, _ALAW_HIGH = _byte_tables(ALAW_DECODE)
_ULAW_TO_ALAW = _ALAW_ENCODE[ULAW_DECODE.view(np.uint16)].tobytes()
_ALAW_TO_ULAW = _ULAW_ENCODE[ALAW_DECODE.view(np.uint16)].tobytes()


def _decode(payload: bytes, low: bytes, high: bytes) -> bytes:
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(low)
    out[1::2] = payload.translate(high)
    return bytes(out)


def _check_linear(pcm: bytes) -> None:
    if len(pcm) % 2:
        raise ValueError(
            f"linear audio is 16-bit samples, so an even number of bytes; got {len(pcm)}"
        )


def ulaw_decode(payload: bytes) -> bytes:
    """µ-law bytes (PCMU payload) to linear: 16-bit LE, two bytes per code."""
    return _decode(payload, _ULAW_LOW, _ULAW_HIGH)


def alaw_decode(payload: bytes) -> bytes:
    """A-law bytes (PCMA payload) to linear: 16-bit LE, two bytes per code."""
    return _decode(payload, _ALAW_LOW, _ALAW_HIGH)


def ulaw_encode(pcm: bytes) -> bytes:
    """Linear (16-bit LE, even length) to µ-law bytes; ValueError on an odd length."""
    _check_linear(pcm)
    return _ULAW_ENCODE[np.frombuffer(pcm, dtype="<u2")].tobytes()


def alaw_encode(pcm: bytes) -> bytes:
    """Linear (16-bit LE, even length) to A-law bytes; ValueError on an odd length."""
    _check_linear(pcm)
    return _ALAW_ENCODE[np.frombuffer(pcm, dtype="<u2")].tobytes()


def ulaw_to_alaw(payload: bytes) -> bytes:
    """PCMU payload to PCMA, code by code (decode then encode, in one table)."""
    return payload.translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(payload: bytes) -> bytes:
    """PCMA payload to PCMU, code by code (decode then encode, in one table)."""
    return payload.translate(_ALAW_TO_ULAW)
