"""One recording of what a caller says (a voicemail, an IVR record step). Sans-IO.

`Take` is fed the caller's decoded frames (8 kHz linear, from
`switch.media.inbound`) and says when to stop: after `max_seconds`, or
after `silence_seconds` without speech (from the start too: a caller who
says nothing is not recorded for ever). A key press stops it as well; the
channel tells it (`digit`). `audio(reason)` is what to keep: trailing
silence cut down to `KEEP` seconds, and after a key the last `KEY_TRIM`
seconds too (an in-band key's tone starts before it is recognised).

Speech is a frame louder than `threshold` dBm0 (RMS). Line noise sits near
-60 dBm0 and speech around -20; the default -40 is between, with room for
a quiet talker on a noisy line. `heard` says whether anything was said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
KEEP = 0.3  # seconds of the trailing silence kept (a recording does not end mid-breath)
KEY_TRIM = 0.1  # seconds cut before a key that stopped the recording
# The RMS of a sine at 0 dBm0: 0 dBm0 is a sine 3.17 dB below 16-bit full scale.
_ZERO_DBM0_RMS = 32767 * 10 ** (-3.17 / 20) / math.sqrt(2)
MAX_SECONDS = 3600.0  # the longest a take may be asked to last (memory: 58 MB at 8 kHz)


class TakeError(ValueError):
    """Limits a recording cannot have; the message says which."""


@dataclass(frozen=True, slots=True)
class RecordResult:
    """How a recording ended. `path` is None when nothing was said (no file),
    or when the file could not be written (`error` says why)."""

    path: Path | None
    seconds: float  # of audio kept
    reason: str  # "max", "silence", "digit", "hangup" or "stopped"
    digit: str | None = None  # the key that stopped it
    error: str | None = None


class Take:
    """What the caller says until a limit is reached; see the module's docstring."""

    def __init__(
        self,
        max_seconds: float = 120.0,
        silence_seconds: float = 5.0,
        *,
        threshold: float = -40.0,
        rate: int = RATE,
    ) -> None:
        if not 0 < max_seconds <= MAX_SECONDS:
            raise TakeError(f"max_seconds {max_seconds}: a recording lasts 0 to {MAX_SECONDS:g} s")
        if silence_seconds < 0:
            raise TakeError(f"silence_seconds {silence_seconds}: 0 (never stop) or more")
        self.rate = rate
        self.max_samples = round(max_seconds * rate)
        self.silence_samples = round(silence_seconds * rate)
        self._threshold = (_ZERO_DBM0_RMS * 10 ** (threshold / 20)) ** 2  # mean square
        self._pcm = bytearray()
        self._quiet = 0  # samples since the last speech
        self.heard = False

    @property
    def seconds(self) -> float:
        return len(self._pcm) // 2 / self.rate

    def feed(self, pcm: bytes) -> str | None:
        """The next frame; "max" or "silence" when the recording must stop now."""
        room = self.max_samples * 2 - len(self._pcm)
        frame = pcm[: max(room, 0)]
        self._pcm += frame
        x = np.frombuffer(frame, "<i2").astype(np.float64)
        if len(x) and float(np.dot(x, x)) / len(x) >= self._threshold:
            self.heard = True
            self._quiet = 0
        else:
            self._quiet += len(x)
        if len(self._pcm) >= self.max_samples * 2:
            return "max"
        if self.silence_samples and self._quiet >= self.silence_samples:
            return "silence"
        return None

    def audio(self, reason: str) -> bytes:
        """What to keep of the take, now that it ended for `reason`."""
        end = len(self._pcm) // 2
        if reason == "digit":
            end -= round(KEY_TRIM * self.rate)
            self._quiet = max(0, self._quiet - round(KEY_TRIM * self.rate))
        quiet = min(self._quiet, end)
        end -= max(0, quiet - round(KEEP * self.rate))
        return bytes(self._pcm[: max(end, 0) * 2])
