"""GET /api/agents[/{id}] and PUT /api/agents/{id}/state: roles and tenants."""

from __future__ import annotations

from .support import API_KEY, harness


async def test_supervisor_sees_their_tenants_agents_only(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.get("/api/agents", headers=headers)
        agents = {a["id"]: a for a in (await resp.json())["agents"]}
        assert sorted(agents) == ["1001", "1002", "1003"]
        assert agents["1001"]["status"] == "available"
        assert agents["1002"]["status"] == "not-ready"
        assert agents["1002"]["reason"] == "disconnected"
        assert agents["1002"]["queues"] == {"support": 1, "sales": 1}
        assert agents["1001"]["devices"] == ["sip:1001@127.0.0.1:5999"]
        other = await h.auth("sup", "other-sup-pw", "other")
        resp = await h.client.get("/api/agents", headers=other)
        assert [a["id"] for a in (await resp.json())["agents"]] == ["1001", "2001"]
        assert {a["tenant"] for a in (await resp.json())["agents"]} == {"other"}
        # Agent 2001 of "other" does not exist for acme's supervisor.
        resp = await h.client.get("/api/agents/2001", headers=headers)
        assert resp.status == 404 and "tenant 'acme'" in (await resp.json())["message"]


async def test_an_agent_sees_only_themselves(tmp_path):
    async with harness(tmp_path) as h:
        headers = await h.auth("1001", "alice-pw", "acme")
        assert (await h.client.get("/api/agents/1001", headers=headers)).status == 200
        resp = await h.client.get("/api/agents/1002", headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (403, "forbidden")


async def test_agent_sets_their_own_state_and_the_acd_has_it(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        headers = await h.auth("1001", "alice-pw", "acme")
        resp = await h.client.put(
            "/api/agents/1001/state", json={"state": "not-ready", "reason": "lunch"},
            headers=headers,
        )  # fmt: skip
        body = await resp.json()
        assert resp.status == 200 and (body["status"], body["reason"]) == ("not-ready", "lunch")
        assert h.service.snapshot("acme")["agents"]["1001"]["status"] == "not-ready"
        resp = await h.client.put(
            "/api/agents/1001/state", json={"state": "available"}, headers=headers
        )
        assert (await resp.json())["status"] == "available"
        assert h.service.snapshot("acme")["agents"]["1001"]["status"] == "available"
        resp = await h.client.put(
            "/api/agents/1001/state", json={"state": "logged-out"}, headers=headers
        )
        assert (await resp.json())["status"] == "logged-out"
        resp = await h.client.put(
            "/api/agents/1001/state", json={"state": "available"}, headers=headers
        )
        assert (await resp.json())["status"] == "available"  # logged in again, device up


async def test_agent_cannot_change_another_agent(tmp_path):
    async with harness(tmp_path) as h:
        headers = await h.auth("1001", "alice-pw", "acme")
        resp = await h.client.put(
            "/api/agents/1002/state", json={"state": "logged-out"}, headers=headers
        )
        assert resp.status == 403
        assert h.service.snapshot("acme")["agents"]["1002"]["status"] != "logged-out"


async def test_supervisor_and_api_key_force_any_agent_of_their_tenant(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1002")
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.put(
            "/api/agents/1002/state", json={"state": "not-ready", "reason": "break"},
            headers=headers,
        )  # fmt: skip
        assert resp.status == 200
        assert h.service.snapshot("acme")["agents"]["1002"]["reason"] == "break"
        resp = await h.client.put(
            "/api/agents/1002/state", json={"state": "logged-out"}, headers={"X-API-Key": API_KEY}
        )
        assert resp.status == 200
        assert h.service.snapshot("acme")["agents"]["1002"]["status"] == "logged-out"
        # The other tenant's supervisor cannot reach acme's agents (2001 is theirs only).
        other = await h.auth("sup", "other-sup-pw", "other")
        resp = await h.client.put(
            "/api/agents/1003/state", json={"state": "logged-out"}, headers=other
        )
        assert resp.status == 404
        assert h.service.snapshot("acme")["agents"]["1003"]["status"] != "logged-out"


async def test_state_errors_name_the_field_and_what_is_allowed(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1001")
        headers = await h.auth("sup", "sup-pw", "acme")
        url = "/api/agents/1001/state"
        cases = [
            ({"state": "asleep"}, 400, "state", "not one of: available, not-ready"),
            ({"state": "not-ready"}, 422, "reason", "required for not-ready: one of break, lunch"),
            ({"state": "not-ready", "reason": "training"}, 422, "reason", "not one of this"),
            ({"state": "not-ready", "reason": "disconnected"}, 422, "reason", "not one of this"),
            ({"state": "available", "reason": "break"}, 422, "reason", "only for the not-ready"),
            ({}, 400, "state", "is required"),
        ]
        for body, status, field, words in cases:
            resp = await h.client.put(url, json=body, headers=headers)
            got = await resp.json()
            assert (resp.status, got.get("field")) == (status, field), got
            assert words in got["message"], got
        # A transition the state machine refuses: 409 with the ACD's own words.
        await h.client.put(url, json={"state": "logged-out"}, headers=headers)
        resp = await h.client.put(url, json={"state": "logged-out"}, headers=headers)
        got = await resp.json()
        assert resp.status == 409 and "cannot logout" in got["message"]
