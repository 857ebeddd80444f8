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

Jitter. Decoding needs the frames in order and each lost one concealed, so
a call's transcoders are made with `buffered=True`: `convert()` then keeps
the audio in an adaptive `JitterBuffer` and returns only what passes at
once (events), and `tick(now)`, on the node's 20 ms media clock, returns
the packets of the frames due: each frame transcoded, each missing one
concealed (Opus PLC; a faded G.711 frame; up to `MAX_CONCEALED` in a row,
then nothing until the stream is back), in order. The output runs on a
timeline of its own (one frame's ticks apart; the buffer's growing and
shrinking move it against the input's), and an event is stamped on that
timeline: its input timestamp, scaled, plus the offset between the two
timelines at the last frame played. Unbuffered (the default), each packet
is converted as it comes: what tests and one-off conversions want.
"""

from __future__ import annotations

import random
import struct
import time

from ..sip.sdp import Codec
from .jitter import Frame, JitterBuffer
from .transcode import Transcoder

_HEADER = struct.Struct("!BBHII")
_monotonic = time.monotonic
# Missing frames concealed in a row (100 ms): a loss is bridged, a stream
# that stopped is not carried on as made-up sound.
MAX_CONCEALED = 5
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
        *,
        buffered: bool = False,
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
        # Buffered: the jitter buffer, the SSRC and next timestamp of the
        # output, and its offset from the scaled input timeline (see the module doc).
        self.buffer = (
            JitterBuffer(source.clock_rate, min_delay=0.02, start_delay=0.04) if buffered else None
        )
        self._ssrc = 0
        self._out_ts: int | None = None
        self._offset = 0
        self._marker = 0
        self._missing = 0  # frames concealed in a row

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
        if self.buffer is not None and pt == self.source_pt:
            if ssrc != self._ssrc:  # a new source: its numbers start a new stream
                self.buffer.reset()
                self._ssrc = ssrc
            self._marker |= flags & 0x80
            self.buffer.push(_seq, ts, body, _monotonic())
            return []
        num, den = self.ratio
        # (The timestamp scaled by the clock ratio: a wrap of the source's
        # timestamp, every 6 days of 48 kHz, makes one jump, which the far
        # end takes as a new talk spurt.)
        ts = ts * num // den
        if pt != self.source_pt:
            if pt == self.source_event_pt and pt is not None:
                return self._event(flags & 0x80, (ts + self._offset) & 0xFFFFFFFF, ssrc, body)
            self.dropped += 1
            return []
        out = []
        for i, frame in enumerate(self.transcoder.convert(body)):
            marker = flags & 0x80 if i == 0 else 0
            stamp = (ts + i * self.transcoder.frame_ticks) & 0xFFFFFFFF
            out.append(_HEADER.pack(0x80, marker | self.target_pt, self.seq, stamp, ssrc) + frame)
            self.seq = (self.seq + 1) & 0xFFFF
        return out

    def tick(self, now: float) -> list[bytes]:
        """Buffered: the packets of the frames due at `now` (monotonic seconds)."""
        buffer = self.buffer
        if buffer is None:
            return []
        items = buffer.pop(now)
        if not items:
            return []
        num, den = self.ratio
        ticks = self.transcoder.frame_ticks
        out = []
        for item in items:
            scaled = item.timestamp * num // den
            if self._out_ts is None:
                self._out_ts = scaled
            self._offset = self._out_ts - scaled
            if isinstance(item, Frame):
                self._missing = 0
                frames = self.transcoder.convert(item.payload)
            elif self._missing < MAX_CONCEALED:
                self._missing += 1
                frames = self.transcoder.conceal()
            else:
                # The source went quiet (silence suppression, hold, the end):
                # so does the output; its timestamps go on with the clock.
                frames = []
            for frame in frames:
                header = _HEADER.pack(
                    0x80, self._marker | self.target_pt, self.seq, self._out_ts & 0xFFFFFFFF,
                    self._ssrc,
                )  # fmt: skip
                out.append(header + frame)
                self._marker = 0
                self.seq = (self.seq + 1) & 0xFFFF
                self._out_ts += ticks
            if not frames:  # (a concealment that makes nothing still takes its time)
                self._out_ts += ticks
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
