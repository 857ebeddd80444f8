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


class Guard:
    def __init__(
        self,
        config: Config,
        accounts: Accounts,
        auth: Authenticator,
        locations: LocationStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.auth = auth
        self.locations = locations
        self._clock = clock
        self._trunks = [
            (tenant.id, name, trunk)
            for tenant in config.tenants.values()
            for name, trunk in tenant.trunks.items()
            if trunk.inbound_from
        ]

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
        trunk = self.trunk_for(flow.remote[0])
        if trunk is not None:
            return trunk
        try:
            from_uri = req.from_.uri
        except ParseError as exc:
            return Denied(400, f"Bad Request (malformed From: {exc.reason})"[:160])
        if not isinstance(from_uri, SipURI) or not from_uri.user:
            return Denied(403, "Forbidden (not a trunk's address, and From names no agent)")
        user, host = from_uri.user, from_uri.host.lower()
        tenant = self.accounts.tenant_for(user, host)
        ip = flow.remote[0]
        bindings = await self.locations.get(f"{tenant}/{user}", self._clock()) if tenant else []
        if not any(b.source[0] == ip for b in bindings):
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
