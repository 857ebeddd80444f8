"""The door: traffic from banned addresses and from SIP scanners goes no further.

Checked for every packet, so both checks are synchronous and cheap:

- `banned(ip)` reads a local copy of the ban list. The copy is refreshed
  from the state backend every `refresh` seconds (`run()`), so a ban made by
  any node of a cluster holds here within that time; a ban made here holds
  at once (`add`).
- `screen(request, flow)` drops requests whose User-Agent names a known
  scanner (friendly-scanner, sipvicious, ...) without an answer: an answer
  only tells the scanner that somebody is listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ..sip.flow import Flow
from ..sip.message import Request
from ..store.bans import BanStore

log = logging.getLogger("switch.auth")

# How many scanner addresses to remember having logged (one line per address).
_LOGGED_MAX = 10_000


class Gate:
    def __init__(
        self,
        bans: BanStore,
        scanners: Iterable[str],
        *,
        refresh: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bans = bans
        self.scanners = tuple(s.lower() for s in scanners if s)
        self.refresh = refresh
        self._clock = clock
        self._banned: dict[str, float] = {}  # ip -> until (epoch seconds)
        self._logged: set[str] = set()

    def banned(self, ip: str) -> bool:
        until = self._banned.get(ip)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._banned[ip]
        return False

    def add(self, ip: str, until: float) -> None:
        """A ban made on this node: effective now, not at the next refresh."""
        self._banned[ip] = until

    def screen(self, req: Request, flow: Flow) -> str | None:
        """Why to drop this request silently ("scanner"), or None to serve it."""
        agent = req.get("User-Agent")
        if agent is None or not self.scanners:
            return None
        agent = agent.lower()
        for scanner in self.scanners:
            if scanner in agent:
                ip = flow.remote[0]
                if ip not in self._logged and len(self._logged) < _LOGGED_MAX:
                    self._logged.add(ip)
                    log.warning(
                        "scanner dropped: ip=%s port=%d user_agent=%s",
                        ip,
                        flow.remote[1],
                        scanner,
                    )
                return "scanner"
        return None

    async def sync(self) -> None:
        """Take the cluster's ban list from the state backend."""
        self._banned = dict(await self.bans.bans(self._clock()))

    async def run(self) -> None:
        """Refresh the local ban list until cancelled; a backend outage is logged, not fatal."""
        failing = False
        while True:
            try:
                await self.sync()
                if failing:
                    log.info("ban list refreshed again")
                failing = False
            except Exception as exc:  # Redis away: keep the last list, say so once
                if not failing:
                    log.warning("cannot refresh the ban list: %s", exc)
                failing = True
            await asyncio.sleep(self.refresh)
