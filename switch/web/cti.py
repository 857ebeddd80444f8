"""The CTI WebSocket, GET /api/cti: live events for agents, supervisors and integrations.

Authentication: `?token=<access token>` on the URL, or a first frame
`{"type": "auth", "token": "..."}` (or `{"type": "auth", "api_key": "..."}`)
within AUTH_WAIT seconds. The server then says `{"type": "hello", ...}`
and sends the current stats of the queues the client may see.

Events (cti_events.py) are pushed as the ACD reports them, and
`call.ended` as the call layer does (`call_ended`), filtered by tenant
and role; queue stats are pushed when they change, at most once a second
per queue. Frames from the client:

- `{"type": "state", "state": ..., "reason": ..., "agent": ...}`: like
  PUT /api/agents/{id}/state (`agent` defaults to the client's own);
- `{"type": "presence", "microphone": false|true}` from the webphone: the
  agent is set not ready "disconnected" while the browser has no
  microphone, and gets back what they had when it returns;
- `{"type": "ping"}`: answered `{"type": "pong"}`.

A bad frame gets `{"type": "error", "error": code, "message": ...}` and the
socket stays open. Each client has a bounded queue: one that does not read
its events fast enough is closed with code 4008 rather than let the node's
memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .agents_api import set_state
from .calls_api import call_view
from .cti_events import audience, from_acd, queues_touched
from .errors import ApiError
from .queues_api import queue_stats, visible_queues

if TYPE_CHECKING:
    from ..call.model import Call
    from .api import Api
    from .auth import Principal

log = logging.getLogger(__name__)

AUTH_WAIT = 10.0  # seconds a client has to send its auth frame
QUEUE_SIZE = 256  # events held for one client before it counts as too slow
STATS_EVERY = 1.0  # seconds between two stats pushes of one queue
MAX_FRAME = 16 * 1024

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4008
CLOSE_GOING_AWAY = 1001


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    who: Principal
    queues: frozenset[str]  # whose stats it gets
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    muted: bool = False  # this socket said the microphone is gone
    dead: bool = False


class Cti:
    """The CTI clients of one node, and the ACD listener that feeds them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.clients: set[_Client] = set()
        self._dirty: set[tuple[str, str]] = set()
        self._last: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------
    # Life

    async def start(self, app: web.Application) -> None:
        if self.api.acd is not None:
            self.api.acd.add_listener(self.on_acd)
        self._task = asyncio.get_running_loop().create_task(self._stats_loop(), name="cti stats")

    async def stop(self, app: web.Application) -> None:
        if self.api.acd is not None:
            self.api.acd.remove_listener(self.on_acd)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.ws.close(code=CLOSE_GOING_AWAY, message=b"node stopping")

    # ------------------------------------------------------------------
    # Events in

    def on_acd(self, tenant: str, item: Any) -> None:
        """The ACD service's listener: one event or Offer of `tenant`."""
        acd = self.api.acd
        caller = acd.caller_info(tenant, getattr(item, "caller", "")) if acd else None
        event = from_acd(tenant, item, caller, self.api.clock())
        if event is None:
            return
        self.publish(event)
        agents = self.api.config.tenants[tenant].agents
        member_of = {ext: list(agent.queues) for ext, agent in agents.items()}
        for queue in queues_touched(event, member_of):
            self._dirty.add((tenant, queue))
        if self._dirty:
            self._wake.set()

    def call_ended(self, call: Call) -> None:
        """The call layer's word that a call is over: `call.ended` to its tenant's
        supervisors and to the agent who was on it."""
        try:
            view = call_view(self.api, call)
        except Exception:  # a call the view cannot read must not break the call layer's hook
            log.exception("CTI: call %s could not be described", getattr(call, "id", "?"))
            return
        hangup = call.hangup
        self.publish(
            {
                "type": "call.ended",
                "tenant": view["tenant"],
                "call_id": view["id"],
                "agent": view["agent"],
                "caller": view["caller"],
                "did": view["did"],
                "by": hangup.by if hangup is not None else None,
                "reason": hangup.reason if hangup is not None else "",
                "at": self.api.clock(),
            }
        )

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every client allowed to see it."""
        agents, queue = audience(event)
        frame: str | None = None
        for client in list(self.clients):
            who = client.who
            if client.dead or who.tenant != event["tenant"]:
                continue
            if who.role == "agent":
                if queue is not None:
                    if queue not in client.queues:
                        continue
                elif who.agent not in agents:
                    continue
            frame = frame or json.dumps(event)
            self._queue(client, frame)

    def _queue(self, client: _Client, frame: str) -> None:
        try:
            client.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            client.dead = True
            log.warning("CTI client %s/%s too slow: closed", client.who.tenant, client.who.user)
            self._spawn(client.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow: events dropped"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stats_loop(self) -> None:
        """Push the stats of queues that changed, each at most once per STATS_EVERY."""
        while True:
            await self._wake.wait()
            now = time.monotonic()
            later = []
            for key in sorted(self._dirty):
                wait = self._last.get(key, -STATS_EVERY) + STATS_EVERY - now
                if wait > 0:
                    later.append(wait)
                    continue
                self._dirty.discard(key)
                self._last[key] = now
                try:
                    self.publish(self._stats(*key))
                except Exception:  # a stats read must not end the feed
                    log.exception("CTI stats of queue %s/%s", *key)
            if later:
                await asyncio.sleep(min(later))
            elif not self._dirty:
                self._wake.clear()

    def _stats(self, tenant: str, queue: str) -> dict[str, Any]:
        stats = queue_stats(self.api, tenant, queue)
        return {"type": "queue.stats", "tenant": tenant, **stats, "at": self.api.clock()}

    # ------------------------------------------------------------------
    # A client

    async def handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_FRAME)
        token = request.query.get("token")
        who: Principal | None = None
        if token is not None:
            who = self.api.tokens.verify(token)  # ApiError 401 before the upgrade
            who = self.api.scoped(who, request)
        await ws.prepare(request)
        if who is None:
            who = await self._auth_frame(ws)
            if who is None:
                return ws
            try:
                who = self.api.scoped(who, request)
            except ApiError as exc:
                await ws.send_str(_error(exc.code, exc.message))
                await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no such tenant")
                return ws
        client = _Client(ws, who, frozenset(self._queues_of(who)))
        self.clients.add(client)
        sender = asyncio.get_running_loop().create_task(self._send(client))
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "tenant": who.tenant,
                    "user": who.user,
                    "role": who.role,
                    "agent": who.agent,
                }
            )
            for queue in sorted(client.queues):
                await ws.send_json(self._stats(who.tenant, queue))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        reply = self._frame(client, msg.data)
                    except Exception:  # a bug must cost this frame, not the socket
                        log.exception("CTI frame from %s/%s", who.tenant, who.user)
                        reply = _error_frame(
                            "internal", "the node failed on this frame; see its log"
                        )
                    self._queue(client, json.dumps(reply))
                elif msg.type == WSMsgType.BINARY:
                    self._queue(client, _error("bad_frame", "send JSON text frames, not binary"))
        except (ConnectionError, RuntimeError):
            pass  # the peer went away mid-send
        finally:
            self.clients.discard(client)
            sender.cancel()
            if client.muted and who.agent is not None and self.api.acd is not None:
                self.api.acd.set_muted(who.tenant, who.agent, False)
        return ws

    def _queues_of(self, who: Principal) -> list[str]:
        acd = self.api.acd
        if acd is None or who.tenant not in acd.acds:
            return []
        return visible_queues(self.api, who)

    async def _auth_frame(self, ws: web.WebSocketResponse) -> Principal | None:
        try:
            msg = await ws.receive(timeout=AUTH_WAIT)
        except TimeoutError:
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"no auth frame in time")
            return None
        problem = 'send {"type": "auth", "token": ...} first, or ?token= on the URL'
        if msg.type == WSMsgType.TEXT:
            try:
                frame = json.loads(msg.data)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and frame.get("type") == "auth":
                try:
                    if isinstance(frame.get("api_key"), str):
                        who = self.api.accounts.by_key(frame["api_key"])
                        if who is None:
                            raise ApiError(401, "invalid_api_key", "not a configured API key")
                        return who
                    if isinstance(frame.get("token"), str):
                        return self.api.tokens.verify(frame["token"])
                except ApiError as exc:
                    problem = exc.message
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_str(_error("unauthorized", problem))
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")
        return None

    async def _send(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not client.ws.closed:
                await client.ws.send_str(await client.outbox.get())

    def _frame(self, client: _Client, data: str) -> dict[str, Any]:
        """The reply to one frame from the client."""
        try:
            frame = json.loads(data)
        except ValueError as exc:
            return _error_frame("malformed_json", f"not JSON: {exc}")
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return _error_frame("bad_frame", 'a frame is a JSON object with a "type"')
        kind = frame["type"]
        try:
            if kind == "ping":
                return {"type": "pong", "at": self.api.clock()}
            if kind == "state":
                return self._state(client.who, frame)
            if kind == "presence":
                return self._presence(client, frame)
            return _error_frame(
                "unknown_type", f"unknown type {kind!r}: one of ping, state, presence"
            )
        except ApiError as exc:
            return {"type": "error", "error": exc.code, "message": exc.message, "ref": kind}

    def _state(self, who: Principal, frame: dict[str, Any]) -> dict[str, Any]:
        from .body import only, text

        only(frame, ("type", "state", "reason", "agent"))
        state = text(frame, "state", choices=("available", "not-ready", "logged-out", "logged-in"))
        reason = text(frame, "reason", required=False)
        agent = text(frame, "agent", required=False) or who.agent
        if agent is None:
            raise ApiError(400, "invalid_field", "agent: say which agent", field="agent")
        if agent not in self.api.config.tenants[who.tenant].agents:
            raise ApiError(404, "not_found", f"no agent {agent!r} in tenant {who.tenant!r}")
        if who.role == "agent" and agent != who.agent:
            raise ApiError(403, "forbidden", "an agent may change only their own state")
        assert state is not None
        set_state(self.api, who.tenant, agent, state, reason)
        record = self.api.acd.acds[who.tenant].agent(agent) if self.api.acd else None
        return {
            "type": "state.ok",
            "agent": agent,
            "status": record.status if record else None,
            "reason": record.reason if record else "",
        }

    def _presence(self, client: _Client, frame: dict[str, Any]) -> dict[str, Any]:
        who = client.who
        microphone = frame.get("microphone")
        if not isinstance(microphone, bool):
            raise ApiError(400, "invalid_field", "microphone: true or false", field="microphone")
        if who.agent is None:
            raise ApiError(403, "forbidden", "presence is for an agent's own webphone")
        acd = self.api.acd
        if acd is None or who.tenant not in acd.acds:
            raise ApiError(409, "no_acd", f"tenant {who.tenant!r} has no queues")
        client.muted = not microphone
        acd.set_muted(who.tenant, who.agent, not microphone)
        return {"type": "presence.ok", "microphone": microphone}


def _error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": code, "message": message}


def _error(code: str, message: str) -> str:
    return json.dumps(_error_frame(code, message))
