"""Who the called party sees: the number and name put in From (and P-Asserted-Identity).

An agent calling out presents, first found: the number its phone asked for
in P-Preferred-Identity (RFC 3325) when the tenant owns it, its own
`caller_id`, the route's, the trunk's, the tenant's main number; else its
extension, as before (carriers put the account's number in its place). A
number the tenant does not own is never presented unless the tenant has
`any_caller_id`: that is spoofing. Withheld (the agent's setting or the
phone's Privacy: id) means an anonymous From (RFC 3323), except on calls to
emergency numbers.

A customer's call from a trunk keeps its number (ANI, from the trusted
trunk's P-Asserted-Identity or From), normalised to E.164 for agents and
written in the next trunk's format when it is forwarded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Tenant
from ..numbers import e164_set, format_number, to_e164
from ..registrar.guard import Caller
from .routing import Target

log = logging.getLogger("switch.call")


@dataclass(frozen=True, slots=True)
class Identity:
    number: str  # the user part of From and P-Asserted-Identity
    name: str  # the display name; "" for none
    withheld: bool  # present an anonymous From (RFC 3323)


def presented(
    tenant: Tenant,
    caller: Caller,
    target: Target,
    calling: str | None,
    name: str,
    preferred: str | None = None,
    privacy: bool = False,
) -> Identity:
    """The identity leg B shows for a call by `caller` to `target`.

    `calling`: the caller's number as it came (PAI or From user); `name`:
    the From display name; `preferred`: the user of the agent phone's
    P-Preferred-Identity; `privacy`: the caller asked for Privacy: id.
    """
    plan = tenant.numbers.plan
    trunk = tenant.trunks.get(target.name) if target.kind == "trunk" else None
    if caller.kind == "agent":
        agent = tenant.agents.get(caller.name)
        shown_name = agent.name if agent is not None and agent.name else name
        if trunk is None:
            return Identity(caller.name, shown_name, privacy)  # colleagues see the extension
        # Emergency services always get the number: they call back, and find the caller.
        emergency = target.number in tenant.numbers.emergency
        withheld = not emergency and (privacy or (agent is not None and agent.withhold_caller_id))
        chosen = _agent_number(tenant, caller.name, target, preferred)
        if chosen is None:
            return Identity(caller.name, shown_name, withheld)
        number = chosen
    else:
        number = (to_e164(calling, plan) if calling else None) or calling or "anonymous"
        withheld, shown_name = privacy, name
    e164 = to_e164(number, plan) if trunk is not None else None
    if trunk is not None and e164 is not None:
        number = format_number(e164, trunk.number_format, plan)
    return Identity(number, shown_name, withheld)


def owned_numbers(tenant: Tenant) -> set[str]:
    """The E.164 numbers a tenant may present: its DIDs, caller_ids and main number."""
    numbers = tenant.numbers
    main = [numbers.caller_id] if numbers.caller_id is not None else []
    return e164_set([*tenant.dids, *numbers.caller_ids, *main], numbers.plan)


def _agent_number(tenant: Tenant, ext: str, target: Target, preferred: str | None) -> str | None:
    numbers = tenant.numbers
    if preferred:
        e164 = to_e164(preferred, numbers.plan)
        if e164 is not None and (numbers.any_caller_id or e164 in owned_numbers(tenant)):
            return e164
        # Someone tries to present a number that is not the tenant's: say so, once a call.
        log.warning(
            "caller id refused: tenant=%s agent=%s number=%s (not the tenant's)",
            tenant.id,
            ext,
            e164 or preferred[:32],
        )
    agent = tenant.agents.get(ext)
    route = tenant.outbound.get(target.route)
    trunk = tenant.trunks.get(target.name)
    for configured in (
        agent.caller_id if agent is not None else None,
        route.caller_id if route is not None else None,
        trunk.caller_id if trunk is not None else None,
        numbers.caller_id,
    ):
        if configured is not None:
            return configured
    return None
