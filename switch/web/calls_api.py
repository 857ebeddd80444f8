"""Calls in progress: GET/POST /api/calls, DELETE /api/calls/{id}, and supervision
(POST /api/calls/{id}/supervise, PUT/DELETE /api/calls/{id}/supervise/{sid})."""

from __future__ import annotations

import inspect
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .body import json_body, only, path_int, text
from .errors import ApiError, bad_field
from .key import api_of
from .ports import SUPERVISE_MODES

if TYPE_CHECKING:
    from ..call.model import Call
    from .api import Api
    from .auth import Principal
    from .ports import Supervision

log = logging.getLogger(__name__)


def call_view(api: Api, call: Call) -> dict[str, Any]:
    """One call in progress: who, where it came in, its queue and agent, the IVR's inputs."""
    tenant = call.caller.tenant
    parties = getattr(api.calls, "parties", None)
    caller, callee = parties(call) if parties is not None else (call.caller.name, "")
    app = call.app
    queue = None
    agent = None
    state = call.state
    if api.acd is not None:
        held = api.acd.callers.get((tenant, str(call.id)))
        if held is not None:
            queue, state = held.queue, "queued"
    if app is not None and app.connected is not None:
        if app.connected.kind == "agent":
            agent = app.connected.name
        callee = app.connected.name if app.connected.kind == "agent" else app.connected.uri
    elif call.target is not None and call.target.kind == "agent":
        agent = call.target.name
    if call.caller.kind == "agent" and agent is None:
        agent = call.caller.name
    ivr = app.variables.get("ivr") if app is not None else None
    return {
        "id": call.id,
        "tenant": tenant,
        "did": (app.did if app is not None else call.dialled) or None,
        "caller": caller,
        "callee": callee or None,
        "queue": queue,
        "agent": agent,
        "state": state,
        "since": call.started_at,
        "answered_at": call.answered_at,
        "ivr": json.loads(json.dumps(ivr, default=str)) if ivr is not None else None,
    }


def _calls(api: Api) -> Any:
    if api.calls is None:
        raise ApiError(501, "not_available", "this node does not serve calls through the API")
    return api.calls


def _mine(who: Principal, view: dict[str, Any]) -> bool:
    if view["tenant"] != who.tenant:
        return False
    return who.role != "agent" or view["agent"] == who.agent


