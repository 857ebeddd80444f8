"""Trunk keepalive: OPTIONS pings mark each trunk up or down.

Every `keepalive` seconds each trunk with an outbound host gets an OPTIONS.
An answer means up (even 404 or 405: something answered), except 5xx; no
answer within `timeout`, or a failed send, means down. Routing skips a trunk that
is down while another of its route is up, so calls go where they can be
carried instead of waiting for a timeout each.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable

from ..config import Config
from ..sip.flow import Flow
from ..sip.message import Request, Response
from ..sip.transaction import new_branch

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
    ) -> None:
        self._send = send
        self._sent_by = sent_by
        self.server = server
        self.timeout = timeout
        self.down: set[tuple[str, str]] = set()  # (tenant, trunk)
        self._trunks: list[tuple[tuple[str, str], Flow, int]] = []
        for tenant in config.tenants.values():
            for name, trunk in tenant.trunks.items():
                host = trunk.outbound_host
                if host is None or not trunk.keepalive or not _is_ip(host.host):
                    continue
                flow = Flow(trunk.transport, (host.host, host.port or 5060))
                self._trunks.append(((tenant.id, name), flow, trunk.keepalive))

    def is_up(self, tenant: str, trunk: str) -> bool:
        return (tenant, trunk) not in self.down

    async def ping(self, key: tuple[str, str], flow: Flow) -> bool:
        """One OPTIONS; True when anything answered in time."""
        sent_by = self._sent_by(flow)
        host, port = flow.remote
        uri = f"sip:{f'[{host}]' if ':' in host else host}:{port}"
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

    async def check(self, key: tuple[str, str], flow: Flow) -> None:
        up = await self.ping(key, flow)
        was_up = key not in self.down
        if up and not was_up:
            self.down.discard(key)
            log.warning("trunk %s/%s is up again", *key)
        elif not up and was_up:
            self.down.add(key)
            log.warning("trunk %s/%s is down: no answer to OPTIONS", *key)

    async def run(self) -> None:
        """Ping every trunk at its own interval until cancelled."""
        if not self._trunks:
            return
        await asyncio.gather(*(self._watch(key, flow, every) for key, flow, every in self._trunks))

    async def _watch(self, key: tuple[str, str], flow: Flow, every: int) -> None:
        while True:
            try:
                await self.check(key, flow)
            except Exception:
                log.exception("keepalive of trunk %s/%s failed", *key)
            await asyncio.sleep(every)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
