"""Bans after repeated failed authentications: the same tests on memory and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from switch.store.bans import BanStore, MemoryBanStore
from switch.store.redis_state import RedisBanStore

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
IP = "198.51.100.23"

NewBans = Callable[..., BanStore]


async def test_defaults() -> None:
    store = MemoryBanStore()
    assert (store.threshold, store.window, store.ban_time) == (10, 60, 600)
    for i in range(9):
        assert not await store.failure(IP, NOW + i)
    assert await store.failure(IP, NOW + 9)


async def test_ban_at_threshold_within_window(new_bans: NewBans) -> None:
    store = new_bans(threshold=3, window=60, ban_time=600)
    assert not await store.failure(IP, NOW)
    assert not await store.failure(IP, NOW + 1)
    assert not await store.is_banned(IP, NOW + 1)
    assert await store.failure(IP, NOW + 2)  # the third: crosses the threshold
    assert await store.is_banned(IP, NOW + 2)
    assert not await store.failure(IP, NOW + 3)  # already banned: reported once
    assert not await store.is_banned("198.51.100.24", NOW + 3)
    assert await store.bans(NOW + 3) == {IP: NOW + 2 + 600}


async def test_window_slides(new_bans: NewBans) -> None:
    store = new_bans(threshold=3, window=60, ban_time=600)
    assert not await store.failure(IP, NOW)
    assert not await store.failure(IP, NOW + 30)
    assert not await store.failure(IP, NOW + 60)  # the first has left the window
    assert not await store.is_banned(IP, NOW + 60)
    assert await store.failure(IP, NOW + 61)  # NOW+30, +60, +61
    assert await store.is_banned(IP, NOW + 61)


async def test_ban_expires(new_bans: NewBans) -> None:
    store = new_bans(threshold=1, window=60, ban_time=600)
    assert await store.failure(IP, NOW)
    assert await store.is_banned(IP, NOW + 599)
    assert not await store.is_banned(IP, NOW + 600)
    assert await store.bans(NOW + 600) == {}
    # The count starts again from nothing after a ban.
    assert await store.failure(IP, NOW + 601)


async def test_ban_and_unban(new_bans: NewBans) -> None:
    store = new_bans(threshold=2, window=60, ban_time=600)
    await store.ban(IP, 3600, NOW)
    assert await store.is_banned(IP, NOW + 3599)
    assert await store.bans(NOW) == {IP: NOW + 3600}
    await store.unban(IP)
    assert not await store.is_banned(IP, NOW + 1)
    assert await store.bans(NOW + 1) == {}
    assert not await store.failure(IP, NOW + 2)
    await store.unban("192.0.2.200")  # not banned: not an error


async def test_unban_forgets_failures(new_bans: NewBans) -> None:
    store = new_bans(threshold=2, window=60, ban_time=600)
    assert not await store.failure(IP, NOW)
    await store.unban(IP)
    assert not await store.failure(IP, NOW + 1)


async def test_nodes_share_failures_and_bans(new_bans: NewBans) -> None:
    node_a = new_bans(threshold=4, window=60, ban_time=600)
    node_b = new_bans(threshold=4, window=60, ban_time=600)
    assert not await node_a.failure(IP, NOW)
    assert not await node_b.failure(IP, NOW)  # same instant, another node: counted too
    assert not await node_a.failure(IP, NOW + 1)
    assert await node_b.failure(IP, NOW + 2)
    assert await node_a.is_banned(IP, NOW + 3)
    assert await node_b.is_banned(IP, NOW + 3)
    assert await node_a.bans(NOW + 3) == {IP: NOW + 602}


async def test_rejects_bad_params() -> None:
    with pytest.raises(ValueError):
        MemoryBanStore(threshold=0)
    with pytest.raises(ValueError):
        MemoryBanStore(window=0)


# --- Redis specifics -------------------------------------------------------------


async def test_redis_is_banned_is_cached(
    redis_clients: Callable[[], Redis], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_a = RedisBanStore(redis_clients(), prefix=prefix)
    client_b = redis_clients()
    node_b = RedisBanStore(client_b, prefix=prefix, cache_ttl=1.0)
    gets: list[str] = []
    real_get = client_b.get

    async def counting_get(key: str) -> object:
        gets.append(key)
        return await real_get(key)

    monkeypatch.setattr(client_b, "get", counting_get)

    # A flood: concurrent packets share one lookup, later ones use the cache.
    assert not any(await asyncio.gather(*(node_b.is_banned(IP, NOW) for _ in range(100))))
    for i in range(100):
        assert not await node_b.is_banned(IP, NOW + i / 200)
    assert len(gets) == 1

    await node_a.ban(IP, 600, NOW)
    assert not await node_b.is_banned(IP, NOW + 0.9)  # still the cached answer
    assert await node_b.is_banned(IP, NOW + 1.0)  # cache expired: asked Redis again
    assert len(gets) == 2
    assert await node_a.is_banned(IP, NOW)  # the banning node knows at once


async def test_redis_keys_have_ttls(redis_clients: Callable[[], Redis], prefix: str) -> None:
    client = redis_clients()
    store = RedisBanStore(client, threshold=2, window=60, ban_time=600, prefix=prefix)
    await store.failure(IP, NOW)
    assert 59_000 < await client.pttl(f"{prefix}authfail:{IP}") <= 60_000
    await store.failure(IP, NOW)
    assert 599_000 < await client.pttl(store.ban_key(IP)) <= 600_000
    assert await client.exists(f"{prefix}authfail:{IP}") == 0
