"""Sending key presses into a live stream, as they happen, sans-IO.

A DTMF bridge learns of a key in one of two ways: as it goes down and comes
up (`begin`, then `end`: from RFC 4733 events or tones heard in the audio),
or whole, after the fact (`press`: a SIP INFO says which key and for how
long). Either way it has to be sent on in real time, in another form:

- `EventSender`: RFC 4733 telephone-events (§2.5.1): the start packet with
  the marker bit, an update every 50 ms with the duration so far, and the
  end packet three times. The press's timestamp is the stream's at the
  moment it starts (`clock`, from `switch.media.splice.Splice`).
- `ToneSender`: the key's two tones (`inband.generate`), a 20 ms frame at
  a time, then `GAP` of silence; the bridge puts these frames in place of
  the audio for as long as `busy()` says (Asterisk does the same).

Presses never overlap: one that comes while another is still being sent
waits its turn, and each is followed by a pause (`gap`), so that keys
pressed quickly or INFOs arriving back to back stay separate keys at the
far end. A press is sent for at least `min_on` seconds (a key heard for
40 ms becomes a tone a detector cannot miss).

The caller asks `next_deadline()` and calls `tick(now)` then; every method
returns the `Out` packets due, each with its RTP timestamp.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .events import END_COPIES, INTERVAL, MAX_DURATION, Event, event_code
from .inband import RATE, generate

FRAME = 0.02  # seconds of tone per packet
FRAME_SAMPLES = round(FRAME * RATE)
TONE_LEVEL = -7.0  # dBm0 per frequency, what phones send
EVENT_GAP = 0.05  # seconds between two presses sent as events
TONE_GAP = 0.08  # seconds of silence after a tone (a detector needs 40 ms to see a pause)
MIN_EVENT = 0.04  # shortest press sent as events, seconds
MIN_TONE = 0.08  # shortest tone sent, seconds


@dataclass(frozen=True, slots=True)
class Out:
    """One packet to put in the stream now. `payload` is a telephone-event
    payload (`EventSender`) or 20 ms of 8 kHz linear audio (`ToneSender`)."""

    timestamp: int
    marker: bool
    payload: bytes


class _Press:
    __slots__ = ("digit", "duration", "start", "stop", "ts")

    def __init__(self, digit: str, duration: float | None) -> None:
        self.digit = digit
        self.duration = duration  # None: the key is still down at the source
        self.start = 0.0  # when it began to be sent
        self.stop: float | None = None  # when it stops (known once the key is up)
        self.ts = 0  # the stream's timestamp at its start


class _Sender:
    """The queue of presses and their timing; subclasses make the packets."""

    min_on = MIN_EVENT
    gap = EVENT_GAP

    def __init__(self, clock: Callable[[float], int]) -> None:
        self.clock = clock  # the stream's RTP timestamp at a given time
        self.sent = 0  # presses sent (or being sent)
        self._queue: deque[_Press] = deque()
        self._current: _Press | None = None
        self._free_at = -math.inf  # when the pause after the last press is over

    def begin(self, digit: str, now: float) -> list[Out]:
        """A key went down at the source."""
        self._queue.append(_Press(digit, None))
        return self.tick(now)

    def end(self, digit: str, duration: float, now: float) -> list[Out]:
        """A key came up at the source, after `duration` seconds."""
        current = self._current
        if current is not None and current.stop is None and current.digit == digit:
            current.stop = max(now, current.start + self.min_on)
            return self.tick(now)
        waiting = next(
            (p for p in reversed(self._queue) if p.duration is None and p.digit == digit), None
        )
        if waiting is not None:
            waiting.duration = duration
        else:  # an end without its begin: the whole press
            self._queue.append(_Press(digit, duration))
        return self.tick(now)

    def press(self, digit: str, duration: float, now: float) -> list[Out]:
        """A whole key press, `duration` seconds long."""
        self._queue.append(_Press(digit, duration))
        return self.tick(now)

    def busy(self) -> bool:
        """Sending a press (for tones: its pause of silence too)."""
        return self._current is not None

    def next_deadline(self) -> float | None:
        current = self._current
        if current is not None:
            return self._due(current)
        return self._free_at if self._queue else None

    def tick(self, now: float) -> list[Out]:
        out: list[Out] = []
        while True:
            current = self._current
            if current is None:
                if not self._queue or now < self._free_at:
                    break
                current = self._current = self._queue.popleft()
                current.start = now
                if current.duration is not None:
                    current.stop = current.start + max(current.duration, self.min_on)
                current.ts = self.clock(current.start)
                self.sent += 1
                self._started(current)
            if self._play(current, now, out):
                self._current = None
                assert current.stop is not None
                self._free_at = current.stop + self.gap
                continue
            break
        return out

    # -- what subclasses make ------------------------------------------------------------

    def _started(self, press: _Press) -> None:
        """A press begins to be sent."""

    def _due(self, press: _Press) -> float:
        """When the current press next needs a packet (or ends)."""
        raise NotImplementedError

    def _play(self, press: _Press, now: float, out: list[Out]) -> bool:
        """Append the press's packets due by `now`; True once it is over."""
        raise NotImplementedError


