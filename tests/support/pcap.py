"""A reader for classic pcap files (not pcapng): the UDP datagrams in them.

Enough for the captures tests replay (sip-tester's RTP ones among them):
either byte order, microsecond or nanosecond timestamps, Ethernet (with
802.1Q tags), Linux cooked capture or raw IP link layers, IPv4 and IPv6.
Anything else in the file (TCP, ARP, fragments) is skipped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

ETHERNET, RAW, LINUX_SLL = 1, 101, 113
_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
UDP = 17


@dataclass(frozen=True)
class Datagram:
    time: float  # seconds since the epoch, as captured
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def read_udp(path: str | Path) -> list[Datagram]:
    data = Path(path).read_bytes()
    if data[:4] not in _MAGIC:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not read here)")
    order, unit = _MAGIC[data[:4]]
    (link,) = struct.unpack_from(order + "I", data, 20)
    record = struct.Struct(order + "IIII")
    out = []
    offset = 24
    while offset + record.size <= len(data):
        seconds, fraction, captured, _ = record.unpack_from(data, offset)
        offset += record.size
        frame = data[offset : offset + captured]
        offset += captured
        ip = _ip_packet(link, frame)
        found = _udp(ip) if ip else None
        if found:
            out.append(Datagram(seconds + fraction * unit, *found))
    return out


def _ip_packet(link: int, frame: bytes) -> bytes | None:
    if link == RAW:
        return frame
    if link == LINUX_SLL:
        return frame[16:] if frame[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if link != ETHERNET:
        raise ValueError(f"pcap link type {link} is not read here (Ethernet, SLL, raw IP are)")
    offset, ethertype = 12, frame[12:14]
    while ethertype == b"\x81\x00":  # 802.1Q tag
        offset += 4
        ethertype = frame[offset : offset + 2]
    return frame[offset + 2 :] if ethertype in (b"\x08\x00", b"\x86\xdd") else None


def _udp(ip: bytes) -> tuple[tuple[str, int], tuple[str, int], bytes] | None:
    if len(ip) < 20:
        return None
    if ip[0] >> 4 == 4:
        header = (ip[0] & 0x0F) * 4
        fragment = struct.unpack_from("!H", ip, 6)[0] & 0x3FFF
        if ip[9] != UDP or fragment:
            return None
        src, dst = _ipv4(ip[12:16]), _ipv4(ip[16:20])
    elif ip[0] >> 4 == 6 and len(ip) >= 40:
        header = 40
        if ip[6] != UDP:  # extension headers are not followed
            return None
        src, dst = _ipv6(ip[8:24]), _ipv6(ip[24:40])
    else:
        return None
    if len(ip) < header + 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", ip, header)
    return (src, sport), (dst, dport), ip[header + 8 : header + length]


def _ipv4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _ipv6(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))
