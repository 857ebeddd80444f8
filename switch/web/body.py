"""Reading a JSON request body and its fields, with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_field

MAX_BODY = 64 * 1024


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. 415 for another content type, 400 for bad
    JSON or not an object; an empty body is {} when `optional`."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "body_required", "send a JSON object as the body")
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON (Content-Type: application/json), not {request.content_type}",
        )
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object ({...})")
    return body


# White space as JSON Schema's `\S` (ECMA-262) sees it, which the OpenAPI
# document promises for required strings; Python's str.isspace() also counts
# \x1c-\x1f and \x85, which the document could not say.
SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def text(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    choices: Iterable[str] | None = None,
    max_len: int = 256,
) -> str | None:
    """A string field; None when absent and not required."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_field(name, "is required (a string)")
        return None
    if not isinstance(value, str):
        raise bad_field(name, f"must be a string, not {type(value).__name__}")
    if not value.strip(SPACE):
        raise bad_field(name, "must not be empty")
    if len(value) > max_len:
        raise bad_field(name, f"is longer than {max_len} characters")
    if choices is not None:
        allowed = list(choices)
        if value not in allowed:
            raise bad_field(name, f"{value!r} is not one of: {', '.join(allowed)}")
    return value


def flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_field(name, "must be true or false")
    return value


def only(body: dict[str, Any], names: Iterable[str]) -> None:
    """400 for a field the endpoint does not know (a typo would otherwise be ignored)."""
    known = set(names)
    for name in body:
        if name not in known:
            raise bad_field(
                name, f"is not a field of this request (fields: {', '.join(sorted(known))})"
            )


def path_int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit() or len(value) > 18:
        raise ApiError(
            400, "invalid_field", f"{name}: {value!r} is not a call id (digits)", field=name
        )
    return int(value)
