"""The node's own RTP stream toward one leg: its SSRC, sequence numbers, timestamps.

A channel (`switch.media.channel`) sends prompts, silence and DTMF events
as one stream of its own, whoever else the leg heard before. Sans-IO:
`audio()` and `event()` return the packet to send; `skip()` lets time pass
without a packet (nothing to send, or frames the media clock skipped), so
the timestamps stay in step with the wall clock and the next packet after
a gap carries the marker bit (RFC 3551 §4.1: the start of a talk spurt,
where a receiver may adjust its playout).

RFC 4733 events take their timestamp from the instant the key went down,
which the caller reads from `timestamp` before sending the first event;
audio keeps advancing meanwhile (`skip`), so it resumes where the clock is.
"""

from __future__ import annotations

import secrets
import struct

from .dtmf.events import EventPacket

_HEADER = struct.Struct("!BBHII")
_VERSION = 0x80


class OwnStream:
    """One RTP source: packets of one payload type per `frame_ms`, plus events."""

    __slots__ = ("frame_ticks", "marker", "payload_type", "sent", "seq", "ssrc", "timestamp")

    def __init__(
        self,
        payload_type: int,
        clock_rate: int,
        frame_ms: int = 20,
        *,
        ssrc: int | None = None,
        seq: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"an RTP payload type is 0-127; got {payload_type}")
        self.payload_type = payload_type
        self.frame_ticks = clock_rate * frame_ms // 1000
        # RFC 3550 §5.1: random starting points (known-plaintext attacks on SRTP).
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.seq = secrets.randbits(16) if seq is None else seq & 0xFFFF
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self.marker = True  # the first packet starts a talk spurt
        self.sent = 0

    def audio(self, payload: bytes) -> bytes:
        """The packet of the next frame; the stream moves on one frame."""
        first = (0x80 if self.marker else 0) | self.payload_type
        packet = _HEADER.pack(_VERSION, first, self.seq, self.timestamp, self.ssrc) + payload
        self.marker = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.frame_ticks) & 0xFFFFFFFF
        self.sent += 1
        return packet

    def skip(self, frames: int = 1) -> None:
        """Let `frames` frames of time pass without a packet."""
        if frames > 0:
            self.timestamp = (self.timestamp + frames * self.frame_ticks) & 0xFFFFFFFF
            self.marker = True

    def event(self, packet: EventPacket, payload_type: int) -> bytes:
        """An RFC 4733 packet (from `event_packets`) in this stream's numbering."""
        first = (0x80 if packet.marker else 0) | payload_type
        out = _HEADER.pack(_VERSION, first, self.seq, packet.timestamp, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.sent += 1
        return out + packet.payload
