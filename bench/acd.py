"""ACD routing decisions per second, with 500 agents and 2,000 waiting callers in skills mode.

The ACD core (switch/apps/acd) driven in this process with a virtual clock,
on its memory store, then on the Redis store (switch/store/acd_redis.py,
a redis-server of the bench's own on the other core, over loopback). The
call center (seeded, so every run is the same):

- 4 queues, longest-idle, skill relaxation (levels lowered by 2 after 60 s
  of waiting), one priority level worth 60 s;
- 500 agents, each in 2 queues, with 3 of 8 skills at levels 1-10;
- 2,000 callers waiting, each needing 1 skill (80 %) or 2 (20 %) at level
  3, 5 or 7 (what an IVR asks), 10 % of them with priority 2.

All agents are on calls. One step: a random agent's call ends (no wrap-up),
which makes them available, and the router picks the best-ranked waiting
caller they may take across their queues and reserves the pair (a
compare-and-set commit); the agent answers, and a new caller joins to keep
2,000 waiting. The figure is the time of the input that ends the call,
decision and reservation included (what a node spends when an agent frees
up), over the steps that made a decision: decisions per second of one core
and the p50/p99 latency, from the best of REPEATS runs. The whole step (end,
decision, answer, a caller joining) is given too. The garbage collector is
left as it is: its full collections are the worst latencies (the max).

On Redis every commit is one Lua script round trip made synchronously (the
engine must know it won before it goes on), and the input measured makes
two: the call's end (on-call -> available, no wrap-up) and the reservation.
With a wrap-up (the default is 10 s) the decision comes from the wrap-up
timer, with two as well.

Issue #7: at least 5,000 decisions/s, p99 under 5 ms, for the memory and the
Redis backends.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from switch.apps.acd import Acd, AcdStore, QueueRules, codec
from switch.apps.acd.events import Offer
from switch.store.acd_redis import RedisAcdStore

from . import procs
from .register import _redis as redis_server
from .report import Row

BENCHMARK = "acd"
AGENTS, WAITING = 500, 2000
QUEUES = ("q0", "q1", "q2", "q3")
SKILLS = tuple(f"skill{n}" for n in range(8))
TARGET_RATE, TARGET_P99_MS = 5000, 5.0
STEPS, SMOKE_STEPS = 20_000, 500
REPEATS = 3


def _caller(rng: random.Random) -> tuple[str, dict[str, int], int]:
    count = 1 if rng.random() < 0.8 else 2
    skills = {skill: rng.choice((3, 5, 7)) for skill in rng.sample(SKILLS, count)}
    return rng.choice(QUEUES), skills, 2 if rng.random() < 0.1 else 0


def build(seed: int = 11, store: AcdStore | None = None) -> tuple[Acd, random.Random, float]:
    """The call center above, every agent on a call and WAITING callers waiting."""
    rng = random.Random(seed)
    queues = [QueueRules(name, wrapup=0, relax=((60.0, 2),)) for name in QUEUES]
    node = "bench" if store is not None else ""
    acd = Acd(queues, rng=random.Random(seed + 1), store=store, node=node)
    agents = [f"a{n:03d}" for n in range(AGENTS)]
    for position, agent in enumerate(agents):
        acd.add_agent(
            agent,
            queues={queue: 1 for queue in rng.sample(QUEUES, 2)},
            skills={skill: rng.randint(1, 10) for skill in rng.sample(SKILLS, 3)},
            position=position,
        )
    now = 0.0
    for agent in agents:
        acd.login(agent, now, devices=[f"{agent}-browser"])
        acd.busy(agent, now)  # on a call from elsewhere: nobody is free
    for n in range(WAITING):
        queue, skills, priority = _caller(rng)
        now += 0.01
        acd.join(f"w{n}", queue, now, skills=skills, priority=priority)
    acd.take_events()
    return acd, rng, now


def measure(steps: int, seed: int = 11, store: AcdStore | None = None) -> dict[str, float]:
    acd, rng, now = build(seed, store)
    agents = sorted(a.id for a in acd.store.all("agent"))
    latencies: list[float] = []
    idle = 0
    joined = 0
    clock = time.perf_counter
    started = clock()
    for _ in range(steps):
        now += 0.05
        agent = rng.choice(agents)
        if acd.agent(agent).status != "on-call":
            continue
        t0 = clock()
        commands = acd.call_ended(agent, now)
        elapsed = clock() - t0
        offer = next((c for c in commands if isinstance(c, Offer)), None)
        if offer is None:
            idle += 1  # no waiting caller this agent may take: no decision
            continue
        latencies.append(elapsed)
        acd.answered(offer.caller, offer.agents[0], now)
        queue, skills, priority = _caller(rng)
        acd.join(f"n{joined}", queue, now, skills=skills, priority=priority)
        joined += 1
        acd.take_events()
    total = clock() - started
    latencies.sort()
    count = len(latencies)
    return {
        "decisions": count,
        "rate": count / sum(latencies) if count else 0.0,
        "p50_ms": latencies[count // 2] * 1000 if count else 0.0,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
        "max_ms": latencies[-1] * 1000 if count else 0.0,
        "steps_per_s": count / total if total else 0.0,
        "no_match": idle,
        "waiting": sum(len(acd.waiting(q)) for q in QUEUES),
    }


@contextlib.contextmanager
def redis_stores() -> Iterator[Iterator[RedisAcdStore]]:
    """A redis-server on the cores left to load generators; yields fresh stores on it."""
    _, load_cpus = procs.cpus()
    with (
        tempfile.TemporaryDirectory(prefix="switch-bench-acd-") as tmp,
        redis_server(Path(tmp), load_cpus) as url,
    ):
        opened: list[RedisAcdStore] = []

        def stores() -> Iterator[RedisAcdStore]:
            for n in range(REPEATS):
                store = RedisAcdStore(
                    url, f"bench{n}", "bench", encode=codec.encode, decode=codec.decode
                )
                opened.append(store)
                yield store

        try:
            yield stores()
        finally:
            for store in opened:
                store.close()


def rows(m: dict[str, float], backend: str, extra: str = "") -> list[Row]:
    setup = f"{AGENTS} agents, {int(m['waiting']):,} waiting, skills mode, {backend} store"
    note = f"{int(m['decisions']):,} decisions; {setup}{extra}"
    if m["no_match"]:
        note += f"; {int(m['no_match'])} freed agents had no caller to take"
    latency = f"p50 {m['p50_ms']:.3f} ms, max {m['max_ms']:.2f} ms (full garbage collections)"
    label = "memory" if backend == "memory" else "Redis"
    return [
        Row(
            BENCHMARK,
            f"routing decisions per second ({label})",
            m["rate"],
            "/s",
            f">= {TARGET_RATE:,}",
            m["rate"] >= TARGET_RATE,
            note,
        ),
        Row(
            BENCHMARK,
            f"decision latency p99 ({label})",
            m["p99_ms"],
            "ms",
            f"< {TARGET_P99_MS:g}",
            m["p99_ms"] < TARGET_P99_MS,
            latency,
        ),
    ]


def run(smoke: bool) -> list[Row]:
    # The best of a few runs, as timeit does: on a shared machine a run's
    # figure also measures its neighbours (they differ by half between runs).
    steps, repeats = (SMOKE_STEPS, 1) if smoke else (STEPS, REPEATS)
    runs = [measure(steps) for _ in range(repeats)]
    m = max(runs, key=lambda run: run["rate"])
    out = rows(m, "memory")
    out.append(
        Row(
            BENCHMARK,
            "whole step: call ends, decision, answer, a caller joins",
            m["steps_per_s"],
            "/s",
            note="the rate a node could sustain on one core",
        )
    )
    redis_runs = []
    try:
        with redis_stores() as stores:
            for _, store in zip(range(repeats), stores, strict=False):
                redis_runs.append(measure(steps, store=store))
    except Exception as exc:  # a Redis failing must not cost the memory rows
        if smoke:
            raise  # CI must see it
        if not redis_runs:
            why = f"not measured: {type(exc).__name__}: {exc}"
            row = Row(BENCHMARK, "routing decisions per second (Redis)", None, "/s",
                      f">= {TARGET_RATE:,}", None, why)  # fmt: skip
            return [*out, row]
    r = max(redis_runs, key=lambda run: run["rate"])
    extra = (
        f"; one Lua compare-and-set round trip per commit, 2 in the input measured "
        f"(redis-server on its own core); whole step {r['steps_per_s']:,.0f}/s"
    )
    return out + rows(r, "redis", extra)


if __name__ == "__main__":
    print(measure(SMOKE_STEPS))
