"""The node's media clock: one timer for the 20 ms frames of every channel.

A node that answers calls itself (prompts, the echo test, the IVR) sends
each caller a packet every 20 ms. One timer per call would be hundreds of
timers waking out of step; here there is one per event loop (`media_clock()`),
and every channel's `tick` runs from it.

The deadlines are absolute: frame n is due at start + n x 20 ms on the
monotonic clock, so the clock does not drift however late each wake-up is.
A wake-up that comes late owes the frames whose deadlines passed
(`Pacer.due`): up to `CATCH_UP` of them are sent at once, which a phone's
jitter buffer absorbs; beyond that the rest are skipped (the stream's
timestamps jump forward, and the phone conceals a gap) rather than sent in
a burst that would arrive too late to be played and would add their delay
to everything after.

`Pacer` is the arithmetic, sans-IO (tested with a fake clock); `MediaClock`
is the asyncio timer around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("switch.media")

PERIOD = 0.020  # seconds per frame
# Owed frames sent at once after a late wake-up; more than this are skipped.
# Two (40 ms of audio at once) is within the 40-60 ms a phone buffers.
CATCH_UP = 2
_EPSILON = 1e-6  # a wake-up this early (timer rounding) counts as on time

# (now, frames to send, frames to skip)
Tick = Callable[[float, int, int], None]


class Pacer:
    """Frame deadlines on absolute times: start, start + period, ...; sans-IO."""

    def __init__(self, start: float, period: float = PERIOD, catch_up: int = CATCH_UP) -> None:
        if period <= 0 or catch_up < 1:
            raise ValueError(f"a pacer needs period > 0 and catch_up >= 1: {period}, {catch_up}")
        self.start = start
        self.period = period
        self.catch_up = catch_up
        self._n = 0  # the next frame due, counted from start
        self.late = 0  # wake-ups that owed more than one frame
        self.skipped = 0  # frames skipped in all
        # Wake-ups by how late they were (after the deadline of the first
        # frame they owed): up to 5, 10, 20 ms, and more. For benchmarks.
        self.lateness = [0, 0, 0, 0]

    @property
    def next_deadline(self) -> float:
        return self.start + self._n * self.period

    def due(self, now: float) -> tuple[int, int]:
        """(frames to send now, frames to skip): what the deadlines up to `now` ask."""
        behind = now - self.next_deadline
        if behind < -_EPSILON:
            return 0, 0
        owed = int((behind + _EPSILON) / self.period) + 1
        self._n += owed
        self.lateness[(behind > 0.005) + (behind > 0.010) + (behind > 0.020)] += 1
        send = min(owed, self.catch_up)
        if owed > 1:
            self.late += 1
            self.skipped += owed - send
        return send, owed - send


class MediaClock:
    """One asyncio timer calling every subscriber's tick every 20 ms."""

    def __init__(self, period: float = PERIOD, catch_up: int = CATCH_UP) -> None:
        self.period = period
        self.catch_up = catch_up
        self.pacer: Pacer | None = None
        self._ticks: list[Tick] = []
        self._snapshot: tuple[Tick, ...] = ()
        self._handle: asyncio.TimerHandle | None = None
        self.wakeups = 0
        self.failures = 0  # subscribers removed because their tick raised

    def __len__(self) -> int:
        return len(self._ticks)

    def add(self, tick: Tick) -> None:
        """Call `tick(now, send, skip)` from the next frame on."""
        self._ticks.append(tick)
        self._snapshot = tuple(self._ticks)
        if self._handle is None:
            # Started again after being idle: a fresh grid, from now.
            self.pacer = Pacer(time.monotonic() + self.period, self.period, self.catch_up)
            self._schedule()

    def remove(self, tick: Tick) -> None:
        """Stop calling `tick` (no error if it is not there)."""
        if tick in self._ticks:
            self._ticks.remove(tick)
            self._snapshot = tuple(self._ticks)
        if not self._ticks and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self.pacer is not None
        delay = max(0.0, self.pacer.next_deadline - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        assert self.pacer is not None
        now = time.monotonic()
        send, skip = self.pacer.due(now)
        if send or skip:
            self.wakeups += 1
            for tick in self._snapshot:
                try:
                    tick(now, send, skip)
                except Exception:
                    # One channel's bug must not silence every other caller.
                    log.exception("media clock: a channel's tick failed; it is stopped")
                    self.failures += 1
                    self.remove(tick)
        if self._ticks:
            self._schedule()
        else:
            self._handle = None


_clocks: dict[int, tuple[asyncio.AbstractEventLoop, MediaClock]] = {}


def media_clock() -> MediaClock:
    """The media clock of the running event loop (one per node process)."""
    loop = asyncio.get_running_loop()
    entry = _clocks.get(id(loop))
    if entry is None or entry[0] is not loop:
        for key, (other, _) in list(_clocks.items()):
            if other.is_closed():  # a loop that ended (tests run many)
                del _clocks[key]
        entry = (loop, MediaClock())
        _clocks[id(loop)] = entry
    return entry[1]
