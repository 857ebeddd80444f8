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


async def test_a_supervisor_whispers_then_barges_through_the_api(tmp_path):
    """POST /api/calls/{id}/supervise rings the supervisor's phone and mixes it in;
    PUT changes the mode live; DELETE hangs the supervisor up and the call goes on."""
    from tests.integration.test_supervision import (
        AGENT_HZ,
        CALLER_HZ,
        SUPERVISOR_HZ,
        Bridged,
        _media_address,
        _reply,
        _sdp,
        _talk,
        make_response,
        rtp_socket,
    )  # fmt: skip

    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as agent,
        agent_phone(node, "1004") as sup_phone,  # in queue sales: not offered this caller
        rtp_socket() as agent_media,
        rtp_socket() as sup_media,
    ):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with queue_call(node) as (trunk, caller_media, answered, node_a):
            invite = await _next(agent, "INVITE")
            _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
            await _next(agent, "ACK")
            await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
            (call,) = node.calls._by_invite.values()
            b = Bridged(
                node, call.id, trunk, caller_media, answered, agent, agent_media, sup_phone,
                sup_media, sup_ext="1004",
            )  # fmt: skip
            b.talkers += [
                asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 0x1111)),
                asyncio.ensure_future(_talk(agent_media, _media_address(invite.body), AGENT_HZ,
                                            0x2222)),
            ]  # fmt: skip
            try:
                async with aiohttp.ClientSession(base_url=node.http_url) as http:
                    token = await _login(http, "supervisor", "supervisor")
                    headers = {"Authorization": f"Bearer {token}"}
                    agent_token = await _login(http, "1001", "agent1001")
                    url = f"/api/calls/{call.id}/supervise"
                    body = {"mode": "whisper", "to": "1004"}
                    denied = await http.post(
                        url, json=body, headers={"Authorization": f"Bearer {agent_token}"}
                    )
                    assert denied.status == 403, await denied.text()
                    started = asyncio.ensure_future(http.post(url, json=body, headers=headers))
                    await b.answer_supervisor()
                    resp = await asyncio.wait_for(started, 10)
                    assert resp.status == 201, await resp.text()
                    sid = (await resp.json())["id"]
                    heard = await b.window()
                    assert heard["agent"] == {CALLER_HZ, SUPERVISOR_HZ}
                    assert heard["caller"] == {AGENT_HZ}

                    resp = await http.put(f"{url}/{sid}", json={"mode": "barge"}, headers=headers)
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["mode"] == "barge"
                    heard = await b.window()
                    assert heard["caller"] == {AGENT_HZ, SUPERVISOR_HZ}

                    resp = await http.delete(f"{url}/{sid}", headers=headers)
                    assert resp.status in (200, 204), await resp.text()
                    bye = await _next(sup_phone, "BYE")
                    sup_phone.send(bytes(make_response(bye, 200)))
                    b.sup_invite = None  # (the supervisor hears nothing more)
                    heard = await b.window()
                    assert heard["caller"] == {AGENT_HZ} and heard["agent"] == {CALLER_HZ}
                    assert node.calls.supervisions(call.id) == []
            finally:
                b.stop_talking()
