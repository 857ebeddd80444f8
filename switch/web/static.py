"""The static pages the node serves: the agent webphone at /phone/.

`webphone/` builds them (`make install`, or `npm ci && npm run build`
there) into switch/web/static/phone/. A node whose package was installed
without that build still runs: /phone/ then says how to build it instead
of a bare 404.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PHONE_DIR = Path(__file__).parent / "static" / "phone"

FOREVER = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "The webphone is not built on this node. Build it with `make install` in the "
    "switch source tree (or `npm ci && npm run build` in webphone/), then reload this page.\n"
)


def add_static(app: web.Application, phone_dir: Path = PHONE_DIR) -> None:
    """Serve the webphone at /phone/ (its built index.html and hashed assets)."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/phone/")

    async def index(request: web.Request) -> web.StreamResponse:
        page = phone_dir / "index.html"
        if not page.is_file():
            return web.Response(status=503, text=NOT_BUILT, content_type="text/plain")
        # The page names its assets by content hash: it must be fetched fresh
        # after an upgrade, while the assets may be cached for ever.
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = phone_dir / "assets" / name
        # A plain file name only: no way out of the assets directory.
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound(text=f"no webphone asset {name!r}: rebuild the webphone")
        return web.FileResponse(path, headers={"Cache-Control": FOREVER})

    app.router.add_get("/phone", redirect)
    app.router.add_get("/phone/", index)
    app.router.add_get("/phone/assets/{name}", asset)
