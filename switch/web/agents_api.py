"""GET /api/agents, GET /api/agents/{id}, PUT /api/agents/{id}/state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..apps.acd import AcdError
from .body import json_body, only, text
from .errors import ApiError, bad_field
from .key import api_of

if TYPE_CHECKING:
    from .api import Api
    from .auth import Principal

STATES = ("available", "not-ready", "logged-out", "logged-in")


def agent_view(api: Api, tenant: str, ext: str) -> dict[str, Any]:
    """One agent as the API shows them (their ACD state when the tenant has queues)."""
    config = api.config.tenants[tenant].agents[ext]
    view: dict[str, Any] = {
        "id": ext,
        "name": config.name,
        "tenant": tenant,
        "status": None,
        "reason": "",
        "since": None,
        "devices": [],
        "queues": {queue: config.tiers.get(queue, 1) for queue in config.queues},
    }
    acd = api.acd.acds.get(tenant) if api.acd is not None else None
    if acd is not None:
        record = acd.agent(ext)
        view.update(
            status=record.status,
            reason=record.reason,
            since=record.since,
            devices=sorted(record.devices),
        )
        if record.status == "wrap-up":
            view["wrapup_until"] = record.wrapup_until
    # What the webphone offers for not-ready (the tenant's reasons).
    view["not_ready_reasons"] = list(api.config.tenants[tenant].acd.not_ready_reasons)
    view["dispositions"] = list(api.config.tenants[tenant].acd.dispositions)
    return view


def _visible(api: Api, who: Principal, ext: str) -> None:
    """404 for an agent not in the principal's tenant, 403 for another agent's own data."""
    if ext not in api.config.tenants[who.tenant].agents:
        raise ApiError(404, "not_found", f"no agent {ext!r} in tenant {who.tenant!r}")
    if who.role == "agent" and who.agent != ext:
        raise ApiError(403, "forbidden", "an agent may see and change only themselves")


async def list_agents(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    agents = api.config.tenants[who.tenant].agents
    names = list(agents) if who.role != "agent" else [a for a in agents if a == who.agent]
    return web.json_response({"agents": [agent_view(api, who.tenant, n) for n in names]})


async def get_agent(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    ext = request.match_info["id"]
    _visible(api, who, ext)
    return web.json_response(agent_view(api, who.tenant, ext))


async def put_state(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    ext = request.match_info["id"]
    _visible(api, who, ext)
    body = await json_body(request)
    only(body, ("state", "reason"))
    state = text(body, "state", choices=STATES)
    reason = text(body, "reason", required=False)
    assert state is not None
    set_state(api, who.tenant, ext, state, reason)
    return web.json_response(agent_view(api, who.tenant, ext))


def set_state(api: Api, tenant: str, ext: str, state: str, reason: str | None) -> None:
    """Carry out a state change (the PUT, and the CTI socket's "state" frames)."""
    if api.acd is None or tenant not in api.acd.acds:
        raise ApiError(
            409, "no_acd", f"tenant {tenant!r} has no queues: agents have no state to set"
        )
    reasons = api.config.tenants[tenant].acd.not_ready_reasons
    if state == "not-ready":
        if reason is None:
            raise bad_field(
                "reason", f"is required for not-ready: one of {', '.join(reasons)}", 422
            )
        if reason not in reasons:
            raise bad_field(
                "reason", f"{reason!r} is not one of this tenant's: {', '.join(reasons)}", 422
            )
    elif reason is not None:
        raise bad_field("reason", "is only for the not-ready state", 422)
    try:
        if state == "available":
            if api.acd.acds[tenant].agent(ext).status == "logged-out":
                api.acd.login(tenant, ext)
            else:
                api.acd.set_ready(tenant, ext)
        elif state == "not-ready":
            assert reason is not None
            api.acd.set_not_ready(tenant, ext, reason)
        elif state == "logged-in":
            api.acd.login(tenant, ext)
        else:
            api.acd.logout(tenant, ext)
    except AcdError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
