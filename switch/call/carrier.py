"""Keeping the node registered at its carriers: the asyncio side of `registration`.

One task per trunk with `register = true`: resolve the registrar's address,
send what the trunk's `Registration` asks for through the node's SIP stack,
feed the answers back, sleep until its next deadline. `stop()` removes
every registration (Expires: 0) before the node closes its transports.

The registrar's resolved addresses are where the carrier's calls come from
(`carrier_for`), and calls to our Contact user carry the dialled number in
To, not in the Request-URI.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Config, HostPort, Trunk
from ..sip.flow import Flow
from ..sip.locate import LocateError
from ..sip.message import Request, Response, make_response
from .registration import Account, Registration
from .routing import Locate

log = logging.getLogger("switch.call")

Send = Callable[[Request, Flow], Awaitable[Response]]

# How long a stopping node waits for each carrier to confirm the unregister.
STOP_TIMEOUT = 2.0


class CarrierRegistrations:
    def __init__(
        self,
        config: Config,
        send: Send,
        sent_by: Callable[[Flow], str],
        server: str = "switch",
        locate: Locate | None = None,
    ) -> None:
        self._send = send
        self._locate = locate  # DNS (RFC 3263) for registrars given by name
        self._sent_by = sent_by
        self.server = server
        self._trunks: dict[tuple[str, str], Trunk] = {
            (tenant.id, name): trunk
            for tenant in config.tenants.values()
            for name, trunk in tenant.trunks.items()
            if trunk.register
        }
        self.registrations: dict[tuple[str, str], Registration] = {}
        self._flows: dict[tuple[str, str], Flow] = {}

    def carrier_for(self, ip: str, user: str | None = None) -> tuple[str, str, str] | None:
        """(tenant, trunk, contact user) of the carrier we registered with at `ip`.

        With several accounts at one carrier, the one whose contact user the
        Request-URI names (`user`); else the first.
        """
        found = [
            (*key, self._trunks[key].our_contact_user)
            for key, flow in self._flows.items()
            if flow.remote[0] == ip
        ]
        return next((f for f in found if f[2] == user), found[0] if found else None)

    def status(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        out: dict[str, Any] = {}
        for key in self._trunks:
            reg = self.registrations.get(key)
            out["/".join(key)] = (
                reg.status(now) if reg else {"state": "resolving", "registered": False}
            )
        return out

    async def run(self) -> None:
        """Register every trunk that asks for it, and keep them registered, until cancelled."""
        if self._trunks:
            await asyncio.gather(*(self._keep(key, trunk) for key, trunk in self._trunks.items()))

    async def _keep(self, key: tuple[str, str], trunk: Trunk) -> None:
        loop = asyncio.get_running_loop()
        target = trunk.registrar_host
        assert target is not None and trunk.username is not None and trunk.password is not None
        while True:
            try:
                flow = await self._flow_to(target, trunk.transport)
                break
            except LocateError as exc:
                log.warning(
                    "trunk %s/%s: cannot locate registrar %s (%s); check registrar or "
                    "outbound_host, and [dns]; retrying in %d s",
                    *key, target.host, exc, trunk.register_retry,
                )  # fmt: skip
                await asyncio.sleep(trunk.register_retry)
        reg = Registration(
            Account(
                trunk="/".join(key),
                username=trunk.username,
                password=trunk.password,
                domain=_domain(target, flow.transport),
                contact_user=trunk.our_contact_user,
                expires=trunk.register_expires,
                retry=float(trunk.register_retry),
                auth_username=trunk.auth_username,
            ),
            flow.via_transport,
            self._sent_by(flow),
            self.server,
        )
        self.registrations[key] = reg
        self._flows[key] = flow
        req: Request | None = reg.start(loop.time())
        while True:
            while req is not None:
                req = reg.on_response(await self._exchange(req, flow), loop.time())
            deadline = reg.next_deadline()
            if deadline is None:
                return  # stopped
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            req = reg.handle_timer(loop.time())

    async def _flow_to(self, target: HostPort, transport: str | None) -> Flow:
        """Where REGISTERs go: the address as written, or the first server DNS names."""
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            pass
        else:
            return Flow(transport or "udp", (target.host, target.port))
        if self._locate is None:
            raise LocateError("this node has no DNS resolver")
        hops = await self._locate(target.host, target.port, transport)
        if not hops:
            raise LocateError(f"{target.host} has no servers")
        return Flow(hops[0].transport, (hops[0].address, hops[0].port))

    async def _exchange(self, req: Request, flow: Flow) -> Response:
        try:
            return await self._send(req, flow)
        except Exception:
            # A bug or a transport failure: the registration retries later,
            # as after a 503, instead of its task ending for good.
            log.exception("REGISTER to %s failed", flow)
            return make_response(req, 503, "Service Unavailable (sending failed)")

    async def stop(self) -> None:
        """Unregister from every carrier (bounded in time); call before transports close."""
        if self.registrations:
            await asyncio.gather(*(self._unregister(key) for key in list(self.registrations)))

    async def _unregister(self, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        reg, flow = self.registrations[key], self._flows[key]
        req = reg.stop(loop.time())
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                while req is not None:
                    req = reg.on_response(await self._exchange(req, flow), loop.time())
        except TimeoutError:
            log.warning("trunk %s/%s: no answer to the unregister; stopping anyway", *key)


def _domain(target: HostPort, transport: str) -> str:
    # A name without a port (port 0) is located by DNS and written without one.
    """The registrar as it goes in the Request-URI and our AOR: its port only when unusual."""
    default = 5061 if transport == "tls" else 5060
    if target.port and target.port != default:
        return str(target)
    return f"[{target.host}]" if ":" in target.host else target.host
