"""Where a new call goes: DIDs from trunks, dial strings from agents.

A trunk's call is routed by its DID (the Request-URI user) in the trunk's
tenant, matched as E.164 whatever format the carrier sends; an agent's call
by what it dialled: an emergency number (always), an extension of its tenant,
or a number matching an outbound route. A route's `prefix` is either an
access code on the dial string ("9": strip and prepend apply to the dial
string) or, starting with "+", an E.164 prefix matched on the normalised
number ("+44", or "+" for everything). The number then has to be in a class
the agent may dial, and goes to the trunk in the trunk's `number_format`.
The answer is a `Target` to call, or a `Rejection` naming why not.

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

from ..config import FEATURE_CODES_APP, Config, Did, OutboundRoute, Tenant
from ..numbers import NumberClass, classify, clean, format_number, to_e164
from ..registrar.guard import Caller
from ..registrar.service import flow_of
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.locate import Hop, LocateError
from ..sip.uri import SipURI, parse_uri
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
    number: str = ""  # who is called, E.164 (or an emergency number as dialled)
    route: str = ""  # the outbound route that chose it
    # Seconds without any answer before the next trunk is tried; 0 = none.
    setup_timeout: float = 0.0
    # Seconds it may ring before the caller gets 480; 0 = no limit.
    ring_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class App:
    """A call the node answers itself: the application `name` runs it
    (switch.call.app); `argument` is what the route says besides (an IVR flow)."""

    name: str
    argument: str = ""


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
        self.locate = locate  # DNS for trunks given by name; None: names are not served
        self.trunk_up = trunk_up  # from the keepalive: down trunks are tried last
        # Per tenant, each DID as E.164 -> the DID as written in the config.
        self._dids = {tenant.id: _did_index(tenant) for tenant in config.tenants.values()}

    async def route(self, caller: Caller, dialled: str) -> Target | Rejection | App:
        tenant = self.config.tenants.get(caller.tenant)
        if tenant is None:
            return Rejection(404, "Not Found (no such tenant)")
        if caller.kind == "trunk":
            return await self._from_trunk(tenant, dialled)
        return await self._from_agent(tenant, caller.name, dialled)

    async def from_app(self, tenant_id: str, dialled: str) -> Target | Rejection | App:
        """Where an application's call put through to `dialled` goes
        (`AppCall.connect`): as if the tenant itself dialled it, with the
        tenant's `may_dial` and outbound routes (emergency rules as for agents)."""
        tenant = self.config.tenants.get(tenant_id)
        if tenant is None:
            return Rejection(404, "Not Found (no such tenant)")
        return await self._from_agent(tenant, "", dialled)

    async def devices(self, tenant_id: str, ext: str) -> list[Target]:
        """Every device agent `ext` registered, newest first (ring-all)."""
        tenant = self.config.tenants.get(tenant_id)
        if tenant is None:
            return []
        bindings = await self.locations.get(f"{tenant.id}/{ext}", time.time())
        agent = tenant.agents.get(ext)
        ring = float(agent.ring_timeout) if agent is not None else 0.0
        return [Target(b.contact, flow_of(b), "agent", ext, ring_timeout=ring) for b in bindings]

    def did(self, tenant: Tenant, did: str) -> Did | None:
        """The DID of `tenant` that the number `did` (as a carrier sent it) is."""
        entry = tenant.dids.get(did)
        if entry is None:
            # Carriers send the same number as +44..., 44... or 0...
            dids, plan = self._dids[tenant.id], tenant.numbers.plan
            written = dids.get(to_e164(did, plan)) or dids.get(to_e164("+" + did, plan))
            entry = tenant.dids.get(written) if written is not None else None
        return entry

    async def _from_trunk(self, tenant: Tenant, did: str) -> Target | Rejection | App:
        entry = self.did(tenant, did)
        if entry is None:
            return Rejection(404, f"Not Found (no DID {did[:32]!r})")
        kind, value = entry.target
        if kind == "forward":
            trunk_name = entry.trunk or next(iter(tenant.trunks), "")
            if not self.trunk_up(tenant.id, trunk_name):
                return Rejection(503, f"Service Unavailable (trunk {trunk_name} is down)")
            sent = self._sent_as(tenant, trunk_name, value)
            target = await self._via_trunk(tenant, trunk_name, sent)
            if isinstance(target, Rejection):
                return target
            hops = self._timed_all(tenant, target, to_e164(value, tenant.numbers.plan) or value)
            return dataclasses.replace(hops[0], fallbacks=tuple(hops[1:]))
        if kind == "agent":
            return await self._agent(tenant, value)
        if kind == "app":
            return App(value)
        if kind in ("ivr", "queue"):
            return App(kind, value)  # the node's "ivr" or "queue" application, with its name
        return Rejection(500, f"Server Internal Error (a DID of kind {kind!r} is not routed)")

    async def _from_agent(self, tenant: Tenant, ext: str, dialled: str) -> Target | Rejection | App:
        numbers = tenant.numbers
        found = _outbound_route(tenant, dialled)
        emergency = _emergency(tenant, dialled, found)
        if emergency is not None:
            # Never refused, never reformatted: the carrier knows its short codes.
            route = found[0] if found is not None else next(iter(tenant.outbound.values()), None)
            if route is None:
                log.error(
                    "emergency call to %s by %s/%s: no outbound route", dialled, tenant.id, ext
                )
                return Rejection(503, "Service Unavailable (no outbound route for emergency calls)")
            return await self._out(tenant, route, emergency, emergency)
        if ext and tenant.queues and tenant.acd.feature_codes.match(dialled) is not None:
            # An agent's own state (*61 log in, ...): the argument is who dialled,
            # as the guard authenticated them. An application's dial (no ext) never is.
            return App(FEATURE_CODES_APP, ext)
        if dialled in tenant.agents:
            refused = self._refuse(tenant, ext, "internal", dialled, None)
            return refused or await self._agent(tenant, dialled)
        app = tenant.dids.get(dialled)
        if app is not None and app.target[0] == "app":
            return App(app.target[1])  # agents reach the tenant's applications (the echo test)
        if found is None:
            return Rejection(404, f"Not Found (nothing answers {dialled[:32]!r})")
        route, number = found
        e164 = to_e164(number, numbers.plan)
        if e164 is None:
            return Rejection(404, f"Not Found ({number[:32]!r} is not a phone number)")
        kind = classify(e164, numbers.plan, tuple(numbers.mobile), tuple(numbers.premium))
        refused = self._refuse(tenant, ext, kind, e164, route)
        return refused or await self._out(tenant, route, e164, None)

    def _refuse(
        self, tenant: Tenant, ext: str, kind: NumberClass, number: str, route: OutboundRoute | None
    ) -> Rejection | None:
        """A 403 when agent `ext` may not dial numbers of class `kind` (toll fraud)."""
        agent = tenant.agents.get(ext)
        own = agent.may_dial if agent is not None else None
        allowed = set(own if own is not None else tenant.numbers.may_dial)
        if route is not None and route.allow_international:
            allowed.add("international")
        if kind in allowed:
            return None
        log.warning(
            "call refused: tenant=%s agent=%s number=%s class=%s", tenant.id, ext, number, kind
        )
        return Rejection(
            403,
            f"Forbidden ({kind} numbers are not allowed for agent {ext}: "
            f'add "{kind}" to may_dial of the agent or of the tenant\'s [numbers])',
        )

    async def _out(
        self, tenant: Tenant, route: OutboundRoute, e164: str, as_dialled: str | None
    ) -> Target | Rejection:
        """`e164` through the route's trunks, first one up first, the others as fallbacks."""
        targets = []
        for name in route.trunk_order:
            sent = as_dialled if as_dialled is not None else self._sent_as(tenant, name, e164)
            targets.append(await self._via_trunk(tenant, name, sent))
        usable = [t for t in targets if isinstance(t, Target)]
        if not usable:
            return targets[0]  # the first trunk's reason
        up = [t for t in usable if self.trunk_up(tenant.id, t.name)]
        if not up and as_dialled is not None:
            up = usable  # an emergency call tries every trunk, down or not
        if not up:
            names = ", ".join(t.name for t in usable)
            return Rejection(503, f"Service Unavailable (trunks down: {names})")
        name = next(n for n, r in tenant.outbound.items() if r is route)
        # Every server of the first trunk, then every server of the next.
        hops = [hop for t in up for hop in self._timed_all(tenant, t, e164, name, route)]
        return dataclasses.replace(hops[0], fallbacks=tuple(hops[1:]))

    def _sent_as(self, tenant: Tenant, trunk_name: str, number: str) -> str:
        """`number` in the format the trunk wants (as configured when it is no number)."""
        trunk = tenant.trunks.get(trunk_name)
        e164 = to_e164(number, tenant.numbers.plan)
        if trunk is None or e164 is None:
            return number
        return format_number(e164, trunk.number_format, tenant.numbers.plan)

    def _timed_all(
        self,
        tenant: Tenant,
        target: Target,
        number: str,
        route_name: str = "",
        route: OutboundRoute | None = None,
    ) -> list[Target]:
        """`target` and each of its DNS servers, timed, as a flat list."""
        plain = dataclasses.replace(target, fallbacks=())
        return [
            self._timed(tenant, t, number, route_name, route) for t in (plain, *target.fallbacks)
        ]

    @staticmethod
    def _timed(
        tenant: Tenant,
        target: Target,
        number: str,
        route_name: str = "",
        route: OutboundRoute | None = None,
    ) -> Target:
        """`target` with the number called and the timeouts of its trunk and route."""
        trunk = tenant.trunks[target.name]
        return dataclasses.replace(
            target,
            number=number,
            route=route_name,
            setup_timeout=trunk.setup_timeout,
            ring_timeout=float(route.ring_timeout) if route is not None else 0.0,
        )

    async def _via_trunk(self, tenant: Tenant, name: str, number: str) -> Target | Rejection:
        registered = await self._to_registered_trunk(tenant, name, number)
        if registered is not None:
            return registered
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

    async def _to_registered_trunk(
        self, tenant: Tenant, name: str, number: str
    ) -> Target | Rejection | None:
        """A trunk that registers to us is called at its latest registered
        contact, with the number as the user part; None for other trunks."""
        trunk = tenant.trunks.get(name)
        if trunk is None or trunk.inbound_register is None:
            return None
        aor = f"{tenant.id}/{trunk.inbound_register.username}"
        bindings = await self.locations.get(aor, time.time())
        binding = max(bindings, key=lambda b: b.registered_at, default=None)
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
        agent = tenant.agents.get(ext)
        ring = float(agent.ring_timeout) if agent is not None else 0.0
        return Target(binding.contact, flow_of(binding), "agent", ext, ring_timeout=ring)


