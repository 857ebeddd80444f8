"""The CTI WebSocket: events filtered by role and tenant, screen pop, inbound frames."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import aiohttp

from switch.web import cti

from .support import harness


async def until_pong(ws) -> list[dict]:
    """Every frame up to the answer to a ping (what was queued before it)."""
    await ws.send_json({"type": "ping"})
    frames = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == "pong":
            return frames
        frames.append(frame)


async def connect(h, user, password, tenant):
    token = await h.token(user, password, tenant)
    ws = await h.client.ws_connect(f"/api/cti?token={token}")
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello" and hello["tenant"] == tenant
    return ws


async def test_agent_state_changes_reach_that_agent_and_supervisors_not_others(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        alice = await connect(h, "1001", "alice-pw", "acme")
        bob = await connect(h, "1002", "bob-pw", "acme")
        sup = await connect(h, "sup", "sup-pw", "acme")
        other = await connect(h, "sup", "other-sup-pw", "other")
        for ws in (alice, bob, sup, other):
            await until_pong(ws)  # the hello's stats
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.put(
            "/api/agents/1001/state", json={"state": "not-ready", "reason": "break"},
            headers=headers,
        )  # fmt: skip
        assert resp.status == 200
        seen = [f for f in await until_pong(alice) if f["type"] == "agent.state"]
        assert [(f["agent"], f["old"], f["status"], f["reason"]) for f in seen] == [
            ("1001", "available", "not-ready", "break")
        ]
        assert [f for f in await until_pong(sup) if f["type"] == "agent.state"] == seen
        assert [f for f in await until_pong(bob) if f["type"] == "agent.state"] == []
        assert await until_pong(other) == []
        for ws in (alice, bob, sup, other):
            await ws.close()


async def test_offer_to_an_agent_carries_the_screen_pop(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        alice = await connect(h, "1001", "alice-pw", "acme")
        bob = await connect(h, "1002", "bob-pw", "acme")
        await until_pong(alice)
        await until_pong(bob)
        call = await h.enqueue("acme", "support", "+15557770000", keys=["1"], account="A-42")
        frames = await until_pong(alice)
        offers = [f for f in frames if f["type"] == "call.offered"]
        assert len(offers) == 1, frames
        pop = offers[0]
        assert pop["call_id"] == call.call_id and pop["queue"] == "support"
        assert pop["number"] == "+15557770000" and pop["did"] == "+15550100"
        assert pop["agents"] == ["1001"] and pop["wait"] >= 0 and pop["expires_in"] > 0
        assert pop["variables"] == {"keys": ["1"], "account": "A-42"}
        assert pop["ivr"] == {"keys": ["1"], "account": "A-42"}
        assert [f for f in await until_pong(bob) if f["type"] == "call.offered"] == []
        await alice.close()
        await bob.close()


async def test_supervisor_sees_callers_and_throttled_queue_stats(tmp_path):
    async with harness(tmp_path) as h:
        sup = await connect(h, "sup", "sup-pw", "acme")
        first = await until_pong(sup)
        assert sorted(f["queue"] for f in first if f["type"] == "queue.stats") == [
            "sales", "support",
        ]  # fmt: skip
        other = await connect(h, "sup", "other-sup-pw", "other")
        await until_pong(other)
        for i in range(5):
            await h.enqueue("acme", "support", f"+1555000{i}")
        deadline = time.monotonic() + 2.5
        frames = []
        while time.monotonic() < deadline:
            with_time = await until_pong(sup)
            frames += [(time.monotonic(), f) for f in with_time]
            await asyncio.sleep(0.1)
        joined = [f for _, f in frames if f["type"] == "caller.joined"]
        assert [f["number"] for f in joined] == [f"+1555000{i}" for i in range(5)]
        stats = [
            (t, f) for t, f in frames if f["type"] == "queue.stats" and f["queue"] == "support"
        ]
        assert 1 <= len(stats) <= 3, stats  # 5 changes, at most one push a second
        assert stats[-1][1]["waiting"] == 5
        times = [t for t, _ in stats]
        assert all(b - a >= 0.8 for a, b in itertools.pairwise(times))
        assert [f for f in await until_pong(other)] == []
        await sup.close()
        await other.close()


async def test_state_and_presence_frames(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        alice = await connect(h, "1001", "alice-pw", "acme")
        await until_pong(alice)
        await alice.send_json({"type": "state", "state": "not-ready", "reason": "lunch"})
        frames = await until_pong(alice)
        assert {
            "type": "state.ok",
            "agent": "1001",
            "status": "not-ready",
            "reason": "lunch",
        } in frames
        await alice.send_json({"type": "state", "state": "available"})
        await until_pong(alice)
        await alice.send_json({"type": "presence", "microphone": False})
        frames = await until_pong(alice)
        assert {"type": "presence.ok", "microphone": False} in frames
        snap = h.service.snapshot("acme")["agents"]["1001"]
        assert (snap["status"], snap["reason"]) == ("not-ready", "disconnected")
        await asyncio.sleep(1.3)  # a presence check from the registrations keeps it down
        assert h.service.snapshot("acme")["agents"]["1001"]["status"] == "not-ready"
        await alice.send_json({"type": "presence", "microphone": True})
        await until_pong(alice)
        for _ in range(50):
            if h.service.snapshot("acme")["agents"]["1001"]["status"] == "available":
                break
            await asyncio.sleep(0.02)
        assert h.service.snapshot("acme")["agents"]["1001"]["status"] == "available"
        # An agent may not set another agent's state over the socket.
        await alice.send_json({"type": "state", "state": "logged-out", "agent": "1002"})
        errors = [f for f in await until_pong(alice) if f["type"] == "error"]
        assert errors[0]["error"] == "forbidden"
        await alice.close()


async def test_bad_frames_get_error_frames_and_the_socket_stays(tmp_path):
    async with harness(tmp_path) as h:
        sup = await connect(h, "sup", "sup-pw", "acme")
        await until_pong(sup)
        bad = [
            ("{nope", "malformed_json"),
            ("[1]", "bad_frame"),
            ('{"type": 5}', "bad_frame"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "state", "state": "asleep", "agent": "1001"}', "invalid_field"),
            ('{"type": "state", "state": "available"}', "invalid_field"),  # no agent of its own
            ('{"type": "presence", "microphone": "off"}', "invalid_field"),
            ('{"type": "presence", "microphone": false}', "forbidden"),
        ]
        for text, code in bad:
            await sup.send_str(text)
            frames = await until_pong(sup)
            errors = [f for f in frames if f["type"] == "error"]
            assert [e["error"] for e in errors] == [code], (text, frames)
            assert errors[0]["message"]
        await sup.send_bytes(b"\x00\x01")
        assert [f["error"] for f in await until_pong(sup)] == ["bad_frame"]
        assert not sup.closed
        await sup.close()


async def test_auth_by_first_frame_and_refusals(tmp_path):
    async with harness(tmp_path) as h:
        token = await h.token("sup", "sup-pw", "acme")
        ws = await h.client.ws_connect("/api/cti")
        await ws.send_json({"type": "auth", "token": token})
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.close()
        ws = await h.client.ws_connect("/api/cti")
        await ws.send_json({"type": "auth", "token": "junk"})
        err = await ws.receive_json(timeout=5)
        assert err["type"] == "error" and err["error"] == "unauthorized"
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == cti.CLOSE_UNAUTHORIZED
        resp = await h.client.get("/api/cti?token=junk")
        assert resp.status == 401 and (await resp.json())["error"] == "invalid_token"


async def test_a_slow_client_is_closed_with_a_code(tmp_path, monkeypatch):
    monkeypatch.setattr(cti, "QUEUE_SIZE", 3)
    async with harness(tmp_path) as h:
        sup = await connect(h, "sup", "sup-pw", "acme")
        await until_pong(sup)
        event = {"type": "agent.state", "tenant": "acme", "agent": "1001", "at": 0}
        for _ in range(10):  # no await between: nothing drains the client's queue
            h.api.cti.publish(event)
        while True:
            msg = await sup.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == cti.CLOSE_TOO_SLOW
        assert not h.api.cti.clients or all(c.dead for c in h.api.cti.clients)


async def test_an_operator_watches_the_tenant_it_names(tmp_path):
    async with harness(tmp_path) as h:
        token = await h.token("op", "op-pw", "acme")
        ws = await h.client.ws_connect(f"/api/cti?token={token}&tenant=other")
        hello = await ws.receive_json(timeout=5)
        assert (hello["tenant"], hello["role"]) == ("other", "operator")
        stats = [f["queue"] for f in await until_pong(ws) if f["type"] == "queue.stats"]
        assert stats == ["help"]
        await ws.close()
