"""A tiny authoritative DNS server on loopback, for tests of trunk location.

The zone is a dict: name -> {type: [rdata as in a zone file]}, or name ->
one of SERVFAIL, NXDOMAIN, NEVER (the server answers that, or nothing at
all). A name not in the zone is NXDOMAIN, unless a longer name ends with
it (an empty non-terminal, such as the "_udp.carrier.example" of an SRV
name: NOERROR without records). Every query is recorded in `queries`.

    async with DnsServer({"carrier.example": {"A": ["127.0.0.1"]}}) as dns:
        ... nameservers = [f"127.0.0.1:{dns.port}"] ...
"""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

SERVFAIL = "servfail"
NXDOMAIN = "nxdomain"
NEVER = "never"  # no answer: the client times out

Zone = dict[str, dict[str, list[str]] | str]


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone | None = None, ttl: int = 60) -> None:
        self.zone: Zone = dict(zone or {})  # a copy: tests change it as they go
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []  # (name, type) in the order asked
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def port(self) -> int:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return  # not DNS: as a real server, say nothing
        reply = self.answer(query)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply.to_wire(), addr)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        entry = self.zone.get(name)
        if entry == NEVER:
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if entry == SERVFAIL:
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif entry == NXDOMAIN or (entry is None and not self._has_below(name)):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif isinstance(entry, dict) and entry.get(rdtype):
            rrset = dns.rrset.from_text_list(question.name, self.ttl, "IN", rdtype, entry[rdtype])
            reply.answer.append(rrset)
        return reply

    def _has_below(self, name: str) -> bool:
        return any(other.endswith("." + name) for other in self.zone)
