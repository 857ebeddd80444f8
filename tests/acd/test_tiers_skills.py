"""Tiers widening after waits, skills matched on level, requirements relaxed step by step."""

from __future__ import annotations

from switch.apps.acd import QueueRules
from switch.apps.acd.rules import NEVER, need, required, signature

from .support import make, offers, serve


def test_tier_two_is_offered_a_caller_only_after_its_wait() -> None:
    agents = {"senior": {"queues": {"q": 2}}, "junior": {"queues": {"q": 1}}}
    acd = make(QueueRules("q", tier_waits=(30.0,)), agents)
    acd.join("hold", "q", 0)  # takes the junior
    assert acd.agent("junior").status == "reserved"
    assert offers(acd.join("c1", "q", 10)) == []
    assert acd.next_deadline() == 20.0  # the junior's ring timeout first
    serve(acd, "junior", 5)
    assert offers(acd.handle_timer(39.9)) == []
    commands = acd.handle_timer(40.0)  # 30 s after c1 joined, tier 2 opens
    assert offers(commands) == [("c1", ("senior",))]


def test_tiers_widen_one_after_another() -> None:
    agents = {"t3": {"queues": {"q": 3}}, "t2": {"queues": {"q": 2}}}
    acd = make(QueueRules("q", tier_waits=(20.0, 50.0)), agents)
    acd.set_not_ready("t2", "break", 0)
    acd.join("c1", "q", 0)
    assert offers(acd.handle_timer(49)) == []
    assert offers(acd.handle_timer(50)) == [("c1", ("t3",))]


def test_a_tier_past_the_list_opens_with_the_last_wait() -> None:
    rules = QueueRules("q", tier_waits=(10.0, 40.0))
    assert [rules.tier_wait(t) for t in (1, 2, 3, 4, 9)] == [0, 10, 40, 40, 40]
    assert QueueRules("q").tier_wait(5) == 0  # no waits: tiers only order agents


def test_skills_are_matched_on_level() -> None:
    agents = {
        "weak": {"skills": {"spanish": 3}},
        "none": {"skills": {"english": 9}},
        "strong": {"skills": {"spanish": 8, "english": 2}},
    }
    acd = make(QueueRules("q"), agents)
    assert offers(acd.join("c1", "q", 1, skills={"spanish": 5})) == [("c1", ("strong",))]
    # Needs both: nobody has english 5 and spanish 5.
    assert offers(acd.join("c2", "q", 2, skills={"spanish": 5, "english": 5})) == []
    assert offers(acd.join("c3", "q", 3, skills={"spanish": 2})) == [("c3", ("weak",))]


def test_queue_skills_and_ivr_skills_combine_at_the_higher_level() -> None:
    assert signature({"english": 5, "billing": 3}, {"english": 7}) == (
        ("billing", 3),
        ("english", 7),
    )


def test_requirements_relax_step_by_step() -> None:
    rules = QueueRules("q", relax=((30.0, 2), (60.0, 5)))
    sig = (("english", 7), ("spanish", 4))
    assert required(sig, rules, 0) == sig
    assert required(sig, rules, 30) == (("english", 5), ("spanish", 2))
    # Lowered by 5: spanish 4 - 5 <= 0 is no longer required.
    assert required(sig, rules, 60) == (("english", 2),)


def test_relaxation_opens_an_agent_when_its_step_comes() -> None:
    agents = {"a": {"skills": {"french": 4}}}
    acd = make(QueueRules("q", relax=((45.0, 3), (90.0, 10))), agents)
    acd.join("c1", "q", 0, skills={"french": 8})  # 8 -> 5 at 45 s -> none at 90 s
    acd.join("c2", "q", 1, skills={"german": 5})  # 5 -> 2 at 46 s -> none at 91 s
    assert offers(acd.handle_timer(44)) == []
    assert offers(acd.handle_timer(89)) == []
    # At 90 s c1 needs nothing; c2 (joined 1 s later) opens at 91 s.
    assert offers(acd.handle_timer(90)) == [("c1", ("a",))]
    serve(acd, "a", 92)
    acd.call_ended("a", 100)
    assert offers(acd.handle_timer(110)) == [("c2", ("a",))]


def test_need_is_the_wait_after_which_an_agent_may_take_a_caller() -> None:
    from switch.apps.acd.model import AgentRecord

    rules = QueueRules("q", tier_waits=(20.0,), relax=((40.0, 2),))
    sig = (("english", 6),)
    agent = AgentRecord("a", queues={"q": 1}, skills={"english": 6})
    assert need(agent, rules, sig) == 0
    assert need(AgentRecord("a", queues={"q": 2}, skills={"english": 6}), rules, sig) == 20
    assert need(AgentRecord("a", queues={"q": 1}, skills={"english": 4}), rules, sig) == 40
    assert need(AgentRecord("a", queues={"q": 1}, skills={"english": 3}), rules, sig) == NEVER
    assert need(AgentRecord("a", queues={"other": 1}), rules, ()) == NEVER
