"""Where a new call goes: DIDs from trunks, dial strings from agents.

A trunk's call is routed by its DID (the Request-URI user) in the trunk's
tenant; an agent's call by what it dialled: an extension of its tenant, or a
number matching an outbound route (prefix, strip, prepend, trunk). The
answer is a `Target` to call, or a `Rejection` naming why not.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config, OutboundRoute, Tenant
from ..registrar.guard import Caller
from ..registrar.service import flow_of
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.uri import SipURI, parse_uri
from ..store.location import Binding, LocationStore


@dataclass(frozen=True, slots=True)
class Target:
    uri: str  # Request-URI of the outgoing INVITE
    flow: Flow  # where it goes
    kind: str  # "trunk" or "agent"
    name: str  # trunk name or extension
    # Where to try next if this trunk fails (408, 5xx): the route's other trunks.
    fallbacks: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str


# What each not-yet-served kind of DID answers until its issue lands.
_LATER = {"ivr": "#6 (IVR)", "queue": "#7 (ACD)", "app": "#5 (media)"}


class Router:
    def __init__(
        self,
        config: Config,
        locations: LocationStore,
        trunk_up: Callable[[str, str], bool] = lambda tenant, trunk: True,
        trunk_binding: Callable[[str, str, float], Binding | None] = lambda t, n, now: None,
    ) -> None:
        self.config = config
        self.locations = locations
        self.trunk_up = trunk_up  # from the keepalive: down trunks are tried last
        # Where a trunk that registers to us (inbound_register) registered from.
        self.trunk_binding = trunk_binding

    async def route(self, caller: Caller, dialled: str) -> Target | Rejection:
        tenant = self.config.tenants.get(caller.tenant)
        if tenant is None:
            return Rejection(404, "Not Found (no such tenant)")
        if caller.kind == "trunk":
            return await self._from_trunk(tenant, dialled)
        return await self._from_agent(tenant, dialled)

    async def _from_trunk(self, tenant: Tenant, did: str) -> Target | Rejection:
        entry = tenant.dids.get(did)
        if entry is None:
            return Rejection(404, f"Not Found (no DID {did[:32]!r})")
        kind, value = entry.target
        if kind == "forward":
            trunk_name = entry.trunk or next(iter(tenant.trunks), "")
            if not self.trunk_up(tenant.id, trunk_name):
                return Rejection(503, f"Service Unavailable (trunk {trunk_name} is down)")
            return self._via_trunk(tenant, trunk_name, value)
        if kind == "agent":
            return await self._agent(tenant, value)
        return Rejection(480, f"Temporarily Unavailable ({kind} calls arrive with {_LATER[kind]})")

    async def _from_agent(self, tenant: Tenant, dialled: str) -> Target | Rejection:
        if dialled in tenant.agents:
            return await self._agent(tenant, dialled)
        route = _outbound_route(tenant, dialled)
        if route is None:
            return Rejection(404, f"Not Found (nothing answers {dialled[:32]!r})")
        number = route.prepend + dialled[route.strip :]
        if number.startswith(("00", "+")) and not route.allow_international:
            # Toll fraud is the first attack on a new switch.
            return Rejection(403, "Forbidden (international calls are not allowed on this route)")
        targets = [self._via_trunk(tenant, name, number) for name in route.trunk_order]
        usable = [t for t in targets if isinstance(t, Target)]
        if not usable:
            return targets[0]  # the first trunk's reason
        up = [t for t in usable if self.trunk_up(tenant.id, t.name)]
        if not up:
            names = ", ".join(t.name for t in usable)
            return Rejection(503, f"Service Unavailable (trunks down: {names})")
        return dataclasses.replace(up[0], fallbacks=tuple(up[1:]))

    def _via_trunk(self, tenant: Tenant, name: str, number: str) -> Target | Rejection:
        registered = self._to_registered_trunk(tenant, name, number)
        if registered is not None:
            return registered
        trunk = tenant.trunks.get(name)
        if trunk is None or trunk.outbound_host is None:
            return Rejection(503, f"Service Unavailable (trunk {name!r} places no calls)")
        host, port = trunk.outbound_host.host, trunk.outbound_host.port or 5060
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # RFC 3263 resolution (SRV/NAPTR) comes with the trunk work of #4.
            return Rejection(503, f"Service Unavailable (trunk host {host!r} is not an address)")
        uri_host = f"[{host}]" if ":" in host else host
        return Target(
            f"sip:{number}@{uri_host}:{port}", Flow(trunk.transport, (host, port)), "trunk", name
        )

    def _to_registered_trunk(
        self, tenant: Tenant, name: str, number: str
    ) -> Target | Rejection | None:
        """A trunk that registers to us is called at its registered contact, with
        the number as the user part; None for other trunks."""
        trunk = tenant.trunks.get(name)
        if trunk is None or trunk.inbound_register is None:
            return None
        binding = self.trunk_binding(tenant.id, name, time.time())
        if binding is None:
            if trunk.outbound_host is not None:
                return None  # its fixed address, as for any trunk
            return Rejection(480, f"Temporarily Unavailable (trunk {name} is not registered)")
        try:
            contact = parse_uri(binding.contact)
        except ParseError:
            contact = None
        if not isinstance(contact, SipURI):
            return Rejection(502, f"Bad Gateway (trunk {name} registered an unusable Contact)")
        uri = str(contact.replace(user=number, headers=None))
        return Target(uri, flow_of(binding), "trunk", name)

    async def _agent(self, tenant: Tenant, ext: str) -> Target | Rejection:
        bindings = await self.locations.get(f"{tenant.id}/{ext}", time.time())
        if not bindings:
            return Rejection(480, f"Temporarily Unavailable (agent {ext} is not registered)")
        # The preferred device; ringing all of them (forking) comes with the ACD.
        binding = bindings[0]
        return Target(binding.contact, flow_of(binding), "agent", ext)


def _outbound_route(tenant: Tenant, dialled: str) -> OutboundRoute | None:
    """The route with the longest prefix that matches, if any."""
    best: OutboundRoute | None = None
    for route in tenant.outbound.values():
        matches = dialled.startswith(route.prefix) and len(dialled) > len(route.prefix)
        if matches and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    return best
