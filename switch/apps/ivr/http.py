"""The `http` verb's client: one request, a timeout, the JSON answer as an event.

Injectable (the runner takes any object with `request`); tests point flows
at a local aiohttp server. Errors never raise: they come back as
`HttpFailed` with a reason the flow's trail and the log show.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from .commands import HttpRequest
from .events import HttpFailed, HttpResponse

log = logging.getLogger("switch.ivr")

MAX_BODY = 1024 * 1024  # bytes of an answer read; a CRM lookup is far smaller


class HttpClient:
    """One per node: a shared aiohttp session, opened on first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "switch-ivr"}, raise_for_status=False
            )
        return self._session

    async def request(self, req: HttpRequest) -> HttpResponse | HttpFailed:
        session = self._open()
        timeout = aiohttp.ClientTimeout(total=req.timeout)
        try:
            async with session.request(
                req.method,
                req.url,
                headers=dict(req.headers),
                json=dict(req.body) if req.body is not None else None,
                timeout=timeout,
            ) as resp:
                data = await resp.content.read(MAX_BODY + 1)
                status = resp.status
        except TimeoutError:
            return HttpFailed(req.id, f"no answer within {req.timeout:g} s")
        except aiohttp.InvalidURL:
            return HttpFailed(req.id, f"invalid URL {req.url[:200]!r}")
        except (aiohttp.ClientError, OSError) as exc:
            return HttpFailed(req.id, f"{type(exc).__name__}: {exc}"[:300])
        if len(data) > MAX_BODY:
            return HttpFailed(req.id, f"answer larger than {MAX_BODY} bytes")
        try:
            decoded = json.loads(data) if data.strip() else None
        except (ValueError, UnicodeDecodeError):
            decoded = None  # not JSON: the status still counts
        return HttpResponse(req.id, status, decoded)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)
