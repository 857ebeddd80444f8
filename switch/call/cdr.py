"""A finished call as its record (issue #9): pure, from the `Call` and what the
applications left on it.

`build_cdr(call, node, caller_number)` returns the row for the `cdrs` table
(switch.store.records) with its legs under "legs". It reads:

- the call: who called (tenant, trunk or agent), what was dialled, the
  target, the times, how each leg ended (`Call.legs`), the hangup, the
  recording file, the media quality per leg (`Call.quality`, set at the end);
- an application's call (`Call.app`): the IVR summary in
  `variables["ivr"]` (path, keys, variables; "queue": how the wait in the
  queues ended), the queue application's `variables["queue"]`, and who
  answered through `connect` (`AppCall.connected`).

Times are epoch seconds. Hold time: from the offers relayed between the
legs (switch.call.holds; an application's own call, the IVR's, has none),
and talk time is the time connected less the hold. Wrap-up time comes
later, with the wrap-up form (`Records.set_disposition`) or from the agent
events.
"""

from __future__ import annotations

from typing import Any

from ..sip.message import ParseError
from .model import Call, LegEnd

TRANSFERRED = "transferred"  # how LegEnd.reason of a transferred leg begins


def cdr_id(node: str, call: Call) -> str:
    """The CDR's id, unique across nodes and restarts: node, call number, start (µs)."""
    return f"{node}:{call.id}:{round(call.started_at * 1_000_000)}"


def build_cdr(call: Call, node: str, caller_number: str) -> dict[str, Any]:
    """The `cdrs` row of an ended call, with "legs" (see the module's docstring)."""
    app = call.app
    variables: dict[str, Any] = app.variables if app is not None else {}
    ivr = variables.get("ivr") if isinstance(variables.get("ivr"), dict) else None
    queued = _queued(ivr, variables)
    connected = app.connected if app is not None else None
    target = call.target
    caller = call.caller
    end = call.ended_at if call.ended_at is not None else call.started_at
    answer = call.answered_at

    if connected is not None:  # an application put the caller through to someone
        callee = connected.name or connected.uri
        ring = connected.rang
        talk = max(0.0, end - connected.answered_at)
    elif app is not None:  # the node answered and kept the call
        callee = None
        ring = 0.0
        talk = 0.0
    else:
        callee = _callee(call)
        ring = ((answer if answer is not None else end) - call.started_at) if target else 0.0
        talk = max(0.0, end - answer) if answer is not None else 0.0

    hold = call.holds.seconds(end)
    talk = max(0.0, talk - hold)
    agent = queued.get("agent") if queued else None
    if not agent and connected is not None and connected.kind == "agent":
        agent = connected.name
    if not agent and app is None and target is not None and target.kind == "agent":
        agent = target.name
    if not agent and caller.kind == "agent":
        agent = caller.name

    quality = {leg: q.to_dict() for leg, q in sorted(call.quality.items())}
    scores = [q["mos"] for q in quality.values() if isinstance(q.get("mos"), int | float)]
    hangup = call.hangup
    return {
        "id": cdr_id(node, call),
        "node": node,
        "call_id": call.id,
        "sip_call_id": call.a_invite.call_id,
        "tenant": caller.tenant,
        "direction": _direction(call),
        "trunk": _trunk(call),
        "caller": caller_number,
        "caller_name": _caller_name(call),
        "did": caller.did or call.dialled,
        "callee": callee,
        "app": app.app if app is not None else None,
        "start_time": call.started_at,
        "answer_time": answer,
        "end_time": end,
        "duration": max(0.0, end - call.started_at),
        "billsec": max(0.0, end - answer) if answer is not None else 0.0,
        "ivr": ivr,
        "queue": queued.get("queue") if queued else None,
        "wait": queued.get("waited") if queued else None,
        "agent": agent,
        "ring_time": round(ring, 3),
        "talk_time": round(talk, 3),
        "hold_time": round(hold, 3),
        "wrapup_time": None,
        "disposition": None,
        "notes": None,
        "transfers": transfers(call),
        "hangup_by": hangup.by if hangup is not None else None,
        "hangup_code": hangup.status if hangup is not None else None,
        "hangup_reason": hangup.reason if hangup is not None else None,
        "reason_header": hangup.reason_header if hangup is not None else None,
        "recording": call.recording_path or None,
        "quality": quality or None,
        "mos_min": min(scores) if scores else None,
        "legs": [_leg(leg) for leg in call.legs],
    }


def _queued(ivr: dict[str, Any] | None, variables: dict[str, Any]) -> dict[str, Any] | None:
    """How the caller's wait in the queues ended: the IVR's note, or the queue app's."""
    for source in (ivr.get("queue") if ivr else None, variables.get("queue")):
        if isinstance(source, dict) and source.get("queue"):
            return source
    return None


def _direction(call: Call) -> str:
    if call.caller.kind == "trunk":
        return "inbound"
    if call.target is not None and call.target.kind == "trunk":
        return "outbound"
    return "internal"


def _trunk(call: Call) -> str | None:
    if call.caller.kind == "trunk":
        return call.caller.name
    if call.target is not None and call.target.kind == "trunk":
        return call.target.name
    return None


def _callee(call: Call) -> str | None:
    target = call.target
    if target is None:
        return None
    if target.kind == "trunk":
        return target.number or target.uri
    return target.name


def _caller_name(call: Call) -> str | None:
    try:
        return call.a_invite.from_.display or None
    except ParseError:
        return None


def _leg(leg: LegEnd) -> dict[str, Any]:
    return {
        "leg": leg.leg,
        "party": leg.party,
        "ended_by": leg.by,
        "status": leg.status,
        "reason": leg.reason,
        "reason_header": leg.reason_header,
        "end_time": leg.at,
    }


def transfers(call: Call) -> list[dict[str, Any]]:
    """Each transfer: when, which side left, who it was, and who took its place
    (the next party to end on that side: every leg ends before the call does)."""
    out = []
    for index, leg in enumerate(call.legs):
        if not leg.reason.startswith(TRANSFERRED):
            continue
        after = next((later for later in call.legs[index + 1 :] if later.leg == leg.leg), None)
        to = after.party if after is not None else None
        kind = leg.reason[len(TRANSFERRED) :].strip(" ()") or "blind"
        out.append({"at": leg.at, "side": leg.leg, "from": leg.party, "to": to, "kind": kind})
    return out
