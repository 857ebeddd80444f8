"""DNS lookups for locating SIP servers: dnspython's asyncio resolver, with a cache.

`Resolver.locate()` runs the RFC 3263 procedure of `switch.sip.locate`,
answering its queries from a cache kept by each answer's TTL. A name that
does not exist, or has no records of a type, is remembered for a short
`negative_ttl`, so that a call storm toward a mistyped trunk host does not
become a query storm. A failing DNS server (timeout, SERVFAIL) is not
cached; while it fails, an answer whose TTL ran out is used as it was
(serve-stale, RFC 8767): calls keep flowing to a trunk during a DNS outage.
Concurrent lookups of one name share one query.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ..sip.locate import (
    NXDOMAIN,
    SERVFAIL,
    TIMEOUT,
    Answer,
    Hop,
    LocateError,
    Naptr,
    Query,
    Record,
    Srv,
    locate,
)

log = logging.getLogger("switch.dns")

# A TTL longer than a day is a mistake in a zone more often than an intent.
MAX_TTL = 86400


class Resolver:
    """Cached DNS queries and RFC 3263 location, for one node.

    `nameservers`: (IP address, port) pairs; empty means the system's
    (/etc/resolv.conf). `timeout`: seconds one query may take in all,
    retries and every server included.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        timeout: float = 2.0,
        negative_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._cache: dict[Query, tuple[float, Answer]] = {}  # query -> (expires, answer)
        self._pending: dict[Query, asyncio.Task[Answer]] = {}
        self._stub: dns.asyncresolver.Resolver | None = None
        self.queries = 0  # sent to a DNS server, for tests and stats

    async def locate(
        self,
        host: str,
        port: int,
        transport: str | None,
        transports: Collection[str],
        families: Sequence[str] = ("A", "AAAA"),
        rng: random.Random | None = None,
    ) -> list[Hop]:
        """Where to send requests for `host` (see `switch.sip.locate.locate`).

        Raises LocateError saying why no server was found.
        """
        steps = locate(host, port, transport, transports, families, rng)
        try:
            query = next(steps)
            while True:
                query = steps.send(await self.query(query))
        except StopIteration as done:
            return done.value

    async def query(self, query: Query) -> Answer:
        """The answer to one query: from the cache while its TTL runs, else asked."""
        cached = self._cache.get(query)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        task = self._pending.get(query)
        if task is None:
            # A task of its own, so that a caller that gives up (a cancelled
            # call) does not take the answer away from the others waiting.
            task = asyncio.get_running_loop().create_task(self._refresh(query, cached))
            self._pending[query] = task
            task.add_done_callback(lambda done: self._settled(query, done))
        return await asyncio.shield(task)

    async def _refresh(self, query: Query, stale: tuple[float, Answer] | None) -> Answer:
        answer, ttl = await self._ask(query)
        if answer.error in (TIMEOUT, SERVFAIL) and stale is not None:
            log.warning(
                "DNS %s %s: %s; using the answer whose TTL ran out %.0f s ago",
                query.name,
                query.rdtype,
                answer.error,
                self.clock() - stale[0],
            )
            return stale[1]
        if ttl > 0:
            self._cache[query] = (self.clock() + ttl, answer)
        return answer

    def _settled(self, query: Query, task: asyncio.Task[Answer]) -> None:
        self._pending.pop(query, None)
        if not task.cancelled():
            task.exception()  # seen here when every caller had given up

    async def _ask(self, query: Query) -> tuple[Answer, float]:
        """(answer, seconds to keep it); failures of the servers are answers too."""
        stub = self._resolver()
        self.queries += 1
        try:
            result = await stub.resolve(
                dns.name.from_text(query.name),
                query.rdtype,
                search=False,
                lifetime=self.timeout,
                raise_on_no_answer=False,
            )
        except dns.resolver.NXDOMAIN:
            return Answer(error=NXDOMAIN), self.negative_ttl
        except dns.exception.Timeout:
            log.warning("DNS %s %s: no answer within %g s", query.name, query.rdtype, self.timeout)
            return Answer(error=TIMEOUT), 0
        except dns.exception.DNSException as exc:
            # NoNameservers (every server said SERVFAIL or REFUSED), a
            # malformed answer, a name too long: the servers cannot help.
            log.warning("DNS %s %s: %s", query.name, query.rdtype, exc)
            return Answer(error=SERVFAIL), 0
        rrset = result.rrset
        if rrset is None:  # the name exists, without records of this type
            return Answer(), self.negative_ttl
        records = tuple(r for r in map(_record, rrset) if r is not None)
        return Answer(records), min(rrset.ttl, MAX_TTL)

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if self._stub is None:
            if self.nameservers:
                stub = dns.asyncresolver.Resolver(configure=False)
                stub.nameservers = [
                    dns.nameserver.Do53Nameserver(address, port)
                    for address, port in self.nameservers
                ]
            else:
                try:
                    stub = dns.asyncresolver.Resolver()
                except dns.exception.DNSException as exc:
                    raise LocateError(
                        f"no system DNS resolver ({exc}); set nameservers in [dns]"
                    ) from None
            self._stub = stub
        return self._stub

    def clear(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    async def close(self) -> None:
        """Stop the lookups under way (the node is stopping)."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _record(rdata: object) -> Record | None:
    rdtype = getattr(rdata, "rdtype", None)
    if rdtype == dns.rdatatype.NAPTR:
        return Naptr(
            rdata.order,  # type: ignore[attr-defined]
            rdata.preference,  # type: ignore[attr-defined]
            rdata.flags.decode("ascii", "replace"),  # type: ignore[attr-defined]
            rdata.service.decode("ascii", "replace"),  # type: ignore[attr-defined]
            rdata.replacement.to_text(omit_final_dot=True),  # type: ignore[attr-defined]
        )
    if rdtype == dns.rdatatype.SRV:
        return Srv(
            rdata.priority,  # type: ignore[attr-defined]
            rdata.weight,  # type: ignore[attr-defined]
            rdata.port,  # type: ignore[attr-defined]
            rdata.target.to_text(omit_final_dot=True),  # type: ignore[attr-defined]
        )
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)  # type: ignore[attr-defined]
    return None
