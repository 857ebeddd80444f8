"""The agent state machine, as data.

    logged-out --login--> available --reserve--> reserved --answer--> on-call
    on-call --hangup--> wrap-up --wrapup-end / ready--> available
    reserved --release--> available      (rang out, withdrawn, caller left)
    available / wrap-up / not-ready --not-ready--> not-ready --ready--> available
    available / wrap-up / not-ready --disconnect--> not-ready ("disconnected")
    not-ready --reconnect--> what the agent was before the disconnect

Any (state, action) pair missing from TRANSITIONS is an error that names the
state, the action and what the agent could do instead (h11's rule: an input
the table does not allow is a bug or a bad request, never silently ignored).
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidTransition
from .events import AgentChanged
from .model import AgentRecord, Status

__all__ = ["RESUME", "TRANSITIONS", "InvalidTransition", "allowed_actions", "transition"]

# Target "resume": the status the agent had when their last device went away.
RESUME = "resume"

TRANSITIONS: dict[tuple[Status, str], str] = {
    ("logged-out", "login"): "available",
    ("available", "logout"): "logged-out",
    ("not-ready", "logout"): "logged-out",
    ("wrap-up", "logout"): "logged-out",
    ("available", "not-ready"): "not-ready",
    ("not-ready", "not-ready"): "not-ready",  # another reason
    ("wrap-up", "not-ready"): "not-ready",  # wrap-up ends in a break
    ("not-ready", "ready"): "available",
    ("wrap-up", "ready"): "available",  # wrap-up ended early by the agent
    ("available", "reserve"): "reserved",
    ("reserved", "answer"): "on-call",
    ("reserved", "release"): "available",
    ("available", "busy"): "on-call",  # a call outside the ACD (direct, outbound)
    ("on-call", "hangup"): "wrap-up",
    ("wrap-up", "wrapup-end"): "available",
    ("wrap-up", "extend"): "wrap-up",
    ("available", "disconnect"): "not-ready",
    ("wrap-up", "disconnect"): "not-ready",
    ("not-ready", "disconnect"): "not-ready",
    ("not-ready", "reconnect"): RESUME,
}


def allowed_actions(status: Status) -> list[str]:
    return [action for (state, action) in TRANSITIONS if state == status]


def transition(
    agent: AgentRecord, action: str, now: float, reason: str = "", **changes: Any
) -> tuple[AgentRecord, AgentChanged]:
    """The agent after `action` at `now`, and the event that records it.

    `changes` are other fields of the record that change with it (the
    reservation, wrap-up times, ...). The version goes up by one.
    """
    target = TRANSITIONS.get((agent.status, action))
    if target is None:
        raise InvalidTransition(agent.id, agent.status, action, allowed_actions(agent.status))
    fields: dict[str, Any] = {}
    if target == RESUME:
        status, reason = agent.resume or ("available", "")
        fields["resume"] = None
    else:
        status = target  # type: ignore[assignment]
    if action == "disconnect":
        reason = "disconnected"
        if agent.status != "not-ready" or agent.reason != "disconnected":
            # Back to available after a call or wrap-up: the call is over by then.
            before = ("not-ready", agent.reason) if agent.status == "not-ready" else None
            fields["resume"] = before or ("available", "")
    if status == "available" and agent.status != "available":
        fields["idle_since"] = now
    fields.update(changes)
    new = agent._replace(
        status=status,
        reason=reason if status == "not-ready" else "",
        since=now if status != agent.status else agent.since,
        version=agent.version + 1,
        **fields,
    )
    return new, AgentChanged(agent.id, agent.status, new.status, reason, action, now)
