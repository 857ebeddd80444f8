"""Audio analysis for the media tests: what frequency a signal carries."""

from __future__ import annotations

import numpy as np


def samples(pcm: bytes) -> np.ndarray:
    """16-bit little-endian linear PCM as floats."""
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def goertzel(pcm: bytes | np.ndarray, rate: int, freq: float) -> float:
    """The power of `freq` in the signal (Goertzel), normalised by length."""
    x = samples(pcm) if isinstance(pcm, bytes | bytearray) else pcm
    coeff = 2 * np.cos(2 * np.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (len(x) ** 2)


def peaks(pcm: bytes | np.ndarray, rate: int, count: int) -> list[float]:
    """The `count` strongest frequencies (Hz, by FFT, to the nearest bin)."""
    x = samples(pcm) if isinstance(pcm, bytes | bytearray) else pcm
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    found: list[float] = []
    # Strongest first, skipping the bins next to a peak already found.
    for i in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[i] - f) > 20 for f in found):
            found.append(float(freqs[i]))
        if len(found) == count:
            break
    return sorted(found)


def rms(pcm: bytes | np.ndarray) -> float:
    x = samples(pcm) if isinstance(pcm, bytes | bytearray) else pcm
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
