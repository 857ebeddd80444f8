"""`[state] backend = "redis"`: the node's ACD service keeps its records in Redis, shared."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from switch.apps.acd_service import AcdService
from switch.config import Config, demo_config_text, load_config
from switch.store.acd_redis import RedisAcdStore
from switch.store.location import MemoryLocationStore


def config(tmp_path: Path, node: str, redis_url: str, prefix: str) -> Config:
    text = demo_config_text()
    for old, new in {
        '# name = "node1"': f'name = "{node}"',
        'backend = "memory"        #': 'backend = "redis"        #',
        '# redis_url = "redis://127.0.0.1:6379/0"': f'redis_url = "{redis_url}"',
        '# key_prefix = "switch:"': f'key_prefix = "{prefix}"',
    }.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / f"{node}.toml"
    path.write_text(text)
    return load_config(path)


async def test_two_nodes_services_share_their_agents_through_redis(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    locations = MemoryLocationStore()  # shared, as Redis's would be
    one = AcdService(config(tmp_path, "n1", redis_url, prefix), locations)
    two = AcdService(config(tmp_path, "n2", redis_url, prefix), locations)
    try:
        (tenant,) = one.acds
        store = one.acds[tenant].store
        assert isinstance(store, RedisAcdStore) and store.node == "n1"
        agent = next(iter(one.config.tenants[tenant].agents))
        await one.start()  # logs the configured agents in (no device: disconnected)
        await two.start()  # finds them logged in already, and leaves them so
        assert two.acds[tenant].agent(agent).reason == "disconnected"
        # Not ready for a break, then "disconnected" again at once (no device),
        # to come back to the break when a device registers.
        one.set_not_ready(tenant, agent, "break")
        assert one.acds[tenant].agent(agent).resume == ("not-ready", "break")
        # n2 is told by its store's thread and takes the change in on its
        # event loop, with no input of its own.
        deadline = time.monotonic() + 5
        while two.acds[tenant].agent(agent).resume != ("not-ready", "break"):
            assert time.monotonic() < deadline, two.acds[tenant].agent(agent)
            await asyncio.sleep(0.01)
    finally:
        await one.stop()
        await two.stop()
    assert not store._thread.is_alive()  # stop() closed it


async def test_the_memory_backend_builds_no_redis_store(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(demo_config_text())
    service = AcdService(load_config(path), MemoryLocationStore())
    assert service._stores == []
    assert all(not isinstance(acd.store, RedisAcdStore) for acd in service.acds.values())
    assert service.configure(service.config) == []  # built whole: a reload finds its music
