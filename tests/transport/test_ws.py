"""SIP over WebSocket (RFC 7118) with aiohttp's test server and client."""

from __future__ import annotations

import asyncio
import base64
import os

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from switch.sip.flow import Flow
from switch.transport.limits import Limits
from switch.transport.registry import Transports

pytestmark = pytest.mark.timeout(30)

REGISTER = (
    b"REGISTER sip:switch.test SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf\r\n"
    b"Call-ID: ws-1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: ws-1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"


class Inbox:
    """The on_message callback: what the transports delivered, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()

    def __call__(self, data: bytes, flow: Flow) -> None:
        self.queue.put_nowait((data, flow))

    async def get(self, timeout: float = 5.0) -> tuple[bytes, Flow]:
        return await asyncio.wait_for(self.queue.get(), timeout)


class Closed:
    """The on_connection_closed callback."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Flow] = asyncio.Queue()

    def __call__(self, flow: Flow) -> None:
        self.queue.put_nowait(flow)

    async def get(self, timeout: float = 5.0) -> Flow:
        return await asyncio.wait_for(self.queue.get(), timeout)


class Env:
    def __init__(self, hub: Transports, inbox: Inbox, closed: Closed, client: TestClient) -> None:
        self.hub, self.inbox, self.closed, self.client = hub, inbox, closed, client

    def connect(self, path: str = "/sip", **kwargs) -> aiohttp.client._WSRequestContextManager:
        kwargs.setdefault("protocols", ("sip",))
        return self.client.ws_connect(path, **kwargs)


async def make_env(**kwargs) -> Env:
    inbox, closed = Inbox(), Closed()
    hub = Transports(inbox, **kwargs)
    hub.on_connection_closed(closed)
    app = web.Application()
    app.router.add_get("/sip", hub.ws_handler())
    app.router.add_get("/sips", hub.ws_handler(secure=True))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Env(hub, inbox, closed, client)


async def close_env(env: Env) -> None:
    # Transports first, as a node should: it closes the WebSockets, which the
    # web server would otherwise wait for.
    await asyncio.wait_for(env.hub.close(), 10)
    await asyncio.wait_for(env.client.close(), 10)


@pytest.fixture
async def env():
    e = await make_env(max_message_size=2000)
    yield e
    await close_env(e)


async def test_subprotocol_sip_is_required(env: Env) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
    }
    async with env.client.get("/sip", headers=headers) as resp:
        assert resp.status == 400
        assert "subprotocol 'sip'" in await resp.text()
    async with env.client.get(
        "/sip", headers={**headers, "Sec-WebSocket-Protocol": "chat, xmpp"}
    ) as resp:
        assert resp.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with env.connect(protocols=()):
            pass
    assert info.value.status == 400
    async with env.client.get("/sip") as resp:  # not an upgrade at all
        assert resp.status == 400
    assert env.hub.stats["connections_accepted"] == 0


async def test_message_in_and_out(env: Env) -> None:
    async with env.connect() as ws:
        assert ws.protocol == "sip"
        await ws.send_str(REGISTER.decode())
        data, flow = await env.inbox.get()
        assert data == REGISTER
        assert flow.transport == "ws" and flow.reliable and not flow.secure
        assert flow.conn_id is not None
        assert flow.remote[0] == "127.0.0.1"
        assert flow.local[1] == env.client.port
        assert env.hub.connection_for("ws", flow.remote) == flow

        # UTF-8 goes out as a text frame, anything else as binary.
        assert env.hub.send(OK, flow)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.TEXT and msg.data == OK.decode()
        latin1 = OK.replace(b"OK", b"\xe9t\xe9")
        assert env.hub.send(latin1, flow)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.BINARY and msg.data == latin1

        # A binary frame in is one message too.
        await ws.send_bytes(REGISTER)
        data, again = await env.inbox.get()
        assert data == REGISTER and again == flow


async def test_sends_keep_their_order(env: Env) -> None:
    async with env.connect() as ws:
        await ws.send_str(REGISTER.decode())
        _, flow = await env.inbox.get()
        sent = [OK.replace(b"ws-1", f"ws-{i}".encode()) for i in range(50)]
        for data in sent:
            assert env.hub.send(data, flow)
        got = [(await ws.receive(timeout=5)).data.encode() for _ in sent]
        assert got == sent


async def test_secure_handler_makes_wss_flows(env: Env) -> None:
    async with env.connect("/sips") as ws:
        await ws.send_str(REGISTER.decode())
        _, flow = await env.inbox.get()
        assert flow.transport == "wss" and flow.secure
        assert env.hub.connection_for("ws", flow.remote) is None
        assert env.hub.connection_for("wss", flow.remote) == flow


async def test_close_is_reported(env: Env) -> None:
    async with env.connect() as ws:
        await ws.send_str(REGISTER.decode())
        _, flow = await env.inbox.get()
    assert await env.closed.get() == flow
    assert not env.hub.send(OK, flow)  # a WebSocket cannot be reopened by us
    assert env.hub.connection_for("ws", flow.remote) is None
    assert env.hub.stats["connections_open"] == 0


async def test_message_over_the_size_limit_closes_with_1009(env: Env) -> None:
    async with env.connect() as ws:
        await ws.send_str(REGISTER.decode())
        _, flow = await env.inbox.get()
        await ws.send_bytes(REGISTER + b"x" * 2000)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == WSCloseCode.MESSAGE_TOO_BIG
    assert await env.closed.get() == flow
    assert env.hub.stats["dropped_too_large"] == 1
    assert env.inbox.queue.empty()


async def test_rate_limit_drops_and_counts() -> None:
    now = [0.0]
    limits = Limits(max_requests_per_second_per_source=1, burst=2, clock=lambda: now[0])
    env = await make_env(limits=limits)
    try:
        async with env.connect() as ws:
            for _ in range(4):
                await ws.send_str(REGISTER.decode())
            await ws.send_str(OK.decode())
            got = [(await env.inbox.get())[0] for _ in range(3)]
            assert got == [REGISTER, REGISTER, OK]
            assert env.hub.stats["dropped_rate_limited"] == 2
    finally:
        await close_env(env)


async def test_connection_limit_per_source() -> None:
    env = await make_env(limits=Limits(max_connections_per_source=1))
    try:
        async with env.connect():
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                async with env.connect():
                    pass
            assert info.value.status == 503
            assert env.hub.stats["dropped_conn_limit"] == 1
        await env.closed.get()
        async with env.connect() as ws:  # room again
            await ws.send_str(REGISTER.decode())
            await env.inbox.get()
    finally:
        await close_env(env)


async def test_close_closes_websockets_and_leaves_no_task() -> None:
    env = await make_env()
    async with env.connect() as ws:
        await ws.send_str(REGISTER.decode())
        _, flow = await env.inbox.get()
        await asyncio.wait_for(env.hub.close(), 10)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY
    assert await env.closed.get() == flow
    ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("sip ")]
    assert ours == []
    await asyncio.wait_for(env.client.close(), 10)
    assert asyncio.all_tasks() == {asyncio.current_task()}
