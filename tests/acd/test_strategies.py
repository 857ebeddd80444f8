"""Each strategy's order among the agents who may take a caller."""

from __future__ import annotations

import random
from collections import Counter

from switch.apps.acd import Acd, QueueRules
from switch.apps.acd.events import OfferEnded, StopOffer

from .support import make, of_type, offers, serve

AGENTS = {"a": {}, "b": {}, "c": {}}


def one_call(acd: Acd, caller: str, now: float, talk: float = 10.0) -> str:
    """A caller joins; whoever is offered answers, talks `talk` s and hangs up (no wrap-up)."""
    [(_, agents)] = offers(acd.join(caller, "q", now))
    serve(acd, agents[0], now + 1)
    acd.call_ended(agents[0], now + 1 + talk)
    return agents[0]


def test_longest_idle_is_the_default() -> None:
    acd = make(QueueRules("q", wrapup=0), AGENTS, login=False)
    assert acd.queues["q"].strategy == "longest-idle"
    for t, agent in enumerate(["b", "c", "a"]):
        acd.login(agent, float(t), devices=["p"])
    assert one_call(acd, "c1", 10) == "b"
    assert one_call(acd, "c2", 30) == "c"  # b became available again at 21
    assert one_call(acd, "c3", 50) == "a"
    assert one_call(acd, "c4", 70) == "b"


def test_round_robin_remembers_the_last_agent() -> None:
    acd = make(QueueRules("q", strategy="round-robin", wrapup=0, ring_timeout=60), AGENTS)
    assert [one_call(acd, f"c{i}", 10.0 * i) for i in range(4)] == ["a", "b", "c", "a"]
    # b is busy: the turn passes to c, and the memory continues from c.
    acd.join("x", "q", 100)  # offered to b (after a)
    assert acd.agent("b").status == "reserved"
    assert one_call(acd, "c5", 101) == "c"
    assert one_call(acd, "c6", 120) == "a"


def test_fewest_calls_then_longest_idle() -> None:
    acd = make(QueueRules("q", strategy="fewest-calls", wrapup=0), AGENTS)
    picks = [one_call(acd, f"c{i}", 10.0 * i) for i in range(6)]
    # Each agent takes one call before anyone takes a second (ties: longest idle).
    assert sorted(picks[:3]) == ["a", "b", "c"] and sorted(picks[3:]) == ["a", "b", "c"]
    counts = {agent: acd.agent(agent).calls["q"] for agent in AGENTS}
    assert counts == {"a": 2, "b": 2, "c": 2}


def test_least_talk_time() -> None:
    acd = make(QueueRules("q", strategy="least-talk-time", wrapup=0), AGENTS)
    first = one_call(acd, "c1", 0, talk=300)
    second = one_call(acd, "c2", 400, talk=50)
    third = one_call(acd, "c3", 500, talk=100)
    assert len({first, second, third}) == 3
    # Talked: first 300, second 50, third 100: the next goes to the second.
    assert one_call(acd, "c4", 700) == second
    assert acd.agent(second).talk["q"] == 60.0


def test_linear_always_tries_the_same_order() -> None:
    acd = make(QueueRules("q", strategy="linear", wrapup=0), AGENTS)
    assert [one_call(acd, f"c{i}", 10.0 * i) for i in range(3)] == ["a", "a", "a"]
    acd.join("x", "q", 100)  # a is rung
    assert offers(acd.join("y", "q", 101)) == [("y", ("b",))]


def test_random_uses_the_rng_it_is_given() -> None:
    picks = []
    for seed in (1, 1, 2):
        acd = make(QueueRules("q", strategy="random", wrapup=0), AGENTS, seed=seed)
        picks.append([one_call(acd, f"c{i}", 10.0 * i) for i in range(30)])
    assert picks[0] == picks[1]  # same seed, same choices
    assert picks[0] != picks[2]
    assert set(picks[0]) == {"a", "b", "c"}


def test_weighted_random_follows_the_weights() -> None:
    agents = {"light": {"weight": 1}, "heavy": {"weight": 3}}
    acd = make(QueueRules("q", strategy="weighted-random", wrapup=0), agents, seed=5)
    counts = Counter(one_call(acd, f"c{i}", 10.0 * i) for i in range(800))
    # Expected 200 / 600; a binomial's standard deviation here is about 12.
    assert 150 < counts["light"] < 250, counts


def test_ringall_rings_everyone_and_the_first_answer_wins() -> None:
    acd = make(QueueRules("q", strategy="ringall", ring_timeout=15), AGENTS)
    commands = acd.join("c1", "q", 1)
    assert offers(commands) == [("c1", ("a", "b", "c"))]
    assert {acd.agent(a).status for a in AGENTS} == {"reserved"}
    reservation = commands[0].reservation
    commands = acd.answered("c1", "b", 4)
    assert commands == [StopOffer(reservation, "c1", ("a", "c"), "answered elsewhere")]
    assert [acd.agent(a).status for a in AGENTS] == ["available", "on-call", "available"]
    ended = of_type(acd.take_events(), OfferEnded)
    assert [(e.agent, e.reason) for e in ended] == [
        ("a", "answered elsewhere"),
        ("c", "answered elsewhere"),
    ]


def test_ringall_rung_out_is_a_miss_for_each() -> None:
    acd = make(QueueRules("q", strategy="ringall", ring_timeout=15), AGENTS)
    acd.join("c1", "q", 1)
    commands = acd.handle_timer(16)
    assert of_type(commands, StopOffer)[0].agents == ("a", "b", "c")
    assert [acd.agent(a).missed for a in AGENTS] == [1, 1, 1]
    # Nobody may take it for the ring timeout: it waits, then all ring again.
    assert acd.entry("c1").status == "waiting"
    assert offers(acd.handle_timer(31)) == [("c1", ("a", "b", "c"))]


def test_ringall_rings_the_lowest_tier_only() -> None:
    agents = {"a": {"queues": {"q": 2}}, "b": {"queues": {"q": 1}}, "c": {"queues": {"q": 1}}}
    acd = make(QueueRules("q", strategy="ringall", tier_waits=(30.0,)), agents)
    assert offers(acd.join("c1", "q", 1)) == [("c1", ("b", "c"))]


def test_every_strategy_prefers_the_lowest_tier() -> None:
    agents = {"t2": {"queues": {"q": 2}}, "t1": {"queues": {"q": 1}}}
    for strategy in ("longest-idle", "round-robin", "fewest-calls", "least-talk-time", "random",
                     "linear", "weighted-random"):  # fmt: skip
        acd = make(QueueRules("q", strategy=strategy, tier_waits=(0.0,)), agents,
                   seed=random.randrange(1000))  # fmt: skip
        # tier 2 is open at once (wait 0), yet tier 1 goes first.
        assert offers(acd.join("c1", "q", 5)) == [("c1", ("t1",))], strategy
