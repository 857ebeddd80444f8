"""Which agents a call occupies, told as they join and leave (switch.call.agent_calls)."""

from __future__ import annotations

from types import SimpleNamespace

from switch.call.agent_calls import AgentCalls, AgentOnCall


class Calls(AgentCalls):
    def __init__(self, listener=None) -> None:
        self.on_agent_call = listener
        self._agents_on = {}
        self._agents_gone = {}


def call(caller: str = "agent", target: str | None = "agent", state: str = "answered"):
    return SimpleNamespace(
        id=7,
        state=state,
        caller=SimpleNamespace(kind=caller, name="1001", tenant="demo"),
        target=None if target is None else SimpleNamespace(kind=target, name="1002"),
        ended_at=None,
    )


def test_agents_are_told_on_answer_transfer_and_end() -> None:
    told: list[AgentOnCall] = []
    calls, c = Calls(told.append), call()
    calls._agents_update(c)
    assert told == [AgentOnCall("demo", "1001", 7, True), AgentOnCall("demo", "1002", 7, True)]
    calls._agents_update(c)  # nothing changed: nothing told
    assert len(told) == 2
    # 1001 (the caller) transfers their side away, blind: free.
    calls._agents_update(c, left="1001")
    assert told[-1] == AgentOnCall("demo", "1001", 7, False)
    # 1002 (the callee) transfers the caller to a number: free too.
    c.target = SimpleNamespace(kind="trunk", name="carrier")
    calls._agents_update(c)
    assert told[-1] == AgentOnCall("demo", "1002", 7, False)
    c.ended_at = 1.0
    calls._agents_update(c)
    assert len(told) == 4 and calls._agents_on == {} and calls._agents_gone == {}


def test_ringing_and_application_calls_are_not_told() -> None:
    told: list[AgentOnCall] = []
    calls = Calls(told.append)
    calls._agents_update(call(state="calling"))
    calls._agents_update(call(target=None))  # an agent calling the echo test
    assert told == []


def test_without_a_listener_nothing_is_kept_and_a_failing_one_breaks_nothing() -> None:
    calls = Calls()
    calls._agents_update(call())
    assert calls._agents_on == {}

    def broken(event: AgentOnCall) -> None:
        raise RuntimeError("bug")

    failing = Calls(broken)
    failing._agents_update(call())  # logged, not raised
    assert failing._agents_on == {7: frozenset({"1001", "1002"})}