def _did_index(tenant: Tenant) -> dict[str, str]:
    """E.164 -> DID as written; a DID that is no number matches only as written."""
    index = {}
    for did in tenant.dids:
        e164 = to_e164(did, tenant.numbers.plan)
        if e164 is not None:
            index[e164] = did
    return index


def _outbound_route(tenant: Tenant, dialled: str) -> tuple[OutboundRoute, str] | None:
    """The route for `dialled` and the number it dials, if any.

    Access-code routes ("9") match the dial string, longest prefix first,
    and strip and prepend on it; failing those, E.164 routes ("+44", "+")
    match the normalised number.
    """
    best: OutboundRoute | None = None
    digits = clean(dialled) or dialled
    for route in tenant.outbound.values():
        if route.prefix.startswith("+"):
            continue
        matches = digits.startswith(route.prefix) and len(digits) > len(route.prefix)
        if matches and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    if best is not None:
        return best, best.prepend + digits[best.strip :]
    e164 = to_e164(dialled, tenant.numbers.plan)
    if e164 is None:
        return None
    for route in tenant.outbound.values():
        matches = route.prefix.startswith("+") and e164.startswith(route.prefix)
        if matches and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    return (best, e164) if best is not None else None


def _emergency(tenant: Tenant, dialled: str, found: tuple[OutboundRoute, str] | None) -> str | None:
    """The emergency number dialled, directly or after a route's access code."""
    emergency = tenant.numbers.emergency
    for candidate in (dialled, found[1] if found is not None else None):
        if candidate is not None and clean(candidate) in emergency:
            return clean(candidate)
    return None
