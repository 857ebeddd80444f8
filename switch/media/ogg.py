"""Ogg pages (RFC 3533) and Opus in Ogg files (RFC 7845), pure.

An Ogg logical stream is a sequence of pages; each page carries a header
(capture pattern "OggS", flags, granule position, serial number, page
sequence number, CRC, segment table) and the segments of one or more
packets. A packet is laced into segments of 255 bytes and one shorter one
(0 when its length is a multiple of 255), so that a reader finds where it
ends; a page holds at most 255 segments, and a packet that does not fit
goes on in the next page (the "continued" flag). The CRC is Ogg's own
CRC-32: polynomial 0x04C11DB7, not reflected, initial value and final XOR 0,
over the whole page with its CRC field zeroed.

An Opus stream in Ogg (RFC 7845) is: a first page (BOS) holding only the
identification header "OpusHead" (channels, pre-skip, the input's sample
rate, output gain, channel mapping), then the comment header "OpusTags"
(vendor string, TAG=value comments) starting on the second page, then audio
pages, the last one flagged EOS. Granule positions count samples at 48 kHz
whatever the input's rate: an audio page's granule is the position of the
last sample of the last packet that ends on it, pre-skip included (pages
where no packet ends get -1). The last page's granule may stop short of
what its packets decode to: that is how the exact length of a stream that
is not a whole number of frames is kept ("end trimming").

`OggOpusWriter` writes one such stream to a file object as packets come;
`read_pages` and `read_packets` parse one back, checking every CRC (for
tests, and for tools that look into a recording).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

CAPTURE = b"OggS"
CONTINUED = 0x01  # the page starts with the rest of a packet begun earlier
BOS = 0x02  # first page of the stream
EOS = 0x04  # last page of the stream
MAX_SEGMENTS = 255
NO_GRANULE = -1  # a page on which no packet ends
GRANULE_RATE = 48000  # RFC 7845 §4: granule positions are at 48 kHz
# Header: capture, version, flags, granule, serial, sequence, CRC, segments.
_HEADER = struct.Struct("<4sBBqIIIB")
_CRC_OFFSET = 22

# -- CRC -----------------------------------------------------------------------------

# Ogg's CRC is the mirror image of zlib's: the same polynomial, bits in the
# other order. So zlib (C speed) computes it on bit-reversed bytes, and the
# result is reversed back; zlib's own initial value and final XOR (all ones)
# cancel out with the start value given and the XOR after.
_REVERSE_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _reverse32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little").translate(_REVERSE_BITS), "big")


def crc32(data: bytes) -> int:
    """Ogg's CRC-32 of `data` (RFC 3533: polynomial 0x04C11DB7, no
    reflection, initial value 0, no final XOR)."""
    reflected = zlib.crc32(data.translate(_REVERSE_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _reverse32(reflected)


# -- pages ---------------------------------------------------------------------------


def lacing(length: int) -> bytes:
    """The segment table entries of a packet of `length` bytes."""
    return b"\xff" * (length // 255) + bytes((length % 255,))


def page(
    body: bytes, segments: bytes, *, serial: int, sequence: int, granule: int, flags: int = 0
) -> bytes:
    """One Ogg page, CRC included. `segments` is its segment table (the
    lacing values of what `body` holds), `granule` its granule position."""
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"an Ogg page holds at most 255 segments; got {len(segments)}")
    if sum(segments) != len(body):
        raise ValueError(
            f"the segment table adds up to {sum(segments)} bytes; body has {len(body)}"
        )
    header = _HEADER.pack(CAPTURE, 0, flags, granule, serial, sequence, 0, len(segments))
    raw = bytearray(header + segments + body)
    struct.pack_into("<I", raw, _CRC_OFFSET, crc32(bytes(raw)))
    return bytes(raw)


class OggStream:
    """One logical stream being written: packets in, pages out.

    `add(packet, granule)` queues a packet and the granule position at its
    end; `pages()` turns what is queued into pages (as many as it takes,
    255 segments each at most), `pages(eos=True)` the last ones.
    """

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.sequence = 0  # the next page's sequence number
        self.ended = False
        self._segments = bytearray()
        self._body = bytearray()
        self._granules: list[list[int]] = []  # [segment count where a packet ends, granule]
        self._continued = False  # the next page starts inside a packet
        self._flags = BOS  # for the next page

    @property
    def packets(self) -> int:
        """Packets queued, not yet in a page."""
        return len(self._granules)

    @property
    def queued_segments(self) -> int:
        return len(self._segments)

    def add(self, packet: bytes, granule: int) -> None:
        if self.ended:
            raise ValueError("the stream has ended (EOS written): no more packets")
        self._segments += lacing(len(packet))
        self._body += packet
        self._granules.append([len(self._segments), granule])

    def set_last_granule(self, granule: int) -> None:
        """Change the granule of the last packet queued (end trimming)."""
        if not self._granules:
            raise ValueError("no packet queued")
        self._granules[-1][1] = granule

    def pages(self, eos: bool = False) -> list[bytes]:
        """Everything queued as pages; with `eos`, the last page of the stream.

        Nothing queued and no `eos`: no page. (An `eos` with nothing queued
        makes an empty page carrying the flag.)
        """
        if self.ended:
            raise ValueError("the stream has ended (EOS written)")
        out: list[bytes] = []
        segments, body = self._segments, self._body
        start = offset = 0
        while start < len(segments) or (eos and not out):
            end = min(start + MAX_SEGMENTS, len(segments))
            table = bytes(segments[start:end])
            size = sum(table)
            ending = [g for at, g in self._granules if start < at <= end]
            flags = self._flags | (CONTINUED if self._continued else 0)
            if eos and end == len(segments):
                flags |= EOS
            out.append(
                page(
                    bytes(body[offset : offset + size]),
                    table,
                    serial=self.serial,
                    sequence=self.sequence,
                    granule=ending[-1] if ending else NO_GRANULE,
                    flags=flags,
                )
            )
            self.sequence += 1
            self._flags = 0
            # The page ends inside a packet when its last segment is 255 long.
            self._continued = bool(table) and table[-1] == 255
            start, offset = end, offset + size
        segments.clear()
        body.clear()
        self._granules.clear()
        self.ended = eos
        return out


# -- Opus in Ogg ---------------------------------------------------------------------


def opus_head(channels: int, pre_skip: int, input_rate: int, gain: int = 0) -> bytes:
    """The identification header (RFC 7845 §5.1), channel mapping family 0
    (mono or stereo). `gain` is in Q7.8 dB; `input_rate` is informational."""
    if channels not in (1, 2):
        raise ValueError(f"channel mapping family 0 is mono or stereo; got {channels} channels")
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, input_rate, gain, 0)


def opus_tags(vendor: str, comments: Iterable[str] = ()) -> bytes:
    """The comment header (RFC 7845 §5.2): vendor string, then TAG=value comments."""
    out = bytearray(b"OpusTags")
    encoded = vendor.encode()
    out += struct.pack("<I", len(encoded)) + encoded
    items = [c.encode() for c in comments]
    for item, text in zip(items, comments, strict=True):
        if b"=" not in item:
            raise ValueError(f"a comment is TAG=value; got {text!r}")
    out += struct.pack("<I", len(items))
    for item in items:
        out += struct.pack("<I", len(item)) + item
    return bytes(out)


class OggOpusWriter:
    """Writes an Opus stream in Ogg to `file`, packet by packet.

    The two header pages are written at once. `write(packet, samples)` takes
    one Opus packet and how many 48 kHz samples it decodes to; a page is
    written when a second of audio is queued (RFC 7845 §6 asks muxers to
    keep pages short, so that a reader seeks finely and a crash loses
    little) or the page is full. `close(length)` writes the last page (EOS)
    with the granule of `length` samples (at 48 kHz, not counting pre-skip)
    when the packets hold more than that: the padding of the last frame is
    trimmed on decoding.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        channels: int,
        pre_skip: int,
        input_rate: int,
        vendor: str,
        comments: Iterable[str] = (),
        serial: int = 0,
        page_samples: int = GRANULE_RATE,
    ) -> None:
        self.file = file
        self.pre_skip = pre_skip
        self.page_samples = page_samples
        self.stream = OggStream(serial)
        # Samples the packets written so far decode to (pre-skip included:
        # the encoder's delay is part of what it output).
        self.granule = 0
        self._queued_samples = 0
        self.bytes = 0
        self.stream.add(opus_head(channels, pre_skip, input_rate), 0)
        self._out(self.stream.pages())
        self.stream.add(opus_tags(vendor, comments), 0)
        self._out(self.stream.pages())  # audio starts on a page of its own (§3)

    def _out(self, pages: list[bytes]) -> None:
        for data in pages:
            self.file.write(data)
            self.bytes += len(data)

    def write(self, packet: bytes, samples: int) -> None:
        """One Opus packet that decodes to `samples` samples at 48 kHz."""
        # The last packet is held back: the EOS page must carry one.
        stream = self.stream
        if stream.packets and (
            self._queued_samples >= self.page_samples
            or stream.queued_segments + len(packet) // 255 + 1 > MAX_SEGMENTS
        ):
            self._out(stream.pages())
            self._queued_samples = 0
        self.granule += samples
        stream.add(packet, self.granule)
        self._queued_samples += samples

    def close(self, length: int | None = None) -> None:
        """The last page (EOS); `length`: the stream's true length in 48 kHz
        samples, if shorter than its packets (the end is trimmed)."""
        stream = self.stream
        if length is not None and self.pre_skip + length < self.granule:
            # End trimming: the last packet's granule says where audio ends.
            stream.set_last_granule(self.pre_skip + max(length, 0))
        self._out(stream.pages(eos=True))


