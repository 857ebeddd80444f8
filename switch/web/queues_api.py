"""GET /api/queues, GET /api/queues/{name}/stats, GET /api/queues/{name}/callers,
POST /api/queues/{name}/callers/{call_id}/move."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..apps.acd import AcdError
from .body import flag, json_body, only, path_int, text
from .errors import ApiError, bad_field
from .key import api_of

if TYPE_CHECKING:
    from .api import Api
    from .auth import Principal


def queue_stats(api: Api, tenant: str, queue: str) -> dict[str, Any]:
    """Waiting callers, the longest wait, agents of the queue by state, estimated wait."""
    assert api.acd is not None
    acd = api.acd.acds[tenant]
    now = api.clock()
    waiting = api.acd.waiting(tenant, queue)
    by_state: dict[str, int] = {}
    for ext in api.config.tenants[tenant].agents:
        record = acd.agent(ext)
        if queue in record.queues:
            by_state[record.status] = by_state.get(record.status, 0) + 1
    state = api.acd.queue_state(tenant, queue)
    return {
        "queue": queue,
        "waiting": len(waiting),
        "longest_wait": round(max((now - w.since for w in waiting), default=0.0), 3),
        "agents": by_state,
        "available": state.agents_available,
        "ewt": None if state.estimated_wait is None else round(state.estimated_wait, 1),
    }


def visible_queues(api: Api, who: Principal) -> list[str]:
    """The queues a principal may see: an agent theirs, a supervisor their tenant's."""
    queues = api.config.tenants[who.tenant].queues
    if who.role == "agent":
        agent = api.config.tenants[who.tenant].agents.get(who.agent or "")
        return [q for q in queues if agent is not None and q in agent.queues]
    return list(queues)


def _queue(api: Api, who: Principal, request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in api.config.tenants[who.tenant].queues:
        raise ApiError(404, "not_found", f"no queue {name!r} in tenant {who.tenant!r}")
    if name not in visible_queues(api, who):
        raise ApiError(403, "forbidden", f"agent {who.agent} is not in queue {name!r}")
    if api.acd is None or who.tenant not in api.acd.acds:
        raise ApiError(409, "no_acd", "queues are not served on this node")
    return name


async def list_queues(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    names = visible_queues(api, who) if api.acd is not None and who.tenant in api.acd.acds else []
    return web.json_response({"queues": [queue_stats(api, who.tenant, q) for q in names]})


async def stats(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    return web.json_response(queue_stats(api, who.tenant, _queue(api, who, request)))


def _plain(value: Any) -> Any:
    """The IVR's variables as JSON can carry them (anything else as its text)."""
    return json.loads(json.dumps(value, default=str))


async def callers(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    queue = _queue(api, who, request)
    assert api.acd is not None
    now = api.clock()
    out = [
        {
            "call_id": w.call_id,
            "number": w.caller,
            "position": position,
            "since": w.since,
            "wait": round(now - w.since, 3),
            "priority": w.priority,
            "skills": dict(w.skills),
            "variables": _plain(dict(w.variables)),
        }
        for position, w in enumerate(api.acd.waiting(who.tenant, queue), start=1)
    ]
    return web.json_response({"queue": queue, "callers": out})


async def move(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.supervisor_of(request)
    queue = _queue(api, who, request)
    call_id = path_int(request, "call_id")
    body = await json_body(request, optional=True)
    only(body, ("queue", "front"))
    target = text(body, "queue", required=False)
    front = flag(body, "front")
    assert api.acd is not None
    if target is not None and target not in api.config.tenants[who.tenant].queues:
        raise bad_field("queue", f"no queue {target!r} in tenant {who.tenant!r}", 422)
    if target is None and not front:
        raise bad_field("queue", "give another queue, or front: true, or both", 422)
    if not any(w.call_id == call_id for w in api.acd.waiting(who.tenant, queue)):
        entry = api.acd.acds[who.tenant].entry(str(call_id))
        if entry is None or entry.queue != queue:
            raise ApiError(404, "not_found", f"no caller {call_id} waiting in queue {queue!r}")
    try:
        api.acd.move(who.tenant, call_id, target, front)
    except AcdError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    now_in = api.acd.acds[who.tenant].entry(str(call_id))
    return web.json_response(
        {
            "call_id": call_id,
            "queue": now_in.queue if now_in is not None else None,
            "position": api.acd.acds[who.tenant].position(str(call_id))
            if now_in is not None and now_in.status == "waiting"
            else None,
        }
    )
