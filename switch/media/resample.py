"""Sample-rate conversion between 8, 16 and 48 kHz, frame by frame.

Telephony audio (G.711) is 8 kHz, wideband is 16 kHz and Opus (what browsers
send) is 48 kHz. These rates are integer multiples of each other, so a
`Resampler` only ever interpolates by an integer factor L or decimates by an
integer factor M, with one linear-phase FIR low-pass filter:

- Going down, the filter removes everything above the new Nyquist
  frequency before every M-th sample is kept; without it a 5 kHz tone in a
  48 kHz stream would come out of the 8 kHz one as a 3 kHz alias.
- Going up, zeros are stuffed between samples and the filter removes the
  images above the old Nyquist frequency. It is run as L polyphase
  sub-filters so that no multiplication by a stuffed zero is done.
  Decimating is polyphase too: M short convolutions, one per input phase,
  so that the outputs thrown away are never computed.

The filter is a Kaiser-windowed sinc: flat (within 0.1 dB) up to 85% of the
lower rate's Nyquist frequency (3.4 kHz at 8 kHz, the telephone band; 6.8
kHz at 16 kHz), at least 70 dB down from the Nyquist frequency on. It is
designed once per pair of rates. Its delay is half its length: about 3.6 ms
for 8 <-> 48 kHz.

A `Resampler` is stateful: it keeps the last input samples the filter still
needs, so consecutive 20 ms frames join with no click at their edges, and
it keeps any input samples that do not yet make a whole output sample when
decimating (frames of a multiple of M samples never leave any). Use one per
direction per stream. Input and output are linear audio (16-bit signed
little-endian mono bytes); the arithmetic is numpy in float64 (30 to 60 µs
per 20 ms frame each way for 8 <-> 48 kHz; ``python -m bench --only
codecs`` gives the figures).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RATES = (8000, 16000, 48000)
PASSBAND = 0.85  # of the lower rate's Nyquist frequency
STOPBAND_DB = 70.0


@functools.cache
def lowpass(high_rate: int, low_rate: int) -> np.ndarray:
    """The FIR filter (at `high_rate`) that keeps what `low_rate` can carry.

    Passband edge at PASSBAND of low_rate's Nyquist frequency, stopband from
    the Nyquist frequency, STOPBAND_DB down; unit gain at 0 Hz. Odd length,
    symmetric: linear phase.
    """
    nyquist = low_rate / 2
    edge = PASSBAND * nyquist
    cutoff = (edge + nyquist) / 2 / high_rate  # cycles per sample
    width = (nyquist - edge) / high_rate
    # Kaiser's estimates of the length and the window's shape for STOPBAND_DB.
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    taps = math.ceil((STOPBAND_DB - 7.95) / (14.36 * width)) | 1
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, beta)
    return h / h.sum()


class Resampler:
    """Converts a stream of linear audio from `rate_in` to `rate_out`.

    `process(pcm)` takes any number of whole samples and returns what they
    make at the new rate; 20 ms in gives 20 ms out (after the first frame,
    whose start carries the filter's delay as silence).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        for rate in (rate_in, rate_out):
            if rate not in RATES:
                raise ValueError(
                    f"cannot resample {rate_in} Hz to {rate_out} Hz: "
                    f"rates supported are {', '.join(map(str, RATES))}"
                )
        self.rate_in = rate_in
        self.rate_out = rate_out
        self.up = rate_out // rate_in if rate_out > rate_in else 1
        self.down = rate_in // rate_out if rate_in > rate_out else 1
        if rate_in == rate_out:
            self._kernel = np.ones((1, 1))
        elif self.up > 1:
            h = lowpass(rate_out, rate_in) * self.up  # zero stuffing lost this gain
            per_phase = -(-len(h) // self.up)
            h = np.concatenate([h, np.zeros(per_phase * self.up - len(h))])
            # Column p is the p-th polyphase sub-filter, reversed so that a
            # window of inputs (oldest first) times the column is one output.
            self._kernel = h.reshape(per_phase, self.up)[::-1].copy()
        else:
            h = lowpass(rate_in, rate_out)
            per_phase = -(-len(h) // self.down)
            h = np.concatenate([h, np.zeros(per_phase * self.down - len(h))])
            # Sub-filter p sees the input samples whose index is p less than
            # a multiple of M before the output: one short convolution each,
            # and no output computed only to be thrown away.
            self._phases = [h[p :: self.down].copy() for p in range(self.down)]
            self._kernel = h.reshape(-1, 1)  # only its length is used going down
        # Input history: the filter's length less one, silent before the start.
        self._history = np.zeros(self._kernel.shape[0] - 1)

    @property
    def delay(self) -> float:
        """The filter's delay in seconds (half its length)."""
        if self.rate_in == self.rate_out:
            return 0.0
        high = max(self.rate_in, self.rate_out)
        return (len(lowpass(high, min(self.rate_in, self.rate_out))) - 1) / 2 / high

    def process(self, pcm: bytes) -> bytes:
        """Resample the next piece of the stream (16-bit LE mono bytes)."""
        if len(pcm) % 2:
            raise ValueError(
                f"linear audio is 16-bit samples, so an even number of bytes; got {len(pcm)}"
            )
        if self.rate_in == self.rate_out:
            return bytes(pcm)
        samples = np.frombuffer(pcm, dtype="<i2")
        buffer = np.concatenate([self._history, samples])
        width = self._kernel.shape[0]
        if len(buffer) < width:
            self._history = buffer
            return b""
        if self.up > 1:
            out = (sliding_window_view(buffer, width) @ self._kernel).ravel()
            self._history = buffer[len(buffer) - width + 1 :]
        else:
            m = self.down
            rows = len(buffer) // m
            columns = buffer[: rows * m].reshape(rows, m)  # column c: samples c, c+M, ...
            out = np.convolve(columns[:, m - 1], self._phases[0], "valid")
            for p in range(1, m):
                out += np.convolve(columns[:, m - 1 - p], self._phases[p], "valid")
            self._history = buffer[len(out) * m :]
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()

    def reset(self) -> None:
        """Forget the stream so far (a new source): the next frame starts from silence."""
        self._history = np.zeros(self._kernel.shape[0] - 1)