# -- reading -------------------------------------------------------------------------


class OggError(ValueError):
    """Not a valid Ogg stream (bad capture pattern, CRC, or a truncated page)."""


@dataclass(frozen=True, slots=True)
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    segments: bytes
    body: bytes


def read_pages(data: bytes) -> Iterator[Page]:
    """The pages of an Ogg stream, each CRC checked (OggError if one is wrong)."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise OggError(f"truncated page header at byte {offset}")
        capture, version, flags, granule, serial, sequence, crc, count = _HEADER.unpack_from(
            data, offset
        )
        if capture != CAPTURE or version != 0:
            raise OggError(f"no Ogg page at byte {offset}")
        table_end = offset + _HEADER.size + count
        segments = data[offset + _HEADER.size : table_end]
        end = table_end + sum(segments)
        if len(segments) < count or end > len(data):
            raise OggError(f"truncated page at byte {offset}")
        raw = bytearray(data[offset:end])
        struct.pack_into("<I", raw, _CRC_OFFSET, 0)
        if crc32(bytes(raw)) != crc:
            raise OggError(f"bad CRC in page {sequence} at byte {offset}")
        yield Page(flags, granule, serial, sequence, segments, data[table_end:end])
        offset = end


def read_packets(pages: Iterable[Page]) -> list[bytes]:
    """The packets the pages carry, joined across page boundaries."""
    packets: list[bytes] = []
    partial = bytearray()
    for p in pages:
        if partial and not p.flags & CONTINUED:
            raise OggError(f"page {p.sequence} should continue a packet and does not")
        offset = 0
        for value in p.segments:
            partial += p.body[offset : offset + value]
            offset += value
            if value < 255:
                packets.append(bytes(partial))
                partial.clear()
    if partial:
        raise OggError("the stream ends inside a packet")
    return packets
