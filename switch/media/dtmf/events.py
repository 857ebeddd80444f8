"""RFC 4733 telephone-events: the payload, a sender and a receiver, sans-IO.

The payload (§2.3) is four bytes: the event (0-9, *, #, A-D are events 0-15),
the E bit (the event has ended), a reserved bit, the volume (0-63, in -dBm0)
and the duration so far in RTP clock units. Every packet of one key press
carries the same RTP timestamp, the instant the key went down.

Sending (§2.5.1), `event_packets()`: the start packet with the marker bit
and duration 0 (as SIPp's captures and most phones have it), an update
every 50 ms with the duration so far, and the end packet three times, back
to back (the redundancy that makes one lost packet harmless). A press
longer than the 16-bit duration can say (8.2 s at 8 kHz) goes out in
segments (§2.5.1.3): each ends at 0xFFFF without the E bit, the next starts
at the timestamp where the last one filled up, without the marker. The
caller numbers every packet (each end copy too) and sends it at its `at`.

Receiving (§2.5.2), `EventReceiver`: telephone-event payloads with their RTP
timestamp and sequence number go in, `DigitBegin` and `Digit` come out,
exactly once per key press whatever the network did:

- a new timestamp is a new press, even of the same key; a press still open
  when the next begins has ended (its end packets were lost);
- the retransmitted end packets, duplicates and updates arriving after the
  end are the press already reported;
- a lost start packet does not matter: any packet of a new press begins it;
- when all end packets are lost, the press ends `timeout` seconds after its
  last packet (the caller asks `next_deadline()` and calls `handle_timer()`);
- a packet whose sequence number is behind the newest one seen and whose
  timestamp is not the current press's belongs to a press already over
  (reordering): it is dropped. A press all of whose packets arrive after the
  next press began is lost; the network would have to hold a packet back
  for longer than the pause between two keys.

Events above 15 (flash, fax and line tones) are not keys: they are ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..rtp import MAX_MISORDER, seq_distance
from .digits import DIGITS, Digit, DigitBegin, DtmfError

_PAYLOAD = struct.Struct("!BBH")
MAX_DURATION = 0xFFFF  # the 16-bit duration field
TS_MASK = 0xFFFFFFFF
END_COPIES = 3  # §2.5.1.4: the end packet, sent three times
INTERVAL = 0.05  # seconds between updates: §2.5.1.2 suggests 50 ms
TIMEOUT = 0.4  # seconds without a packet after which an open press has ended
DEFAULT_VOLUME = 10  # -10 dBm0, what most phones say


@dataclass(frozen=True, slots=True)
class Event:
    """One telephone-event payload."""

    code: int  # 0-255; 0-15 are the DTMF keys
    end: bool
    volume: int  # 0-63, the power level in -dBm0
    duration: int  # RTP clock units since the event's timestamp

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.code, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.code] if self.code < len(DIGITS) else None


def parse_event(payload: bytes) -> Event:
    """The event in a telephone-event payload; `DtmfError` if it is too short.

    Bytes after the first four (a sender's padding) are ignored.
    """
    if len(payload) < 4:
        raise DtmfError(f"telephone-event payload of {len(payload)} bytes; it needs 4")
    code, flags, duration = _PAYLOAD.unpack_from(payload)
    return Event(code, bool(flags & 0x80), flags & 0x3F, duration)


def event_code(digit: str) -> int:
    """The RFC 4733 event of a key: '0'-'9', '*', '#', 'A'-'D' (any case)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"{digit!r} is not a DTMF key; use one of {DIGITS}")
    return code


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One packet of a key press, for the caller to number and send."""

    at: float  # seconds after the key went down
    timestamp: int  # the RTP timestamp to stamp it with
    marker: bool
    payload: bytes


def event_packets(
    digit: str,
    timestamp: int,
    duration: float,
    *,
    clock_rate: int = 8000,
    interval: float = INTERVAL,
    volume: int = DEFAULT_VOLUME,
    end_copies: int = END_COPIES,
) -> list[EventPacket]:
    """The packets of one press of `digit` held `duration` seconds, starting at
    RTP time `timestamp`: start, updates every `interval`, `end_copies` ends."""
    code = event_code(digit)
    if not 0 <= volume <= 63:
        raise DtmfError(f"volume {volume} is out of 0-63 (-dBm0)")
    step = max(1, round(interval * clock_rate))
    total = max(1, round(duration * clock_rate))
    packets: list[EventPacket] = []
    segment = 0  # clock units from the key going down to this segment's start

    def packet(at: int, marker: bool, end: bool) -> EventPacket:
        payload = Event(code, end, volume, at - segment).to_bytes()
        return EventPacket(at / clock_rate, (timestamp + segment) & TS_MASK, marker, payload)

    def fill_segments(upto: int) -> None:
        nonlocal segment
        while upto - segment > MAX_DURATION:
            packets.append(packet(segment + MAX_DURATION, False, False))
            segment += MAX_DURATION

    for at in range(0, total, step):
        fill_segments(at)
        packets.append(packet(at, at == 0, False))
    fill_segments(total)
    packets.extend(packet(total, False, True) for _ in range(end_copies))
    return packets


Output = list[DigitBegin | Digit]


class EventReceiver:
    """Key presses from the telephone-events of one RTP stream."""

    def __init__(self, clock_rate: int = 8000, timeout: float = TIMEOUT) -> None:
        self.clock_rate = clock_rate
        self.timeout = timeout
        self.malformed = 0  # payloads too short to read
        self._seq: int | None = None  # the newest sequence number seen
        self._ts: int | None = None  # the timestamp of the current (or last) press
        self._code = -1
        self._ended = True
        self._earlier = 0  # clock units in the press's earlier segments
        self._ticks = 0  # the longest duration seen in its current segment
        self._deadline: float | None = None

    def receive(self, payload: bytes, timestamp: int, seq: int, now: float) -> Output:
        """One telephone-event packet arriving at `now` (seconds)."""
        try:
            event = parse_event(payload)
        except DtmfError:
            self.malformed += 1
            return []
        if event.code >= len(DIGITS):
            return []
        if self._seq is None:
            self._seq = seq
        else:
            ahead = seq_distance(seq, self._seq)
            if ahead > 0 or ahead <= -MAX_MISORDER:
                self._seq = seq  # newer, or the stream restarted
            elif timestamp != self._ts:
                return []  # late: a press that is over
        if timestamp == self._ts and event.code == self._code:
            if self._ended:
                return []  # a retransmitted end, or an update overtaken by it
            self._ticks = max(self._ticks, event.duration)
            return self._end() if event.end else self._extend(now)
        out: Output = []
        if not self._ended:
            if (
                event.code == self._code
                and self._ts is not None
                and timestamp == (self._ts + MAX_DURATION) & TS_MASK
            ):
                # The next segment of a long press (§2.5.1.3), not a new press.
                self._earlier += MAX_DURATION
                self._ts, self._ticks = timestamp, event.duration
                return self._end() if event.end else self._extend(now)
            out += self._end()
        self._ts, self._code, self._ended = timestamp, event.code, False
        self._earlier, self._ticks = 0, event.duration
        out.append(DigitBegin(DIGITS[event.code]))
        out += self._end() if event.end else self._extend(now)
        return out

    def next_deadline(self) -> float | None:
        """When an open press whose end packets never came will be over."""
        return self._deadline

    def handle_timer(self, now: float) -> Output:
        if self._deadline is not None and now >= self._deadline:
            return self._end()
        return []

    def _extend(self, now: float) -> Output:
        self._deadline = now + self.timeout
        return []

    def _end(self) -> Output:
        self._ended = True
        self._deadline = None
        held = (self._earlier + self._ticks) / self.clock_rate
        return [Digit(DIGITS[self._code], held)]
