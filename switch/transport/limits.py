"""Per-source limits: open connections and request rate, by source IP address.

A node under a flood from one address must keep serving everyone else, so
excess connections are refused and excess requests dropped (and counted) at
the transport, before any parsing. The clock is injected so tests need not
sleep.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

__all__ = ["Limits"]


class Limits:
    """Connection counts and token buckets per source IP.

    `max_requests_per_second_per_source=0` means unlimited. `burst` is the
    bucket size (requests allowed at once after a quiet period); by default
    one second's worth. At most `max_sources` buckets are kept: a bucket that
    has refilled is the same as a new one and is forgotten first, and past
    the bound the least recently seen source is forgotten.
    """

    def __init__(
        self,
        max_connections_per_source: int = 100,
        max_requests_per_second_per_source: float = 0,
        burst: float | None = None,
        *,
        max_sources: int = 100_000,
        exempt: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections_per_source = max_connections_per_source
        self.rate = float(max_requests_per_second_per_source)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self.max_sources = max_sources
        self.exempt = frozenset(exempt)  # e.g. trunk addresses that legitimately send a lot
        self.clock = clock
        self._connections: dict[str, int] = {}
        # ip -> (tokens, time of last update); ordered by last use.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    # -- connections -------------------------------------------------------------

    def connection_opened(self, ip: str) -> bool:
        """Count a new connection from `ip`; False (and not counted) if over the limit."""
        n = self._connections.get(ip, 0)
        if n >= self.max_connections_per_source and ip not in self.exempt:
            return False
        self._connections[ip] = n + 1
        return True

    def connection_closed(self, ip: str) -> None:
        n = self._connections.get(ip, 0) - 1
        if n > 0:
            self._connections[ip] = n
        else:
            self._connections.pop(ip, None)

    def connections(self, ip: str) -> int:
        return self._connections.get(ip, 0)

    # -- request rate --------------------------------------------------------------

    def allow_request(self, ip: str) -> bool:
        """Take a token from `ip`'s bucket; False if it is empty (drop the request)."""
        if self.rate <= 0 or ip in self.exempt:
            return True
        now = self.clock()
        buckets = self._buckets
        entry = buckets.get(ip)
        if entry is None:
            self._make_room(now)
            tokens = self.burst
        else:
            tokens, last = entry
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            buckets.move_to_end(ip)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        buckets[ip] = (tokens, now)
        return allowed

    @property
    def tracked_sources(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        # Forget a few of the least recently seen sources whose bucket is full
        # again: amortised cleanup, O(1) per new source.
        for _ in range(2):
            if not buckets:
                return
            ip, (tokens, last) = next(iter(buckets.items()))
            if tokens + (now - last) * self.rate < self.burst:
                break
            del buckets[ip]
        while len(buckets) >= self.max_sources:
            buckets.popitem(last=False)
