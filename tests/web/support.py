"""A web API over a real AcdService with two tenants, for the API and CTI tests.

Callers are put in queues through AcdService.enqueue with small stand-ins
for the call and its channel (the call layer is exercised by the live-node
test, tests/integration/test_api_node.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from switch.apps.acd_service import AcdService
from switch.apps.queueing import EnqueueRequest
from switch.call.app import NotConnected, Party
from switch.config import Config, load_config
from switch.store.location import Binding, MemoryLocationStore
from switch.web.api import Api
from switch.web.app import make_app

API_KEY = "acme-crm-key-0123456789abcdef"
CONFIG = f"""
[http]
jwt_secret = "0123456789abcdef0123456789abcdef-test"

[tenants.acme]
domains = ["acme.test"]
[tenants.acme.acd]
not_ready_reasons = ["break", "lunch"]
[tenants.acme.queues.support]
[tenants.acme.queues.sales]
[tenants.acme.agents."1001"]
name = "Alice"
password = "alice-pw"
queues = ["support"]
[tenants.acme.agents."1002"]
name = "Bob"
password = "bob-pw"
queues = ["support", "sales"]
[tenants.acme.agents."1003"]
name = "Cleo"
password = "cleo-pw"
queues = ["sales"]
[tenants.acme.users.sup]
password = "sup-pw"
role = "supervisor"
[tenants.acme.users.boss]
password = "boss-pw"
role = "admin"
[tenants.acme.users.op]
password = "op-pw"
role = "operator"
[tenants.acme.api_keys.crm]
key = "{API_KEY}"
role = "supervisor"

[tenants.other]
domains = ["other.test"]
[tenants.other.queues.help]
[tenants.other.agents."1001"]
name = "Olga"
password = "olga-pw"
queues = ["help"]
[tenants.other.agents."2001"]
name = "Oscar"
password = "oscar-pw"
queues = ["help"]
[tenants.other.users.sup]
password = "other-sup-pw"
role = "supervisor"
"""

_ids = itertools.count(9000)


def make_config(tmp_path: Path, text: str = CONFIG) -> Config:
    path = tmp_path / "api.toml"
    path.write_text(text)
    return load_config(path)


class FakeChannel:
    rate = 8000
    closed = False

    def play(self, player: Any) -> asyncio.Future[str]:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        return done

    def stop(self) -> None:
        pass


@dataclass(eq=False)
class FakeCall:
    """What AcdService.enqueue reads of a call; an offer rings out (no agent answers)."""

    number: str
    tenant: str
    call_id: int = field(default_factory=lambda: next(_ids))
    did: str = "+15550100"
    connected: Any = None
    ended: bool = False
    variables: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.caller = Party(self.number, "Customer", self.tenant)
        self._end = asyncio.get_running_loop().create_future()

    async def wait_ended(self) -> str:
        return await asyncio.shield(self._end)

    async def connect(self, targets: list[str], timeout: float, **_: Any) -> NotConnected:
        await asyncio.sleep(timeout)
        return NotConnected(480, "no answer")

    def hang_up(self) -> None:
        self.ended = True
        if not self._end.done():
            self._end.set_result("caller")


@dataclass
class Harness:
    config: Config
    locations: MemoryLocationStore
    service: AcdService
    api: Api
    client: TestClient
    callers: list[tuple[FakeCall, asyncio.Task[Any]]] = field(default_factory=list)

    async def register(self, tenant: str, ext: str) -> None:
        """Agent `ext` has a registered device: they become available."""
        now = time.time()
        await self.locations.put(
            Binding(f"{tenant}/{ext}", f"sip:{ext}@127.0.0.1:5999", now + 3600, f"c{ext}", 1),
            now,
        )
        await self.service.refresh(tenant, ext)

    async def enqueue(self, tenant: str, queue: str, number: str, **variables: Any) -> FakeCall:
        call = FakeCall(number, tenant, variables={"ivr": variables} if variables else {})
        request = EnqueueRequest(tenant, queue, variables=variables)
        task = asyncio.ensure_future(self.service.enqueue(call, FakeChannel(), request))
        self.callers.append((call, task))
        for _ in range(50):
            if (tenant, str(call.call_id)) in self.service.callers:
                break
            await asyncio.sleep(0.01)
        return call

    async def token(self, username: str, password: str, tenant: str | None = None) -> str:
        body = {"username": username, "password": password}
        if tenant is not None:
            body["tenant"] = tenant
        resp = await self.client.post("/api/login", json=body)
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]

    async def auth(self, username: str, password: str, tenant: str | None = None) -> dict:
        return {"Authorization": f"Bearer {await self.token(username, password, tenant)}"}


@contextlib.asynccontextmanager
async def harness(tmp_path: Path, **api_kwargs: Any) -> AsyncIterator[Harness]:
    config = make_config(tmp_path)
    locations = MemoryLocationStore()
    service = AcdService(config, locations)
    await service.start()
    api = Api(config, service, **api_kwargs)
    app = make_app(lambda: {"ready": True}, _no_sip, api=api)
    client = TestClient(TestServer(app))
    await client.start_server()
    h = Harness(config, locations, service, api, client)
    try:
        yield h
    finally:
        for call, task in h.callers:
            call.hang_up()
            task.cancel()
        await client.close()
        await service.stop()


async def _no_sip(request: Any) -> Any:
    raise AssertionError("no SIP over WebSocket in these tests")
