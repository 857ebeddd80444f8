"""The webphone's static files at /phone/ (switch/web/static.py), built or not."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from switch.web.static import add_static


async def _client(phone_dir) -> TestClient:
    app = web.Application()
    add_static(app, phone_dir)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_built_page_and_its_assets_are_served_with_cache_rules(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>webphone</title>")
    (tmp_path / "assets" / "phone-ABC123.js").write_text("console.log(1)")
    client = await _client(tmp_path)
    try:
        resp = await client.get("/phone", allow_redirects=False)
        assert resp.status == 301 and resp.headers["Location"] == "/phone/"
        resp = await client.get("/phone/")
        assert resp.status == 200
        assert "webphone" in await resp.text()
        assert resp.headers["Cache-Control"] == "no-cache"
        resp = await client.get("/phone/assets/phone-ABC123.js")
        assert resp.status == 200 and await resp.text() == "console.log(1)"
        assert "immutable" in resp.headers["Cache-Control"]
    finally:
        await client.close()


async def test_nothing_outside_the_assets_is_served(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("page")
    (tmp_path / "secret.txt").write_text("not for you")
    (tmp_path / "assets" / ".hidden").write_text("no")
    client = await _client(tmp_path)
    try:
        for path in (
            "/phone/assets/..%2Fsecret.txt",
            "/phone/assets/%2E%2E%2Fsecret.txt",
            "/phone/assets/.hidden",
            "/phone/assets/missing.js",
            "/phone/secret.txt",
        ):
            resp = await client.get(path)
            assert resp.status == 404, path
            assert "not for you" not in await resp.text()
    finally:
        await client.close()


async def test_an_unbuilt_webphone_says_how_to_build_it(tmp_path):
    client = await _client(tmp_path / "absent")
    try:
        resp = await client.get("/phone/")
        assert resp.status == 503
        assert "make install" in await resp.text()
    finally:
        await client.close()
