"""SIP over TCP and TLS: one asyncio Protocol per connection.

A plain Protocol rather than streams: data arrives in `data_received`, goes
through the connection's framer, and each message is handed on at once, with
no task per connection. Keepalive pings (RFC 5626 §3.5.1) are answered here,
so the SIP stack never sees them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from typing import TYPE_CHECKING, cast

from ..sip.flow import Flow
from ..sip.framing import PING, FramingError, StreamFramer

if TYPE_CHECKING:
    from .registry import Transports

__all__ = ["StreamConnection", "connect_stream", "listen_stream"]

log = logging.getLogger("switch.transport.stream")

PONG = b"\r\n"
# A TLS client that never finishes its handshake holds a socket but is not yet
# counted against its source's limit; give it little time.
HANDSHAKE_TIMEOUT = 10.0
# Timer handles may fire a hair early (the loop's clock resolution).
_EARLY = 0.001


async def listen_stream(
    hub: Transports, name: str, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> asyncio.AbstractServer:
    """Accept `name` ("tcp" or "tls") connections on host:port."""
    return await hub.loop.create_server(
        lambda: StreamConnection(hub, name),
        host,
        port,
        ssl=ssl_context,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_context is not None else None,
        reuse_address=True,
        backlog=1024,
    )


async def connect_stream(
    hub: Transports, conn: StreamConnection, ssl_context: ssl.SSLContext | None
) -> None:
    """Open `conn`'s outbound connection; on failure drop it and what it queued."""
    host, port = conn.flow.remote
    try:
        async with asyncio.timeout(hub.connect_timeout):
            await hub.loop.create_connection(
                lambda: conn,
                host,
                port,
                ssl=ssl_context,
                server_hostname=host if ssl_context is not None else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_context is not None else None,
            )
    except asyncio.CancelledError:
        conn.connect_failed()
        raise
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        hub.stats["connect_failed"] += 1
        log.info("cannot connect to %s: %s", conn.flow, exc or type(exc).__name__)
        conn.connect_failed()


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection, accepted or opened by us.

    An outbound connection is created with its flow (and registered) before it
    is connected, so that concurrent sends to the same peer share it; what
    they write is queued until `connection_made`.
    """

    def __init__(self, hub: Transports, transport_name: str, flow: Flow | None = None) -> None:
        self._hub = hub
        self._loop = hub.loop
        self.inbound = flow is None
        self.flow = flow if flow is not None else Flow(transport_name, ("", 0))
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(hub.max_message_size)
        self._queued: list[bytes] = []
        self._queued_size = 0
        self._counted_ip: str | None = None  # the source charged in Limits
        self._closed = False
        self._last = 0.0  # loop time of the last byte in or out
        self._idle: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # not a subclass with uvloop
        hub = self._hub
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if self._closed or peer is None:
            transport.abort()
            return
        local = (sock[0], sock[1]) if sock else ("", 0)
        if self.inbound:
            ip = peer[0]
            if not hub.limits.connection_opened(ip):
                hub.stats["dropped_conn_limit"] += 1
                log.debug("refused a connection from %s: too many from that address", ip)
                self._closed = True
                transport.abort()
                return
            self._counted_ip = ip
            self.flow = Flow(self.flow.transport, (peer[0], peer[1]), local, hub._next_conn_id())
            hub._add(self)
            hub.stats["connections_accepted"] += 1
        else:
            # Same conn_id and remote, so the registry's indexes still hold.
            self.flow = dataclasses.replace(self.flow, local=local)
        self._transport = transport
        self._last = self._loop.time()
        self._arm_idle()
        if self._queued:
            transport.write(b"".join(self._queued))
            self._queued.clear()

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        try:
            messages = self._framer.feed(data)
        except FramingError as exc:
            self._framing_error(exc)
            return
        for message in messages:
            self._handle(message)

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._counted_ip is not None:
            self._hub.limits.connection_closed(self._counted_ip)
            self._counted_ip = None
        self._hub._remove(self)

    # -- used by the registry --------------------------------------------------------

    def write(self, data: bytes) -> bool:
        if self._closed:
            return False
        hub = self._hub
        transport = self._transport
        if transport is None:  # still connecting
            if self._queued_size + len(data) > hub.max_write_buffer:
                return False
            self._queued.append(data)
            self._queued_size += len(data)
            return True
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > hub.max_write_buffer:
            hub.stats["closed_slow_peer"] += 1
            log.info("%s does not read what we send; closing", self.flow)
            self.abort()
            return False
        transport.write(data)
        self._last = self._loop.time()
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        else:
            self.connect_failed()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        else:
            self.connect_failed()

    def connect_failed(self) -> None:
        self._closed = True
        self._queued.clear()
        self._hub._remove(self)

    # -- internals -------------------------------------------------------------------

    def _handle(self, message: bytes) -> None:
        if message is PING:
            self._hub.stats["keepalives"] += 1
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(PONG)
        elif not self._closed:
            self._hub._receive(message, self.flow)

    def _framing_error(self, exc: FramingError) -> None:
        hub = self._hub
        hub.stats["framing_errors"] += 1
        if exc.too_large:
            hub.stats["dropped_too_large"] += 1
        log.info("%s: %s; closing the connection", self.flow, exc.reason)
        for message in exc.messages:
            self._handle(message)
        if self._transport is not None:
            self._transport.close()

    def _arm_idle(self) -> None:
        timeout = self._hub.idle_timeout
        if timeout > 0:
            self._idle = self._loop.call_at(self._last + timeout, self._check_idle)

    def _check_idle(self) -> None:
        # One timer per idle period rather than one reset per read: on a busy
        # connection this fires once per `idle_timeout` and re-arms.
        self._idle = None
        if self._closed or self._transport is None:
            return
        if self._loop.time() - self._last >= self._hub.idle_timeout - _EARLY:
            self._hub.stats["idle_closed"] += 1
            log.debug("%s idle for %ss; closing", self.flow, self._hub.idle_timeout)
            self._transport.close()
        else:
            self._arm_idle()
