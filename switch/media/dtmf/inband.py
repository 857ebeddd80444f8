"""DTMF tones in the audio, found with the Goertzel algorithm, sans-IO.

For trunks that send keys as sound. `ToneDetector.feed()` takes 8 kHz
linear audio (16-bit signed little-endian mono, the node's internal form)
in frames of any length, 20 ms usually, and returns `DigitBegin` and `Digit`
events; it keeps its state across frames.

How it listens: windows of 160 samples (20 ms, so that 697 and 770 Hz, the
closest pair, fall in separate 50 Hz bins) every 80 samples (10 ms, so that
a short tone fills whole windows). In each window the Goertzel power of the
eight DTMF frequencies is measured, each at its nominal value and 1.5%
either side (the tolerance ITU-T Q.24 gives senders; a 50 Hz bin alone
would lose half the power of a 1633 Hz tone 1.5% off), and the strongest
row (697-941 Hz) and column (1209-1633 Hz) are a key when:

- each is louder than `min_level` (dBm0);
- the twist is within bounds: the column at most `forward_twist` dB below
  the row (lines lose the high frequencies) and `reverse_twist` dB above it;
- each beats the others of its group by `relative_peak` dB;
- the pair holds `tone_share` of the window's energy: speech spreads its
  energy over many harmonics, a DTMF key puts nearly all of it in two.

A key begins after `min_on` consecutive windows agree on it (two: 30 ms
of tone; a 40 ms key, the shortest ITU-T Q.24 asks to accept, always fills
two windows, a 20 ms one never does), and it ends after `min_off`
consecutive windows without it (four: a dropout of 10 ms spoils at most
three windows and does not split a key in two; a pause of 40 ms, the
shortest Q.24 asks to see, spoils four). So a long tone is one digit, and a
key pressed twice is two.

The Goertzel recursion s[n] = x[n] + 2cos(w)s[n-1] - s[n-2] is linear in
the samples, so its final two states are dot products of the window with the
recursion's impulse response: one matrix product computes them for every
window of a frame and all eight frequencies at once, which is what makes
this cheap in numpy. `goertzel_power()` is the textbook loop, for tests.

Levels: 0 dBm0 is a sine 3.17 dB below 16-bit full scale (G.711: a
full-scale sine is +3.17 dBm0), an amplitude of 22 748.
"""

from __future__ import annotations

import math

import numpy as np

from .digits import DIGITS, Digit, DigitBegin, DtmfError
from .events import event_code

RATE = 8000
WINDOW = 160  # samples: 20 ms
HOP = 80  # samples: 10 ms
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
FULL_SCALE_DBM0 = 3.17
ZERO_DBM0 = 32767 * 10 ** (-FULL_SCALE_DBM0 / 20)  # the amplitude of a 0 dBm0 sine

TOLERANCE = 0.015
# Three probes per DTMF frequency, in the order ROWS + COLUMNS.
PROBES = tuple(f * k for f in ROWS + COLUMNS for k in (1 - TOLERANCE, 1.0, 1 + TOLERANCE))


def _goertzel_matrix() -> tuple[np.ndarray, np.ndarray]:
    """The window-to-states matrix (WINDOW x 2P: s[N-1] for the P probes,
    then s[N-2]) and the 2cos(w) of each probe."""
    coeff = 2 * np.cos(2 * np.pi * np.array(PROBES) / RATE)
    # Impulse response of the recursion: h[0] = 1, h[1] = c, h[k] = c h[k-1] - h[k-2].
    h = np.zeros((WINDOW, len(PROBES)))
    h[0] = 1.0
    h[1] = coeff
    for k in range(2, WINDOW):
        h[k] = coeff * h[k - 1] - h[k - 2]
    last = h[::-1]  # sample n weighs h[N-1-n] in s[N-1]
    before = np.vstack([h[-2::-1], np.zeros((1, len(PROBES)))])  # and h[N-2-n] in s[N-2]
    return np.hstack([last, before]), coeff


_MATRIX, _COEFF = _goertzel_matrix()


def goertzel_power(samples: list[float], frequency: float, rate: int = RATE) -> float:
    """|X(f)|^2 over `samples` by the Goertzel recursion, one sample at a time."""
    c = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + c * s1 - s2, s1
    return s1 * s1 + s2 * s2 - c * s1 * s2


def probe_powers(windows: np.ndarray) -> np.ndarray:
    """|X(f)|^2 at each of the PROBES for each row of `windows` (n x WINDOW)."""
    states = windows @ _MATRIX
    s1, s2 = states[:, : len(PROBES)], states[:, len(PROBES) :]
    return s1 * s1 + s2 * s2 - _COEFF * s1 * s2


def window_powers(windows: np.ndarray) -> np.ndarray:
    """The power of the eight DTMF frequencies (n x 8): the best of each one's probes."""
    return probe_powers(windows).reshape(len(windows), 8, 3).max(axis=2)


def _ratio(db: float) -> float:
    """A power ratio given in dB."""
    return 10 ** (db / 10)


