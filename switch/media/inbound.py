"""What a caller says, as 8 kHz linear frames in order: jitter buffer, then decoder. Sans-IO.

A channel decodes the caller's audio only when something must hear it:
in-band DTMF detection, a recording, an echo with a delay. Packets go in
as they arrive (`push`); at the media clock's pace `pop(now)` returns the
frames due, each 16-bit linear PCM at 8 kHz (what `ToneDetector`, the
recorder and the echo take), a missing packet concealed: Opus by its own
loss concealment, G.711 by silence.

`rtp_payload` reads the payload of an RTP packet past CSRCs, a header
extension and padding, which phones and browsers may all send.
"""

from __future__ import annotations

from collections.abc import Callable

from . import g711
from .jitter import Frame, JitterBuffer

RATE = 8000  # what comes out


def rtp_payload(packet: bytes) -> bytes | None:
    """The payload of an RTP packet, or None when its header does not fit."""
    if len(packet) < 12:
        return None
    first = packet[0]
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: 4 bytes, then its length in words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if first & 0x20 and end > start:  # padding: its length in the last byte
        end -= packet[-1]
    return packet[start:end] if end >= start else None


class Inbound:
    """One caller's voice codec in, 8 kHz linear frames out."""

    def __init__(self, codec: str, clock_rate: int, frame_ms: int = 20) -> None:
        codec = codec.lower()
        self.codec = codec
        self.frame_ms = frame_ms
        self.buffer = JitterBuffer(clock_rate, frame_ms)
        self.frame_bytes = RATE * frame_ms // 1000 * 2
        self._decode: Callable[[bytes], bytes]
        self._conceal: Callable[[], bytes]
        if codec == "pcmu":
            self._decode, self._conceal = g711.ulaw_decode, self._silence
        elif codec == "pcma":
            self._decode, self._conceal = g711.alaw_decode, self._silence
        elif codec == "opus":
            from .opus import OpusDecoder, OpusError

            decoder = OpusDecoder(RATE)

            def decode(payload: bytes) -> bytes:
                try:
                    return decoder.decode(payload)
                except OpusError:
                    self.errors += 1
                    return decoder.conceal()

            self._decode, self._conceal = decode, decoder.conceal
        else:
            raise ValueError(f"a channel decodes PCMU, PCMA or Opus; not {codec!r}")
        self.errors = 0  # payloads that could not be decoded (concealed)

    def _silence(self) -> bytes:
        return bytes(self.frame_bytes)

    def push(self, seq: int, timestamp: int, payload: bytes, now: float) -> None:
        self.buffer.push(seq, timestamp, payload, now)

    def pop(self, now: float) -> list[bytes]:
        """The frames due at `now` (usually one, none before the first packet)."""
        out = []
        for item in self.buffer.pop(now):
            if isinstance(item, Frame) and item.payload:
                out.append(self._decode(item.payload))
            else:
                out.append(self._conceal())
        return out

    def reset(self) -> None:
        """Forget what is buffered (nobody listens for a while)."""
        self.buffer.reset()
