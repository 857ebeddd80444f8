"""OPTIONS qualify: ping the registered devices of agents that ask for it.

Like Asterisk's `qualify`: every `interval` seconds each watched binding gets
an OPTIONS over the flow it registered on. Any response means the device
is there (even 404 or 405: something answered); no response within
`timeout`, or a dead flow, means it is gone, and its binding is removed so
that the ACD stops offering calls to a phone that was unplugged.

Only bindings registered through this node are watched: the flow they came
over lives here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from ..sip.message import Request, Response
from ..sip.transaction import new_branch
from ..store.location import Binding, LocationStore
from .service import flow_of

log = logging.getLogger("switch.registrar")

Ping = Callable[[Request, Binding], Awaitable[Response]]

# At most this many pings in flight, so that a node with thousands of
# devices spreads them instead of sending them all in one burst.
_CONCURRENCY = 200


def options_request(binding: Binding, sent_by: str, server: str) -> Request:
    """An OPTIONS for one binding, to be sent over `flow_of(binding)`."""
    flow = flow_of(binding)
    tag = secrets.token_hex(6)
    return Request(
        "OPTIONS",
        binding.contact,
        [
            ("Via", f"SIP/2.0/{flow.via_transport} {sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:qualify@{sent_by}>;tag={tag}"),
            ("To", f"<{binding.contact}>"),
            ("Call-ID", secrets.token_hex(12)),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", server),
            ("Content-Length", "0"),
        ],
    )


class Qualifier:
    def __init__(
        self,
        locations: LocationStore,
        send: Callable[[Request, Binding], Awaitable[Response]],
        sent_by: Callable[[Binding], str],
        server: str,
        *,
        interval: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.locations = locations
        self._send = send
        self._sent_by = sent_by
        self.server = server
        self.interval = interval
        self.timeout = timeout
        self._clock = clock
        self._watched: dict[tuple[str, str], Binding] = {}

    @property
    def watched(self) -> int:
        return len(self._watched)

    def watch(self, aor: str, bindings: list[Binding], node: str) -> None:
        """After a REGISTER: the AOR's bindings made on `node` are the ones to ping."""
        for key in [k for k in self._watched if k[0] == aor]:
            del self._watched[key]
        for binding in bindings:
            if binding.node == node:
                self._watched[(aor, binding.key)] = binding

    async def ping(self, binding: Binding) -> int:
        """The status a device answered an OPTIONS with (408 for no answer)."""
        req = options_request(binding, self._sent_by(binding), self.server)
        try:
            resp = await asyncio.wait_for(self._send(req, binding), self.timeout)
        except TimeoutError:
            return 408
        return resp.status

    async def round(self) -> list[Binding]:
        """Ping every watched binding once; returns the ones removed as unreachable."""
        now = self._clock()
        removed: list[Binding] = []
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def check(aor: str, key: str, binding: Binding) -> None:
            async with limit:
                # Still registered, and still the same registration?
                current = {b.key: b for b in await self.locations.get(aor, now)}
                if current.get(key) != binding:
                    if self._watched.get((aor, key)) is binding:
                        del self._watched[(aor, key)]
                    return
                status = await self.ping(binding)
                if status in (408, 503):
                    await self.locations.remove(aor, key)
                    self._watched.pop((aor, key), None)
                    removed.append(binding)
                    log.warning(
                        "qualify: aor=%s contact=%s unreachable (%d), binding removed",
                        aor,
                        binding.contact,
                        status,
                    )

        await asyncio.gather(*(check(aor, key, b) for (aor, key), b in list(self._watched.items())))
        return removed

    async def run(self) -> None:
        """Qualify rounds every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.round()
            except Exception:
                log.exception("qualify round failed")