def generate(
    digit: str, seconds: float, level: float = -7.0, twist: float = 0.0, start: int = 0
) -> bytes:
    """`digit` as sound: linear 8 kHz audio, each frequency at `level` dBm0 and
    the column `twist` dB above the row. For sending keys in-band, and tests.

    `start` is the sample the audio begins at: a tone made frame by frame
    (`start` = 0, 160, 320...) is one continuous sine, without clicks."""
    key = DIGITS[event_code(digit)]
    row = next(i for i, keys in enumerate(KEYPAD) if key in keys)
    col = KEYPAD[row].index(key)
    t = (start + np.arange(round(seconds * RATE))) / RATE
    low = ZERO_DBM0 * 10 ** (level / 20)
    high = ZERO_DBM0 * 10 ** ((level + twist) / 20)
    wave = low * np.sin(2 * np.pi * ROWS[row] * t) + high * np.sin(2 * np.pi * COLUMNS[col] * t)
    return np.clip(np.round(wave), -32768, 32767).astype("<i2").tobytes()


class ToneDetector:
    """DTMF keys in one stream of 8 kHz linear audio."""

    def __init__(
        self,
        *,
        min_level: float = -36.0,
        forward_twist: float = 8.0,
        reverse_twist: float = 4.0,
        relative_peak: float = 6.0,
        tone_share: float = 0.85,
        min_on: int = 2,
        min_off: int = 4,
    ) -> None:
        # A sine of amplitude A on its frequency has |X|^2 = (A N / 2)^2.
        self._min_power = (ZERO_DBM0 * 10 ** (min_level / 20) * WINDOW / 2) ** 2
        self._forward = _ratio(forward_twist)
        self._reverse = _ratio(reverse_twist)
        self._peak = _ratio(relative_peak)
        # A sine's energy over the window is |X|^2 * 2 / N.
        self._share = tone_share * WINDOW / 2
        self.min_on = min_on
        self.min_off = min_off
        self._pending = np.zeros(0)  # samples not yet in a window's hop
        self._candidate: str | None = None
        self._count = 0  # consecutive windows that heard the candidate
        self._key: str | None = None  # the key sounding now
        self._windows = 0  # windows from its first to its last hit
        self._misses = 0  # consecutive windows without it

    def feed(self, pcm: bytes) -> list[DigitBegin | Digit]:
        """The next frame of audio; what it completed."""
        if len(pcm) % 2:
            raise DtmfError(f"linear audio comes in 2-byte samples; got {len(pcm)} bytes")
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        hops = len(samples) // HOP
        if hops < 2:
            self._pending = samples
            return []
        # Windows of two hops each, one hop apart; the last hop starts the next window.
        halves = samples[: hops * HOP].reshape(hops, HOP)
        windows = np.hstack([halves[:-1], halves[1:]])
        self._pending = samples[(hops - 1) * HOP :]
        out: list[DigitBegin | Digit] = []
        for key in self._keys(windows):
            self._step(key, out)
        return out

    @property
    def sounding(self) -> bool:
        """A key is down (begun and not yet ended)."""
        return self._key is not None

    def flush(self) -> list[DigitBegin | Digit]:
        """The stream stopped: a key sounding until now has ended."""
        out: list[DigitBegin | Digit] = []
        if self._key is not None:
            out.append(self._end())
        self._candidate, self._count, self._pending = None, 0, np.zeros(0)
        return out

    def _keys(self, windows: np.ndarray) -> list[str | None]:
        """The key each window hears, or None. The powers come from numpy in
        one go; the checks on eight numbers a window are quicker in Python."""
        powers = window_powers(windows).tolist()
        energies = np.einsum("ij,ij->i", windows, windows).tolist()
        keys: list[str | None] = []
        least, forward, reverse, peak = self._min_power, self._forward, self._reverse, self._peak
        for p, energy in zip(powers, energies, strict=True):
            keys.append(None)
            rows, cols = p[:4], p[4:]
            row, col = max(rows), max(cols)
            if row < least or col < least or col > row * reverse or col * forward < row:
                continue
            if row + col < self._share * energy:
                continue  # speech, music, noise: energy spread wider than two tones
            r, c = rows.index(row), cols.index(col)
            # The strongest of a group beats each of the others by the relative peak.
            if any(x * peak > row for i, x in enumerate(rows) if i != r):
                continue
            if any(x * peak > col for i, x in enumerate(cols) if i != c):
                continue
            keys[-1] = KEYPAD[r][c]
        return keys

    def _step(self, heard: str | None, out: list[DigitBegin | Digit]) -> None:
        if self._key is not None:
            if heard == self._key:
                self._windows += self._misses + 1
                self._misses = 0
                return
            self._misses += 1
            if self._misses < self.min_off:
                return
            out.append(self._end())
        if heard is not None and heard == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = heard, 1 if heard else 0
        if heard is not None and self._count >= self.min_on:
            self._key, self._windows, self._misses = heard, self._count, 0
            self._candidate, self._count = None, 0
            out.append(DigitBegin(heard))

    def _end(self) -> Digit:
        key, self._key = self._key, None
        assert key is not None
        self._misses = 0
        return Digit(key, ((self._windows - 1) * HOP + WINDOW) / RATE)