async def list_calls(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    views = [call_view(api, call) for call in _calls(api).active()]
    return web.json_response({"calls": [v for v in views if _mine(who, v)]})


def _find(api: Api, who: Principal, call_id: int) -> Call:
    for call in _calls(api).active():
        if call.id == call_id and call.caller.tenant == who.tenant:
            return call
    raise ApiError(404, "not_found", f"no call {call_id} in progress in tenant {who.tenant!r}")


async def hang_up(request: web.Request) -> web.Response:
    api = api_of(request)
    return web.json_response(end_call(api, api.supervisor_of(request), path_int(request, "id")))


def end_call(api: Api, who: Principal, call_id: int) -> dict[str, Any]:
    """Hang up a call of the supervisor's tenant (REST DELETE and the CTI "hangup" frame)."""
    _find(api, who, call_id)
    try:
        ended = _calls(api).end(call_id, f"hung up by {who.user} through the API")
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if not ended:
        raise ApiError(404, "not_found", f"call {call_id} ended meanwhile")
    return {"call_id": call_id, "ended": True}


async def originate(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.principal(request)
    body = await json_body(request)
    only(body, ("first", "second", "caller_id"))
    first = text(body, "first", max_len=64)
    second = text(body, "second", max_len=64)
    caller_id = text(body, "caller_id", required=False, max_len=32)
    assert first is not None and second is not None
    if who.role == "agent" and first != who.agent:
        raise ApiError(
            403,
            "forbidden",
            f"an agent calls from their own extension ({who.agent})",
            field="first",
        )
    if api.originate is None:
        raise ApiError(501, "not_available", "this node cannot originate calls yet")
    try:
        call_id = await api.originate(who.tenant, first, second, caller_id=caller_id)
    except ValueError as exc:  # a number the tenant may not dial, an unknown extension...
        raise ApiError(422, "unprocessable", str(exc)) from None
    return web.json_response({"call_id": call_id}, status=202)


async def disposition(request: web.Request) -> web.Response:
    """PUT /api/calls/{id}/disposition: the agent's wrap-up form, kept on the call's CDR."""
    api = api_of(request)
    who = api.principal(request)
    call_id = path_int(request, "id")
    body = await json_body(request)
    only(body, ("disposition", "notes"))
    code = text(body, "disposition", max_len=40)
    notes = body.get("notes", "")
    if not isinstance(notes, str) or len(notes) > 4000:
        raise bad_field("notes", "must be text of at most 4,000 characters")
    if api.wrapups is None:
        raise ApiError(501, "not_available", "this node keeps no records")
    if who.role == "agent" and who.agent is None:  # (an integration's key of role agent)
        raise ApiError(403, "forbidden", "a wrap-up form is an agent's or a supervisor's")
    agent = who.agent if who.role == "agent" else None
    try:
        api.wrapups.check(who.tenant, call_id, agent=agent)  # 404/403 before the form's 422
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except PermissionError as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    codes = api.config.tenants[who.tenant].acd.dispositions
    if code not in codes:
        raise bad_field(
            "disposition", f"{code!r} is not one of this tenant's: {', '.join(codes)}", 422
        )
    cdr_id = api.wrapups.set(who.tenant, call_id, code, notes, agent=agent)
    return web.json_response({"call_id": call_id, "cdr_id": cdr_id, "disposition": code})


# ---------------------------------------------------------------------------
# Supervision


def _supervisor(api: Api) -> Any:
    if api.supervisor is None:
        raise ApiError(501, "not_available", "this node cannot supervise calls yet")
    return api.supervisor


def _supervision_view(call_id: int, sup: Supervision) -> dict[str, Any]:
    return {"id": str(sup.id), "call_id": call_id, "mode": sup.mode}


async def _maybe(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


async def supervise(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.supervisor_of(request)
    call_id = path_int(request, "id")
    body = await json_body(request)
    only(body, ("mode", "to"))
    return web.json_response(await start_supervision(api, who, call_id, body), status=201)


async def start_supervision(
    api: Api, who: Principal, call_id: int, body: dict[str, Any]
) -> dict[str, Any]:
    """Ring the supervisor and mix them into call `call_id` (REST POST and CTI "supervise")."""
    mode = text(body, "mode", choices=SUPERVISE_MODES)
    raw_to = body.get("to")
    if raw_to is None:  # a supervisor who is also an agent: their own devices
        to = [who.user] if who.user in api.config.tenants[who.tenant].agents else []
    elif isinstance(raw_to, str) and raw_to.strip() and len(raw_to) <= 256:
        to = [raw_to]
    elif (
        isinstance(raw_to, list)
        and raw_to
        and len(raw_to) <= 10
        and all(isinstance(t, str) and t.strip() and len(t) <= 256 for t in raw_to)
    ):
        to = list(raw_to)
    else:
        raise bad_field("to", "must be a target (string) or a list of 1 to 10 of them")
    assert mode is not None
    view = call_view(api, _find(api, who, call_id))
    if not to:
        raise bad_field("to", "say where to ring you: an extension, a number or a SIP URI", 422)
    try:
        sup = await _supervisor(api).supervise(call_id, to, mode, agent=view["agent"])
    except TimeoutError:
        raise ApiError(
            409, "no_answer", f"{', '.join(to)} did not answer: supervision not started"
        ) from None
    except ConnectionError as exc:  # refused (busy, declined) or unreachable
        raise ApiError(409, "no_answer", f"{exc}: supervision not started") from None
    except LookupError as exc:  # the call ended meanwhile
        raise ApiError(404, "not_found", str(exc) or f"no call {call_id}") from None
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return _supervision_view(call_id, sup)


def _supervision(api: Api, who: Principal, call_id: int, sid: str) -> Supervision:
    _find(api, who, call_id)
    for sup in _supervisor(api).supervisions(call_id):
        if str(sup.id) == sid:  # (an id may be a number on the call layer's side)
            return sup
    raise ApiError(404, "not_found", f"no supervision {sid!r} on call {call_id}")


async def change_supervision(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.supervisor_of(request)
    body = await json_body(request)
    only(body, ("mode",))
    call_id, sid = path_int(request, "id"), request.match_info["sid"]
    return web.json_response(await set_supervision_mode(api, who, call_id, sid, body))


async def set_supervision_mode(
    api: Api, who: Principal, call_id: int, sid: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Listen, whisper or barge from now on (REST PUT and CTI "supervise.mode")."""
    mode = text(body, "mode", choices=SUPERVISE_MODES)
    sup = _supervision(api, who, call_id, sid)
    try:
        await _maybe(sup.set_mode(mode))
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return _supervision_view(call_id, sup)


async def stop_supervision(request: web.Request) -> web.Response:
    api = api_of(request)
    who = api.supervisor_of(request)
    await end_supervision(api, who, path_int(request, "id"), request.match_info["sid"])
    return web.Response(status=204)


async def end_supervision(api: Api, who: Principal, call_id: int, sid: str) -> None:
    """Hang the supervisor up; the call goes on (REST DELETE and CTI "supervise.stop")."""
    await _maybe(_supervision(api, who, call_id, sid).stop())
