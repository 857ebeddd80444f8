"""A real redis-server for the store tests, and the backends to run each test on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from switch.store.bans import BanStore, MemoryBanStore
from switch.store.location import LocationStore, MemoryLocationStore
from switch.store.redis_state import RedisBanStore, RedisLocationStore


class _Clients:
    """Clients of the test Redis, each one standing for a node; closed by the fixture."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[Redis] = []

    def __call__(self) -> Redis:
        client = Redis.from_url(self.url, decode_responses=True)
        self.made.append(client)
        return client

    async def close(self) -> None:
        for client in self.made:
            await client.aclose()


@pytest.fixture
async def redis_clients(redis_url: str) -> AsyncIterator[Callable[[], Redis]]:
    """Makes clients of the test Redis (one per 'node'); closes them after."""
    clients = _Clients(redis_url)
    yield clients
    await clients.close()


@pytest.fixture
def prefix() -> str:
    # One session-wide server: a fresh prefix per test keeps tests apart.
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["memory", "redis"])
async def new_locations(
    request: pytest.FixtureRequest, prefix: str
) -> AsyncIterator[Callable[[], LocationStore]]:
    """Makes location stores as separate nodes would see them.

    memory: every call returns the same store (one process, one memory);
    redis: every call returns a store on a client of its own, sharing the server.
    """
    if request.param == "memory":
        store = MemoryLocationStore()
        yield lambda: store
        return
    # getfixturevalue only here, so that the memory runs need no redis-server.
    clients = _Clients(request.getfixturevalue("redis_url"))
    yield lambda: RedisLocationStore(clients(), prefix)
    await clients.close()


@pytest.fixture(params=["memory", "redis"])
async def new_bans(
    request: pytest.FixtureRequest, prefix: str
) -> AsyncIterator[Callable[..., BanStore]]:
    """Makes ban stores (keywords: threshold, window, ban_time), as new_locations does."""
    if request.param == "memory":
        stores: dict[tuple, MemoryBanStore] = {}

        def memory(**params: float) -> BanStore:
            key = tuple(sorted(params.items()))
            return stores.setdefault(key, MemoryBanStore(**params))  # type: ignore[arg-type]

        yield memory
        return
    clients = _Clients(request.getfixturevalue("redis_url"))
    yield lambda **params: RedisBanStore(clients(), prefix=prefix, **params)  # type: ignore[arg-type]
    await clients.close()
