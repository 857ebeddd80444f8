"""RTCP (RFC 3550 §6), sans-IO: compound packets parsed and built, report
blocks from reception statistics, report intervals, round-trip times.

The relay reads every RTCP packet a phone sends (for loss, jitter and
round-trip figures) and either passes it on or, when it rewrites the
streams or the far side sends none, speaks RTCP to that phone itself.
Parsing refuses anything whose lengths do not add up with `RtcpError`;
packet types the relay does not read (APP, feedback, XR) are kept whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rtp import Reception

SR, RR, SDES, BYE = 200, 201, 202, 203
CNAME = 1  # SDES item type
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
MIN_INTERVAL = 5.0  # RFC 3550 §6.2: the recommended minimum between reports, seconds
# §6.3.1: the random factor's mean is 1, divided by e - 3/2 to make up for
# timer reconsideration, which a two-party session never needs.
COMPENSATION = 2.718281828459045 - 1.5

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!QIII")
_BLOCK = struct.Struct("!IB3sIIII")


class RtcpError(ValueError):
    """A packet that is not valid RTCP: the relay counts it and drops it."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1: what a receiver says about one source."""

    ssrc: int
    fraction_lost: int  # in 1/256 since the previous report
    cumulative_lost: int  # 24-bit signed
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int = 0  # middle 32 bits of the NTP time of the last SR from the source
    dlsr: int = 0  # delay since that SR, in 1/65536 s

    def to_bytes(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc, self.fraction_lost, lost.to_bytes(3, "big"), self.highest_seq,
            self.jitter, self.lsr, self.dlsr,
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big")
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    ntp: int  # 64-bit NTP timestamp of the report
    rtp_ts: int  # the same instant in the stream's RTP clock
    packets: int
    octets: int  # payload octets


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    info: SenderInfo
    blocks: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        info = self.info
        body = struct.pack("!I", self.ssrc) + _SENDER_INFO.pack(
            info.ntp, info.rtp_ts, info.packets & 0xFFFFFFFF, info.octets & 0xFFFFFFFF
        )
        return _packet(SR, len(self.blocks), body + b"".join(b.to_bytes() for b in self.blocks))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(b.to_bytes() for b in self.blocks)
        return _packet(RR, len(self.blocks), body)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES: per SSRC, its items as (type, text)."""

    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]

    @classmethod
    def cname(cls, ssrc: int, name: str) -> SourceDescription:
        return cls(((ssrc, ((CNAME, name.encode()[:255]),)),))

    def to_bytes(self) -> bytes:
        body = bytearray()
        for ssrc, items in self.chunks:
            chunk = bytearray(struct.pack("!I", ssrc))
            for kind, text in items:
                chunk += bytes((kind, len(text))) + text
            chunk += b"\0" * (4 - len(chunk) % 4)  # the end item, then to 32 bits
            body += chunk
        return _packet(SDES, len(self.chunks), bytes(body))


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: bytes = b""

    def to_bytes(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            reason = bytes((len(self.reason[:255]),)) + self.reason[:255]
            body += reason + b"\0" * (-len(reason) % 4)
        return _packet(BYE, len(self.ssrcs), body)


@dataclass(frozen=True, slots=True)
class OtherPacket:
    """A packet type the relay does not read (APP, feedback, XR), kept whole."""

    packet_type: int
    count: int
    body: bytes

    def to_bytes(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


Packet = SenderReport | ReceiverReport | SourceDescription | Bye | OtherPacket


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    assert count < 32 and len(body) % 4 == 0
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def build_compound(packets: list[Packet]) -> bytes:
    return b"".join(p.to_bytes() for p in packets)


def parse_compound(data: bytes) -> list[Packet]:
    """Every packet of a compound RTCP packet; RtcpError if any length is wrong.

    The first packet need not be SR or RR: reduced-size RTCP (RFC 5506)
    sends feedback alone, and it is not the relay's to refuse.
    """
    packets: list[Packet] = []
    offset = 0
    if not data:
        raise RtcpError("empty")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpError(f"{len(data) - offset} stray bytes after the last packet")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"version {first >> 6}, not 2")
        end = offset + 4 + words * 4
        if end > len(data):
            raise RtcpError(f"packet type {packet_type} says {words * 4 + 4} bytes, has fewer")
        if first & 0x20:  # padding: its count is the last byte
            pad = data[end - 1]
            if pad == 0 or pad > words * 4:
                raise RtcpError(f"padding of {pad} bytes in a {words * 4}-byte body")
            body = data[offset + 4 : end - pad]
        else:
            body = data[offset + 4 : end]
        packets.append(_read(packet_type, first & 0x1F, body))
        offset = end
    return packets


def _read(packet_type: int, count: int, body: bytes) -> Packet:
    if packet_type in (SR, RR):
        fixed = 24 if packet_type == SR else 4
        if len(body) < fixed + 24 * count:
            raise RtcpError(f"{'SR' if packet_type == SR else 'RR'} too short for {count} blocks")
        (ssrc,) = struct.unpack_from("!I", body)
        blocks = tuple(ReportBlock.from_bytes(body, fixed + 24 * i) for i in range(count))
        if packet_type == RR:
            return ReceiverReport(ssrc, blocks)
        return SenderReport(ssrc, SenderInfo(*_SENDER_INFO.unpack_from(body, 4)), blocks)
    if packet_type == SDES:
        return _read_sdes(count, body)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpError(f"BYE too short for {count} sources")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = b""
        if len(body) > 4 * count:
            size = body[4 * count]
            reason = body[4 * count + 1 : 4 * count + 1 + size]
            if len(reason) != size:
                raise RtcpError("BYE reason longer than the packet")
        return Bye(ssrcs, reason)
    if not 192 <= packet_type <= 223:
        # Outside RTCP's range: most likely RTP sent to the RTCP port (A.2).
        raise RtcpError(f"packet type {packet_type} is not RTCP")
    return OtherPacket(packet_type, count, bytes(body))


def _read_sdes(count: int, body: bytes) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpError("SDES chunk cut short")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtcpError("SDES chunk without its end item")
            kind = body[offset]
            if kind == 0:  # end: skip to the next 32-bit boundary
                offset = (offset + 4) & ~3
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("SDES item longer than the packet")
            size = body[offset + 1]
            items.append((kind, bytes(body[offset + 2 : offset + 2 + size])))
            offset += 2 + size
        chunks.append((ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


# -- figures ------------------------------------------------------------------------------


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point) of a Unix time."""
    return round((unix_seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def report_block(
    reception: Reception, last_sr: tuple[int, float] | None, now: float
) -> ReportBlock:
    """The block about `reception`'s source, starting a new loss interval.

    `last_sr`: the middle NTP bits of the last SR from that source and the
    (monotonic) time it arrived, for LSR and DLSR.
    """
    assert reception.ssrc is not None
    lsr = dlsr = 0
    if last_sr is not None:
        lsr = last_sr[0]
        dlsr = min(0xFFFFFFFF, max(0, round((now - last_sr[1]) * 65536)))
    return ReportBlock(
        reception.ssrc, reception.interval(), reception.lost, reception.extended_max,
        reception.jitter_units, lsr, dlsr,
    )  # fmt: skip


def round_trip(sent_at: float, now: float, dlsr: int) -> float | None:
    """Seconds between sending an SR (at `sent_at`) and its echo arriving (at
    `now`), less the receiver's hold time `dlsr` (1/65536 s); None if that is
    negative (a report of something else)."""
    rtt = now - sent_at - dlsr / 65536
    return rtt if rtt >= 0 else None


def report_interval(rand: float, initial: bool = False) -> float:
    """Seconds to the next report, RFC 3550 §6.3.1 for a two-party call.

    At audio bit rates the bandwidth-based interval is below the 5 s
    minimum, so Td is 5 s (half that before the first report); `rand` in
    [0, 1) spreads it over [0.5, 1.5] x Td so that legs do not report in step.
    """
    td = MIN_INTERVAL / 2 if initial else MIN_INTERVAL
    return td * (0.5 + rand) / COMPENSATION
