"""An adaptive jitter buffer for the paths that decode audio, sans-IO.

Where the node only relays packets it does not buffer them: the far end's
own buffer deals with jitter. Where it decodes (transcoding, mixing,
recording, in-band DTMF), a decoder needs one frame every 20 ms, in order,
whatever the network did. This buffer sits in between:

- `push(seq, timestamp, payload, arrival)` for each RTP packet as it comes;
- `pop(now)` at the caller's steady 20 ms pace (or at `next_deadline()`),
  which returns what is due: a `Frame` (a packet's payload, in timestamp
  order) or a `Gap` (nothing to play: conceal it, e.g. Opus PLC or the last
  G.711 frame faded).

The buffer reads no clock: arrival times and `now` are the caller's
(``loop.time()`` in the node, a fake clock in tests), in seconds.

Playout. Each packet has a slot, its timestamp on the frame grid; slot s
plays at ``base + (s - base_ts) / clock_rate``. The first packet sets
``base`` to its arrival plus the target delay. A packet that arrives after
its slot was played is late: dropped and counted. Packets out of order simply
wait for their slot; a second copy of a buffered packet is a duplicate.

Adaptation. For each packet, its transit (arrival less timestamp, in
seconds) is compared with the smallest transit of the last `window` packets
(the fastest path through the network): the difference is how late this
packet was. The target delay is the 95th percentile of those differences
plus one frame (a packet may arrive just after a tick), kept between
`min_delay` and `max_delay`. When the buffer holds less than the target by
half a frame it grows by one frame, with a `Gap(inserted=True)` played before
the due frame; when it holds two frames more than the target it shrinks by
skipping one slot (so a clean stream that started with the default 60 ms
keeps it and loses nothing), at most once every `SHRINK_EVERY` frames so that speech
is not chopped. RFC 3550 interarrival jitter (A.8) is kept as a figure too.

Resynchronisation. A sequence number that jumps by more than the relay's
MAX_DROPOUT, or a transit further than `resync` seconds from the fastest
one (a timestamp jump: a new source after a transfer, or the far end's
restart), starts the buffer again from that packet, as for a new stream.
A caller that stops calling `pop` for more than `resync` seconds gets only
what is due now, not the whole backlog: the slots in between are skipped.

Sequence numbers are 16-bit and timestamps 32-bit on the wire; both are
extended to unbounded integers inside so that wrap-arounds cost nothing.
The buffer plays one packet per frame: a packet's payload is one frame of
`frame_ms` (what the SDP's ptime agreed; 20 ms for browsers and most phones).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .rtp import MAX_DROPOUT, seq_distance, ts_distance

SHRINK_EVERY = 5  # frames between two shrinks: at most one 20 ms skip per 100 ms
QUANTILE = 0.95  # how much of the recent jitter the target delay covers
# The target is recomputed from the window after this many packets (sorting
# the window on every packet would cost more than the rest of the buffer).
REFRESH_EVERY = 10
# Times are float seconds: comparisons allow this much rounding (1 µs).
_EPSILON = 1e-6


@dataclass(slots=True, frozen=True)
class Frame:
    """A packet's payload, due now. `timestamp` and `seq` are as received (wrapped)."""

    timestamp: int
    seq: int
    payload: bytes


@dataclass(slots=True, frozen=True)
class Gap:
    """No packet for this frame: conceal it.

    `inserted` is False for a packet that is missing (lost, or late) and
    True for a frame the buffer adds to grow its delay; `timestamp` is the
    RTP timestamp (wrapped) the missing frame would have had.
    """

    timestamp: int
    inserted: bool = False


@dataclass(slots=True)
class _Packet:
    seq: int
    timestamp: int
    payload: bytes


