"""The stream toward one leg, with packets taken out and the node's own put in, sans-IO.

The relay forwards a packet as it came. Where the node changes what a leg
receives (a DTMF bridge leaves out telephone-events for a trunk that takes
SIP INFO, or puts in events or tones of its own), the leg must still get
one stream: sequence numbers without holes (a hole is loss to its jitter
buffer and its RTCP) or repeats, and the node's packets stamped on the
timeline of the audio around them. `Splice` keeps that for one direction:

- `forward(packet, now, rate)`: a relayed packet, its sequence number
  shifted by the packets put in less those left out so far;
- `drop(packet)`: a relayed packet left out (the next ones close the gap;
  a duplicate or a late packet left out leaves the numbering as it is);
- `insert(payload_type, timestamp, payload, marker)`: the node's packet,
  numbered next in the stream, with the stream's SSRC;
- `timestamp_at(now)`: where the stream's clock stands at `now`, from the
  last audio packet relayed (its timestamp, plus the time since in its
  clock, and at least one frame on: a packet of the node's never shares a
  timestamp with the audio before it): the timestamp the node's own
  packets take.

A packet that arrives out of order after the node put one in takes the
number the shift gives it, which may repeat one already sent: the far end
drops it as a duplicate (one 20 ms frame), which is what reordering costs
anyway. When the source changes (a new SSRC), the stream goes on with the
shift as it was; the relay's own rewriting (`switch.media.rtp.Sending`)
keeps what the leg sees continuous.
"""

from __future__ import annotations

import random
import struct

_HEADER = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")


class Splice:
    """One direction of a call's stream, renumbered around the node's changes."""

    __slots__ = (
        "_at", "_audio_seq", "_in_seq", "_rate", "_step", "_ts", "dropped", "inserted",
        "last_pt", "seq", "shift", "ssrc",
    )  # fmt: skip

    def __init__(self) -> None:
        self.shift = 0  # added to relayed sequence numbers (mod 2^16)
        self.seq: int | None = None  # the last sequence number sent out
        self.ssrc: int | None = None  # the stream's SSRC (its source's, once one came)
        self.last_pt: int | None = None  # the payload type of the last audio relayed
        self._ts: int | None = None  # the last audio timestamp, when it came, its clock
        self._at = 0.0
        self._rate = 8000
        self._step = 160  # timestamp units between two audio packets (a frame)
        self._audio_seq = -1  # the sequence number of the last audio packet
        self._in_seq: int | None = None  # the newest sequence number relayed or dropped
        self.inserted = self.dropped = 0

    def forward(self, packet: bytes, now: float, rate: int | None = None) -> bytes:
        """`packet` renumbered. `rate`: the clock of its payload if it is audio
        (its timestamp then moves the stream's timeline), None if not."""
        _, flags, seq, ts, ssrc = _HEADER.unpack_from(packet)
        self.ssrc = ssrc
        if rate is not None:
            self._audio(flags, seq, ts, now, rate)
        self._newer(seq)
        out_seq = (seq + self.shift) & 0xFFFF
        if self.seq is None or 0 < (out_seq - self.seq) & 0xFFFF < 0x8000:
            self.seq = out_seq
        if not self.shift:
            return packet
        data = bytearray(packet)
        _SEQ.pack_into(data, 2, out_seq)
        return bytes(data)

    def drop(self, packet: bytes, now: float, rate: int | None = None) -> None:
        """`packet` is left out; the next relayed one takes its number. Audio
        left out (replaced by the node's) still moves the timeline."""
        _, flags, seq, ts, ssrc = _HEADER.unpack_from(packet)
        self.ssrc = ssrc
        if rate is not None:
            self._audio(flags, seq, ts, now, rate)
        self.dropped += 1
        if not self._newer(seq):
            return  # a copy or a late one: its number is not in the stream's way
        if self.seq is None:
            self.seq = (seq + self.shift - 1) & 0xFFFF
        self.shift = (self.shift - 1) & 0xFFFF

    def _newer(self, seq: int) -> bool:
        """Whether `seq` is ahead of every sequence number seen (and note it)."""
        last = self._in_seq
        if last is not None and not 0 < (seq - last) & 0xFFFF < 0x8000:
            return False
        self._in_seq = seq
        return True

    def _audio(self, flags: int, seq: int, ts: int, now: float, rate: int) -> None:
        if rate != self._rate:
            self._step = rate // 50
        elif self._ts is not None and seq == (self._audio_seq + 1) & 0xFFFF:
            step = (ts - self._ts) & 0xFFFFFFFF
            if 0 < step <= rate // 5:  # the next frame (not a jump)
                self._step = step
        self._ts, self._at, self._rate, self._audio_seq = ts, now, rate, seq
        self.last_pt = flags & 0x7F

    def insert(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> bytes:
        """The node's packet, next in the stream."""
        if self.ssrc is None:
            self.ssrc = random.getrandbits(32)
        if self.seq is None:
            self.seq = random.getrandbits(16)
        else:
            self.seq = (self.seq + 1) & 0xFFFF
        self.shift = (self.shift + 1) & 0xFFFF
        self.inserted += 1
        flags = (0x80 if marker else 0) | payload_type
        return _HEADER.pack(0x80, flags, self.seq, timestamp & 0xFFFFFFFF, self.ssrc) + payload

    def timestamp_at(self, now: float) -> int:
        """The stream's RTP timestamp at `now` (its audio clock)."""
        if self._ts is None:
            # Nothing relayed yet: the node's packets start the timeline.
            self._ts, self._at = random.getrandbits(32), now
        ticks = max(round((now - self._at) * self._rate), self._step)
        return (self._ts + ticks) & 0xFFFFFFFF

    @property
    def rate(self) -> int:
        """The clock of the stream's audio (8000 until some came)."""
        return self._rate
