"""The API's errors: always JSON `{"error": code, "message": what to fix}`, never a traceback.

Handlers raise `ApiError`; the middleware turns it, aiohttp's own HTTP
errors (no route: 404, wrong method: 405, body too large: 413) and anything
unexpected (500, logged) into that shape for every path under /api.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from .handler import Handler

log = logging.getLogger(__name__)

# aiohttp's status -> our code for errors it raises itself.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error for the client: its HTTP status, a short code, and a sentence saying what to fix."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field = field
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.field, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def bad_field(name: str, message: str, status: int = 400) -> ApiError:
    """400 for one field of a request (422: well formed, but not a value that can be
    used here, such as an unknown reason): names it and says what would be right."""
    return ApiError(status, "invalid_field", f"{name}: {message}", field=name)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        code = _CODES.get(exc.status, "error")
        if exc.status == 404:
            message = f"no such endpoint: {request.path} (the list is at /api/openapi.json)"
        elif exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            message = f"{request.method} is not allowed on {request.path}; use {allowed}"
        else:
            message = exc.reason or code
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return error_response(500, "internal", "the node failed on this request; see its log")
