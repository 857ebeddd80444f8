"""The echo test, sans-IO: what a caller says comes back after a fixed delay.

Installers call it (DID 300 of the demo) to hear their own voice through
the whole path: codec, network, NAT, the node. `Echo.receive()` takes
each frame of 16-bit linear PCM the caller sends and returns the frame to
send back; the audio comes back exactly `delay_samples` later, whatever
the frame sizes (a delay of half a second or so lets a person hear the
echo apart from their own voice; 0 is a plain loopback).

An optional prompt plays first: any iterator of frames (a spoken prompt
from the player, or `beep()`). While it plays, what the caller says is
not echoed; the echo, and its delay, start when the prompt ends. A frame
that never came (`None`: lost, or the jitter buffer ran dry) is silence,
in the echo as in life.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

SAMPLE_BYTES = 2  # 16-bit linear PCM
# G.711: a sine at 3.14 dBm0 is the loudest the codec carries (full scale).
FULL_SCALE_DBM0 = 3.14


class EchoError(ValueError):
    """A delay or frame the echo cannot take."""


class Echo:
    """An echo with a fixed delay, optionally after a prompt."""

    def __init__(
        self,
        rate: int = 8000,
        delay_ms: float = 500.0,
        prompt: Iterable[bytes] | None = None,
        ptime_ms: int = 20,
    ) -> None:
        if rate <= 0 or ptime_ms <= 0 or rate * ptime_ms % 1000:
            raise EchoError(
                f"rate {rate} Hz and ptime {ptime_ms} ms do not make a whole number of samples"
            )
        if not 0 <= delay_ms <= 10_000:
            raise EchoError(f"echo delay {delay_ms} ms: it must be between 0 and 10000 ms")
        self.rate = rate
        # To the nearest sample; delay_samples is the exact figure.
        self.delay_samples = round(delay_ms * rate / 1000)
        self.frame_bytes = rate * ptime_ms // 1000 * SAMPLE_BYTES  # what a missing frame is
        self._prompt: Iterator[bytes] | None = iter(prompt) if prompt is not None else None
        self._line = bytearray(self.delay_samples * SAMPLE_BYTES)  # audio on its way back

    @property
    def prompting(self) -> bool:
        """True while the prompt has frames left to play (as far as is known)."""
        return self._prompt is not None

    def receive(self, frame: bytes | None) -> bytes:
        """The caller's next frame in, the frame to send back out."""
        if frame is None:
            frame = bytes(self.frame_bytes)
        elif len(frame) % SAMPLE_BYTES:
            raise EchoError(f"frame of {len(frame)} bytes: 16-bit audio comes in whole samples")
        if self._prompt is not None:
            played = next(self._prompt, None)
            if played is not None:
                return played
            self._prompt = None  # the echo starts with this frame
        line = self._line
        line += frame
        out = bytes(line[: len(frame)])
        del line[: len(frame)]
        return out


def beep(
    rate: int = 8000,
    frequency: float = 1000.0,
    duration_ms: int = 300,
    level_dbm0: float = -13.0,
    ptime_ms: int = 20,
) -> Iterator[bytes]:
    """A sine tone as frames (the "start speaking" beep of an echo test);
    its length is rounded up to whole frames, the last one padded with silence."""
    samples = rate * ptime_ms // 1000
    count = -(-rate * duration_ms // 1000 // samples)  # frames, rounded up
    amplitude = 32767 * 10 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20)
    n = np.arange(count * samples)
    wave = amplitude * np.sin(2 * np.pi * frequency * n / rate)
    wave[rate * duration_ms // 1000 :] = 0
    pcm = np.rint(wave).astype("<i2").tobytes()
    size = samples * SAMPLE_BYTES
    for i in range(count):
        yield pcm[i * size : (i + 1) * size]
