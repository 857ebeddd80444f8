"""Estimated wait: position, the agents staffed for the caller's skills, recent handle times."""

from __future__ import annotations

import pytest

from switch.apps.acd import QueueRules
from switch.apps.acd.events import Announce, CallerJoined

from .support import make, of_type, serve


def warmed(agents: dict, talk: float = 100.0):
    """An Acd whose recent calls all lasted `talk` s (answered 1 s after the offer, no wrap-up)."""
    acd = make(QueueRules("q", wrapup=0), agents)
    t = 0.0
    first = next(iter(agents))
    others = [agent for agent in agents if agent != first]
    for agent in others:
        acd.set_not_ready(agent, "break", t)
    for n in range(20):
        acd.join(f"warm{n}", "q", t)
        serve(acd, first, t + 1)
        acd.call_ended(first, t + 1 + talk)
        t += 2 + talk
    for agent in others:
        acd.set_ready(agent, t)
    return acd, t


def test_the_estimate_depends_on_position() -> None:
    acd, t = warmed({"a": {}, "b": {}})
    acd.join("x", "q", t)
    serve(acd, "a", t)  # a's call starts at t
    acd.join("y", "q", t + 50)
    serve(acd, "b", t + 50)  # b's at t + 50
    for n in range(4):
        acd.join(f"c{n}", "q", t + 60)
    estimates = [acd.estimate_wait(f"c{n}", t + 60) for n in range(4)]
    # a is free at t+100 and every 100 s after, b at t+150; plus the mean time to
    # answer (about 1 s: the calls above answered within it).
    assert estimates == pytest.approx([41, 91, 141, 191], abs=0.2)
    assert [acd.position(f"c{n}") for n in range(4)] == [1, 2, 3, 4]


def test_more_agents_staffed_shorten_the_wait() -> None:
    waits = []
    for count in (1, 2, 4):
        agents = {f"a{i}": {} for i in range(count)}
        acd, t = warmed(agents)
        for i in range(count):
            acd.join(f"busy{i}", "q", t)
            serve(acd, f"a{i}", t)
        for n in range(8):
            acd.join(f"c{n}", "q", t + 10)
        waits.append(acd.estimate_wait("c7", t + 10))
    assert waits[0] > waits[1] > waits[2]
    assert waits[0] == pytest.approx(8 * 100 - 10 + 1, abs=0.2)


def test_only_agents_with_the_callers_skills_count() -> None:
    agents = {"en": {"skills": {"english": 5}}, "fr": {"skills": {"french": 5}}}
    acd, t = warmed(agents)
    acd.join("x", "q", t, skills={"english": 1})
    serve(acd, "en", t)
    acd.join("y", "q", t + 30, skills={"french": 1})
    serve(acd, "fr", t + 30)
    acd.join("fr1", "q", t + 40, skills={"french": 2})
    acd.join("en1", "q", t + 41, skills={"english": 2})
    # fr is free at t+130, en at t+100; each caller waits for their own.
    assert acd.estimate_wait("fr1", t + 41) == pytest.approx(90, abs=0.2)
    assert acd.estimate_wait("en1", t + 41) == pytest.approx(60, abs=0.2)


def test_no_estimate_when_nobody_could_take_the_caller() -> None:
    acd, t = warmed({"a": {}})
    acd.join("x", "q", t, skills={"german": 9})
    assert acd.estimate_wait("x", t) is None


def test_before_any_call_a_default_handle_time_is_assumed() -> None:
    acd = make(QueueRules("q", wrapup=20), {"a": {}})
    acd.join("x", "q", 0)
    serve(acd, "a", 0)
    acd.join("c1", "q", 10)
    assert acd.estimate_wait("c1", 10) == pytest.approx(180 - 10 + 20)


def test_announcements_give_position_and_estimate_periodically() -> None:
    acd = make(QueueRules("q", wrapup=0, announce_every=30.0), {"a": {}})
    acd.join("x", "q", 0)
    serve(acd, "a", 0)
    [first] = acd.join("c1", "q", 10)
    assert isinstance(first, Announce)
    assert (first.caller, first.position) == ("c1", 1)
    assert first.ewt == pytest.approx(180 - 10)
    assert of_type(acd.take_events(), CallerJoined)[-1].ewt == first.ewt
    acd.join("c2", "q", 20)
    commands = acd.handle_timer(40)
    assert [(c.caller, c.position) for c in commands] == [("c1", 1)]
    commands = acd.handle_timer(50)
    assert [(c.caller, c.position) for c in commands] == [("c2", 2)]
    assert commands[0].ewt > first.ewt
    acd.hangup("c1", 55)
    assert [(c.caller, c.position) for c in acd.handle_timer(80)] == [("c2", 1)]
