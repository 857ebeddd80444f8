"""The router's fast search agrees with the rule it implements, on random states."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.apps.acd import Acd, QueueRules
from switch.apps.acd.router import SCAN, best_caller
from switch.apps.acd.rules import why_not

SKILLS = ("en", "fr", "de")

caller = st.tuples(
    st.sampled_from(["q1", "q2"]),
    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=2),
    st.integers(0, 3),  # priority
    st.floats(0, 300),  # joined at
)


@settings(max_examples=150, deadline=None)
@given(
    callers=st.lists(caller, min_size=0, max_size=SCAN),
    # Callers nobody may take, ahead of the others: the search must look past them.
    blockers=st.lists(st.floats(0, 100), max_size=3 * SCAN),
    skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10)),
    tiers=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    now=st.floats(300, 600),
)
def test_best_caller_is_the_best_ranked_caller_the_agent_may_take(
    callers, blockers, skills, tiers, now
):
    queues = [
        QueueRules("q1", tier_waits=(60.0, 200.0), relax=((100.0, 2), (250.0, 5))),
        QueueRules("q2", priority_step=30.0, weight=1, relax=((150.0, 10),)),
    ]
    acd = Acd(queues)
    acd.add_agent("x", queues={"q1": tiers[0], "q2": tiers[1]}, skills=skills)
    callers = callers + [("q1", {"zz": 10}, 0, at) for at in blockers]  # never relaxed away
    for n, (queue, asked, priority, at) in enumerate(sorted(callers, key=lambda c: c[3])):
        acd.join(f"c{n}", queue, at, skills=asked, priority=priority)
    agent = acd.agent("x")
    found = best_caller(acd.index, acd.store.get, agent, now)
    rules = acd.queues
    eligible = [
        entry
        for entry in acd.store.all("entry")
        if why_not(entry, agent, rules[entry.queue], now) is None
    ]
    expected = min(eligible, key=lambda e: e.rank, default=None)
    assert (found and found.id) == (expected and expected.id)


def test_an_agent_finds_the_one_caller_for_them_behind_many_for_others() -> None:
    acd = Acd([QueueRules("q", relax=((60.0, 2),))])
    acd.add_agent("x", queues={"q": 1}, skills={"en": 5})
    for n in range(3 * SCAN):
        acd.join(f"other{n}", "q", float(n), skills={"fr": 5})
    acd.join("relaxed", "q", 100.0, skills={"en": 7}, priority=1)  # en 5 after 60 s
    acd.join("mine", "q", 101.0, skills={"en": 4})
    acd.join("vip", "q", 102.0, skills={"en": 3}, priority=2)
    agent = acd.agent("x")
    assert best_caller(acd.index, acd.store.get, agent, 150.0).id == "vip"
    acd.hangup("vip", 150.0)
    assert best_caller(acd.index, acd.store.get, agent, 150.0).id == "mine"
    assert best_caller(acd.index, acd.store.get, agent, 160.0).id == "relaxed"
