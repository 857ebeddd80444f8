"""The REST API and CTI socket on a live node: real logins, the real ACD, real calls."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.test_acd_calls import _status, _until, queue_call, queue_node
from tests.integration.test_app_connect import _next, agent_phone


async def _login(http: aiohttp.ClientSession, username: str, password: str) -> str:
    resp = await http.post("/api/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["token"]


async def test_login_then_a_state_change_reaches_the_acd_and_the_cti_socket(tmp_path):
    async with queue_node(tmp_path) as node, agent_phone(node, "1001"):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with aiohttp.ClientSession(base_url=node.http_url) as http:
            agent = await _login(http, "1001", "agent1001")
            supervisor = await _login(http, "supervisor", "supervisor")
            ws = await http.ws_connect(f"/api/cti?token={supervisor}")
            hello = await ws.receive_json(timeout=5)
            assert (hello["type"], hello["role"], hello["tenant"]) == (
                "hello", "supervisor", "demo",
            )  # fmt: skip
            resp = await http.put(
                "/api/agents/1001/state",
                json={"state": "not-ready", "reason": "break"},
                headers={"Authorization": f"Bearer {agent}"},
            )
            assert resp.status == 200, await resp.text()
            assert _status(node, "1001") == ("not-ready", "break")
            while True:
                frame = await ws.receive_json(timeout=5)
                if frame["type"] == "agent.state" and frame["agent"] == "1001":
                    break
            assert (frame["old"], frame["status"], frame["reason"]) == (
                "available", "not-ready", "break",
            )  # fmt: skip
            await ws.close()


async def test_a_queued_call_is_listed_and_a_supervisor_hangs_it_up(tmp_path):
    async with queue_node(tmp_path) as node, queue_call(node) as (trunk, _media, _ok, _addr):
        await _until(lambda: node.queues.waiting("demo"), what="the caller waits")
        async with aiohttp.ClientSession(base_url=node.http_url) as http:
            headers = {"Authorization": f"Bearer {await _login(http, 'supervisor', 'supervisor')}"}
            resp = await http.get("/api/calls", headers=headers)
            calls = (await resp.json())["calls"]
            assert len(calls) == 1, calls
            call = calls[0]
            assert (call["tenant"], call["state"], call["queue"]) == ("demo", "queued", "support")
            assert call["did"] and call["caller"]
            resp = await http.get("/api/queues/support/stats", headers=headers)
            assert (await resp.json())["waiting"] == 1
            ws = await http.ws_connect("/api/cti", headers=headers)
            await ws.send_json({"type": "auth", "token": headers["Authorization"][7:]})
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            agent = {"Authorization": f"Bearer {await _login(http, '1001', 'agent1001')}"}
            assert (await http.delete(f"/api/calls/{call['id']}", headers=agent)).status == 403
            resp = await http.delete(f"/api/calls/{call['id']}", headers=headers)
            assert resp.status == 200, await resp.text()
            bye = await _next(trunk, "BYE")
            assert bye.method == "BYE"
            await _until(lambda: not node.queues.waiting("demo"), what="the caller gone")
            resp = await http.get("/api/calls", headers=headers)
            for _ in range(20):
                if not (await resp.json())["calls"]:
                    break
                await asyncio.sleep(0.05)
                resp = await http.get("/api/calls", headers=headers)
            assert (await resp.json())["calls"] == []
            while True:
                frame = await ws.receive_json(timeout=5)
                if frame["type"] == "call.ended":
                    break
            assert (frame["call_id"], frame["tenant"], frame["by"]) == (call["id"], "demo", "node")
            assert "supervisor" in frame["reason"]
            await ws.close()
