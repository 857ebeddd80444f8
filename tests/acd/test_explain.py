"""Every decision explains itself: the callers and agents considered, and why this pair."""

from __future__ import annotations

from switch.apps.acd import QueueRules
from switch.apps.acd.events import Decided

from .support import make, of_type, serve


def decisions(acd) -> list:
    return [event.explanation for event in of_type(acd.take_events(), Decided)]


def test_an_agent_freed_sees_why_each_caller_ahead_was_passed_over() -> None:
    queues = [QueueRules("sales", wrapup=0, tier_waits=(60.0,)), QueueRules("support", wrapup=0)]
    agents = {"a": {"queues": {"sales": 2, "support": 1}, "skills": {"english": 5}}}
    acd = make(queues, agents)
    acd.join("hold", "support", 0)
    serve(acd, "a", 1)
    acd.join("s-early", "sales", 2)  # tier 2 for a: opens at 62
    acd.join("needs-french", "support", 3, skills={"french": 4})
    acd.join("chosen", "support", 4, skills={"english": 5})
    acd.join("later", "support", 5)
    acd.take_events()
    acd.call_ended("a", 20)
    [why] = decisions(acd)
    assert (why.caller, why.queue, why.agents) == ("chosen", "support", ("a",))
    assert why.trigger == "agent a call ended; agent a available"
    verdicts = {look.caller: look.verdict for look in why.callers}
    assert verdicts == {
        "chosen": "chosen",
        "s-early": "not offered to a: tier 2 opens at 60 s of waiting (waited 18 s)",
        "needs-french": "not offered to a: needs french 4 (has 0)",
        "later": "ranks behind",
    }
    assert [look.agent for look in why.agents_considered] == ["a"]
    text = why.text()
    assert "caller chosen (support) -> a" in text
    assert "then longest-idle" in text
    assert "agent a (tier 1, idle 0 s): chosen" in text


def test_a_caller_joining_sees_the_agents_in_strategy_order() -> None:
    agents = {"x": {}, "y": {}, "z": {"skills": {"english": 1}}}
    acd = make(QueueRules("q", strategy="linear"), agents)
    acd.join("c1", "q", 10, skills={"english": 1})
    [why] = decisions(acd)
    assert why.agents == ("z",)
    looks = [(look.agent, look.verdict) for look in why.agents_considered]
    assert looks[0] == ("z", "chosen")
    assert sorted(looks[1:]) == [
        ("x", "may not take this caller: needs english 1 (has 0)"),
        ("y", "may not take this caller: needs english 1 (has 0)"),
    ]


def test_explanations_list_agents_passed_over_by_the_strategy_and_tiers() -> None:
    agents = {"t2": {"queues": {"q": 2}}, "first": {}, "second": {}}
    acd = make(QueueRules("q", strategy="linear", tier_waits=(0.0,)), agents)
    acd.join("c1", "q", 10)
    [why] = decisions(acd)
    looks = [(look.agent, look.verdict) for look in why.agents_considered]
    assert looks == [
        ("first", "chosen"),
        ("second", "after the chosen one in linear order"),
        ("t2", "a lower tier (1) had an agent"),
    ]


def test_long_queues_are_summarised() -> None:
    acd = make(QueueRules("q", wrapup=0), {"a": {"skills": {"english": 2}}})
    acd.join("hold", "q", 0)
    serve(acd, "a", 0.5)
    for n in range(40):
        acd.join(f"f{n}", "q", 1 + n, skills={"french": 3})
    acd.join("mine", "q", 100)
    acd.take_events()
    acd.call_ended("a", 200)
    [why] = decisions(acd)
    assert why.caller == "mine"
    assert len(why.callers) == 17  # the chosen one and the first 16 ahead
    assert why.more_ahead == 24
    assert "and 24 more callers ranked ahead" in why.text()
    assert repr(why).startswith("<Explanation ")
