"""The OpenAPI 3.1 document of the API, served at GET /api/openapi.json.

Written by hand from small helpers, next to the handlers it describes;
tests/web/test_schemathesis.py checks the API against it (every endpoint,
no 500, responses as documented).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import __version__

J = dict[str, Any]


def _ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str | list[str]) -> J:
    kinds = [kind] if isinstance(kind, str) else kind
    return {"type": [*kinds, "null"]}


def _obj(props: J, required: list[str] | None = None, extra: bool = False) -> J:
    out: J = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = required
    return out


def _json(schema: J, description: str) -> J:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> J:
    words = {
        400: "A field is missing or wrong (`field` names it), or the body is not JSON",
        401: "No valid token or API key",
        403: "The role does not allow it",
        404: "No such object in the caller's tenant",
        409: "The state does not allow it now (the message says why)",
        413: "The body is too large",
        415: "The body is not application/json",
        422: "The request is well formed but cannot be carried out",
        429: "Too many failed logins from this address",
        501: "Not available on this node",
    }
    return {str(s): _json(_ref("Error"), words[s]) for s in statuses}


def _body(schema: J, required: bool = True) -> J:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path(name: str, description: str, pattern: str | None = None) -> J:
    schema: J = {"type": "string", "minLength": 1}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


CALL_ID = _path("id", "The node's call id", "^[0-9]{1,18}$")
AGENT_ID = _path("id", "The agent's extension")
QUEUE = _path("name", "The queue's name")
SECURED = [{"bearer": []}, {"apiKey": []}]
STATES = ["available", "not-ready", "logged-out", "logged-in"]
MODES = ["listen", "whisper", "barge"]
STATUSES = ["logged-out", "available", "reserved", "on-call", "wrap-up", "not-ready"]


def _non_blank(node: Any) -> Any:
    """Every required string (minLength >= 1) must also hold a non-space character,
    as the API checks ("must not be empty" for "  "): say so in the document."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("minLength", 0) >= 1:
            node.setdefault("pattern", r"\S")
        for value in node.values():
            _non_blank(value)
    elif isinstance(node, list):
        for value in node:
            _non_blank(value)
    return node


def _schemas() -> J:
    num = {"type": "number"}
    text = {"type": "string"}
    return {
        "Error": _obj({"error": text, "message": text, "field": text}, ["error", "message"]),
        "Login": _obj(
            {
                "username": {"type": "string", "minLength": 1, "maxLength": 256},
                "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                "tenant": {"type": "string", "minLength": 1, "maxLength": 256},
            },
            ["username", "password"],
        ),
        "Refresh": _obj({"refresh": {"type": "string", "minLength": 1}}, ["refresh"]),
        "Tokens": _obj(
            {
                "token": {"type": "string", "description": "JWT for Authorization: Bearer"},
                "refresh": {"type": "string", "description": "for POST /api/refresh"},
                "expires_in": {"type": "integer", "description": "seconds the token lasts"},
                "role": {"enum": ["agent", "supervisor", "admin"]},
                "tenant": text,
                "user": text,
                "agent": _nullable("string"),
            },
            ["token", "refresh", "expires_in", "role", "tenant", "user", "agent"],
        ),
        "Agent": _obj(
            {
                "id": text,
                "name": text,
                "tenant": text,
                "status": {"enum": [*STATUSES, None]},
                "reason": text,
                "since": _nullable("number"),
                "devices": {"type": "array", "items": text},
                "queues": {"type": "object", "additionalProperties": {"type": "integer"}},
                "wrapup_until": {"type": "number", "description": "in wrap-up: when it ends"},
                "not_ready_reasons": {"type": "array", "items": text},
                "dispositions": {"type": "array", "items": text},
            },
            [
                "id",
                "name",
                "tenant",
                "status",
                "reason",
                "since",
                "devices",
                "queues",
                "not_ready_reasons",
                "dispositions",
            ],
        ),
        "StateChange": _obj(
            {
                "state": {"enum": STATES},
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "description": "for not-ready: one of the tenant's not_ready_reasons",
                },
            },
            ["state"],
        ),
        "QueueStats": _obj(
            {
                "queue": text,
                "waiting": {"type": "integer"},
                "longest_wait": num,
                "agents": {
                    "type": "object",
                    "description": "agents of the queue by status",
                    "additionalProperties": {"type": "integer"},
                },
                "available": {"type": "integer"},
                "ewt": {**_nullable("number"), "description": "estimated wait, seconds"},
            },
            ["queue", "waiting", "longest_wait", "agents", "available", "ewt"],
        ),
        "Caller": _obj(
            {
                "call_id": {"type": "integer"},
                "number": text,
                "position": {"type": "integer"},
                "since": num,
                "wait": num,
                "priority": {"type": "integer"},
                "skills": {"type": "object", "additionalProperties": {"type": "integer"}},
                "variables": {"type": "object"},
            },
            ["call_id", "number", "position", "since", "wait", "priority", "skills", "variables"],
        ),
        "Move": _obj(
            {
                "queue": {"type": "string", "minLength": 1, "description": "another queue"},
                "front": {"type": "boolean", "description": "to the front of the queue"},
            }
        ),
        "Moved": _obj(
            {
                "call_id": {"type": "integer"},
                "queue": _nullable("string"),
                "position": _nullable("integer"),
            },
            ["call_id", "queue", "position"],
        ),
        "Call": _obj(
            {
                "id": {"type": "integer"},
                "tenant": text,
                "did": _nullable("string"),
                "caller": text,
                "callee": _nullable("string"),
                "queue": _nullable("string"),
                "agent": _nullable("string"),
                "state": {"enum": ["routing", "calling", "queued", "answered", "ended"]},
                "since": num,
                "answered_at": _nullable("number"),
                "ivr": {
                    **_nullable("object"),
                    "description": "the IVR's summary: steps, keys pressed, variables",
                },
            },
            [
                "id",
                "tenant",
                "did",
                "caller",
                "callee",
                "queue",
                "agent",
                "state",
                "since",
                "answered_at",
                "ivr",
            ],
        ),
        "Originate": _obj(
            {
                "first": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "rung first (an agent's extension)",
                },
                "second": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "then connected to this number or extension",
                },
                "caller_id": {"type": "string", "minLength": 1, "maxLength": 32},
            },
            ["first", "second"],
        ),
        "Supervise": _obj(
            {
                "mode": {"enum": MODES},
                "to": {
                    "description": "where to ring the supervisor: an extension, a number or "
                    "a SIP URI (a supervisor who is also an agent may leave it out: their own "
                    "extension)",
                    "oneOf": [
                        {"type": "string", "minLength": 1},
                        {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1},
                            "minItems": 1,
                            "maxItems": 10,
                        },
                    ],
                },
            },
            ["mode", "to"],
        ),
        "Mode": _obj({"mode": {"enum": MODES}}, ["mode"]),
        "Supervision": _obj(
            {"id": text, "call_id": {"type": "integer"}, "mode": {"enum": MODES}},
            ["id", "call_id", "mode"],
        ),
    }


