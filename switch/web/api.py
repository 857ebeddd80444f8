"""The REST API under /api: logins, agents, queues, calls, supervision, and the CTI socket.

    api = Api(config, acd_service, calls=node_calls, supervisor=..., originate=...)
    app = make_app(status, sip_ws, api=api)

Every endpoint but login, refresh and the OpenAPI document needs a
principal (auth.py): a bearer token or an API key. Roles and tenants are
checked on each: an agent sees and controls only themselves (and the
queues they are in), a supervisor or admin their tenant, never another's.
The OpenAPI document (openapi.py) lists every endpoint with its schemas.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from . import agents_api, calls_api, queues_api
from .auth import Accounts, Principal, Throttle, Tokens
from .body import json_body, only, text
from .cti import Cti
from .errors import ApiError
from .key import API_KEY, api_of
from .openapi import document

if TYPE_CHECKING:
    from ..apps.acd_service import AcdService
    from ..config import Config
    from .ports import LiveCalls, Originate, Supervisor, Wrapups


class Api:
    """The API of one node: what it reads and controls, and who may."""

    def __init__(
        self,
        config: Config,
        acd: AcdService | None,
        *,
        calls: LiveCalls | None = None,
        supervisor: Supervisor | None = None,
        originate: Originate | None = None,
        wrapups: Wrapups | None = None,
        clock: Callable[[], float] = time.time,
        throttle: Throttle | None = None,
    ) -> None:
        self.config = config
        self.acd = acd
        self.calls = calls
        self.supervisor = supervisor
        self.originate = originate
        self.wrapups = wrapups
        self.clock = clock
        self.accounts = Accounts(config)
        self.tokens = Tokens(config.http.jwt_secret or None, clock=clock)
        self.throttle = throttle or Throttle()
        self.cti = Cti(self)

    def install(self, app: web.Application) -> None:
        app[API_KEY] = self
        r = app.router
        r.add_post("/api/login", login)
        r.add_post("/api/refresh", refresh)
        r.add_get("/api/openapi.json", openapi)
        r.add_get("/api/agents", agents_api.list_agents)
        r.add_get("/api/agents/{id}", agents_api.get_agent)
        r.add_put("/api/agents/{id}/state", agents_api.put_state)
        r.add_get("/api/queues", queues_api.list_queues)
        r.add_get("/api/queues/{name}/stats", queues_api.stats)
        r.add_get("/api/queues/{name}/callers", queues_api.callers)
        r.add_post("/api/queues/{name}/callers/{call_id}/move", queues_api.move)
        r.add_get("/api/calls", calls_api.list_calls)
        r.add_post("/api/calls", calls_api.originate)
        r.add_delete("/api/calls/{id}", calls_api.hang_up)
        r.add_put("/api/calls/{id}/disposition", calls_api.disposition)
        r.add_post("/api/calls/{id}/supervise", calls_api.supervise)
        r.add_put("/api/calls/{id}/supervise/{sid}", calls_api.change_supervision)
        r.add_delete("/api/calls/{id}/supervise/{sid}", calls_api.stop_supervision)
        r.add_get("/api/cti", self.cti.handler)
        app.on_startup.append(self.cti.start)
        app.on_shutdown.append(self.cti.stop)

    # ------------------------------------------------------------------
    # Who is asking

    def principal(self, request: web.Request) -> Principal:
        """The caller of this request (bearer token or API key); 401 without one.
        An operator acts on the tenant named by X-Tenant (or ?tenant=)."""
        return self.scoped(self._authenticate(request), request)

    def scoped(self, who: Principal, request: web.Request) -> Principal:
        """`who`, acting on the tenant an operator names (others keep their own)."""
        if who.role != "operator":
            return who
        tenant = request.headers.get("X-Tenant") or request.query.get("tenant") or who.tenant
        if tenant not in self.config.tenants:
            raise ApiError(
                404,
                "not_found",
                f"no tenant {tenant!r} (tenants: {', '.join(self.config.tenants)})",
            )
        return Principal(who.user, tenant, "operator")

    def _authenticate(self, request: web.Request) -> Principal:
        key = request.headers.get("X-API-Key")
        if key is not None:
            principal = self.accounts.by_key(key)
            if principal is None:
                raise ApiError(401, "invalid_api_key", "the X-API-Key is not a configured key")
            return principal
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> (from POST /api/login) or X-API-Key",
                headers={"WWW-Authenticate": 'Bearer realm="switch"'},
            )
        who = self.tokens.verify(token.strip())
        # A token signed with a shared secret by a node whose config differs,
        # or for an account removed since: refused, not a KeyError later.
        tenant = self.config.tenants.get(who.tenant)
        if tenant is None or (who.agent is not None and who.agent not in tenant.agents):
            raise ApiError(401, "invalid_token", "this token's account does not exist here")
        return who

    def supervisor_of(self, request: web.Request) -> Principal:
        """The principal, who must be a supervisor or admin (403 otherwise)."""
        who = self.principal(request)
        if not who.may_supervise():
            raise ApiError(403, "forbidden", "this needs the supervisor, admin or operator role")
        return who


async def login(request: web.Request) -> web.Response:
    api = api_of(request)
    address = request.remote or "unknown"
    api.throttle.check(address)
    body = await json_body(request)
    only(body, ("username", "password", "tenant"))
    username = text(body, "username")
    password = text(body, "password", max_len=1024)
    tenant = text(body, "tenant", required=False)
    assert username is not None and password is not None
    principal = api.accounts.login(username, password, tenant)
    if principal is None:
        api.throttle.failed(address)
        raise ApiError(401, "invalid_credentials", "wrong username, password or tenant")
    return web.json_response(api.tokens.issue(principal))


async def refresh(request: web.Request) -> web.Response:
    api = api_of(request)
    body = await json_body(request)
    only(body, ("refresh",))
    token = text(body, "refresh", max_len=4096)
    assert token is not None
    principal = api.tokens.verify(token, "refresh")
    if not api.accounts.still_valid(principal):
        raise ApiError(401, "invalid_token", "this account no longer exists: log in again")
    return web.json_response(api.tokens.issue(principal))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
