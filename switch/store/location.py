"""The location service: which contacts an address of record is reachable at.

One interface (`LocationStore`), two backends: `MemoryLocationStore` here (one
node, the default) and `RedisLocationStore` in `switch.store.redis_state`
(several nodes sharing one Redis).

An AOR is tenant-qualified: ``"<tenant>/<user>"``, e.g. ``"demo/1001"``; the
part before the first ``/`` names the tenant for `aors()`.

This is also how the ACD and the CTI side see an agent's devices: the
bindings of ``"<tenant>/<extension>"`` are its registered phones and
browsers, and every one listed is reachable as far as the node knows (a
device that stops answering qualify, or whose connection closes, is removed).

Time is always passed in (`now`, wall-clock epoch seconds, as `time.time()`
gives) so that expiry is testable with a fake clock; when it is optional it
defaults to `time.time()`. A binding whose `expires_at <= now` is gone: reads
never return it, writes prune it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .location_events import LocationEvents

__all__ = [
    "ALL",
    "Binding",
    "Change",
    "LocationStore",
    "MemoryLocationStore",
    "OutOfOrder",
    "sort_bindings",
    "tenant_of",
]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an AOR, and the flow that registered it."""

    aor: str  # address of record, tenant-qualified, e.g. "demo/1001"
    contact: str  # Contact URI as registered
    expires_at: float  # wall-clock epoch seconds
    call_id: str
    cseq: int
    q: float = 1.0
    instance: str | None = None  # +sip.instance (RFC 5626)
    reg_id: int | None = None  # reg-id (RFC 5626)
    path: tuple[str, ...] = ()  # Path header values (RFC 3327)
    transport: str = "udp"  # flow the REGISTER came on: udp/tcp/tls/ws/wss
    source: tuple[str, int] = ("", 0)  # its remote address (where to send: NAT)
    local: tuple[str, int] = ("", 0)
    conn_id: int | None = None
    node: str = ""  # node holding the flow (connection-oriented flows live on one node)
    user_agent: str = ""
    registered_at: float = 0.0

    @property
    def key(self) -> str:
        """The binding's identity within its AOR.

        With both +sip.instance and reg-id, the registrar keys on the pair
        (RFC 5626 §6): the same device re-registering over a new flow, with a
        new Contact, replaces its old binding. Otherwise the Contact URI is
        the key (RFC 3261 §10.3).
        """
        if self.instance is not None and self.reg_id is not None:
            return f"{self.instance}/{self.reg_id}"
        return self.contact


# An item of `apply()`: a Binding to put, or the key (str) of a binding to
# remove, or ALL to remove every binding of the AOR (REGISTER "Contact: *").
Change = Binding | str
ALL = "*"  # never a binding's key: a Contact URI has a scheme, an instance key a '/'


class OutOfOrder(Exception):
    """A REGISTER not newer than the one that made a binding it touches.

    RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher than the
    stored one; the update is aborted and nothing changes.
    """


def tenant_of(aor: str) -> str:
    """The tenant part of a tenant-qualified AOR ("" when it has none)."""
    tenant, slash, _ = aor.partition("/")
    return tenant if slash else ""


def _order(binding: Binding) -> tuple[float, float, str]:
    return (-binding.q, -binding.registered_at, binding.key)


def sort_bindings(bindings: Iterable[Binding]) -> list[Binding]:
    """Preferred first: q descending, then the most recently registered."""
    return sorted(bindings, key=_order)