class EventSender(_Sender):
    """Presses as RFC 4733 telephone-events on a `rate` Hz clock."""

    def __init__(self, clock: Callable[[float], int], rate: int = 8000, volume: int = 10) -> None:
        super().__init__(clock)
        self.rate = rate
        self.volume = volume
        self._next_update = 0.0
        self._code = 0

    def _started(self, press: _Press) -> None:
        self._code = event_code(press.digit)
        self._next_update = press.start  # the start packet, at once

    def _ticks(self, seconds: float) -> int:
        return min(MAX_DURATION, max(0, round(seconds * self.rate)))

    def _due(self, press: _Press) -> float:
        if press.stop is not None:
            return min(self._next_update, press.stop)
        return self._next_update

    def _play(self, press: _Press, now: float, out: list[Out]) -> bool:
        first = self._next_update == press.start
        while self._next_update <= now and (press.stop is None or self._next_update < press.stop):
            duration = self._ticks(self._next_update - press.start)
            payload = Event(self._code, False, self.volume, duration).to_bytes()
            out.append(Out(press.ts, first, payload))
            first = False
            self._next_update += INTERVAL
        if press.stop is None or now < press.stop:
            return False
        # (A key held past the 16-bit duration is held at 0xFFFF: one press.)
        end = Event(self._code, True, self.volume, self._ticks(press.stop - press.start))
        out.extend(Out(press.ts, False, end.to_bytes()) for _ in range(END_COPIES))
        return True


class ToneSender(_Sender):
    """Presses as the key's tones, 20 ms of 8 kHz linear audio a packet."""

    min_on = MIN_TONE
    gap = TONE_GAP

    def __init__(self, clock: Callable[[float], int], level: float = TONE_LEVEL) -> None:
        super().__init__(clock)
        self.level = level
        self._frame = 0  # frames of the current press sent, tone and pause

    def _started(self, press: _Press) -> None:
        self._frame = 0

    def _due(self, press: _Press) -> float:
        return press.start + self._frame * FRAME

    def _play(self, press: _Press, now: float, out: list[Out]) -> bool:
        while True:
            at = press.start + self._frame * FRAME
            if at > now + 1e-9:
                return False
            stop = press.stop
            if stop is not None and at >= stop + self.gap - 1e-9:
                return True
            ts = press.ts + self._frame * FRAME_SAMPLES
            if stop is None or at < stop - 1e-9:
                pcm = generate(press.digit, FRAME, self.level, start=self._frame * FRAME_SAMPLES)
            else:
                pcm = bytes(2 * FRAME_SAMPLES)  # the pause: silence in place of the audio
            out.append(Out(ts, self._frame == 0, pcm))
            self._frame += 1
