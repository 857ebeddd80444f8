"""SIP over UDP: one DatagramProtocol per bound address.

Every datagram is one message (RFC 3261 §18.3) and is handed on whole: the SIP
stack parses it and cuts the body to Content-Length.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from typing import TYPE_CHECKING, cast

from ..sip.flow import Flow

if TYPE_CHECKING:
    from .registry import Transports

__all__ = ["UdpListener", "listen_udp"]

log = logging.getLogger("switch.transport.udp")

# Bursts (a SIPp run, a trunk's retransmissions after a pause) overflow the
# default socket buffers long before the loop falls behind.
SOCKET_BUFFER = 4 * 1024 * 1024
_BLANK = frozenset(b" \t\r\n")


async def listen_udp(hub: Transports, host: str, port: int) -> UdpListener:
    _, protocol = await hub.loop.create_datagram_endpoint(
        lambda: UdpListener(hub), local_addr=(host, port)
    )
    return protocol


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, hub: Transports) -> None:
        self._hub = hub
        self._transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.ipv6 = False
        # Datagrams sent during this loop iteration, flushed at its end.
        self._pending: list[tuple[bytes, tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not a DatagramTransport subclass in every loop (selector, uvloop).
        self._transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])
        sock: socket.socket | None = transport.get_extra_info("socket")
        if sock is not None:
            self.ipv6 = sock.family == socket.AF_INET6
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                except OSError:
                    pass  # the kernel caps it; the default still works

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        hub = self._hub
        if len(data) > hub.max_message_size:
            hub.stats["dropped_too_large"] += 1
            return
        # Some phones keep their NAT binding open with CRLFs: nothing to answer.
        if not data or (data[0] in _BLANK and not data.strip()):
            hub.stats["keepalives"] += 1
            return
        hub._receive(data, Flow("udp", (addr[0], addr[1]), self.local))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) for something we sent: the
        # transaction layer times out on its own.
        self._hub.stats["udp_errors"] += 1
        log.debug("UDP error on %s: %s", self.local, exc)

    def send(self, data: bytes, remote: tuple[str, int]) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if not _is_ip(remote[0]):
            # sendto() to a name would resolve it synchronously and stall the
            # loop; names are resolved (RFC 3263) before they get here.
            log.warning("not sending UDP to unresolved host %r", remote[0])
            return False
        # Sent together at the end of this loop iteration rather than one by
        # one: a peer woken by the first datagram reads the rest in the same
        # wake-up, which under load saves most of the cost of a send.
        if not self._pending:
            self._hub.loop.call_soon(self._flush)
        self._pending.append((data, remote))
        return True

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for data, remote in pending:
            transport.sendto(data, remote)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False
