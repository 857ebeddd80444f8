"""The ACD service without a node: presence from the store's events, busy agents,
feature codes (switch.apps.acd_presence, acd_busy, acd_codes)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from switch.apps.acd_codes import carry_out
from switch.apps.acd_service import AcdService
from switch.call.agent_calls import AgentOnCall, agents_of
from switch.config import load_demo_config
from switch.store.location import Binding, MemoryLocationStore

pytestmark = pytest.mark.timeout(30)


def phone(ext: str, contact: str = "", conn_id: int | None = None) -> Binding:
    now = time.time()
    return Binding(
        f"demo/{ext}", contact or f"sip:{ext}@192.0.2.1", now + 600, "c", 1,
        conn_id=conn_id, node="n1", registered_at=now,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[AcdService]:
    """The demo's ACD service on a memory store, 1001 registered before its start."""
    store = MemoryLocationStore()
    await store.put(phone("1001"))
    acd = AcdService(load_demo_config(), store)
    await acd.start()
    try:
        yield acd
    finally:
        await acd.stop()


def status(service: AcdService, ext: str) -> tuple[str, str]:
    record = service.acds["demo"].agent(ext)
    return record.status, record.reason


async def test_presence_follows_the_stores_events_without_polling() -> None:
    async with running() as service:
        store = service.locations
        assert status(service, "1001") == ("available", "")
        assert status(service, "1002") == ("not-ready", "disconnected")
        await store.put(phone("1002", "sip:ws@x.invalid;transport=ws", conn_id=9))
        assert status(service, "1002") == ("available", "")  # told by the write itself
        await store.remove_flow("n1", 9)
        assert status(service, "1002") == ("not-ready", "disconnected")
        # Not agents of a queue: nobody is told.
        told = service.presence.changes
        await store.put(Binding("demo/2000", "sip:x@192.0.2.9", time.time() + 60, "c", 1))
        assert service.presence.changes == told


async def test_a_call_outside_the_acd_makes_the_agent_busy_until_it_ends() -> None:
    async with running() as service:
        service.agent_call(AgentOnCall("demo", "1001", 41, True))
        record = service.acds["demo"].agent("1001")
        assert (record.status, record.call_queue) == ("on-call", "")
        service.agent_call(AgentOnCall("demo", "1001", 42, True))  # a second line
        service.agent_call(AgentOnCall("demo", "1001", 41, False))
        assert status(service, "1001")[0] == "on-call"
        service.agent_call(AgentOnCall("demo", "1001", 42, False))
        assert status(service, "1001") == ("available", "")  # no wrap-up after a direct call


async def test_an_agent_not_ready_on_a_call_is_busy_when_made_ready() -> None:
    async with running() as service:
        service.set_not_ready("demo", "1001", "break")
        service.agent_call(AgentOnCall("demo", "1001", 7, True))
        assert status(service, "1001") == ("not-ready", "break")
        service.set_ready("demo", "1001")
        assert status(service, "1001")[0] == "on-call"  # still talking: not offered anyone
        service.agent_call(AgentOnCall("demo", "1001", 7, False))
        assert status(service, "1001") == ("available", "")


async def test_an_offer_ringing_an_agent_who_answers_another_call_is_pulled_back() -> None:
    async with running() as service:
        acd = service.acds["demo"]
        acd.join("c1", "support", time.time())  # offered to 1001, the only one available
        assert status(service, "1001")[0] == "reserved"
        service.agent_call(AgentOnCall("demo", "1001", 5, True))
        assert status(service, "1001")[0] == "on-call"
        assert acd.waiting("support") == ["c1"] and acd.entry("c1").reservation == ""


async def test_the_acds_own_calls_and_strangers_are_not_busy() -> None:
    async with running() as service:
        held = SimpleNamespace(call=SimpleNamespace(call_id=8))
        service.callers[("demo", "8")] = held  # type: ignore[assignment]  # a caller it holds
        service.agent_call(AgentOnCall("demo", "1001", 8, True))
        # A callback's customer, held under their first call's key but on a new call.
        back = SimpleNamespace(call=SimpleNamespace(call_id=12))
        service.callers[("demo", "7")] = back  # type: ignore[assignment]
        service.agent_call(AgentOnCall("demo", "1001", 12, True))
        service.callbacks.calls.append(13)  # an agent-first callback's call to the agent
        service.agent_call(AgentOnCall("demo", "1001", 13, True))
        service.agent_call(AgentOnCall("demo", "9999", 9, True))  # no such agent
        service.agent_call(AgentOnCall("other", "1001", 10, True))  # no such tenant
        assert status(service, "1001") == ("available", "")
        assert service.busy_calls.calls == {}


def test_agents_of_a_call_are_its_agent_caller_and_callee_once_bridged() -> None:
    def call(state: str, caller: str, target: str | None, ended: float | None = None):
        return SimpleNamespace(
            state=state,
            caller=SimpleNamespace(kind=caller, name="1001", tenant="demo"),
            target=None if target is None else SimpleNamespace(kind=target, name="1002"),
            ended_at=ended,
        )

    assert agents_of(call("answered", "agent", "agent")) == {"1001", "1002"}
    assert agents_of(call("answered", "trunk", "agent")) == {"1002"}
    assert agents_of(call("answered", "agent", "trunk")) == {"1001"}
    assert agents_of(call("calling", "agent", "agent")) == set()  # ringing is not talking
    assert agents_of(call("answered", "agent", None)) == set()  # an application alone
    assert agents_of(call("answered", "agent", "agent", ended=1.0)) == set()
    assert agents_of(call("answered", "agent", "agent"), frozenset({"1001"})) == {"1002"}


async def test_feature_codes_change_the_state_and_say_so() -> None:
    async with running() as service:
        said = carry_out(service, "demo", "1001", "*643")
        assert said.ok and said.text == "You are not ready: training."
        assert status(service, "1001") == ("not-ready", "training")
        assert carry_out(service, "demo", "1001", "*64").text == "You are not ready: break."
        assert not carry_out(service, "demo", "1001", "*640").ok
        assert carry_out(service, "demo", "1001", "*63").text == "You are available."
        assert carry_out(service, "demo", "1001", "*61").text == "You are already logged in."
        assert carry_out(service, "demo", "1001", "*62").text == "You are logged out."
        assert status(service, "1001")[0] == "logged-out"
        assert carry_out(service, "demo", "1001", "*63") == carry_out(
            service, "demo", "1001", "*65"
        )
        assert carry_out(service, "demo", "1001", "*63").text == "You are not logged in."
        assert not carry_out(service, "demo", "9999", "*61").ok  # not an agent


async def test_the_wrapup_code_extends_it_by_the_configured_seconds() -> None:
    async with running() as service:
        acd = service.acds["demo"]
        now = time.time()
        acd.join("c1", "support", now)
        acd.answered("c1", "1001", now)
        acd.call_ended("1001", now + 5)
        before = acd.agent("1001").wrapup_until
        said = carry_out(service, "demo", "1001", "*65")
        assert said.ok and said.text == "Wrap-up extended by 30 seconds."
        assert acd.agent("1001").wrapup_until == before + 30