def _op(
    summary: str,
    responses: J,
    *,
    body: J | None = None,
    params: list | None = None,
    secured: bool = True,
    errors: tuple[int, ...] = (),
) -> J:
    op: J = {"summary": summary, "responses": {**responses}}
    if secured:
        op["security"] = SECURED
        errors = (401, *errors)
    if body is not None:
        op["requestBody"] = body
        errors = (400, 413, 415, *errors)
    if params:
        op["parameters"] = params
        errors = (400, *errors)  # a malformed id in the path
    op["responses"].update(_errors(*sorted(set(errors))))
    return op


def _paths() -> J:
    list_of = lambda key, name: _obj(  # noqa: E731
        {key: {"type": "array", "items": _ref(name)}}, [key]
    )
    return {
        "/api/login": {
            "post": _op(
                "Log in (agent: extension and SIP password; user: login and password)",
                {"200": _json(_ref("Tokens"), "Tokens")},
                body=_body(_ref("Login")),
                secured=False,
                errors=(401, 429),
            )
        },
        "/api/refresh": {
            "post": _op(
                "A new token pair for a refresh token",
                {"200": _json(_ref("Tokens"), "Tokens")},
                body=_body(_ref("Refresh")),
                secured=False,
                errors=(401,),
            )
        },
        "/api/openapi.json": {
            "get": _op(
                "This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")}, secured=False
            )
        },
        "/api/agents": {
            "get": _op(
                "Agents of the tenant (an agent: only themselves)",
                {"200": _json(list_of("agents", "Agent"), "Agents")},
            )
        },
        "/api/agents/{id}": {
            "get": _op(
                "One agent",
                {"200": _json(_ref("Agent"), "The agent")},
                params=[AGENT_ID],
                errors=(403, 404),
            )
        },
        "/api/agents/{id}/state": {
            "put": _op(
                "Set an agent's state (agents: their own; supervisors: any of the tenant)",
                {"200": _json(_ref("Agent"), "The agent after the change")},
                body=_body(_ref("StateChange")),
                params=[AGENT_ID],
                errors=(403, 404, 409, 422),
            )
        },
        "/api/queues": {
            "get": _op(
                "Queues with their stats (an agent: the queues they are in)",
                {"200": _json(list_of("queues", "QueueStats"), "Queues")},
            )
        },
        "/api/queues/{name}/stats": {
            "get": _op(
                "A queue's stats: waiting, longest wait, agents by state, EWT",
                {"200": _json(_ref("QueueStats"), "Stats")},
                params=[QUEUE],
                errors=(403, 404, 409),
            )
        },
        "/api/queues/{name}/callers": {
            "get": _op(
                "Callers waiting in a queue, in the order they will be offered",
                {
                    "200": _json(
                        _obj(
                            {
                                "queue": {"type": "string"},
                                "callers": {"type": "array", "items": _ref("Caller")},
                            },
                            ["queue", "callers"],
                        ),
                        "Callers",
                    )
                },
                params=[QUEUE],
                errors=(403, 404, 409),
            )
        },
        "/api/queues/{name}/callers/{call_id}/move": {
            "post": _op(
                "Move a waiting caller to another queue and/or its front (supervisor)",
                {"200": _json(_ref("Moved"), "Where the caller is now")},
                body=_body(_ref("Move"), required=False),
                params=[QUEUE, {**CALL_ID, "name": "call_id"}],
                errors=(403, 404, 409, 422),
            )
        },
        "/api/calls": {
            "get": _op(
                "Calls in progress (an agent: their own)",
                {"200": _json(list_of("calls", "Call"), "Calls")},
                errors=(501,),
            ),
            "post": _op(
                "Originate (click-to-call): ring `first`, then connect it to `second`",
                {"202": _json(_obj({"call_id": {"type": "integer"}}, ["call_id"]), "Started")},
                body=_body(_ref("Originate")),
                errors=(403, 422, 501),
            ),
        },
        "/api/calls/{id}": {
            "delete": _op(
                "Hang up a call (supervisor, admin)",
                {
                    "200": _json(
                        _obj(
                            {"call_id": {"type": "integer"}, "ended": {"type": "boolean"}},
                            ["call_id", "ended"],
                        ),
                        "Ended",
                    )
                },
                params=[CALL_ID],
                errors=(403, 404, 409, 501),
            )
        },
        "/api/calls/{id}/disposition": {
            "put": _op(
                "The wrap-up form of an ended call (its agent, or a supervisor): kept on its CDR",
                {
                    "200": _json(
                        _obj(
                            {
                                "call_id": {"type": "integer"},
                                "cdr_id": {"type": "string"},
                                "disposition": {"type": "string"},
                            },
                            ["call_id", "cdr_id", "disposition"],
                        ),
                        "Kept",
                    )
                },
                body=_body(
                    _obj(
                        {
                            "disposition": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 40,
                                "description": "one of the tenant's (GET /api/agents/{id})",
                            },
                            "notes": {"type": "string", "maxLength": 4000},
                        },
                        ["disposition"],
                    )
                ),
                params=[CALL_ID],
                errors=(403, 404, 422, 501),
            )
        },
        "/api/calls/{id}/supervise": {
            "post": _op(
                "Listen, whisper or barge on a call (supervisor, admin)",
                {"201": _json(_ref("Supervision"), "Supervision started")},
                body=_body(_ref("Supervise")),
                params=[CALL_ID],
                errors=(403, 404, 409, 422, 501),
            )
        },
        "/api/calls/{id}/supervise/{sid}": {
            "put": _op(
                "Change a supervision's mode",
                {"200": _json(_ref("Supervision"), "Supervision")},
                body=_body(_ref("Mode")),
                params=[CALL_ID, _path("sid", "The supervision's id")],
                errors=(403, 404, 409, 501),
            ),
            "delete": _op(
                "Stop a supervision",
                {"204": {"description": "Stopped"}},
                params=[CALL_ID, _path("sid", "The supervision's id")],
                errors=(403, 404, 501),
            ),
        },
        "/api/cti": {
            "get": {
                "summary": "The CTI WebSocket (upgrade): ?token=<token> or a first auth frame",
                "description": "JSON events: agent.state, agent.wrapup, caller.joined, "
                "caller.moved, caller.left, caller.answered, offer.ended, call.offered, "
                "queue.stats. See the README's API section.",
                "parameters": [
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "101": {"description": "Switching to WebSocket"},
                    **_errors(400, 401),
                },
                "x-websocket": True,
            }
        },
    }


@cache
def document() -> J:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "switch call center API",
            "version": __version__,
            "description": "Agents, queues, calls in progress, supervision, CTI events. "
            "Every error is JSON {error, message[, field]} saying what to fix.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _non_blank(_schemas()),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
