"""The player: a playlist in, 20 ms frames of linear PCM out. Pure.

A `Player` is a frame source for one leg: whoever sends the leg's media
(the relay, the IVR) asks it for the next frame every 20 ms and encodes it
for the wire. It reads no clock and touches no socket, so a test drives it
frame by frame.

A playlist holds items, played one after the other as one continuous
stream (no gap between items; the last frame is padded with silence):

- `Clip`: audio (a WAV file read with `switch.media.wav`, or speech from
  `switch.media.tts`); converted to the leg's rate once, when the player is
  made (conversions are cached, so many callers hearing the same prompt
  convert it once).
- `ToneItem`: a generated tone (`switch.media.tones`) for a number of
  milliseconds, or until stopped.
- `Silence`: a pause of some milliseconds.

With `loop=True` the playlist starts over when it ends (music on hold,
a ringback). `stop()` ends the playing at once. `digit()` is what the DTMF
side calls when the caller presses a key: a prompt played with
`interruptible=True` (the default, as in IVR menus) stops and remembers the
digit ("barge-in"); music on hold is not interruptible. When the player has
finished (with its last frame), `finished` is true, `reason` says why ("end", "stopped",
"digit"), and `next_frame()` returns None.

Frames are slices of bytes prepared in advance: no per-sample work per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from .tones import Tone, melody, render
from .wav import SAMPLE_WIDTH, SUPPORTED_RATES, Audio, resample

FRAME_MS = 20


@dataclass(frozen=True)
class Clip:
    """Mono audio to play once per pass of the playlist."""

    audio: Audio


@dataclass(frozen=True)
class ToneItem:
    """A tone for `ms` milliseconds; None: until the player is stopped."""

    tone: Tone
    ms: int | None = None


@dataclass(frozen=True)
class Silence:
    ms: int


Item = Clip | ToneItem | Silence | Audio


@lru_cache(maxsize=64)
def _at_rate(audio: Audio, rate: int) -> bytes:
    if audio.channels != 1:
        raise ValueError(f"the player plays mono audio; this clip has {audio.channels} channels")
    return resample(audio.pcm, audio.rate, rate)


@lru_cache(maxsize=64)
def _tone_cycle(tone: Tone, rate: int) -> bytes:
    return render(tone, rate)


@lru_cache(maxsize=8)
def _melody(rate: int) -> bytes:
    return melody(rate)


class Player:
    """Frames of a playlist at one rate; see the module's docstring."""

    def __init__(
        self,
        items: Iterable[Item],
        rate: int = 8000,
        *,
        loop: bool = False,
        interruptible: bool = True,
    ) -> None:
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"the player runs at 8000, 16000 or 48000 Hz, not {rate}")
        self.rate = rate
        self.frame_bytes = rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        self.loop = loop
        self.interruptible = interruptible
        # Each item as (cycle, length): `length` bytes read from `cycle`
        # repeated; length None: without end.
        self._items: list[tuple[bytes, int | None]] = [self._prepare(i) for i in items]
        self._items = [(cycle, n) for cycle, n in self._items if cycle and n != 0]
        self._index = 0
        self._offset = 0  # bytes played of the current item
        self.frames = 0  # frames handed out
        self.finished = not self._items
        self.reason: str | None = "end" if self.finished else None
        self.digit_pressed: str | None = None

    def _prepare(self, item: Item) -> tuple[bytes, int | None]:
        if isinstance(item, Audio):
            item = Clip(item)
        if isinstance(item, Clip):
            pcm = _at_rate(item.audio, self.rate)
            return pcm, len(pcm)
        if isinstance(item, ToneItem):
            length = None if item.ms is None else self._bytes(item.ms)
            return _tone_cycle(item.tone, self.rate), length
        if isinstance(item, Silence):
            return bytes(self.frame_bytes), self._bytes(item.ms)
        raise TypeError(f"not a playlist item: {item!r}")

    def _bytes(self, ms: int) -> int:
        return self.rate * ms // 1000 * SAMPLE_WIDTH

    def next_frame(self) -> bytes | None:
        """The next 20 ms of linear PCM, or None once finished."""
        if self.finished:
            return None
        need = self.frame_bytes
        parts: list[bytes] = []
        while need:
            if self._index == len(self._items):
                if not self.loop:
                    break
                self._index = 0
            cycle, length = self._items[self._index]
            take = need if length is None else min(need, length - self._offset)
            start = self._offset % len(cycle)
            chunk = cycle[start : start + take]
            while len(chunk) < take:  # the tone's cycle wraps inside this frame
                chunk += cycle[: take - len(chunk)]
            parts.append(chunk)
            need -= take
            self._offset += take
            if length is not None and self._offset >= length:
                self._index += 1
                self._offset = 0
        if need:  # the playlist ended inside this frame
            parts.append(bytes(need))
        if self._index == len(self._items) and not self.loop:
            self._finish("end")  # now, not one silent frame later
        self.frames += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def stop(self) -> None:
        """End the playing now (the call moved on, the caller hung up)."""
        if not self.finished:
            self._finish("stopped")

    def digit(self, digit: str) -> bool:
        """The caller pressed `digit`: barge-in. True if that stopped the player."""
        if self.finished or not self.interruptible:
            return False
        self.digit_pressed = digit
        self._finish("digit")
        return True

    def _finish(self, reason: str) -> None:
        self.finished = True
        self.reason = reason


def music_on_hold(rate: int = 8000, audio: Audio | None = None) -> Player:
    """A queue's music on hold: `audio` (the queue's file), or the generated
    melody when it has none, looped until stopped; keys do not stop it."""
    source = audio if audio is not None else Audio(_melody(rate), rate)
    return Player([Clip(source)], rate, loop=True, interruptible=False)
