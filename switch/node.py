"""One switch node: builds the layers from a Config and runs them.

The layers never import each other upwards; this module is where they meet.
Transports deliver bytes to the endpoint (the asyncio face of the sans-IO
SIP stack); the stack's events go to the dispatcher, which answers through
the endpoint; the web app serves health and SIP over WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import time
from typing import Any

from aiohttp import web

from . import __version__
from .call.dispatch import Dispatcher
from .config import Config, HostPort
from .endpoint import Endpoint
from .sip.stack import SipStack
from .sip.transaction import Timers
from .transport.limits import Limits
from .transport.registry import Transports
from .web.app import make_app

log = logging.getLogger("switch.node")

SERVER = f"switch/{__version__}"
# Option tags we understand in Require (RFC 3261 §8.2.2.3); grows with features.
SUPPORTED: frozenset[str] = frozenset()


class Node:
    """A running node. `start()` binds everything; `stop()` releases it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.time()
        self.ready = False
        self.sip_listeners: list[str] = []
        self.http_url = ""
        self._runner: web.AppRunner | None = None
        self.transports: Transports | None = None
        self.endpoint: Endpoint | None = None
        sip = config.sip
        self.stack = SipStack(
            Timers(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000),
            supported=SUPPORTED,
            server=SERVER,
        )
        self.dispatcher = Dispatcher(self._respond, SERVER, SUPPORTED)

    def _respond(self, resp: Any) -> None:
        assert self.endpoint is not None
        self.endpoint.send_response(resp)

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "node": self.config.node.name,
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "sip_listeners": self.sip_listeners,
            "sip_stats": dict(self.stack.stats),
            "transport_stats": dict(self.transports.stats) if self.transports else {},
        }

    async def start(self) -> None:
        cfg = self.config
        cfg.node.data_dir.mkdir(parents=True, exist_ok=True)
        self.transports = Transports(
            on_message=self._on_message,
            limits=Limits(),
            max_message_size=cfg.sip.max_message_size,
            idle_timeout=float(cfg.sip.tcp_idle_timeout),
        )
        self.endpoint = Endpoint(self.stack, self.transports.send, self.dispatcher)
        await self._listen_sip()
        await self._listen_http()
        self.ready = True
        log.info("node %s ready", cfg.node.name)

    def _on_message(self, data: bytes, flow: Any) -> None:
        assert self.endpoint is not None
        self.endpoint.on_message(data, flow)

    async def _listen_sip(self) -> None:
        assert self.transports is not None
        sip = self.config.sip
        host, port = sip.listen.host, sip.listen.port
        if "udp" in sip.transports:
            host_, port = await self.transports.listen_udp(host, port)
            self.sip_listeners.append(f"udp:{HostPort(host_, port)}")
        if "tcp" in sip.transports:
            # UDP and TCP share one port number, as peers expect of 5060.
            host_, port = await self.transports.listen_tcp(host, port)
            self.sip_listeners.append(f"tcp:{HostPort(host_, port)}")
        if "tls" in sip.transports:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(sip.tls_cert), str(sip.tls_key))
            host_, port = await self.transports.listen_tls(
                sip.tls_listen.host, sip.tls_listen.port, context
            )
            self.sip_listeners.append(f"tls:{HostPort(host_, port)}")

    async def _listen_http(self) -> None:
        assert self.transports is not None
        http = self.config.http
        context = None
        if http.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(http.tls_cert), str(http.tls_key))
        app = make_app(self.status, self.transports.ws_handler(secure=context is not None))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, http.listen.host, http.listen.port, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        bound = server.sockets[0].getsockname()  # type: ignore[union-attr]
        scheme = "https" if context else "http"
        self.http_url = f"{scheme}://{HostPort(bound[0], bound[1])}"

    async def stop(self) -> None:
        self.ready = False
        # Transports first: aiohttp's cleanup waits for open WebSocket
        # handlers, and closing the transports is what ends them.
        if self.transports is not None:
            await self.transports.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.endpoint is not None:
            self.endpoint.close()
        log.info("node %s stopped", self.config.node.name)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(config: Config) -> None:
    """Run a node until SIGTERM or SIGINT."""
    node = Node(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await node.start()
        _print_banner(node)
        await stopping.wait()
    finally:
        await node.stop()


def _print_banner(node: Node) -> None:
    lines = [
        f"switch {__version__}: node {node.config.node.name} is running",
        f"  web:     {node.http_url}/",
        f"  health:  {node.http_url}/healthz",
        f"  SIP:     {', '.join(node.sip_listeners)}",
        f"  SIP/WS:  {node.http_url.replace('http', 'ws', 1)}/sip",
        "  stop with Ctrl-C (or SIGTERM)",
    ]
    print("\n".join(lines), flush=True)


def run(config: Config) -> int:
    """Entry point of `switch run`: returns the process exit code."""
    _setup_logging(config.node.log_level)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(serve(config))
        else:
            asyncio.run(serve(config))
    except OSError as exc:
        # The usual cause: the port is taken by another process.
        print(f"switch: cannot start: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0
