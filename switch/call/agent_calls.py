"""Which agents a call occupies, told to the node: an agent on a call is busy.

Part of `Calls` (a mixin). The ACD must not offer a queue's caller to an
agent already talking: on a direct call to their extension, a call they
dialled, or a caller the IVR put through to them. The call layer knows
those calls; the ACD does not. So the node hands `Calls.on_agent_call` a
callable (the call layer never imports the applications) and hears
`AgentOnCall(tenant, agent, call_id, on=True)` when an agent's device is in
a bridged call (answered: the agent is its caller or its callee), and
`on=False` when they leave it (the call ends, or a blind transfer hands
their side to someone else).

A call an agent makes to an application alone (the echo test, a feature
code, the IVR) does not count: nobody is talking to them. The ACD's own
offers are told too; the listener knows its own calls by `call_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .model import Call

log = logging.getLogger("switch.call")

__all__ = ["AgentCalls", "AgentOnCall", "agents_of"]


@dataclass(frozen=True, slots=True)
class AgentOnCall:
    """Agent `agent` (an extension of `tenant`) is on call `call_id` now (`on`),
    or no longer."""

    tenant: str
    agent: str
    call_id: int
    on: bool


def agents_of(call: Call, gone: frozenset[str] = frozenset()) -> frozenset[str]:
    """The agents talking on `call` now: its caller and its callee when they are
    agents, once bridged; none before, after, or for an application's call
    not put through to anyone. `gone`: agents whose side was transferred away."""
    if call.state != "answered" or call.target is None or call.ended_at is not None:
        return frozenset()
    found = set()
    if call.caller.kind == "agent":
        found.add(call.caller.name)
    if call.target.kind == "agent":
        found.add(call.target.name)
    return frozenset(found - gone)


class AgentCalls:
    """Part of `Calls` (a mixin); see the module's docstring."""

    on_agent_call: Callable[[AgentOnCall], None] | None = None
    _agents_on: dict[int, frozenset[str]]  # call id -> agents told on it
    _agents_gone: dict[int, frozenset[str]]  # call id -> agents transferred away

    def _agents_update(self, call: Call, left: str | None = None) -> None:
        """Tell who joined or left `call` since last told; `left`: an agent whose
        side of the call was just handed to someone else (a blind transfer)."""
        if self.on_agent_call is None:
            return
        on, gone = self._agents_on, self._agents_gone
        if left is not None:
            gone[call.id] = gone.get(call.id, frozenset()) | {left}
        before: frozenset[str] = on.get(call.id, frozenset())
        now = agents_of(call, gone.get(call.id, frozenset()))
        if now:
            on[call.id] = now
        else:
            on.pop(call.id, None)
            gone.pop(call.id, None)
        tenant = call.caller.tenant
        for agent in sorted(before - now):
            self._tell_agent(AgentOnCall(tenant, agent, call.id, False))
        for agent in sorted(now - before):
            self._tell_agent(AgentOnCall(tenant, agent, call.id, True))

    def _tell_agent(self, event: AgentOnCall) -> None:
        assert self.on_agent_call is not None
        try:
            self.on_agent_call(event)
        except Exception:  # the listener's bug must not break the call
            log.exception("call %d: telling agent %s's call failed", event.call_id, event.agent)
