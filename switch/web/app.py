"""The node's HTTP side: health, SIP over WebSocket, the REST API and CTI socket (api.py)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import json_errors
from .handler import Handler
from .static import add_static

if TYPE_CHECKING:
    from .api import Api

NodeStatus = Callable[[], dict[str, Any]]

STATUS_KEY = web.AppKey("status", NodeStatus)


def make_app(status: NodeStatus, sip_ws: Handler, api: Api | None = None) -> web.Application:
    """`status()` describes the node; its "ready" key gates /healthz. With `api`,
    the REST API and the CTI socket under /api (errors there are JSON)."""
    app = web.Application(middlewares=[json_errors])
    app[STATUS_KEY] = status
    if api is not None:
        api.install(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/sip", sip_ws)
    app.router.add_get("/", index)
    add_static(app)
    return app


async def healthz(request: web.Request) -> web.Response:
    status = request.app[STATUS_KEY]()
    # 503 until every listener is up, so that orchestration and tests can
    # wait for a usable node rather than an open port.
    return web.json_response(status, status=200 if status.get("ready") else 503)


async def index(request: web.Request) -> web.Response:
    status = request.app[STATUS_KEY]()
    rows = "".join(f"<li>SIP {html.escape(addr)}</li>" for addr in status.get("sip_listeners", []))
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>switch {html.escape(status.get('node', ''))}</title></head><body>"
        f"<h1>switch node {html.escape(status.get('node', ''))}</h1>"
        f"<p>Version {html.escape(status.get('version', ''))}.</p>"
        f"<ul>{rows}<li>SIP over WebSocket: <code>/sip</code></li>"
        "<li><a href='/healthz'>/healthz</a></li>"
        "<li><a href='/api/openapi.json'>/api/openapi.json</a> (REST API)</li></ul></body></html>"
    )
    return web.Response(text=body, content_type="text/html")
