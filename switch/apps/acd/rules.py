"""The rules of a queue, and the pure predicates routing is made of.

QueueRules is a queue's config (switch.config.Queue) in the form routing
reads; build it with `QueueRules.from_config` or directly in tests.

- rank_key: the order callers are offered in (lower first; see the package
  docstring for the whole order).
- need: the wait after which an agent may take a caller of a skill signature
  (tier widening and skill relaxation both depend only on the wait, so one
  number per (agent, queue, signature) says it; the router caches it).
- why_not: the same rules again, spelled out for explanations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from switch.config import ACD_SYSTEM_REASONS, ExitTarget, Strategy

from .hours import OpenHours, TenantCalendar
from .model import AgentRecord, Entry

if TYPE_CHECKING:
    from switch.config import AcdSettings, Hours, Queue, Tenant

__all__ = [
    "EPSILON",
    "MAX_PRIORITY",
    "NEVER",
    "QueueRules",
    "TenantRules",
    "need",
    "rank_key",
    "required",
    "signature",
    "why_not",
]

NEVER = math.inf
# Waits are differences of floats: a timer set for enqueued_at + 45 may fire
# when now - enqueued_at is 44.99999999999977. Waits are compared with this slack.
EPSILON = 1e-6
MAX_PRIORITY = 9
_HANG_UP = ExitTarget(message="")


@dataclass(frozen=True)
class QueueRules:
    name: str
    strategy: Strategy = "longest-idle"
    ring_timeout: float = 20.0
    wrapup: float = 10.0
    wrapup_max: float = 120.0
    max_wait: float = 0.0  # 0 = no limit
    max_len: int = 0  # 0 = no limit
    weight: int = 0
    priority_step: float = 60.0
    vip: frozenset[str] = frozenset()
    vip_priority: int = 5
    tier_waits: tuple[float, ...] = ()
    skills: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    relax: tuple[tuple[float, int], ...] = ()  # (after, lower), after increasing
    sticky_wait: float = 0.0
    join_empty: bool = True
    leave_when_empty: bool = False
    announce_every: float = 0.0
    callback_mode: str = "off"
    callback_offer_ewt: float = 0.0
    callback_dial_timeout: float = 30.0
    calendar: OpenHours | None = None
    exits: Mapping[str, ExitTarget] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(
        cls,
        name: str,
        queue: Queue,
        tenant: Tenant | None = None,
        calendars: Mapping[str, Hours] | None = None,
    ) -> QueueRules:
        """`calendars`: where the queue's calendar is looked up (default: the
        tenant's); a mapping the node updates in place at a reload."""
        from switch.numbers import to_e164

        plan = tenant.numbers.plan if tenant is not None else None
        vip = set()
        for number in queue.vip_numbers:
            vip.add((to_e164(number, plan) if plan else None) or number)
        calendar = None
        if queue.hours is not None and tenant is not None:
            calendar = TenantCalendar(queue.hours, tenant.hours if calendars is None else calendars)
        return cls(
            name=name,
            strategy=queue.strategy,
            ring_timeout=float(queue.timeout),
            wrapup=float(queue.wrapup),
            wrapup_max=float(queue.wrapup_max or queue.wrapup),
            max_wait=float(queue.max_wait),
            max_len=queue.max_len,
            weight=queue.weight,
            priority_step=float(queue.priority_step),
            vip=frozenset(vip),
            vip_priority=queue.vip_priority,
            tier_waits=tuple(float(w) for w in queue.tier_waits),
            skills=MappingProxyType(dict(queue.skills)),
            relax=tuple((float(step.after), step.lower) for step in queue.relax),
            sticky_wait=float(queue.sticky_wait),
            join_empty=queue.join_empty,
            leave_when_empty=queue.leave_when_empty,
            announce_every=float(queue.announce_every),
            callback_mode=queue.callback.mode,
            callback_offer_ewt=float(queue.callback.offer_ewt),
            callback_dial_timeout=float(queue.callback.dial_timeout),
            calendar=calendar,
            exits=MappingProxyType(
                {
                    reason: getattr(queue.exits, reason)
                    for reason in ("max_wait", "full", "empty", "closed")
                }
            ),
        )

    def exit(self, reason: str) -> ExitTarget:
        return self.exits.get(reason, _HANG_UP)

    def tier_wait(self, tier: int) -> float:
        """Seconds of waiting after which agents of `tier` are offered a caller."""
        if tier <= 1 or not self.tier_waits:
            return 0.0
        return self.tier_waits[min(tier - 2, len(self.tier_waits) - 1)]

    def lowering(self, wait: float) -> int:
        """Levels taken off every required skill after `wait` seconds."""
        lower = 0
        for after, step in self.relax:
            if wait < after:
                break
            lower = step
        return lower

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Waits at which the agents a caller may be offered to can change."""
        waits = {*self.tier_waits, *(after for after, _ in self.relax)}
        return tuple(sorted(w for w in waits if w > 0))


@dataclass(frozen=True)
class TenantRules:
    not_ready_reasons: frozenset[str] = frozenset({"break", "lunch", "training", "meeting"})
    max_missed: int = 3  # 0 = never set not ready
    sticky_memory: float = 7 * 86400.0

    @classmethod
    def from_config(cls, acd: AcdSettings) -> TenantRules:
        return cls(frozenset(acd.not_ready_reasons), acd.max_missed, float(acd.sticky_memory))

    def check_reason(self, reason: str) -> None:
        """An agent (or supervisor) may set one of the tenant's reasons, not the ACD's own."""
        known = ", ".join(sorted(self.not_ready_reasons))
        if reason in ACD_SYSTEM_REASONS:
            raise ValueError(f"{reason!r} is set by the ACD itself, not by hand (reasons: {known})")
        if reason not in self.not_ready_reasons:
            raise ValueError(
                f"{reason!r} is not a not-ready reason of this tenant (reasons: {known}; "
                "add it to not_ready_reasons in [tenants.<id>.acd])"
            )


def signature(
    queue_skills: Mapping[str, int], caller_skills: Mapping[str, int] | None
) -> tuple[tuple[str, int], ...]:
    """The skills a caller needs: the queue's and the IVR's, the higher level of each."""
    merged = dict(queue_skills)
    for skill, level in (caller_skills or {}).items():
        if not 1 <= level <= 10:
            raise ValueError(f"skill {skill!r}: level {level} is not between 1 and 10")
        merged[skill] = max(level, merged.get(skill, 0))
    return tuple(sorted(merged.items()))


def rank_key(enqueued_at: float, priority: int, rules: QueueRules) -> float:
    """Lower is offered first: a caller ranks as if they had arrived
    priority_step x (priority + queue weight) seconds earlier."""
    return enqueued_at - rules.priority_step * (priority + rules.weight)


def required(
    sig: Iterable[tuple[str, int]], rules: QueueRules, wait: float
) -> tuple[tuple[str, int], ...]:
    """The skill levels still required after `wait` seconds (relaxation applied)."""
    lower = rules.lowering(wait)
    return tuple((skill, level - lower) for skill, level in sig if level - lower > 0)


def _deficit(agent: AgentRecord, sig: Iterable[tuple[str, int]]) -> int:
    """The most levels the agent lacks on any skill of `sig` (0 or less: none)."""
    skills = agent.skills
    worst = 0
    for skill, level in sig:
        gap = level - skills.get(skill, 0)
        if gap > worst:
            worst = gap
    return worst


def need(
    agent: AgentRecord, rules: QueueRules, sig: tuple[tuple[str, int], ...], tiers: bool = True
) -> float:
    """The wait after which `agent` may take a caller of `rules`' queue needing `sig`.

    NEVER when the agent is not a member or lacks the skills even fully relaxed.
    Tier and skills both depend on the wait alone, so this one number decides
    (sticky agents and agents who let the caller's offer ring out aside).
    tiers=False leaves the tier out: a sticky agent is reached whatever their tier.
    """
    tier = agent.queues.get(rules.name)
    if tier is None:
        return NEVER
    # Relaxed by `lower` levels, a requirement is met when no skill lacks more.
    deficit = _deficit(agent, sig)
    skills_wait = 0.0 if deficit <= 0 else NEVER
    if deficit > 0:
        for after, lower in rules.relax:
            if lower >= deficit:
                skills_wait = after
                break
    return max(rules.tier_wait(tier), skills_wait) if tiers else skills_wait


def why_not(entry: Entry, agent: AgentRecord, rules: QueueRules, now: float) -> str | None:
    """Why `agent` may not be offered `entry` now, in words; None if they may."""
    wait = now - entry.enqueued_at + EPSILON
    tier = agent.queues.get(rules.name)
    if tier is None:
        return f"not in queue {rules.name}"
    sticky = entry.sticky and now < entry.sticky_until
    if sticky and entry.sticky != agent.id:
        return f"caller kept for {entry.sticky} (sticky) for {entry.sticky_until - now:.0f} s more"
    opens = 0.0 if sticky else rules.tier_wait(tier)
    if wait < opens:
        return f"tier {tier} opens at {opens:.0f} s of waiting (waited {wait:.0f} s)"
    for skill, level in required(entry.skills, rules, wait):
        has = agent.skills.get(skill, 0)
        if has < level:
            return f"needs {skill} {level} (has {has})"
    for who, until in entry.skip:
        if who == agent.id and now < until:
            return f"let this caller's offer ring out; not offered it for {until - now:.0f} s more"
    return None
