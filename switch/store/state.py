"""Open the live-state backend a node is configured with (`[state]` in the config).

    state = await open_state(cfg.state.backend, cfg.state.redis_url, cfg.node.name)
    ... state.locations, state.bans ...
    await state.close()

"memory" keeps everything in this process; "redis" shares it with every node
using the same Redis, so a binding or a ban made on one node holds on all.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from switch.store.bans import (
    DEFAULT_BAN_TIME,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    BanStore,
    MemoryBanStore,
)
from switch.store.location import LocationStore, MemoryLocationStore
from switch.store.redis_state import DEFAULT_PREFIX, RedisBanStore, RedisLocationStore

__all__ = ["BACKENDS", "State", "StateError", "open_state"]

BACKENDS = ("memory", "redis")


class StateError(Exception):
    """The state backend cannot be opened; the message says why, in one line."""


@dataclass
class State:
    backend: str
    node_id: str
    locations: LocationStore
    bans: BanStore
    _redis: Redis | None = field(default=None, repr=False)
    _secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    prefix: str = DEFAULT_PREFIX

    async def shared_secret(self, name: str) -> bytes:
        """A random secret that every node sharing this state agrees on.

        Digest nonces are signed with it, so that a nonce issued by one node
        verifies on another. The first node to ask creates it.
        """
        if name not in self._secrets:
            if self._redis is None:
                self._secrets[name] = secrets.token_bytes(32)
            else:
                key = f"{self.prefix}secret:{name}"
                await self._redis.set(key, secrets.token_hex(32), nx=True)
                self._secrets[name] = bytes.fromhex(await self._redis.get(key))
        return self._secrets[name]

    async def close(self) -> None:
        await self.locations.close()
        await self.bans.close()
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()


def redact(url: str) -> str:
    """The URL without its password, fit for a log line or an error message."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


async def open_state(
    backend: str,
    redis_url: str = "",
    node_id: str = "",
    *,
    ban_threshold: int = DEFAULT_THRESHOLD,
    ban_window: float = DEFAULT_WINDOW,
    ban_time: float = DEFAULT_BAN_TIME,
    prefix: str = DEFAULT_PREFIX,
    connect_timeout: float = 5.0,
    max_connections: int = 64,
) -> State:
    """The state of one node. For "redis", fails fast (StateError) if Redis does not answer."""
    if backend == "memory":
        return State(
            backend,
            node_id,
            MemoryLocationStore(),
            MemoryBanStore(ban_threshold, ban_window, ban_time),
        )
    if backend != "redis":
        raise StateError(f"unknown state backend {backend!r} (expected one of {BACKENDS})")
    if not redis_url:
        raise StateError('state.redis_url is required when state.backend = "redis"')
    try:
        # A blocking pool: under a burst of REGISTERs, callers wait for a free
        # connection instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=connect_timeout,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
        )
    except ValueError as exc:
        raise StateError(f"state.redis_url {redact(redis_url)!r}: {exc}") from None
    client = Redis.from_pool(pool)  # the client owns the pool: aclose() closes both
    try:
        # Find out now, with a clear message, rather than on the first REGISTER.
        await asyncio.wait_for(client.ping(), connect_timeout)
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        reason = str(exc) or type(exc).__name__
        raise StateError(f"cannot reach Redis at {redact(redis_url)}: {reason}") from None
    return State(
        backend,
        node_id,
        RedisLocationStore(client, prefix),
        RedisBanStore(client, ban_threshold, ban_window, ban_time, prefix=prefix),
        client,
        prefix=prefix,
    )
