"""Where each trunk that registers to us (`inbound_register`) can be reached now.

The registrar tells us every change of a trunk's bindings (`learn`, from its
`on_registered`); routing asks for the freshest one that has not expired.
Routing is synchronous, so this is a copy in memory of what the location
store holds: with several nodes, a trunk is reachable for outbound calls
from the node it registered on (as its flow, for TCP, is).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.location import Binding
from .accounts import Accounts


class TrunkContacts:
    def __init__(self, accounts: Accounts) -> None:
        self._trunks = {
            f"{tenant}/{username}": (tenant, trunk)
            for (tenant, username), trunk in accounts.trunk_accounts.items()
        }
        self._bindings: dict[tuple[str, str], list[Binding]] = {}

    def learn(self, aor: str, bindings: list[Binding]) -> None:
        """After a REGISTER: `bindings` are all the AOR's bindings now."""
        key = self._trunks.get(aor)
        if key is not None:
            self._bindings[key] = list(bindings)

    def forget(self, removed: Iterable[Binding]) -> None:
        """Bindings gone without a REGISTER (their connection closed)."""
        for gone in removed:
            key = self._trunks.get(gone.aor)
            if key is not None:
                kept = [b for b in self._bindings.get(key, ()) if b.key != gone.key]
                self._bindings[key] = kept

    def binding(self, tenant: str, trunk: str, now: float) -> Binding | None:
        """The trunk's most recent live binding, or None when it is not registered."""
        live = [b for b in self._bindings.get((tenant, trunk), ()) if b.expires_at > now]
        return max(live, key=lambda b: b.registered_at, default=None)
