"""Agents busy on calls the ACD did not give them.

The call layer tells the node which agents are on which bridged calls
(switch.call.agent_calls: `AgentOnCall`); the node hands those to
`AcdBusy.agent_call`. A call that is not one of the ACD's own offers (a
direct call to the extension, a call the agent dialled, an IVR's dial or
transfer to them) makes its agent "busy" (the ACD's `busy`: on a call, not
offered anyone) for as long as it lasts; when the agent's last such call
ends, the ACD's `call_ended` brings them back (no wrap-up: the call had no
queue).

An offer ringing the agent when such a call starts is pulled back (they
answered another call: not a miss) and the caller offered to someone else.
An agent who is not available when the call starts (in wrap-up, not ready)
is remembered: when they would become available while still on the call,
they are made busy instead (`settle`, after every change the service
carries out).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .acd import AcdError

if TYPE_CHECKING:
    from ..call.agent_calls import AgentOnCall
    from .acd_service import AcdService

log = logging.getLogger(__name__)


class AcdBusy:
    """The agents on calls outside the ACD; see the module's docstring."""

    def __init__(self, service: AcdService) -> None:
        self.service = service
        self.calls: dict[tuple[str, str], set[int]] = {}  # (tenant, agent) -> their calls
        self._settling = False

    def agent_call(self, event: AgentOnCall) -> None:
        """The call layer's word: `event.agent` is on call `event.call_id`, or no longer."""
        service, key = self.service, (event.tenant, event.agent)
        if event.tenant not in service.acds:
            return
        if event.on:
            if service.owns(event.tenant, event.call_id):
                return  # the ACD's own offer or callback, answered: the ACD knows
            if event.agent not in service.config.tenants[event.tenant].agents:
                return
            self.calls.setdefault(key, set()).add(event.call_id)
            self.settle()
            return
        calls = self.calls.get(key)
        if calls is None or event.call_id not in calls:
            return
        calls.discard(event.call_id)
        if calls:
            return
        del self.calls[key]
        record = service._agent(*key)
        if record is not None and record.status == "on-call" and not record.call_queue:
            try:
                service._carry(event.tenant, service.acds[event.tenant].call_ended(event.agent,
                               service.clock()))  # fmt: skip
            except AcdError as exc:
                log.warning("acd %s: agent %s's call ended: %s", event.tenant, event.agent, exc)

    def busy(self, tenant: str, agent: str) -> bool:
        """Whether the agent is on a call outside the ACD."""
        return bool(self.calls.get((tenant, agent)))

    def settle(self) -> None:
        """Make busy every agent on such a call who is available or being offered a caller."""
        if self._settling or not self.calls:
            return
        self._settling = True
        try:
            service = self.service
            for tenant, agent in list(self.calls):
                record = service._agent(tenant, agent)
                if record is not None and record.status in ("available", "reserved"):
                    service._carry(tenant, service.acds[tenant].busy(agent, service.clock()))
        finally:
            self._settling = False
