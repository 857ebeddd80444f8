"""RTP headers as the relay sees them: reception statistics and continuity.

Two small state holders, both driven per packet by the relay and cheap on
purpose (integers, no allocation on the usual path):

- `Reception`: what RFC 3550 §6.4.1 asks a receiver to keep about one
  source, with the algorithms of its appendices A.1 (sequence numbers,
  cycles, loss) and A.8 (interarrival jitter, in integer form scaled by 16).
- `Sending`: the stream one receiver gets from the relay. While its source
  stays the same, packets go out as they came. When the source changes (a
  new SSRC after a transfer, or a sequence jump), the receiver keeps seeing
  one stream: the SSRC it knows, sequence numbers and timestamps that carry
  on from the last ones sent, and the marker bit on the first new packet.

The arithmetic is in plain functions so that it can be tested on its own,
wrap-arounds included (16-bit sequence numbers, 32-bit timestamps).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from ..sip.sdp import STATIC_PAYLOAD_TYPES

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
# RFC 3550 A.1: a sequence number further ahead than this, or further behind
# than MAX_MISORDER, is a jump (the source restarted), not loss or reordering.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
NO_SEQ = SEQ_MOD + 1  # matches no sequence number
# A timestamp that moves against the wall clock by more than this many
# seconds between two packets is a jump too. Silence suppression keeps the
# timestamp in step with the clock and a DTMF event holds it for at most a
# few seconds, so neither comes near it.
MAX_TS_JUMP = 10
DEFAULT_CLOCK_RATE = 8000  # what a payload type nobody described most likely uses

# RFC 3551: the RTP clock of each static payload type. G.722 samples at
# 16 kHz but its RTP clock is 8000 (an erratum kept for compatibility).
STATIC_CLOCK_RATES: dict[int, int] = {
    pt: codec.clock_rate for pt, codec in STATIC_PAYLOAD_TYPES.items()
}

# Marker bit and payload type, sequence number, timestamp, SSRC.
HEADER = struct.Struct("!xBHII")
# The same with the first byte (version, padding, extension, CSRC count).
FIXED_HEADER = struct.Struct("!BBHII")
_REWRITE = struct.Struct("!HII")


def is_rtp(packet: bytes) -> bool:
    """Long enough for the fixed header, and version 2 (RFC 3550 §5.1)."""
    return len(packet) >= 12 and packet[0] >> 6 == 2


def seq_distance(new: int, old: int) -> int:
    """How far `new` is after `old` on the 16-bit circle, in [-32768, 32767]."""
    d = (new - old) & 0xFFFF
    return d - SEQ_MOD if d >= 0x8000 else d


def ts_distance(new: int, old: int) -> int:
    """How far timestamp `new` is after `old` on the 32-bit circle, signed."""
    d = (new - old) & 0xFFFFFFFF
    return d - TS_MOD if d >= 0x80000000 else d


def seq_offset(last_sent: int, first_new: int) -> int:
    """What to add (mod 2^16) to a new source's sequence numbers so that its
    first packet, `first_new`, goes out as the one after `last_sent`."""
    return (last_sent + 1 - first_new) & 0xFFFF


def ts_offset(last_sent: int, elapsed: float, clock_rate: int, first_new: int) -> int:
    """What to add (mod 2^32) to a new source's timestamps so that its first
    packet goes out stamped `elapsed` seconds after the last one sent, in the
    payload's clock (at least one tick later: a receiver must not take it for
    the same instant)."""
    ticks = max(1, round(elapsed * clock_rate))
    return (last_sent + ticks - first_new) & 0xFFFFFFFF


def rewrite(packet: bytes, ssrc: int, seq: int, ts: int, marker: bool) -> bytearray:
    """`packet` with another SSRC, sequence number and timestamp (and the marker set)."""
    out = bytearray(packet)
    if marker:
        out[1] |= 0x80
    _REWRITE.pack_into(out, 2, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return out


def clock_rate(clock_rates: Mapping[int, int], payload_type: int) -> int:
    """The RTP clock of a payload type: from the SDP, else RFC 3551, else 8000."""
    rate = clock_rates.get(payload_type) or STATIC_CLOCK_RATES.get(payload_type)
    return rate or DEFAULT_CLOCK_RATE


class Reception:
    """RFC 3550's receiver state for the source one leg's endpoint sends."""

    __slots__ = (
        "bad_seq", "base_seq", "clock_rates", "cycles", "expected_prior", "jitter", "max_jump",
        "max_seq", "packets", "payload_type", "rate", "received_prior", "ssrc", "transit",
    )  # fmt: skip

    def __init__(self, clock_rates: Mapping[int, int] | None = None) -> None:
        self.clock_rates: Mapping[int, int] = clock_rates or {}
        self.ssrc: int | None = None
        self.payload_type = -1
        self.rate = DEFAULT_CLOCK_RATE
        self.max_jump = DEFAULT_CLOCK_RATE * MAX_TS_JUMP  # in timestamp units
        self._start(0)
        self.ssrc = None

    def _start(self, seq: int) -> None:
        """A.1's init_seq: a new source, or the same one restarted."""
        self.base_seq = self.max_seq = seq
        self.bad_seq = NO_SEQ
        self.cycles = 0
        self.packets = self.expected_prior = self.received_prior = 0
        self.transit = -1  # none yet
        self.jitter = 0  # A.8, scaled by 16

    def update(self, ssrc: int, seq: int, ts: int, payload_type: int, now: float) -> bool:
        """Count one packet arriving at `now` (seconds). True when the source's
        sequence numbers or timestamps jumped: a receiver would be lost.

        Every relayed packet comes through here: locals, no calls on the usual way.
        """
        jumped = False
        if ssrc != self.ssrc:
            self.ssrc = ssrc
            self._start(seq)
        else:
            max_seq = self.max_seq
            delta = (seq - max_seq) & 0xFFFF
            if delta < MAX_DROPOUT:
                if seq < max_seq:
                    self.cycles += SEQ_MOD  # wrapped
                self.max_seq = seq
                if self.bad_seq != NO_SEQ:
                    # Back in line after one stray packet: a jump back for whoever
                    # followed the stray.
                    self.bad_seq = NO_SEQ
                    jumped = True
            elif delta <= SEQ_MOD - MAX_MISORDER:
                # A jump. A.1 believes it when the next packet follows on; a
                # receiver follows it at once (and is told again if it was a stray).
                if seq == self.bad_seq:
                    self._start(seq)
                else:
                    self.bad_seq = (seq + 1) & 0xFFFF
                    return True  # not counted until confirmed, as in A.1
            # else: a duplicate or a late packet; counted, as A.1 does
        self.packets += 1
        if payload_type != self.payload_type:
            self._payload_type(payload_type)
        # A.8: transit time in the payload's clock, its change, the running mean.
        transit = (int(now * self.rate) - ts) & 0xFFFFFFFF
        last = self.transit
        self.transit = transit
        if last >= 0:
            d = (transit - last) & 0xFFFFFFFF
            if d >= 0x80000000:
                d = TS_MOD - d
            if d > self.max_jump:
                return True  # not network jitter: the timestamps jumped
            jitter = self.jitter
            self.jitter = jitter + d - ((jitter + 8) >> 4)
        return jumped

    def _payload_type(self, payload_type: int) -> None:
        self.payload_type = payload_type
        rate = clock_rate(self.clock_rates, payload_type)
        if rate != self.rate:
            self.rate = rate
            self.max_jump = rate * MAX_TS_JUMP
            self.transit = -1  # transit times in another clock do not compare

    # What the figures say (RFC 3550 A.3), for reports and quality figures.

    @property
    def extended_max(self) -> int:
        """The highest sequence number received, with its wrap-arounds (32 bits)."""
        return (self.cycles + self.max_seq) & 0xFFFFFFFF

    @property
    def expected(self) -> int:
        if self.ssrc is None:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Packets expected and not received (negative with duplicates, as A.3 says)."""
        return self.expected - self.packets if self.ssrc is not None else 0

    @property
    def jitter_units(self) -> int:
        """Interarrival jitter in timestamp units, as a report block carries it."""
        return self.jitter >> 4

    @property
    def jitter_seconds(self) -> float:
        return (self.jitter >> 4) / self.rate

    def interval(self) -> int:
        """The fraction lost since the last call, in 1/256 (A.3), and a new interval."""
        expected, packets = self.expected, self.packets
        expected_interval = expected - self.expected_prior
        lost_interval = expected_interval - (packets - self.received_prior)
        self.expected_prior, self.received_prior = expected, packets
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)


class Sending:
    """The stream one receiver gets: counts for its sender reports, and the
    rewriting that keeps it one stream when its source changes."""

    __slots__ = (
        "at", "last", "marker", "octets", "packets", "rate", "rewriting", "seq_offset",
        "source", "ssrc", "switches", "ts_offset",
    )  # fmt: skip

    def __init__(self) -> None:
        self.source: int | None = None  # SSRC of the source now relayed; None: take the next
        self.ssrc: int | None = None  # SSRC the receiver sees (the first source's)
        self.seq_offset = self.ts_offset = 0
        self.rewriting = False
        self.marker = False
        self.last: bytes | None = None  # the last packet sent, as sent
        self.at = 0.0  # when (monotonic seconds)
        self.rate = DEFAULT_CLOCK_RATE  # the clock of the last packet's payload type
        self.packets = self.octets = 0
        self.switches = 0

    def switch(self, source: int, seq: int, ts: int, rate: int, now: float) -> None:
        """The packet (`seq`, `ts`) from `source` is the first of another source."""
        self.source = source
        self.rate = rate
        if self.last is None:  # the first source: it goes out as it comes
            self.ssrc = source
            return
        _, last_seq, last_ts, _ = HEADER.unpack_from(self.last)
        self.seq_offset = seq_offset(last_seq, seq)
        self.ts_offset = ts_offset(last_ts, now - self.at, rate, ts)
        self.rewriting = True
        self.marker = True
        self.switches += 1

    def rewrite(self, packet: bytes, seq: int, ts: int) -> bytearray:
        assert self.ssrc is not None
        marker, self.marker = self.marker, False
        return rewrite(packet, self.ssrc, seq + self.seq_offset, ts + self.ts_offset, marker)

    def timestamp_at(self, now: float) -> int:
        """The RTP timestamp the stream would carry at `now`: for a sender report."""
        if self.last is None:
            return 0
        _, _, last_ts, _ = HEADER.unpack_from(self.last)
        return (last_ts + round((now - self.at) * self.rate)) & 0xFFFFFFFF
