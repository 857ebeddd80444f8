"""Who is calling: a trunk, known by its address, or an agent, known by digest.

INVITE, REFER and MESSAGE reach the call layer only through here. A request
from an address a trunk accepts (`inbound_from`) belongs to that trunk and
is not challenged: carriers do not answer challenges. Anything else must be
an agent calling from an address it is registered from: otherwise 403 (and
the attempt counts toward a ban, as toll-fraud scanners make many). A
registered agent is challenged with 407 (RFC 3261 §22.3) in the realm of
its tenant, and the authenticated user must be the From user, so that agent
1001 cannot place calls as 1002. Unknown extensions and unregistered ones
get the same 403, so neither can be told from outside.

Two more kinds of trunk are known by registration rather than by a fixed
address. A carrier we register to (`register = true`) sends its calls from
its registrar's address to the Contact we registered: the Request-URI user
is our contact user, and the dialled number is in To. A trunk that
registers to us (`inbound_register`, a PBX without a fixed address) calls
from the address it registered from and is challenged with 407 like an
agent (Asterisk's type=peer with auth): the authenticated user must be the
trunk's own.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.message import Request
from ..sip.uri import SipURI
from ..store.location import LocationStore
from .accounts import Accounts
from .auth import Authenticated, Authenticator, Denied, log_value

log = logging.getLogger("switch.auth")

# Methods that start something on an agent's behalf (a call, a transfer, a message).
GUARDED = ("INVITE", "REFER", "MESSAGE")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: `kind` "trunk" (name = trunk) or "agent" (name = extension)."""

    tenant: str
    kind: str
    name: str
    # The number called, when the Request-URI does not carry it (a carrier
    # we register to calls our contact user; the number is in To).
    did: str | None = None


class Guard:
    def __init__(
        self,
        config: Config,
        accounts: Accounts,
        auth: Authenticator,
        locations: LocationStore,
        clock: Callable[[], float] = time.time,
        carrier_for: Callable[[str, str | None], tuple[str, str, str] | None] = (
            lambda ip, user: None
        ),
    ) -> None:
        self.accounts = accounts
        # (tenant, trunk, contact user) of a carrier we registered with, by its address.
        self.carrier_for = carrier_for
        self.auth = auth
        self.locations = locations
        self._clock = clock
        self._trunks = [
            (tenant.id, name, trunk)
            for tenant in config.tenants.values()
            for name, trunk in tenant.trunks.items()
            if trunk.inbound_from
        ]
        # Trunks we register to: calls to this contact user carry the number in To.
        self._contact_users = {
            (tenant.id, name): trunk.our_contact_user
            for tenant in config.tenants.values()
            for name, trunk in tenant.trunks.items()
            if trunk.register
        }
        # AOR -> (tenant, trunk, username) of trunks that register to us.
        self._registering = {
            f"{tenant.id}/{trunk.inbound_register.username}": (
                tenant.id,
                name,
                trunk.inbound_register.username,
            )
            for tenant in config.tenants.values()
            for name, trunk in tenant.trunks.items()
            if trunk.inbound_register is not None
        }

    def trunk_for(self, ip: str) -> Caller | None:
        """The trunk that accepts requests from `ip`, if any."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for tenant, name, trunk in self._trunks:
            if any(address in network for network in trunk.inbound_from):
                return Caller(tenant, "trunk", name)
        return None

    async def check(self, req: Request, flow: Flow) -> Caller | Denied:
        """The caller, or the response to give instead (407, 403, 400)."""
        ip = flow.remote[0]
        try:
            uri_user = getattr(req.uri, "user", None)
        except ParseError:
            uri_user = None
        carrier = self.carrier_for(ip, uri_user)
        if carrier is not None:
            return _carrier_call(req, *carrier)
        trunk = self.trunk_for(ip)
        if trunk is not None:
            contact_user = self._contact_users.get((trunk.tenant, trunk.name))
            return (
                trunk
                if contact_user is None
                else _carrier_call(req, trunk.tenant, trunk.name, contact_user)
            )
        try:
            from_uri = req.from_.uri
        except ParseError as exc:
            return Denied(400, f"Bad Request (malformed From: {exc.reason})"[:160])
        if not isinstance(from_uri, SipURI) or not from_uri.user:
            return await self._registered_trunk(req, flow) or Denied(
                403, "Forbidden (not a trunk's address, and From names no agent)"
            )
        user, host = from_uri.user, from_uri.host.lower()
        tenant = self.accounts.tenant_for(user, host)
        bindings = await self.locations.get(f"{tenant}/{user}", self._clock()) if tenant else []
        if (
            not any(b.source[0] == ip for b in bindings)
            or (tenant, user) in self.accounts.trunk_accounts
        ):
            registered = await self._registered_trunk(req, flow)
            if registered is not None:
                return registered
            await self.auth.failure(flow, user, tenant, req.method, "not_registered", self._clock())
            return Denied(403, "Forbidden (neither a trunk nor a registered agent)")
        outcome = await self.auth.authenticate(req, flow, tenant, tenant or host)
        if isinstance(outcome, Denied):
            return outcome
        assert isinstance(outcome, Authenticated)
        if outcome.username != user:
            log.warning(
                "%s refused: ip=%s user=%s tenant=%s from=%s reason=from_not_own",
                req.method,
                flow.remote[0],
                log_value(outcome.username),
                log_value(outcome.tenant),
                log_value(user),
            )
            return Denied(403, "Forbidden (the From address is not the authenticated user's)")
        return Caller(outcome.tenant, "agent", outcome.username)

    async def _registered_trunk(self, req: Request, flow: Flow) -> Caller | Denied | None:
        """The trunk registered from the request's address, after its digest; None if none.

        Several PBXs of a tenant may sit behind one address (one NAT): the
        authenticated user says which of them is calling.
        """
        now = self._clock()
        ip = flow.remote[0]
        here: dict[str, tuple[str, str]] = {}  # username -> (tenant, trunk)
        for aor, (tenant, name, username) in self._registering.items():
            if any(b.source[0] == ip for b in await self.locations.get(aor, now)):
                here[username] = (tenant, name)
        if not here:
            return None
        tenant = next(iter(here.values()))[0]
        outcome = await self.auth.authenticate(req, flow, tenant, tenant)
        if isinstance(outcome, Denied):
            return outcome
        found = here.get(outcome.username)
        if found is None or found[0] != tenant:
            log.warning(
                "%s refused: ip=%s user=%s tenant=%s reason=not_a_trunk_registered_here",
                req.method,
                ip,
                log_value(outcome.username),
                tenant,
            )
            return Denied(403, "Forbidden (the authenticated user is not a trunk registered here)")
        return Caller(tenant, "trunk", found[1])


def _carrier_call(req: Request, tenant: str, trunk: str, contact_user: str) -> Caller:
    """A call from a carrier we register to: to our Contact, the number in To."""
    did = None
    try:
        if getattr(req.uri, "user", None) == contact_user:
            to_uri = req.to.uri
            did = to_uri.user if isinstance(to_uri, SipURI) and to_uri.user else None
    except ParseError:
        did = None  # routed by the Request-URI, which names no DID: 404
    return Caller(tenant, "trunk", trunk, did)
