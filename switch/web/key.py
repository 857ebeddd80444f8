"""Where the API object lives on the aiohttp application, for the handler modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .api import Api

API_KEY: web.AppKey[Any] = web.AppKey("switch.api", object)


def api_of(request: web.Request) -> Api:
    return request.app[API_KEY]
