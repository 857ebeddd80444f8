"""The node's SIP listeners and connections, and the one `send` entry point.

Transports carry bytes and nothing more: each complete message goes to
`on_message(data, flow)` unparsed, and `send(data, flow)` writes bytes where a
flow says. Connections (TCP, TLS, WebSocket) are kept by id and by peer so
that a request for a browser agent goes back over the socket it registered
on, and a response over the connection its request came on (RFC 3261 §18,
RFC 5626). The per-source limits are applied here, before any parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..sip.flow import Flow
from .limits import Limits
from .stream import StreamConnection, connect_stream, listen_stream
from .udp import UdpListener, listen_udp
from .ws import make_ws_handler

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Connection", "OnClosed", "OnMessage", "Transports"]

log = logging.getLogger("switch.transport")

OnMessage = Callable[[bytes, Flow], None]
OnClosed = Callable[[Flow], None]

STREAM = frozenset({"tcp", "tls"})
WEBSOCKET = frozenset({"ws", "wss"})

# Shown in stats from the start, so that a dashboard sees zeros rather than gaps.
STAT_KEYS = (
    "received",
    "sent",
    "dropped_too_large",
    "dropped_rate_limited",
    "dropped_conn_limit",
    "connections_open",
    "connections_accepted",
    "connections_opened",
    "keepalives",
    "framing_errors",
    "idle_closed",
    "connect_failed",
    "send_no_connection",
    "closed_slow_peer",
    "handler_errors",
    "udp_errors",
    "ws_refused_subprotocol",
)

# How long `close()` lets connections close politely before aborting them.
CLOSE_GRACE = 2.0


class Connection(Protocol):
    """What the registry needs of a TCP, TLS or WebSocket connection."""

    flow: Flow

    def write(self, data: bytes) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Transports:
    """Every SIP listener and connection of a node.

    Must be used from inside the event loop it runs on; `send` and
    `connection_for` are plain functions for the sans-IO stack to call.
    """

    def __init__(
        self,
        on_message: OnMessage,
        limits: Limits | None = None,
        max_message_size: int = 65536,
        idle_timeout: float = 600.0,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        client_ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        ws_heartbeat: float | None = 30.0,
        max_write_buffer: int | None = None,
    ) -> None:
        self.on_message = on_message
        self.limits = limits if limits is not None else Limits()
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout  # 0 disables it
        self.connect_timeout = connect_timeout
        # WebSocket pings find a browser that vanished without closing, so
        # that its registration can be dropped (on_connection_closed).
        self.ws_heartbeat = ws_heartbeat
        # A peer that stops reading is closed rather than buffered for forever.
        self.max_write_buffer = max_write_buffer or 16 * max_message_size
        self._client_ssl = client_ssl_context
        self._loop = loop
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self._udp: list[UdpListener] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: dict[int, Connection] = {}
        self._by_peer: dict[tuple[str, tuple[str, int]], Connection] = {}
        self._ids = itertools.count(1)
        self._closed_callbacks: list[OnClosed] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._all_gone: asyncio.Future[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- listening -------------------------------------------------------------------

    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        listener = await listen_udp(self, host, port)
        self._udp.append(listener)
        return listener.local

    def close_udp(self, local: tuple[str, int]) -> None:
        """Stop the UDP listener bound to `local` (e.g. to try another port)."""
        for listener in [u for u in self._udp if u.local == local]:
            self._udp.remove(listener)
            listener.close()

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        return await self._listen_stream("tcp", host, port, None)

    async def listen_tls(
        self, host: str, port: int, ssl_context: ssl.SSLContext
    ) -> tuple[str, int]:
        return await self._listen_stream("tls", host, port, ssl_context)

    async def _listen_stream(
        self, name: str, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> tuple[str, int]:
        server = await listen_stream(self, name, host, port, ssl_context)
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def ws_handler(
        self, secure: bool = False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An aiohttp handler serving SIP over WebSocket (RFC 7118), for GET /sip."""
        return make_ws_handler(self, secure)

    # -- sending ---------------------------------------------------------------------

    def send(self, data: bytes, flow: Flow) -> bool:
        """Send one message; False if it cannot be (the stack counts that).

        Never blocks. On TCP/TLS a missing connection is opened in the
        background and `data` is written once it is up (True is returned).
        A WebSocket can only be reached over the connection the browser opened.
        """
        transport = flow.transport
        if transport == "udp":
            return self._send_udp(data, flow)
        if flow.conn_id is not None:
            conn = self._conns.get(flow.conn_id)
            if conn is not None and conn.flow.transport == transport and conn.write(data):
                self.stats["sent"] += 1
                return True
        if transport not in STREAM or self._closing:
            if transport not in WEBSOCKET:
                log.warning("cannot send over unknown transport %r", transport)
            self.stats["send_no_connection"] += 1
            return False
        remote = _canonical(flow.remote)
        conn = self._by_peer.get((transport, remote))
        if conn is None or not conn.write(data):
            conn = self._connect(transport, remote)
            conn.write(data)  # queued until connected
        self.stats["sent"] += 1
        return True

    def _send_udp(self, data: bytes, flow: Flow) -> bool:
        listener = self._udp_for(flow)
        if listener is None:
            self.stats["send_no_connection"] += 1
            return False
        if listener.send(data, flow.remote):
            self.stats["sent"] += 1
            return True
        return False

    def _udp_for(self, flow: Flow) -> UdpListener | None:
        listeners = self._udp
        if not listeners:
            return None
        if flow.local[1]:
            for listener in listeners:
                if listener.local == flow.local:
                    return listener
        v6 = ":" in flow.remote[0]
        for listener in listeners:
            if listener.ipv6 == v6:
                return listener
        return listeners[0]

    def _connect(self, transport: str, remote: tuple[str, int]) -> StreamConnection:
        flow = Flow(transport, remote, conn_id=next(self._ids))
        conn = StreamConnection(self, transport, flow)
        self._add(conn)
        self.stats["connections_opened"] += 1
        context = None
        if transport == "tls":
            if self._client_ssl is None:
                # Verify the peer like any TLS client would (RFC 5922); a node
                # that must talk to self-signed peers passes its own context.
                self._client_ssl = ssl.create_default_context()
            context = self._client_ssl
        self._spawn(connect_stream(self, conn, context), f"sip connect {flow}")
        return conn

    def connection_for(self, transport: str, remote: tuple[str, int]) -> Flow | None:
        """The flow of an open (or opening) connection to that peer, to reuse it."""
        conn = self._by_peer.get((transport, _canonical(remote)))
        return conn.flow if conn is not None else None

    def on_connection_closed(self, callback: OnClosed) -> None:
        """Call `callback(flow)` whenever a TCP, TLS or WebSocket connection ends.

        Also for an outbound connection that could not be opened, so that
        what was waiting for it can fail fast.
        """
        self._closed_callbacks.append(callback)

    # -- used by the listeners and connections -------------------------------------------

    def _next_conn_id(self) -> int:
        return next(self._ids)

    def _receive(self, data: bytes, flow: Flow) -> None:
        # Only requests are rate limited: a response answers something we
        # sent, and dropping it would only bring a retransmission.
        if not data.startswith(b"SIP/") and not self.limits.allow_request(flow.remote[0]):
            self.stats["dropped_rate_limited"] += 1
            return
        self.stats["received"] += 1
        try:
            self.on_message(data, flow)
        except Exception:
            # One bad message must not take the connection (or the listener) down.
            self.stats["handler_errors"] += 1
            log.exception("error handling a message from %s", flow)

    def _add(self, conn: Connection) -> None:
        flow = conn.flow
        assert flow.conn_id is not None
        self._conns[flow.conn_id] = conn
        self._by_peer[(flow.transport, _canonical(flow.remote))] = conn
        self.stats["connections_open"] += 1

    def _remove(self, conn: Connection) -> None:
        flow = conn.flow
        if flow.conn_id is None or self._conns.pop(flow.conn_id, None) is None:
            return
        key = (flow.transport, _canonical(flow.remote))
        if self._by_peer.get(key) is conn:
            del self._by_peer[key]
        self.stats["connections_open"] -= 1
        for callback in self._closed_callbacks:
            try:
                callback(flow)
            except Exception:
                log.exception("error in a connection-closed callback for %s", flow)
        if not self._conns and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        # Every task of ours is kept here, so that close() can end them all.
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every listener and connection; returns when nothing is left running."""
        if self._closing:
            return
        self._closing = True
        for server in self._servers:
            server.close()
        for listener in self._udp:
            listener.close()
        # Connects under way (their connections go with them) and queued
        # WebSocket sends: nothing more will be sent.
        await self._cancel_tasks()
        if self._conns:
            self._all_gone = self.loop.create_future()
            for conn in list(self._conns.values()):
                conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._all_gone), CLOSE_GRACE)
            for conn in list(self._conns.values()):
                conn.abort()
                self._remove(conn)
            self._all_gone = None
        # Polite WebSocket closes started above.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE)
            await self._cancel_tasks()
        for server in self._servers:
            await server.wait_closed()
        # Let the transports' connection_lost callbacks run.
        await asyncio.sleep(0)
        self._servers.clear()
        self._udp.clear()

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


@functools.lru_cache(maxsize=4096)
def _canonical_host(host: str) -> str:
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _canonical(remote: tuple[str, int]) -> tuple[str, int]:
    """One spelling per peer, so that lookups by address find the connection."""
    return _canonical_host(remote[0]), int(remote[1])
