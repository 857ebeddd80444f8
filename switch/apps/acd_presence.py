"""The ACD's presence: an agent's devices follow their registrations, by events.

The location store tells its binding changes (switch.store.location_events);
`AcdPresence` subscribes for the AORs of the ACD's agents and hands every
change to `AcdService.seen`, which tells the ACD the devices that came
(`device_up`) or went (`device_down`: none left -> not ready "disconnected",
an offer ringing the agent pulled back at once). So:

- a REGISTER: told synchronously from the store's write, before the 200 OK;
- a browser's WebSocket (or a TCP/TLS connection) that closes: the node
  removes the bindings of that flow (RFC 5626: a binding whose flow failed
  is not used) and the store tells it;
- a registration nobody refreshed: told when it lapses, by the store's timer
  on the earliest expiry (no polling, no read of every agent).

At the start each agent's bindings are read once (`read`), which also puts
their expiry under the store's timer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store.location_events import BindingsChanged

if TYPE_CHECKING:
    from ..store.location import LocationStore
    from .acd_service import AcdService


class AcdPresence:
    """Subscribes the service to its agents' binding changes; see the module's docstring."""

    def __init__(self, service: AcdService, locations: LocationStore) -> None:
        self.service = service
        self.locations = locations
        self.changes = 0  # binding changes told to the ACD (for tests and metrics)
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.locations.events.subscribe(self._changed, self.is_agent)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def is_agent(self, aor: str) -> bool:
        """Whether `aor` ("tenant/ext") is an agent of a tenant with queues."""
        tenant, _, ext = aor.partition("/")
        if tenant not in self.service.acds:
            return False
        config = self.service.config.tenants.get(tenant)
        return config is not None and ext in config.agents

    async def read(self, tenant: str, ext: str, now: float | None = None) -> list[str]:
        """Agent `ext`'s registered contacts now, from the store; their expiry is watched."""
        now = time.time() if now is None else now
        aor = f"{tenant}/{ext}"
        bindings = await self.locations.get(aor, now)
        if self._unsubscribe is not None:
            self.locations.events.seed(aor, bindings, now)
        return sorted(b.contact for b in bindings)

    def _changed(self, event: BindingsChanged) -> None:
        tenant, _, ext = event.aor.partition("/")
        self.changes += 1
        self.service.seen(tenant, ext, event.contacts)
