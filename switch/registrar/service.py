"""The registrar: answers REGISTER (RFC 3261 §10.3) for the agents of every tenant.

For each REGISTER: find the tenant from the To address, authenticate
(`auth.Authenticator`), check that the authenticated user owns the AOR,
plan the change (`bindings.plan_register`), apply it to the location store
in one atomic step, and answer 200 with every current binding.

An AOR is "<tenant>/<extension>", e.g. "demo/1001". A binding remembers the
flow its REGISTER came over, because agents are behind NAT and browsers
make up their Contact host: requests to an agent go over that flow
(`flow_of`), never to the Contact's host.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import secrets
import time
from collections.abc import Callable

from .. import eager
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.message import Request, Response, make_response
from ..sip.transaction import RequestReceived
from ..sip.uri import SipURI
from ..store.location import Binding, LocationStore, OutOfOrder
from .accounts import Accounts
from .auth import Authenticated, Authenticator, Denied, log_value
from .bindings import Policy, RegisterError, contact_header, plan_register

log = logging.getLogger("switch.registrar")

# reply(request, status, reason, headers)
Reply = Callable[[Request, int, str | None, list[tuple[str, str]]], None]


def flow_of(binding: Binding) -> Flow:
    """Where to send a request for this binding: back along the flow it registered on.

    RFC 5626 §5.3 for outbound clients; and the only way to reach a browser
    (its Contact host is made up) or a phone behind NAT (its Contact has a
    private address).
    """
    return Flow(binding.transport, binding.source, binding.local, binding.conn_id)


def _supported(req: Request) -> set[str]:
    return {tag.strip().lower() for tag in req.get_all("Supported")}


class Registrar:
    def __init__(
        self,
        accounts: Accounts,
        auth: Authenticator,
        locations: LocationStore,
        policy: Policy,
        node_id: str,
        reply: Reply,
        *,
        on_registered: Callable[[str, list[Binding]], None] | None = None,
        server: str = "switch",
        eager: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.auth = auth
        self.locations = locations
        self.policy = policy
        self.node_id = node_id
        self._reply = reply
        self.on_registered = on_registered
        self.server = server
        # With a store that answers at once (memory), a REGISTER is served
        # without a task of its own; a remote store (Redis) needs a task.
        self.eager = eager
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the dispatcher's handler -------------------------------------------------

    def handle(self, event: RequestReceived) -> None:
        """Answer a REGISTER: at once with the memory store, else from a task."""
        coro = self._answer(event.request, event.flow)
        if self.eager:
            eager.start(coro, self._tasks)
        else:
            task = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, req: Request, flow: Flow) -> None:
        try:
            status, reason, headers = await self.register(req, flow)
        except Exception:
            # A store outage (Redis down) or a bug: the phone retries on 500,
            # and the node keeps serving everybody else.
            log.exception("REGISTER from %s failed", flow)
            status, reason, headers = 500, "Server Internal Error", [("Retry-After", "5")]
        self._reply(req, status, reason, headers)

    def stateless_challenge(self, req: Request, flow: Flow) -> Response | None:
        """The 401 for a REGISTER without credentials, to send without a transaction.

        It needs no store and no state: the nonce carries its own proof. A
        retransmitted REGISTER simply gets a fresh 401. None for anything else.
        """
        if req.method != "REGISTER" or "authorization" in req:
            return None
        try:
            to_uri = req.to.uri
        except ParseError:
            return None  # the full path answers with the specific 400
        if not isinstance(to_uri, SipURI) or not to_uri.user:
            return None
        host = to_uri.host.lower()
        realm = self.accounts.tenant_for(to_uri.user, host) or host
        denied = self.auth.challenge(realm, proxy=False)
        return make_response(
            req,
            denied.status,
            denied.reason,
            to_tag=secrets.token_hex(6),
            headers=[("Server", self.server), *denied.headers],
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- REGISTER -----------------------------------------------------------------

    async def register(
        self, req: Request, flow: Flow
    ) -> tuple[int, str | None, list[tuple[str, str]]]:
        """The response (status, reason, headers) to one REGISTER."""
        try:
            to_uri = req.to.uri
        except ParseError as exc:
            return 400, f"Bad Request (malformed To: {exc.reason})"[:160], []
        if not isinstance(to_uri, SipURI) or not to_uri.user:
            return 404, "Not Found (To is not a sip: address with a user part)", []
        user, host = to_uri.user, to_uri.host.lower()
        tenant = self.accounts.tenant_for(user, host)
        outcome = await self.auth.authenticate(req, flow, tenant, tenant or host)
        if isinstance(outcome, Denied):
            return outcome.status, outcome.reason, list(outcome.headers)
        assert isinstance(outcome, Authenticated)
        if outcome.username != user:
            # Third-party registration is not for agents: 1001 may not put a
            # phone under 1002's number.
            log.warning(
                "register refused: ip=%s user=%s tenant=%s aor=%s reason=aor_not_own",
                flow.remote[0],
                log_value(outcome.username),
                log_value(outcome.tenant),
                log_value(user),
            )
            return 403, "Forbidden (the To address is not the authenticated user's)", []

        aor = f"{outcome.tenant}/{user}"
        now = self._clock()
        try:
            changes = plan_register(req, aor, flow, now, self.policy, self.node_id)
        except RegisterError as exc:
            log.info(
                "register refused: ip=%s aor=%s status=%d reason=%s",
                flow.remote[0],
                aor,
                exc.status,
                exc.reason,
            )
            return exc.status, exc.reason, list(exc.headers)
        if not changes:  # a query: which bindings are there?
            return 200, "OK", self._ok_headers(req, await self.locations.get(aor, now), now)
        try:
            # One atomic step, one round trip: the store checks the order of
            # REGISTERs and the limit of devices against what it holds.
            bindings = await self.locations.apply(
                aor,
                changes,
                now,
                order=(req.call_id, req.cseq.number),
                max_bindings=self.policy.max_contacts,
            )
        except OutOfOrder:
            log.info(
                "register refused: ip=%s aor=%s status=500 reason=cseq_out_of_order",
                flow.remote[0],
                aor,
            )
            return 500, "Server Internal Error (CSeq out of order)", [("Retry-After", "1")]
        log.debug(
            "registered: aor=%s ip=%s transport=%s bindings=%d",
            aor,
            flow.remote[0],
            flow.transport,
            len(bindings),
        )
        if self.on_registered is not None:
            self.on_registered(aor, bindings)
        return 200, "OK", self._ok_headers(req, bindings, now)

    def _ok_headers(
        self, req: Request, bindings: list[Binding], now: float
    ) -> list[tuple[str, str]]:
        headers = [("Contact", contact_header(b, now)) for b in bindings]
        supported = _supported(req)
        require = []
        # RFC 5626 §6: the registrar says it used outbound, when asked for it.
        if "outbound" in supported and any(
            "reg-id" in c.params for c in req.contact if not c.wildcard
        ):
            require.append("outbound")
        if require:
            headers.append(("Require", ", ".join(require)))
        # RFC 3327 §5.3: the stored Path goes back to a UA that supports it.
        if "path" in supported:
            headers.extend(("Path", value) for value in req.get_all("Path"))
        headers.append(("Date", _http_date(int(now))))
        return headers


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    # The same text for every 200 within one second: format it once.
    return email.utils.formatdate(second, usegmt=True)
