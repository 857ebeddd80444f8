"""One direction of a transcoded call, packet to packet (a WebRTC leg's Opus <-> G.711).

Each audio payload of the `source` codec goes through a `Transcoder`; the
packets that come out are re-stamped for the `target`: its payload type, its
clock (the timestamp scaled by the ratio of the two clocks), and sequence
numbers of our own, since one packet in may make none or several out. The
SSRC stays the sender's.

DTMF (RFC 4733 telephone-event) crosses too when both sides have it: the
two legs number it differently and may clock it differently (browsers offer
telephone-event/48000 beside Opus and /8000; a trunk has /8000 only), so an
event packet is mapped, not decoded:

- its payload type becomes the target's telephone-event;
- its timestamp (the instant the key went down) is scaled exactly as the
  audio's is, so it stays on the timeline of the audio this transcoder
  produces (a far end's jitter buffer then sees no jump);
- its duration is scaled by the ratio of the two telephone-event clocks and
  held at 0xFFFF when it no longer fits (a key held over 1.36 s at 48 kHz:
  the far end hears the press, ending at that length);
- it takes the next sequence number of the stream, marker and E bit as sent.

Without a telephone-event on both sides, event packets are dropped, as are
other payload types (comfort noise) and what is not RTP.
"""

from __future__ import annotations

import random
import struct

from ..sip.sdp import Codec
from .transcode import Transcoder

_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")  # event, E/R/volume, duration


def payload(packet: bytes) -> bytes | None:
    """The payload of an RTP packet (after CSRCs, extension and before padding)."""
    if len(packet) < 12:
        return None
    first = packet[0]
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: 4 bytes, then its length in words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if first & 0x20 and end > start:  # padding, its length in the last byte
        end -= packet[-1]
    return packet[start:end] if end >= start else None


class PacketTranscoder:
    """Packets of `source` (and `source_event`) in, packets of `target` (and
    `target_event`) out; see the module doc."""

    def __init__(
        self,
        source: Codec,
        target: Codec,
        source_event: Codec | None = None,
        target_event: Codec | None = None,
    ) -> None:
        self.transcoder = Transcoder(source, target)
        self.source_pt = source.payload_type
        self.target_pt = target.payload_type or 0
        self.ratio = (target.clock_rate, source.clock_rate)
        self.seq = random.randrange(1 << 16)
        self.dropped = 0
        self.events = 0  # telephone-event packets mapped
        # The telephone-event payload types, when both sides have one.
        mapped = source_event is not None and target_event is not None
        self.source_event_pt = source_event.payload_type if mapped else None  # type: ignore[union-attr]
        self.target_event_pt = target_event.payload_type if mapped else None  # type: ignore[union-attr]
        self.source_event = source_event if mapped else None
        self.target_event = target_event if mapped else None
        self._event_ratio = (
            (target_event.clock_rate, source_event.clock_rate)  # type: ignore[union-attr]
            if mapped
            else (1, 1)
        )

    def convert(self, packet: bytes) -> list[bytes]:
        try:
            first, flags, _seq, ts, ssrc = _HEADER.unpack_from(packet)
        except struct.error:
            return []
        body = payload(packet)
        pt = flags & 0x7F
        if first >> 6 != 2 or body is None:
            self.dropped += 1
            return []
        num, den = self.ratio
        # (The timestamp scaled by the clock ratio: a wrap of the source's
        # timestamp, every 6 days of 48 kHz, makes one jump, which the far
        # end takes as a new talk spurt.)
        ts = ts * num // den
        if pt != self.source_pt:
            if pt == self.source_event_pt and pt is not None:
                return self._event(flags & 0x80, ts & 0xFFFFFFFF, ssrc, body)
            self.dropped += 1
            return []
        out = []
        for i, frame in enumerate(self.transcoder.convert(body)):
            marker = flags & 0x80 if i == 0 else 0
            stamp = (ts + i * self.transcoder.frame_ticks) & 0xFFFFFFFF
            out.append(_HEADER.pack(0x80, marker | self.target_pt, self.seq, stamp, ssrc) + frame)
            self.seq = (self.seq + 1) & 0xFFFF
        return out

    def _event(self, marker: int, ts: int, ssrc: int, body: bytes) -> list[bytes]:
        if len(body) < 4:
            self.dropped += 1
            return []
        code, flags, duration = _EVENT.unpack_from(body)
        num, den = self._event_ratio
        duration = min(0xFFFF, duration * num // den)
        pt = self.target_event_pt or 0
        packet = _HEADER.pack(0x80, marker | pt, self.seq, ts, ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.events += 1
        return [packet + _EVENT.pack(code, flags, duration)]
