"""Calls in progress, hang-up, originate and supervision, against fakes of the call layer's
Protocols (switch/web/ports.py); the live node test reads real calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from switch.call.app import Connected
from switch.registrar.guard import Caller

from .support import API_KEY, harness


def fake_call(call_id: int, tenant: str, *, agent: str | None = None, ivr: Any = None) -> Any:
    app = SimpleNamespace(
        did="+15550100",
        variables={"ivr": ivr} if ivr is not None else {},
        connected=Connected(agent, "agent", agent, f"sip:{agent}@x", 5.0, 1.0) if agent else None,
    )
    return SimpleNamespace(
        id=call_id, caller=Caller(tenant, "trunk", "carrier"), app=app, state="answered",
        target=None, dialled="+15550100", started_at=1.0, answered_at=2.0,
    )  # fmt: skip


class FakeCalls:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls
        self.ended: list[tuple[int, str]] = []

    def active(self) -> list[Any]:
        return list(self.calls)

    def parties(self, call: Any) -> tuple[str, str]:
        return "+15551234", "+15550100"

    def end(self, call_id: int, reason: str) -> bool:
        for call in self.calls:
            if call.id == call_id:
                self.calls.remove(call)
                self.ended.append((call_id, reason))
                return True
        return False


@dataclass
class FakeSupervision:
    id: str
    mode: str
    stopped: bool = False

    def set_mode(self, mode: str) -> None:
        self.mode = mode

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeSupervisor:
    asked: list[tuple] = field(default_factory=list)
    made: dict[int, list[FakeSupervision]] = field(default_factory=dict)

    async def supervise(self, call_id, to, mode, *, agent=None, timeout=30):
        if to == ["silent"]:
            raise TimeoutError
        self.asked.append((call_id, to, mode, agent))
        sup = FakeSupervision(f"s{len(self.asked)}", mode)
        self.made.setdefault(call_id, []).append(sup)
        return sup

    def supervisions(self, call_id):
        return [s for s in self.made.get(call_id, []) if not s.stopped]


def kit():
    calls = FakeCalls(
        [
            fake_call(1, "acme", agent="1001", ivr={"keys": ["1"], "variables": {"lang": "en"}}),
            fake_call(2, "acme", agent="1002"),
            fake_call(3, "other", agent="1001"),
        ]
    )
    return calls, FakeSupervisor()


async def test_calls_in_progress_by_tenant_and_role(tmp_path):
    calls, sup = kit()
    async with harness(tmp_path, calls=calls, supervisor=sup) as h:
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.get("/api/calls", headers=headers)
        got = (await resp.json())["calls"]
        assert [c["id"] for c in got] == [1, 2]
        first = got[0]
        assert first == {
            "id": 1, "tenant": "acme", "did": "+15550100", "caller": "+15551234",
            "callee": "1001", "queue": None, "agent": "1001", "state": "answered",
            "since": 1.0, "answered_at": 2.0,
            "ivr": {"keys": ["1"], "variables": {"lang": "en"}},
        }  # fmt: skip
        agent = await h.auth("1002", "bob-pw", "acme")
        resp = await h.client.get("/api/calls", headers=agent)
        assert [c["id"] for c in (await resp.json())["calls"]] == [2]
        other = await h.auth("sup", "other-sup-pw", "other")
        resp = await h.client.get("/api/calls", headers=other)
        assert [c["id"] for c in (await resp.json())["calls"]] == [3]


async def test_a_caller_waiting_in_a_queue_shows_as_queued(tmp_path):
    calls, sup = kit()
    async with harness(tmp_path, calls=calls, supervisor=sup) as h:
        waiting = await h.enqueue("acme", "support", "+15550300")
        calls.calls.append(fake_call(waiting.call_id, "acme"))
        calls.calls[-1].app.connected = None
        headers = await h.auth("sup", "sup-pw", "acme")
        got = {
            c["id"]: c
            for c in (await (await h.client.get("/api/calls", headers=headers)).json())["calls"]
        }
        assert (got[waiting.call_id]["state"], got[waiting.call_id]["queue"]) == (
            "queued",
            "support",
        )


async def test_hang_up_needs_a_supervisor_of_the_tenant(tmp_path):
    calls, sup = kit()
    async with harness(tmp_path, calls=calls, supervisor=sup) as h:
        agent = await h.auth("1001", "alice-pw", "acme")
        assert (await h.client.delete("/api/calls/1", headers=agent)).status == 403
        other = await h.auth("sup", "other-sup-pw", "other")
        assert (await h.client.delete("/api/calls/1", headers=other)).status == 404
        resp = await h.client.delete("/api/calls/1", headers={"X-API-Key": API_KEY})
        assert resp.status == 200 and await resp.json() == {"call_id": 1, "ended": True}
        assert calls.ended == [(1, "hung up by key:crm through the API")]
        assert (await h.client.delete("/api/calls/1", headers={"X-API-Key": API_KEY})).status == 404
        assert (
            await h.client.delete("/api/calls/x1", headers={"X-API-Key": API_KEY})
        ).status == 400


async def test_supervise_listen_then_whisper_then_stop(tmp_path):
    calls, sup = kit()
    async with harness(tmp_path, calls=calls, supervisor=sup) as h:
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.post(
            "/api/calls/1/supervise", json={"mode": "listen", "to": "1003"}, headers=headers
        )
        assert resp.status == 201
        made = await resp.json()
        assert made == {"id": "s1", "call_id": 1, "mode": "listen"}
        assert sup.asked == [(1, ["1003"], "listen", "1001")]
        url = f"/api/calls/1/supervise/{made['id']}"
        resp = await h.client.put(url, json={"mode": "whisper"}, headers=headers)
        assert (await resp.json())["mode"] == "whisper" and sup.made[1][0].mode == "whisper"
        assert (await h.client.delete(url, headers=headers)).status == 204
        assert sup.made[1][0].stopped
        assert (await h.client.delete(url, headers=headers)).status == 404


async def test_supervise_errors(tmp_path):
    calls, sup = kit()
    async with harness(tmp_path, calls=calls, supervisor=sup) as h:
        headers = await h.auth("sup", "sup-pw", "acme")
        cases = [
            ({"mode": "spy", "to": "1003"}, 400, "mode"),
            ({"mode": "listen"}, 422, "to"),  # "sup" has no extension to ring
            ({"mode": "listen", "to": 5}, 400, "to"),
            ({"mode": "listen", "to": []}, 400, "to"),
        ]
        for body, status, field_ in cases:
            resp = await h.client.post("/api/calls/1/supervise", json=body, headers=headers)
            assert (resp.status, (await resp.json()).get("field")) == (status, field_)
        resp = await h.client.post(
            "/api/calls/3/supervise", json={"mode": "listen", "to": "1003"}, headers=headers
        )
        assert resp.status == 404  # another tenant's call
        agent = await h.auth("1001", "alice-pw", "acme")
        resp = await h.client.post(
            "/api/calls/1/supervise", json={"mode": "listen", "to": "1003"}, headers=agent
        )
        assert resp.status == 403
        resp = await h.client.post(
            "/api/calls/1/supervise", json={"mode": "listen", "to": "silent"}, headers=headers
        )
        body = await resp.json()
        assert (resp.status, body["error"]) == (409, "no_answer") and "silent" in body["message"]
        assert sup.asked == []


async def test_without_the_call_layer_side_the_endpoints_say_501(tmp_path):
    async with harness(tmp_path) as h:
        headers = await h.auth("sup", "sup-pw", "acme")
        resp = await h.client.get("/api/calls", headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (501, "not_available")
        resp = await h.client.post(
            "/api/calls", json={"first": "1001", "second": "+15550199"}, headers=headers
        )
        assert resp.status == 501


async def test_originate_validates_and_returns_202_with_the_call_id(tmp_path):
    asked = []

    async def originate(tenant, first, second, *, caller_id):
        if second == "+999":
            raise ValueError("+999 is not a number tenant acme may dial")
        asked.append((tenant, first, second, caller_id))
        return 77

    async with harness(tmp_path, originate=originate) as h:
        headers = await h.auth("1001", "alice-pw", "acme")
        resp = await h.client.post(
            "/api/calls", json={"first": "1001", "second": "+15550199"}, headers=headers
        )
        assert (resp.status, await resp.json()) == (202, {"call_id": 77})
        assert asked == [("acme", "1001", "+15550199", None)]
        resp = await h.client.post(
            "/api/calls", json={"first": "1002", "second": "+15550199"}, headers=headers
        )
        assert (resp.status, (await resp.json())["field"]) == (403, "first")
        resp = await h.client.post(
            "/api/calls", json={"first": "1001", "second": "+999"}, headers=headers
        )
        assert resp.status == 422 and "may dial" in (await resp.json())["message"]
        resp = await h.client.post("/api/calls", json={"first": "1001"}, headers=headers)
        assert (resp.status, (await resp.json())["field"]) == (400, "second")


async def test_the_wrap_up_form_goes_to_the_calls_cdr(tmp_path):
    from switch.store.records.wrapups import Wrapups

    forms: list[tuple] = []

    class Sink:
        def set_disposition(self, cdr_id, disposition, notes="", wrapup_time=None):
            forms.append((cdr_id, disposition, notes))
            return "r"

    wrapups = Wrapups(Sink())
    wrapups.ended(5, {"id": "n:5:1", "tenant": "acme", "agent": "1001"})
    wrapups.ended(6, {"id": "n:6:1", "tenant": "other", "agent": "1001"})
    async with harness(tmp_path, wrapups=wrapups) as h:
        alice = await h.auth("1001", "alice-pw", "acme")
        bob = await h.auth("1002", "bob-pw", "acme")
        sup = await h.auth("sup", "sup-pw", "acme")
        view = await (await h.client.get("/api/agents/1001", headers=alice)).json()
        assert "resolved" in view["dispositions"]
        form = {"disposition": "resolved", "notes": "called back"}
        resp = await h.client.put("/api/calls/5/disposition", json=form, headers=alice)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"call_id": 5, "cdr_id": "n:5:1", "disposition": "resolved"}
        assert forms == [("n:5:1", "resolved", "called back")]
        # Another agent's call, another tenant's call, a code the tenant does not have.
        resp = await h.client.put("/api/calls/5/disposition", json=form, headers=bob)
        assert resp.status == 403 and "not agent 1002's call" in (await resp.json())["message"]
        resp = await h.client.put("/api/calls/6/disposition", json=form, headers=sup)
        assert resp.status == 404
        bad = {"disposition": "maybe"}
        resp = await h.client.put("/api/calls/5/disposition", json=bad, headers=sup)
        assert resp.status == 422 and (await resp.json())["field"] == "disposition"
        resp = await h.client.put("/api/calls/5/disposition", json={"disposition": "sale"},
                                  headers=sup)  # fmt: skip
        assert resp.status == 200 and forms[-1] == ("n:5:1", "sale", "")
