"""SIP over WebSocket (RFC 7118), served by aiohttp.

Each text or binary frame is one whole SIP message, so no framer is needed.
The browser opens the connection and only it can: a request for a browser
agent must go back over the socket it registered on (RFC 7118 §5, RFC 5626).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from ..sip.flow import Flow

if TYPE_CHECKING:
    from .registry import Transports

__all__ = ["SUBPROTOCOL", "WsConnection", "make_ws_handler"]

log = logging.getLogger("switch.transport.ws")

SUBPROTOCOL = "sip"
# How long a polite close waits for the browser's close frame.
CLOSE_TIMEOUT = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_ws_handler(hub: Transports, secure: bool) -> Handler:
    name = "wss" if secure else "ws"

    async def handle_sip_websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            max_msg_size=hub.max_message_size,  # aiohttp closes with 1009 beyond it
            compress=False,  # SIP messages are small; deflate costs more than it saves
            heartbeat=hub.ws_heartbeat,
            timeout=CLOSE_TIMEOUT,
            decode_text=False,  # the SIP stack wants bytes anyway
        )
        ready = ws.can_prepare(request)
        if not ready.ok:
            return web.Response(status=400, text="Expected a WebSocket upgrade for SIP.\n")
        if ready.protocol != SUBPROTOCOL:
            hub.stats["ws_refused_subprotocol"] += 1
            return web.Response(
                status=400,
                text="This endpoint speaks SIP over WebSocket (RFC 7118): "
                "offer the WebSocket subprotocol 'sip' (Sec-WebSocket-Protocol: sip).\n",
            )
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if peer is None:  # gone already
            return web.Response(status=400, text="Connection closed.\n")
        if hub._closing:
            return web.Response(status=503, text="Shutting down.\n", headers={"Retry-After": "5"})
        ip = peer[0]
        if not hub.limits.connection_opened(ip):
            hub.stats["dropped_conn_limit"] += 1
            return web.Response(
                status=503,
                text="Too many connections from your address.\n",
                headers={"Retry-After": "30"},
            )
        try:
            await ws.prepare(request)
            sock = transport.get_extra_info("sockname") if transport is not None else None
            local = (sock[0], sock[1]) if sock else ("", 0)
            flow = Flow(name, (peer[0], peer[1]), local, hub._next_conn_id())
            conn = WsConnection(hub, ws, request, flow)
            hub._add(conn)
            hub.stats["connections_accepted"] += 1
            try:
                await conn.serve()
            finally:
                conn.gone()
        finally:
            hub.limits.connection_closed(ip)
        return ws

    return handle_sip_websocket


class WsConnection:
    """One browser's WebSocket, as the registry sees it.

    aiohttp's send methods are coroutines while `Transports.send` is a plain
    function, so outgoing messages go into a queue drained by a task that
    exists only while there is something to send; order is kept.
    """

    def __init__(
        self, hub: Transports, ws: web.WebSocketResponse, request: web.Request, flow: Flow
    ) -> None:
        self._hub = hub
        self._ws = ws
        self._request = request
        self.flow = flow
        self._outbox: collections.deque[bytes] = collections.deque()
        self._outbox_size = 0
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def serve(self) -> None:
        """Read frames until the browser (or we) close the WebSocket."""
        hub = self._hub
        flow = self.flow
        ws = self._ws
        async for msg in ws:
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                hub._receive(msg.data, flow)
            elif msg.type is WSMsgType.ERROR:
                # msg.data is aiohttp's WebSocketError; ws.close_code may
                # already hold the code of the browser's reply to our close.
                if getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
                    hub.stats["dropped_too_large"] += 1
                    log.info("%s sent a message over the size limit; closed", flow)
                else:
                    log.info("%s: WebSocket error: %s", flow, msg.data)
                break

    def write(self, data: bytes) -> bool:
        if self._closed or self._ws.closed:
            return False
        if self._outbox_size + len(data) > self._hub.max_write_buffer:
            self._hub.stats["closed_slow_peer"] += 1
            log.info("%s does not read what we send; closing", self.flow)
            self.abort()
            return False
        self._outbox.append(data)
        self._outbox_size += len(data)
        if self._writer is None:
            self._writer = self._hub._spawn(self._drain(), f"sip ws send {self.flow}")
        return True

    async def _drain(self) -> None:
        ws = self._ws
        outbox = self._outbox
        try:
            while outbox:
                data = outbox.popleft()
                self._outbox_size -= len(data)
                await ws.send_frame(data, _opcode(data))
        except Exception as exc:  # the socket went away under us
            log.debug("%s: send failed: %s", self.flow, exc)
            outbox.clear()
            self._outbox_size = 0
        finally:
            self._writer = None

    def close(self) -> None:
        """Start a polite close (1001 Going Away); `gone()` follows when it is done."""
        if self._closed:
            return
        self._closed = True
        self._hub._spawn(self._close(), f"sip ws close {self.flow}")

    async def _close(self) -> None:
        try:
            await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        except Exception as exc:
            log.debug("%s: close failed: %s", self.flow, exc)

    def abort(self) -> None:
        self._closed = True
        self._cancel_writer()
        # Dropping the socket ends `serve()`, which unregisters the connection.
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    def gone(self) -> None:
        """The WebSocket is closed: stop sending and tell the registry."""
        self._closed = True
        self._cancel_writer()
        self._hub._remove(self)

    def _cancel_writer(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        self._outbox.clear()
        self._outbox_size = 0


def _opcode(data: bytes) -> WSMsgType:
    """Text when the bytes are UTF-8 (what browsers' SIP stacks expect), else binary."""
    if data.isascii():
        return WSMsgType.TEXT
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return WSMsgType.BINARY
    return WSMsgType.TEXT