@runtime_checkable
class LocationStore(Protocol):
    """Bindings of AORs; every backend behaves the same (tests run against each).

    `events`: the changes this store makes, told to subscribers (presence);
    see switch.store.location_events.
    """

    events: LocationEvents

    async def get(self, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings of `aor`, q descending then newest first."""
        ...

    async def put(self, binding: Binding, now: float | None = None) -> None:
        """Add a binding, replacing the one with the same key in its AOR."""
        ...

    async def remove(self, aor: str, key: str) -> None:
        """Remove one binding by key; no error when it is not there."""
        ...

    async def remove_all(self, aor: str) -> None:
        """Remove every binding of `aor` (REGISTER with Contact: * and Expires: 0)."""
        ...

    async def remove_flow(self, node: str, conn_id: int) -> list[Binding]:
        """Remove and return the bindings registered over a connection that has died.

        A binding that has since re-registered over another connection is kept.
        """
        ...

    async def count(self, now: float) -> int:
        """How many unexpired bindings there are, over all AORs."""
        ...

    async def aors(self, tenant: str, now: float | None = None) -> list[str]:
        """AORs of `tenant` that have at least one unexpired binding, sorted."""
        ...

    async def apply(
        self,
        aor: str,
        changes: Sequence[Change],
        now: float,
        *,
        order: tuple[str, int] | None = None,
        max_bindings: int | None = None,
    ) -> list[Binding]:
        """Apply puts (Binding) and removals (key, or ALL) to one AOR atomically.

        With `order` = (Call-ID, CSeq) of the REGISTER, raise OutOfOrder and
        change nothing when an unexpired binding that the changes touch (all
        of them for ALL) was made with that Call-ID and a CSeq at least as high.
        With `max_bindings`, the oldest bindings (by `registered_at`) beyond
        that many are removed afterwards, never one put by these changes: a
        new device makes room, as Asterisk's remove_existing does.

        Returns the AOR's unexpired bindings after the change, in `get()` order.
        This is the REGISTER hot path: one round trip on a shared backend.
        """
        ...

    async def close(self) -> None: ...


def check_changes(aor: str, changes: Sequence[Change]) -> None:
    """Refuse a put into another AOR: it would silently land in the wrong hash."""
    for change in changes:
        if isinstance(change, Binding):
            if change.aor != aor:
                raise ValueError(f"binding of {change.aor!r} given to apply() for {aor!r}")
        elif not isinstance(change, str):
            raise TypeError(f"a change is a Binding or a key (str), not {type(change).__name__}")


class MemoryLocationStore:
    """Bindings in dictionaries, for one node. Expiry is checked on read.

    Every method runs without awaiting, so each one is atomic on the event loop.
    Expired bindings are dropped when their AOR is written, and by a sweep of
    all AORs at most every `sweep_interval` seconds (so that a phone that went
    away for good does not stay in memory forever).
    """

    def __init__(self, sweep_interval: float = 30.0) -> None:
        from .location_events import LocationEvents  # (it imports Binding from here)

        self.events = LocationEvents()
        self._aors: dict[str, dict[str, Binding]] = {}
        # (node, conn_id) -> {(aor, key)}: which bindings a connection carries.
        self._flows: dict[tuple[str, int], set[tuple[str, str]]] = {}
        self._tenants: dict[str, set[str]] = {}
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0

    async def get(self, aor: str, now: float) -> list[Binding]:
        bindings = self._aors.get(aor)
        if not bindings:
            return []
        return sort_bindings(b for b in bindings.values() if b.expires_at > now)

    async def put(self, binding: Binding, now: float | None = None) -> None:
        now = time.time() if now is None else now
        live = self._apply(binding.aor, (binding,), now)
        self.events.changed(binding.aor, "register", live, now)

    async def remove(self, aor: str, key: str) -> None:
        bindings = self._aors.get(aor)
        if bindings is not None:
            self._drop(aor, bindings, key)
            if not bindings:
                self._forget(aor)
            self.events.changed(aor, "remove", bindings.values(), time.time())

    async def remove_all(self, aor: str) -> None:
        bindings = self._aors.get(aor)
        if bindings is not None:
            for key in list(bindings):
                self._drop(aor, bindings, key)
            self._forget(aor)
            self.events.changed(aor, "remove", (), time.time())

    async def remove_flow(self, node: str, conn_id: int) -> list[Binding]:
        removed: list[Binding] = []
        for aor, key in self._flows.pop((node, conn_id), ()):
            bindings = self._aors.get(aor)
            binding = bindings.get(key) if bindings else None
            if binding is None or binding.node != node or binding.conn_id != conn_id:
                continue
            del bindings[key]  # type: ignore[index]
            removed.append(binding)
            if not bindings:
                self._forget(aor)
        now = time.time()
        for aor in dict.fromkeys(b.aor for b in removed):
            self.events.changed(aor, "flow-closed", self._aors.get(aor, {}).values(), now)
        return sort_bindings(removed)

    async def count(self, now: float) -> int:
        return sum(
            1
            for bindings in self._aors.values()
            for binding in bindings.values()
            if binding.expires_at > now
        )

    async def aors(self, tenant: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return sorted(
            aor
            for aor in self._tenants.get(tenant, ())
            if any(b.expires_at > now for b in self._aors.get(aor, {}).values())
        )

    async def apply(
        self,
        aor: str,
        changes: Sequence[Change],
        now: float,
        *,
        order: tuple[str, int] | None = None,
        max_bindings: int | None = None,
    ) -> list[Binding]:
        check_changes(aor, changes)
        if order is not None:
            self._check_order(aor, changes, now, order)
        live = self._apply(aor, changes, now, max_bindings)
        self.events.changed(aor, "register", live, now)
        return live

    async def close(self) -> None:
        self.events.close()

    # -- internals (synchronous, hence atomic) ---------------------------------

    def _check_order(
        self, aor: str, changes: Sequence[Change], now: float, order: tuple[str, int]
    ) -> None:
        bindings = self._aors.get(aor)
        if not bindings:
            return
        call_id, cseq = order
        keys = [c if isinstance(c, str) else c.key for c in changes]
        touched = bindings.values() if ALL in keys else [bindings.get(k) for k in keys]
        for b in touched:
            if b is not None and b.expires_at > now and b.call_id == call_id and cseq <= b.cseq:
                raise OutOfOrder(f"{aor}: CSeq {cseq} is not above {b.cseq} of {b.key}")

    def _apply(
        self,
        aor: str,
        changes: Iterable[Change],
        now: float,
        max_bindings: int | None = None,
    ) -> list[Binding]:
        if now >= self._next_sweep:
            self._sweep(now)
        bindings = self._aors.setdefault(aor, {})
        new: set[str] = set()
        for change in changes:
            if isinstance(change, str):
                for key in list(bindings) if change == ALL else (change,):
                    self._drop(aor, bindings, key)
                continue
            new.add(change.key)
            key = change.key
            self._drop(aor, bindings, key)
            bindings[key] = change
            if change.conn_id is not None:
                self._flows.setdefault((change.node, change.conn_id), set()).add((aor, key))
        self._prune(aor, bindings, now)
        if max_bindings is not None and len(bindings) > max_bindings:
            oldest = sorted(
                (b for b in bindings.values() if b.key not in new),
                key=lambda b: b.registered_at,
            )
            for b in oldest[: len(bindings) - max_bindings]:
                self._drop(aor, bindings, b.key)
        if not bindings:
            self._forget(aor)
            return []
        self._tenants.setdefault(tenant_of(aor), set()).add(aor)
        return sort_bindings(bindings.values())

    def _drop(self, aor: str, bindings: dict[str, Binding], key: str) -> None:
        old = bindings.pop(key, None)
        if old is not None and old.conn_id is not None:
            flow = self._flows.get((old.node, old.conn_id))
            if flow is not None:
                flow.discard((aor, key))
                if not flow:
                    del self._flows[(old.node, old.conn_id)]

    def _prune(self, aor: str, bindings: dict[str, Binding], now: float) -> None:
        for key in [k for k, b in bindings.items() if b.expires_at <= now]:
            self._drop(aor, bindings, key)

    def _forget(self, aor: str) -> None:
        self._aors.pop(aor, None)
        aors = self._tenants.get(tenant_of(aor))
        if aors is not None:
            aors.discard(aor)
            if not aors:
                del self._tenants[tenant_of(aor)]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_interval
        for aor, bindings in list(self._aors.items()):
            self._prune(aor, bindings, now)
            if not bindings:
                self._forget(aor)
