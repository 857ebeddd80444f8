"""The RTP relay: media of a call flows through the node, leg to leg, undecoded.

Each leg of a call gets a pair of UDP ports from the configured range (RTP
on an even port, RTCP on the next). A packet that arrives on leg A's port
leaves from leg B's port to B's media address, and the other way round:
the fast path, no decoding, RTCP relayed the same way.

Phones behind NAT announce addresses nobody can reach, so each side
"latches" (symmetric RTP): once a packet arrives from a leg's endpoint,
its source address is where that leg's media goes, whatever its SDP said.

`anchor()` rewrites an SDP offer or answer so that the far side sends to
our port, and tells where the near side said it listens.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from dataclasses import dataclass, field

from ..sip.sdp import Connection, SdpError, parse_sdp

log = logging.getLogger("switch.media")


class RelayPort(asyncio.DatagramProtocol):
    """One UDP socket of one leg; what it receives goes out of its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: RelayPort | None = None
        self.remote: tuple[str, int] | None = None  # where this leg's endpoint is
        self.latched = False
        self.received = 0
        self.sent = 0
        self.last_received = 0.0  # monotonic seconds; 0 = never

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if self.remote != addr:
            # Symmetric RTP: the endpoint is where its packets come from.
            self.remote = (addr[0], addr[1])
            self.latched = True
        self.received += 1
        self.last_received = time.monotonic()
        peer = self.peer
        if peer is not None and peer.remote is not None and peer.transport is not None:
            peer.transport.sendto(data, peer.remote)
            peer.sent += 1

    def expect(self, remote: tuple[str, int]) -> None:
        """Where the SDP says this leg listens; a latched address wins over it."""
        if not self.latched:
            self.remote = remote

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class LegMedia:
    rtp: RelayPort
    rtcp: RelayPort

    @property
    def port(self) -> int:
        return self.rtp.port

    def expect(self, remote: tuple[str, int]) -> None:
        self.rtp.expect(remote)
        self.rtcp.expect((remote[0], remote[1] + 1))


@dataclass
class MediaSession:
    """The relay of one call: a pair of ports per leg, joined crosswise."""

    a: LegMedia
    b: LegMedia
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.a.rtp.peer, self.b.rtp.peer = self.b.rtp, self.a.rtp
        self.a.rtcp.peer, self.b.rtcp.peer = self.b.rtcp, self.a.rtcp

    def idle_for(self, now: float) -> float:
        """Seconds since RTP last came from either side (since creation if never)."""
        last = max(self.a.rtp.last_received, self.b.rtp.last_received, self.created)
        return now - last

    def close(self) -> None:
        for port in (self.a.rtp, self.a.rtcp, self.b.rtp, self.b.rtcp):
            port.close()


class PortPool:
    """UDP port pairs from [low, high), handed out round-robin, skipping busy ones."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self.low = low + (low % 2)  # RTP on even ports (RFC 3550 §11)
        self.high = high
        self._next = self.low
        self.sessions = 0

    async def leg(self) -> LegMedia:
        loop = asyncio.get_running_loop()
        span = max(2, self.high - self.low)
        for _ in range(span // 2):
            port = self._next
            self._next = port + 2 if port + 2 < self.high - 1 else self.low
            # A port in use is the usual failure; uvloop reports it without
            # an errno ("could not bind to local_addr"), so any bind error
            # moves on to the next pair, and only a range with none left fails.
            try:
                _, rtp = await loop.create_datagram_endpoint(
                    RelayPort, local_addr=(self.host, port)
                )
            except OSError:
                continue
            try:
                _, rtcp = await loop.create_datagram_endpoint(
                    RelayPort, local_addr=(self.host, port + 1)
                )
            except OSError:
                rtp.close()
                continue
            return LegMedia(rtp, rtcp)  # type: ignore[arg-type]
        raise OSError(errno.EADDRINUSE, f"no free RTP port pair in {self.low}-{self.high}")

    async def session(self) -> MediaSession:
        a = await self.leg()
        try:
            b = await self.leg()
        except OSError:
            a.rtp.close()
            a.rtcp.close()
            raise
        self.sessions += 1
        return MediaSession(a, b)


def anchor(body: bytes, address: str, port: int) -> tuple[bytes, tuple[str, int] | None]:
    """The SDP with its first audio stream moved to `address`:`port`, and where
    that stream was (None when the SDP names none, e.g. port 0 or no audio).

    Other streams (video) are refused by setting their port to 0: the relay
    carries audio only, and a call center needs nothing else.
    """
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return body, None  # not ours to fix: the far end will say what is wrong
    remote = None
    addrtype = "IP6" if ":" in address else "IP4"
    found = False
    for media in sdp.media:
        if media.media == "audio" and not found:
            found = True
            connection = sdp.media_connection(media)
            if media.port and connection is not None:
                remote = (connection.host, media.port)
            media.port = port
            media.connection = Connection(address, addrtype=addrtype)
        else:
            media.port = 0
    if sdp.connection is not None:
        sdp.connection = Connection(address, addrtype=addrtype)
    sdp.origin.address = address
    sdp.origin.addrtype = addrtype
    return sdp.to_bytes(), remote
