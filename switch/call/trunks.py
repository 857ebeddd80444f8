"""Trunk keepalive: OPTIONS pings mark each trunk up or down.

Every `keepalive` seconds each trunk with an outbound host gets an OPTIONS.
An answer means up (even 404 or 405: something answered), except 5xx; no
answer within `timeout`, or a failed send, means down. Routing skips a trunk that
is down while another of its route is up, so calls go where they can be
carried instead of waiting for a timeout each.

A trunk given by host name is located by DNS before each round (answers
are cached by their TTL): it is up when one of its servers answers, tried
in the order calls would use them, and down when the name does not resolve.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable

from ..config import Config, Trunk
from ..sip.flow import Flow
from ..sip.locate import LocateError
from ..sip.message import Request, Response
from ..sip.transaction import new_branch
from .routing import Locate

log = logging.getLogger("switch.call")

Send = Callable[[Request, Flow], Awaitable[Response]]


class TrunkMonitor:
    def __init__(
        self,
        config: Config,
        send: Send,
        sent_by: Callable[[Flow], str],
        server: str = "switch",
        timeout: float = 5.0,
        locate: Locate | None = None,
    ) -> None:
        self._send = send
        self._sent_by = sent_by
        self.server = server
        self.timeout = timeout
        self._locate = locate
        self.down: set[tuple[str, str]] = set()  # (tenant, trunk)
        self._trunks: list[tuple[tuple[str, str], Trunk]] = []
        for tenant in config.tenants.values():
            for name, trunk in tenant.trunks.items():
                if trunk.outbound_host is not None and trunk.keepalive:
                    self._trunks.append(((tenant.id, name), trunk))

    def is_up(self, tenant: str, trunk: str) -> bool:
        return (tenant, trunk) not in self.down

    async def servers(self, trunk: Trunk) -> tuple[str, list[Flow]]:
        """(Request-URI, where to send) of a trunk's pings: its address, or its servers in DNS.

        Raises LocateError when a trunk's host name does not resolve.
        """
        assert trunk.outbound_host is not None
        host, port = trunk.outbound_host
        if _is_ip(host):
            return f"sip:{f'[{host}]' if ':' in host else host}:{port}", [
                Flow(trunk.transport or "udp", (host, port))
            ]
        if self._locate is None:
            raise LocateError("this node has no DNS resolver")
        hops = await self._locate(host, port, trunk.transport)
        uri = f"sip:{host}:{port}" if port else f"sip:{host}"
        return uri, [Flow(hop.transport, (hop.address, hop.port)) for hop in hops]

    async def ping(self, key: tuple[str, str], flow: Flow, uri: str | None = None) -> bool:
        """One OPTIONS; True when anything answered in time."""
        sent_by = self._sent_by(flow)
        host, port = flow.remote
        uri = uri or f"sip:{f'[{host}]' if ':' in host else host}:{port}"
        req = Request(
            "OPTIONS",
            uri,
            [
                ("Via", f"SIP/2.0/{flow.via_transport} {sent_by};branch={new_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:keepalive@{sent_by}>;tag={secrets.token_hex(6)}"),
                ("To", f"<{uri}>"),
                ("Call-ID", secrets.token_hex(12)),
                ("CSeq", "1 OPTIONS"),
                ("User-Agent", self.server),
                ("Content-Length", "0"),
            ],
        )
        try:
            resp = await asyncio.wait_for(self._send(req, flow), self.timeout)
        except TimeoutError:
            return False
        # 408 and 5xx: no answer (the made-up ones of a timeout or a failed
        # send), or a trunk that says it cannot carry calls now.
        return resp.status != 408 and resp.status < 500

    async def check(self, key: tuple[str, str], trunk: Trunk) -> None:
        """Ping the trunk's servers in turn until one answers; mark the trunk up or down."""
        why = "no answer to OPTIONS"
        try:
            uri, flows = await self.servers(trunk)
        except LocateError as exc:
            flows, why = [], f"its host does not resolve: {exc}"
        up = False
        for flow in flows:
            if await self.ping(key, flow, uri):
                up = True
                break
        was_up = key not in self.down
        if up and not was_up:
            self.down.discard(key)
            log.warning("trunk %s/%s is up again", *key)
        elif not up and was_up:
            self.down.add(key)
            tried = ", ".join(f"{f.remote[0]}:{f.remote[1]} ({f.transport})" for f in flows)
            log.warning(
                "trunk %s/%s is down: %s%s; routing skips it until it answers "
                "(check outbound_host, or set keepalive = 0 for a carrier that ignores OPTIONS)",
                *key,
                why,
                f" from {tried}" if tried else "",
            )

    async def run(self) -> None:
        """Ping every trunk at its own interval until cancelled."""
        if not self._trunks:
            return
        await asyncio.gather(*(self._watch(key, trunk) for key, trunk in self._trunks))

    async def _watch(self, key: tuple[str, str], trunk: Trunk) -> None:
        while True:
            try:
                await self.check(key, trunk)
            except Exception:
                log.exception("keepalive of trunk %s/%s failed", *key)
            await asyncio.sleep(trunk.keepalive)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
