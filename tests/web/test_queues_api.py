"""GET /api/queues[/{name}/stats|/callers] and moving a waiting caller."""

from __future__ import annotations

from .support import harness


async def test_stats_count_waiting_callers_agents_by_state_and_the_longest_wait(tmp_path):
    async with harness(tmp_path) as h:
        await h.register("acme", "1003")  # sales only
        first = await h.enqueue("acme", "support", "+15550001")
        await h.enqueue("acme", "support", "+15550002")
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.get("/api/queues/support/stats", headers=headers)
        stats = await resp.json()
        assert resp.status == 200
        assert stats["queue"] == "support" and stats["waiting"] == 2
        assert stats["agents"] == {"not-ready": 2}  # 1001 and 1002, no device
        assert stats["available"] == 0 and stats["longest_wait"] >= 0
        resp = await h.client.get("/api/queues/sales/stats", headers=headers)
        stats = await resp.json()
        assert stats["agents"] == {"available": 1, "not-ready": 1} and stats["ewt"] == 0.0
        resp = await h.client.get("/api/queues/support/callers", headers=headers)
        callers = (await resp.json())["callers"]
        assert [(c["call_id"], c["number"], c["position"]) for c in callers] == [
            (first.call_id, "+15550001", 1),
            (callers[1]["call_id"], "+15550002", 2),
        ]
        resp = await h.client.get("/api/queues", headers=headers)
        assert [q["queue"] for q in (await resp.json())["queues"]] == ["support", "sales"]


async def test_an_agent_sees_the_queues_they_are_in_and_no_other(tmp_path):
    async with harness(tmp_path) as h:
        headers = await h.auth("1001", "alice-pw", "acme")
        resp = await h.client.get("/api/queues", headers=headers)
        assert [q["queue"] for q in (await resp.json())["queues"]] == ["support"]
        assert (await h.client.get("/api/queues/support/stats", headers=headers)).status == 200
        resp = await h.client.get("/api/queues/sales/stats", headers=headers)
        assert resp.status == 403


async def test_queues_of_another_tenant_do_not_exist(tmp_path):
    async with harness(tmp_path) as h:
        headers = await h.auth("sup", "other-sup-pw", "other")
        resp = await h.client.get("/api/queues/support/stats", headers=headers)
        assert resp.status == 404
        assert (await resp.json())["message"] == "no queue 'support' in tenant 'other'"
        resp = await h.client.get("/api/queues", headers=headers)
        assert [q["queue"] for q in (await resp.json())["queues"]] == ["help"]


async def test_supervisor_moves_a_caller_to_another_queue_and_the_front(tmp_path):
    async with harness(tmp_path) as h:
        in_sales = await h.enqueue("acme", "sales", "+15550010")
        mover = await h.enqueue("acme", "support", "+15550011")
        headers = await h.auth("sup", "sup-pw", "acme")
        url = f"/api/queues/support/callers/{mover.call_id}/move"
        resp = await h.client.post(url, json={"queue": "sales", "front": True}, headers=headers)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"call_id": mover.call_id, "queue": "sales", "position": 1}
        waiting = [w.call_id for w in h.service.waiting("acme", "sales")]
        assert waiting == [mover.call_id, in_sales.call_id]
        assert h.service.callers[("acme", str(mover.call_id))].queue == "sales"


async def test_move_needs_a_supervisor_and_says_what_is_wrong(tmp_path):
    async with harness(tmp_path) as h:
        caller = await h.enqueue("acme", "support", "+15550020")
        url = f"/api/queues/support/callers/{caller.call_id}/move"
        agent = await h.auth("1001", "alice-pw", "acme")
        assert (await h.client.post(url, json={"front": True}, headers=agent)).status == 403
        sup = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.post(url, json={"queue": "nowhere"}, headers=sup)
        assert (resp.status, (await resp.json())["field"]) == (422, "queue")
        resp = await h.client.post(url, json={}, headers=sup)
        assert resp.status == 422 and "front: true" in (await resp.json())["message"]
        resp = await h.client.post(url, json={"front": "yes"}, headers=sup)
        assert (resp.status, (await resp.json())["field"]) == (400, "front")
        resp = await h.client.post(
            "/api/queues/sales/callers/123456/move", json={"front": True}, headers=sup
        )
        assert resp.status == 404
        resp = await h.client.post(url.replace(str(caller.call_id), "abc"), json={},
                                   headers=sup)  # fmt: skip
        assert resp.status == 400
        # Another tenant's supervisor cannot move acme's caller.
        other = await h.auth("sup", "other-sup-pw", "other")
        resp = await h.client.post(url, json={"front": True}, headers=other)
        assert resp.status == 404
        assert [w.call_id for w in h.service.waiting("acme", "support")] == [caller.call_id]
