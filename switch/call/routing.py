"""Where a new call goes: DIDs from trunks, dial strings from agents.

A trunk's call is routed by its DID (the Request-URI user) in the trunk's
tenant; an agent's call by what it dialled: an extension of its tenant, or a
number matching an outbound route (prefix, strip, prepend, trunk). The
answer is a `Target` to call, or a `Rejection` naming why not.

A trunk whose host is a name is located by DNS (RFC 3263, `locate`): its
target's fallbacks are the further servers DNS gave, then the route's
other trunks. A trunk given by IP address needs no lookup.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config import Config, OutboundRoute, Tenant
from ..registrar.guard import Caller
from ..registrar.service import flow_of
from ..sip.flow import Flow
from ..sip.locate import Hop, LocateError
from ..store.location import LocationStore

log = logging.getLogger("switch.call")

# (host, port or 0, transport or None) -> the hops to try, in order; raises LocateError.
Locate = Callable[[str, int, str | None], Awaitable[list[Hop]]]


@dataclass(frozen=True, slots=True)
class Target:
    uri: str  # Request-URI of the outgoing INVITE
    flow: Flow  # where it goes
    kind: str  # "trunk" or "agent"
    name: str  # trunk name or extension
    # Where to try next if this one fails (408, 5xx): the trunk's further
    # servers from DNS, then the route's other trunks.
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
        locate: Locate | None = None,
    ) -> None:
        self.config = config
        self.locations = locations
        self.trunk_up = trunk_up  # from the keepalive: down trunks are tried last
        self.locate = locate  # DNS for trunks given by name; None: names are not served

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
            return await self._via_trunk(tenant, trunk_name, value)
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
        targets = [await self._via_trunk(tenant, name, number) for name in route.trunk_order]
        usable = [t for t in targets if isinstance(t, Target)]
        if not usable:
            return targets[0]  # the first trunk's reason
        up = [t for t in usable if self.trunk_up(tenant.id, t.name)]
        if not up:
            names = ", ".join(t.name for t in usable)
            return Rejection(503, f"Service Unavailable (trunks down: {names})")
        # Every server of the first trunk, then every server of the next.
        rest = [hop for t in up[1:] for hop in (dataclasses.replace(t, fallbacks=()), *t.fallbacks)]
        return dataclasses.replace(up[0], fallbacks=(*up[0].fallbacks, *rest))

    async def _via_trunk(self, tenant: Tenant, name: str, number: str) -> Target | Rejection:
        trunk = tenant.trunks.get(name)
        if trunk is None or trunk.outbound_host is None:
            return Rejection(503, f"Service Unavailable (trunk {name!r} places no calls)")
        host, port = trunk.outbound_host.host, trunk.outbound_host.port
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return await self._located(tenant, name, number)
        uri_host = f"[{host}]" if ":" in host else host
        return Target(
            f"sip:{number}@{uri_host}:{port}",
            Flow(trunk.transport or "udp", (host, port)),
            "trunk",
            name,
        )

    async def _located(self, tenant: Tenant, name: str, number: str) -> Target | Rejection:
        """The target of a trunk given by name: its servers from DNS (RFC 3263)."""
        trunk = tenant.trunks[name]
        assert trunk.outbound_host is not None
        host, port = trunk.outbound_host
        try:
            if self.locate is None:
                raise LocateError("this node has no DNS resolver")
            hops = await self.locate(host, port, trunk.transport)
            if not hops:
                raise LocateError(f"{host} has no servers")
        except LocateError as exc:
            log.warning(
                "trunk %s/%s: cannot locate %s: %s; check the trunk's outbound_host "
                "and the nameservers of [dns] (or the system's resolver)",
                tenant.id,
                name,
                host,
                exc,
            )
            return Rejection(503, f"Service Unavailable (trunk host {host} does not resolve)")
        # The Request-URI names the carrier's domain, as it expects; DNS only
        # says where to send it.
        uri = f"sip:{number}@{host}:{port}" if port else f"sip:{number}@{host}"
        targets = [
            Target(uri, Flow(hop.transport, (hop.address, hop.port)), "trunk", name) for hop in hops
        ]
        return dataclasses.replace(targets[0], fallbacks=tuple(targets[1:]))

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
