"""The CTI feed's JSON events, made from the ACD's events and offers (pure functions).

Each event is a dict with "type", "tenant" and "at", and says who may see
it: `audience(event)` gives (agents, queues): an agent client receives an
event naming them (`agent`, or among `agents` of an offer) and the stats
of the queues they are in; supervisors receive everything of their tenant.

Types: agent.state, agent.wrapup, caller.joined, caller.moved, caller.left
(abandoned or sent out by a limit), caller.answered, offer.ended,
call.offered (the screen pop), queue.stats; call.ended comes from the
call layer (cti.Cti.call_ended).
"""

from __future__ import annotations

import json
from typing import Any

from ..apps.acd.events import (
    AgentChanged,
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    CallerJoined,
    CallerMoved,
    Offer,
    OfferEnded,
    WrapupExtended,
)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def from_acd(tenant: str, item: Any, caller: dict[str, Any] | None, now: float) -> dict | None:
    """The CTI event for one ACD event or Offer (None: not for the feed).

    `caller` is what the ACD service holds of the caller named by the item
    (AcdService.caller_info), for the screen pop.
    """
    base: dict[str, Any] = {"tenant": tenant}
    if isinstance(item, AgentChanged):
        return {
            "type": "agent.state",
            **base,
            "agent": item.agent,
            "old": item.old,
            "status": item.new,
            "reason": item.reason,
            "at": item.at,
        }
    if isinstance(item, WrapupExtended):
        return {
            "type": "agent.wrapup",
            **base,
            "agent": item.agent,
            "until": item.until,
            "at": item.at,
        }
    call_id = _call_id(getattr(item, "caller", ""))
    if isinstance(item, CallerJoined):
        return {
            "type": "caller.joined",
            **base,
            "call_id": call_id,
            "queue": item.queue,
            "position": item.position,
            "priority": item.priority,
            "ewt": item.ewt,
            "number": caller["number"] if caller else None,
            "at": item.at,
        }
    if isinstance(item, CallerMoved):
        return {
            "type": "caller.moved",
            **base,
            "call_id": call_id,
            "old": item.old,
            "queue": item.new,
            "reason": item.reason,
            "at": item.at,
        }
    if isinstance(item, CallerAbandoned):
        return {
            "type": "caller.left",
            **base,
            "call_id": call_id,
            "queue": item.queue,
            "reason": "abandoned",
            "wait": item.wait,
            "at": item.at,
        }
    if isinstance(item, CallerExited):
        return {
            "type": "caller.left",
            **base,
            "call_id": call_id,
            "queue": item.queue,
            "reason": item.reason,
            "wait": item.wait,
            "at": item.at,
        }
    if isinstance(item, CallerAnswered):
        return {
            "type": "caller.answered",
            **base,
            "call_id": call_id,
            "queue": item.queue,
            "agent": item.agent,
            "wait": item.wait,
            "at": item.at,
        }
    if isinstance(item, OfferEnded):
        return {
            "type": "offer.ended",
            **base,
            "call_id": call_id,
            "agent": item.agent,
            "reason": item.reason,
            "at": item.at,
        }
    if isinstance(item, Offer):
        info = caller or {}
        since = info.get("since")
        return {
            "type": "call.offered",
            **base,
            "call_id": call_id,
            "queue": item.queue,
            "agents": list(item.agents),
            "number": info.get("number"),
            "name": info.get("name"),
            "did": info.get("did"),
            "wait": round(now - since, 3) if since is not None else None,
            "expires_in": round(max(0.0, item.expires_at - now), 3),
            "variables": _plain(info.get("variables", {})),
            "ivr": _plain(info.get("ivr")),
            "callback": item.callback,
            "at": now,
        }
    return None


def _call_id(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def audience(event: dict[str, Any]) -> tuple[set[str], str | None]:
    """(agents who may see it, the queue whose stats it is)."""
    if event["type"] == "queue.stats":
        return set(), event["queue"]
    if event["type"] == "call.offered":
        return set(event["agents"]), None
    agent = event.get("agent")
    return ({agent} if agent else set()), None


def queues_touched(event: dict[str, Any], agent_queues: dict[str, list[str]]) -> set[str]:
    """Queues whose stats may have changed with this event."""
    touched = {q for q in (event.get("queue"), event.get("old")) if q}
    agent = event.get("agent")
    if event["type"] in ("agent.state", "offer.ended") and agent:
        touched.update(agent_queues.get(agent, ()))
    return touched