class JitterBuffer:
    """Packets in, one frame out per `frame_ms`, with an adaptive delay."""

    def __init__(
        self,
        clock_rate: int = 8000,
        frame_ms: int = 20,
        *,
        min_delay: float = 0.02,
        max_delay: float = 0.2,
        start_delay: float = 0.06,
        window: int = 100,
        resync: float = 1.0,
    ) -> None:
        if clock_rate <= 0 or frame_ms <= 0 or (clock_rate * frame_ms) % 1000:
            raise ValueError(
                f"a frame of {frame_ms} ms must be a whole number of ticks of a "
                f"{clock_rate} Hz clock"
            )
        if not 0 <= min_delay <= max_delay:
            raise ValueError(
                f"jitter buffer delays: need 0 <= min_delay <= max_delay; "
                f"got min_delay={min_delay}, max_delay={max_delay}"
            )
        if window < 2:
            raise ValueError(f"the jitter window needs at least 2 packets; got {window}")
        self.clock_rate = clock_rate
        self.frame = frame_ms / 1000
        self.samples_per_frame = clock_rate * frame_ms // 1000
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.start_delay = min(max(start_delay, min_delay), max_delay)
        self.window = window
        self.resync = resync
        # Figures for the leg's quality report.
        self.received = 0
        self.played = 0
        self.lost = 0  # gaps for missing packets
        self.inserted = 0  # gaps added to grow the delay
        self.late = 0  # arrived after their slot was played
        self.duplicates = 0
        self.discarded = 0  # buffered but skipped: shrinking, or dropped by a resync
        self.resyncs = 0
        self.jitter = 0.0  # RFC 3550 A.8 interarrival jitter, seconds
        self._slots: dict[int, _Packet] = {}
        self._transits: deque[float] = deque(maxlen=window)
        self._started = False
        self._last_transit: float | None = None
        self._since_shrink = SHRINK_EVERY
        self._target = self.start_delay
        self._fastest = math.inf  # smallest transit in the window (as of the last refresh)
        self._fresh = 0  # packets measured since the target was last computed

    # -- state ---------------------------------------------------------------

    @property
    def target_delay(self) -> float:
        """The delay the buffer is heading for, in seconds."""
        if self._fresh >= REFRESH_EVERY:
            self._refresh()
        return self._target

    @property
    def delay(self) -> float | None:
        """How long the fastest recent packet waits before it plays, in seconds."""
        if not self._started or not self._transits:
            return None
        return self._base - self._base_ts / self.clock_rate - self._fastest

    def __len__(self) -> int:
        """Packets waiting to be played."""
        return len(self._slots)

    def next_deadline(self) -> float | None:
        """When the next frame is due (None before the first packet)."""
        if not self._started:
            return None
        return self._play_time(self._next)

    # -- input ---------------------------------------------------------------

    def push(self, seq: int, timestamp: int, payload: bytes, arrival: float) -> bool:
        """Take one packet; False when it is dropped (late or duplicate)."""
        self.received += 1
        if not self._started:
            self._start(seq, timestamp, arrival)
        elif abs(seq_distance(seq, self._last_seq & 0xFFFF)) > MAX_DROPOUT:
            self._restart(seq, timestamp, arrival)
        ext_ts = self._extend_ts(timestamp)
        transit = arrival - ext_ts / self.clock_rate
        if self._transits and abs(transit - self._fastest) > self.resync:
            self._restart(seq, timestamp, arrival)
            ext_ts = self._extend_ts(timestamp)
            transit = arrival - ext_ts / self.clock_rate
        self._measure(transit)
        self._last_seq = self._extend_seq(seq)
        slot = self._slot_of(ext_ts)
        if slot < self._next:
            self.late += 1
            return False
        if slot in self._slots:
            self.duplicates += 1
            return False
        self._slots[slot] = _Packet(seq, timestamp, payload)
        if ext_ts > self._highest_ts:
            self._highest_ts = ext_ts
        return True

    def _start(self, seq: int, timestamp: int, arrival: float) -> None:
        self._started = True
        self._highest_ts = timestamp  # extended timestamps start at the first one
        self._last_seq = seq
        self._base_ts = timestamp
        self._next = timestamp
        self._base = arrival + self.target_delay

    def _restart(self, seq: int, timestamp: int, arrival: float) -> None:
        self.resyncs += 1
        self.discarded += len(self._slots)
        self._slots.clear()
        self._transits.clear()
        self._last_transit = None
        self._target = self.start_delay
        self._fastest = math.inf
        self._fresh = 0
        self._start(seq, timestamp, arrival)

    def _extend_ts(self, timestamp: int) -> int:
        return self._highest_ts + ts_distance(timestamp, self._highest_ts & 0xFFFFFFFF)

    def _extend_seq(self, seq: int) -> int:
        d = seq_distance(seq, self._last_seq & 0xFFFF)
        return self._last_seq + d if d > 0 else self._last_seq

    def _slot_of(self, ext_ts: int) -> int:
        # Snap to the frame grid of the stream's start, so that a sender whose
        # timestamps drift off it by a few samples still fills its slots.
        frames = round((ext_ts - self._base_ts) / self.samples_per_frame)
        return self._base_ts + frames * self.samples_per_frame

    def _measure(self, transit: float) -> None:
        if self._last_transit is not None:
            # RFC 3550 A.8, in seconds rather than timestamp units.
            self.jitter += (abs(transit - self._last_transit) - self.jitter) / 16
        self._last_transit = transit
        self._transits.append(transit)
        self._fastest = min(self._fastest, transit)
        self._fresh += 1

    def _refresh(self) -> None:
        # The fastest packet may have left the window since: start again from it.
        self._fresh = 0
        self._fastest = min(self._transits)
        if len(self._transits) < 2:
            return
        spreads = sorted(t - self._fastest for t in self._transits)
        needed = spreads[min(len(spreads) - 1, math.ceil(QUANTILE * len(spreads)) - 1)]
        self._target = min(max(needed + self.frame, self.min_delay), self.max_delay)

    # -- output --------------------------------------------------------------

    def _play_time(self, slot: int) -> float:
        return self._base + (slot - self._base_ts) / self.clock_rate

    def pop(self, now: float) -> list[Frame | Gap]:
        """Every frame due at `now`, in order (usually one, none before the first packet)."""
        out: list[Frame | Gap] = []
        if not self._started:
            return out
        behind = now - self._play_time(self._next)
        if behind > self.resync:
            self._skip(int(behind / self.frame + _EPSILON))
        while self._play_time(self._next) <= now + _EPSILON:
            out.append(self._play_one())
        return out

    def _skip(self, frames: int) -> None:
        # The caller stopped asking for a while (a stalled loop, a call on
        # hold): go on from now rather than return seconds of backlog at once.
        end = self._next + frames * self.samples_per_frame
        stale = [slot for slot in self._slots if slot < end]
        for slot in stale:
            del self._slots[slot]
        self.discarded += len(stale)
        self.lost += frames - len(stale)
        self._next = end

    def _play_one(self) -> Frame | Gap:
        delay = self.delay
        target = self.target_delay
        slot = self._next
        if delay is not None and delay < target - self.frame / 2 - _EPSILON:
            # Too little in hand: play a made-up frame and push everything back one.
            self._base += self.frame
            self.inserted += 1
            return Gap(slot & 0xFFFFFFFF, inserted=True)
        self._since_shrink += 1
        if (
            delay is not None
            and delay > target + 2 * self.frame + _EPSILON
            and self._since_shrink >= SHRINK_EVERY
            and slot + self.samples_per_frame in self._slots
        ):
            # Too much in hand: skip this slot and play the next one in its place.
            skipped = self._slots.pop(slot, None)
            if skipped is not None:
                self.discarded += 1
            else:
                self.lost += 1
            self._base -= self.frame
            slot += self.samples_per_frame
            self._since_shrink = 0
        self._next = slot + self.samples_per_frame
        packet = self._slots.pop(slot, None)
        if packet is None:
            self.lost += 1
            return Gap(slot & 0xFFFFFFFF)
        self.played += 1
        return Frame(packet.timestamp, packet.seq, packet.payload)

    def reset(self) -> None:
        """Forget the stream (a new SSRC): the next packet starts it again."""
        self.discarded += len(self._slots)
        self._slots.clear()
        self._transits.clear()
        self._last_transit = None
        self._started = False
        self._target = self.start_delay
        self._fastest = math.inf
        self._fresh = 0
