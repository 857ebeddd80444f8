"""Binding changes, told to whoever watches them: presence by events, not polling.

A location store (memory or Redis) owns one `LocationEvents` and calls
`changed(aor, cause, bindings, now)` after every write it makes: a REGISTER
(`apply`, `put`), a removal (`remove`, `remove_all`), a connection that died
(`remove_flow`). A subscriber (the ACD's presence) names the AORs it wants
(`wants(aor)`, its agents) and hears `BindingsChanged` for those only, with
the AOR's unexpired bindings after the change: it diffs them itself.

Expiry is the change nobody writes: a phone that stops refreshing. For the
AORs watched, the bindings last told are kept with a heap of their expiry
times, and one timer is armed on the earliest: when it fires, what lapsed is
told as "expired" with what remains. No store read, no scan of every agent.
AORs nobody watches cost one predicate call per write.

Reads and writes stay the store's business; this module only remembers the
bindings of watched AORs as the store reported them.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .location import Binding, sort_bindings

__all__ = ["CAUSES", "BindingsChanged", "Listener", "LocationEvents"]

log = logging.getLogger(__name__)

# Why an AOR's bindings changed: a REGISTER (or a put), a removal by key or
# of all, the connection that carried them closed, their time ran out, or a
# subscriber's first read (`seed`).
CAUSES = ("register", "remove", "flow-closed", "expired", "read")


@dataclass(frozen=True, slots=True)
class BindingsChanged:
    """The bindings of `aor` changed (`cause`, one of CAUSES); `bindings` are
    its unexpired bindings now, preferred first (empty: none is left)."""

    aor: str
    cause: str
    bindings: tuple[Binding, ...]
    at: float  # epoch seconds

    @property
    def contacts(self) -> list[str]:
        return sorted(b.contact for b in self.bindings)


Listener = Callable[[BindingsChanged], None]


class LocationEvents:
    """Subscribers and the expiry timer of one location store; see the module's docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        on_subscribe: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        # Called at each subscribe (a shared store starts hearing other nodes then).
        self.on_subscribe = on_subscribe
        self._subs: list[tuple[Callable[[str], bool], Listener]] = []
        self._live: dict[str, dict[str, Binding]] = {}  # watched AOR -> key -> binding
        self._expiries: list[tuple[float, str, str]] = []  # heap of (expires_at, aor, key)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def subscribe(
        self, listener: Listener, wants: Callable[[str], bool] = lambda aor: True
    ) -> Callable[[], None]:
        """Tell `listener` the changes of every AOR `wants` accepts; returns the unsubscribe."""
        entry = (wants, listener)
        self._subs.append(entry)
        if self.on_subscribe is not None:
            self.on_subscribe()

        def unsubscribe() -> None:
            if entry in self._subs:
                self._subs.remove(entry)
            if not self._subs:
                self._live.clear()
                self._expiries.clear()
                self._disarm()

        return unsubscribe

    def watched(self, aor: str) -> bool:
        """Whether a subscriber wants `aor` (the store reads back only for those)."""
        return any(wants(aor) for wants, _ in self._subs)

    def changed(self, aor: str, cause: str, bindings: Iterable[Binding], now: float) -> None:
        """The store changed `aor`; `bindings`: all of its bindings after the change."""
        if not self._subs or not self.watched(aor):
            return
        live = [b for b in bindings if b.expires_at > now]
        if live:
            self._live[aor] = {b.key: b for b in live}
            for b in live:
                heapq.heappush(self._expiries, (b.expires_at, aor, b.key))
        else:
            self._live.pop(aor, None)
        self._tell(BindingsChanged(aor, cause, tuple(sort_bindings(live)), now))
        self._arm()

    def seed(self, aor: str, bindings: Iterable[Binding], now: float) -> None:
        """A subscriber read `aor` itself (at its start): watch its bindings' expiry."""
        self.changed(aor, "read", bindings, now)

    def next_expiry(self) -> float | None:
        """When the earliest binding watched lapses (stale heap entries dropped first)."""
        while self._expiries:
            at, aor, key = self._expiries[0]
            current = self._live.get(aor, {}).get(key)
            if current is not None and current.expires_at == at:
                return at
            heapq.heappop(self._expiries)  # refreshed or removed since
        return None

    def expire(self, now: float) -> list[BindingsChanged]:
        """Tell the AORs whose bindings lapsed by `now`; what was told."""
        lapsed: dict[str, None] = {}
        while (at := self.next_expiry()) is not None and at <= now:
            _, aor, key = heapq.heappop(self._expiries)
            bindings = self._live[aor]
            del bindings[key]
            if not bindings:
                del self._live[aor]
            lapsed[aor] = None
        told = []
        for aor in lapsed:
            left = self._live.get(aor, {}).values()
            event = BindingsChanged(aor, "expired", tuple(sort_bindings(left)), now)
            self._tell(event)
            told.append(event)
        return told

    def close(self) -> None:
        self._disarm()

    # -- internals -------------------------------------------------------------

    def _tell(self, event: BindingsChanged) -> None:
        for wants, listener in list(self._subs):
            if not wants(event.aor):
                continue
            try:
                listener(event)
            except Exception:  # one subscriber's bug must not stop the store's write
                log.exception("binding change of %s: a subscriber failed", event.aor)

    def _arm(self) -> None:
        at = self.next_expiry()
        if at is None:
            self._disarm()
            return
        if at >= self._timer_at and self._timer is not None:
            return  # armed earlier already; it re-arms for the rest when it fires
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous test): expire() is called by hand
        self._disarm()
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - self.clock()), self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = float("inf")

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        # The loop's clock and the wall clock drift apart a little: a binding
        # is gone once the wall clock says so, never earlier.
        self.expire(self.clock())
        self._arm()
