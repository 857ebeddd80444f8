"""Bans of source addresses that fail authentication too often.

After `threshold` failed authentications from one address within `window`
seconds, the address is banned for `ban_time` seconds and the transport drops
its requests. The window slides: a failure counts for `window` seconds after
it happened.

One interface (`BanStore`), two backends: `MemoryBanStore` here and
`RedisBanStore` in `switch.store.redis_state`, which every node of a cluster
shares so that an address banned by one node is dropped by all.

`is_banned()` is called for every packet, so it must stay cheap: a dictionary
lookup here, a short-lived local cache in front of Redis there. Times are
wall-clock epoch seconds passed in as `now`.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_BAN_TIME", "DEFAULT_THRESHOLD", "DEFAULT_WINDOW", "BanStore", "MemoryBanStore"]

DEFAULT_THRESHOLD = 10
DEFAULT_WINDOW = 60.0
DEFAULT_BAN_TIME = 600.0


@runtime_checkable
class BanStore(Protocol):
    threshold: int  # failures within `window` seconds that earn a ban
    window: float
    ban_time: float  # seconds a ban lasts

    async def failure(self, ip: str, now: float) -> bool:
        """Record a failed authentication from `ip`.

        True when this failure crossed the threshold and `ip` is now banned
        (so the caller logs the ban once); False otherwise, including when
        `ip` was already banned.
        """
        ...

    async def is_banned(self, ip: str, now: float) -> bool:
        """True while `ip` is banned. Cheap: called for every packet."""
        ...

    async def ban(self, ip: str, seconds: float, now: float) -> None:
        """Ban `ip` until `now + seconds` (an operator's ban, or a longer one)."""
        ...

    async def unban(self, ip: str) -> None:
        """Lift a ban and forget the address's recent failures."""
        ...

    async def bans(self, now: float) -> dict[str, float]:
        """Banned addresses and when each ban ends (epoch seconds)."""
        ...

    async def close(self) -> None: ...


def check_params(threshold: int, window: float, ban_time: float) -> None:
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, not {threshold}")
    if window <= 0 or ban_time <= 0:
        raise ValueError(f"window and ban_time must be positive, not {window} and {ban_time}")


class MemoryBanStore:
    """Bans for one node: dictionaries, expiry checked on read."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        window: float = DEFAULT_WINDOW,
        ban_time: float = DEFAULT_BAN_TIME,
    ) -> None:
        check_params(threshold, window, ban_time)
        self.threshold = threshold
        self.window = window
        self.ban_time = ban_time
        self._failures: dict[str, deque[float]] = {}
        self._bans: dict[str, float] = {}  # ip -> until
        self._next_sweep = 0.0

    async def failure(self, ip: str, now: float) -> bool:
        if self._banned(ip, now):
            return False
        if now >= self._next_sweep:
            self._sweep(now)
        times = self._failures.setdefault(ip, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        if len(times) < self.threshold:
            return False
        del self._failures[ip]
        self._bans[ip] = now + self.ban_time
        return True

    async def is_banned(self, ip: str, now: float) -> bool:
        return self._banned(ip, now)

    async def ban(self, ip: str, seconds: float, now: float) -> None:
        self._failures.pop(ip, None)
        self._bans[ip] = now + seconds

    async def unban(self, ip: str) -> None:
        self._bans.pop(ip, None)
        self._failures.pop(ip, None)

    async def bans(self, now: float) -> dict[str, float]:
        return {ip: until for ip, until in self._bans.items() if until > now}

    async def close(self) -> None:
        pass

    def _banned(self, ip: str, now: float) -> bool:
        until = self._bans.get(ip)
        if until is None:
            return False
        if until > now:
            return True
        del self._bans[ip]
        return False

    def _sweep(self, now: float) -> None:
        # A scan from many addresses leaves one deque per address: drop the stale
        # ones once per window so that memory follows the attack, not its history.
        self._next_sweep = now + self.window
        horizon = now - self.window
        for ip in [ip for ip, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[ip]
        for ip in [ip for ip, until in self._bans.items() if until <= now]:
            del self._bans[ip]
