"""Locating a SIP server by DNS (RFC 3263 §4, SRV selection of RFC 2782), sans-IO.

A host name, an optional port and an optional transport go in; an ordered
list of hops (transport, IP address, port) comes out: the first to try,
then where to fail over. The procedure is a generator that yields the DNS
queries it needs and is sent their answers, so it runs the same against a
real resolver (`switch.transport.dns`) and against a dict in a test:

    steps = locate("carrier.example", 0, None, {"udp", "tcp"})
    query = next(steps)
    try:
        while True:
            query = steps.send(answer_for(query))
    except StopIteration as done:
        hops = done.value          # or LocateError, saying why there are none

- An IP address is used as it is (UDP unless a transport is given).
- A name with a port: its A/AAAA records, on that port (UDP unless given).
- A name with a transport but no port: SRV for that transport
  (`_sip._udp`, `_sip._tcp`, `_sips._tcp`), else A/AAAA on the default port.
- A name alone: NAPTR decides the transport (SIP+D2U, SIP+D2T, SIPS+D2T,
  the ones the node can send on, by order then preference), each pointing
  at SRV records; without NAPTR, SRV for each transport the node has
  (UDP, then TCP, then TLS); without SRV, A/AAAA on port 5060 over UDP.

SRV records are tried by priority, and within a priority in the weighted
random order of RFC 2782; every address of a target is a hop of its own
(RFC 3263 §4.3), so a call fails over through all of them.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from typing import NoReturn

# NAPTR services (RFC 3263 §4.1) and the transports they name.
SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
# Without NAPTR records the server states no preference: UDP first, as
# Kamailio and Asterisk do, then TCP, then TLS.
PREFERENCE = ("udp", "tcp", "tls")

# Why a query found nothing, as the resolver reports it in `Answer.error`.
NXDOMAIN = "nxdomain"  # the name does not exist
SERVFAIL = "servfail"  # the DNS servers failed or refused to answer
TIMEOUT = "timeout"  # no answer in time


@dataclass(frozen=True, slots=True)
class Query:
    name: str  # without the trailing dot
    rdtype: str  # "NAPTR", "SRV", "A" or "AAAA"


@dataclass(frozen=True, slots=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


Record = Naptr | Srv | str  # a str is an address, of an A or AAAA record


@dataclass(frozen=True, slots=True)
class Answer:
    records: tuple[Record, ...] = ()
    error: str | None = None  # NXDOMAIN, SERVFAIL or TIMEOUT; None when it answered


@dataclass(frozen=True, slots=True)
class Hop:
    transport: str  # "udp", "tcp" or "tls"
    address: str  # an IP address
    port: int


class LocateError(Exception):
    """No server found for a name; the message says why, for a log line or a reason phrase."""


Steps = Generator[Query, Answer, list[Hop]]


def locate(
    host: str,
    port: int,
    transport: str | None,
    transports: Collection[str],
    families: Sequence[str] = ("A", "AAAA"),
    rng: random.Random | None = None,
) -> Steps:
    """The hops to reach `host` (see the module's docstring); raises LocateError.

    `port` 0 means none was given; `transport` None means none was given.
    `transports`: what the node can send on (its listeners); `families`:
    the address records it can use ("A" for an IPv4 listener, "AAAA" for
    IPv6); `rng`: the randomness of SRV weights (seeded in tests).
    """
    rng = rng or random.Random()
    host = host.rstrip(".")
    if _is_ip(host):
        chosen = transport or "udp"
        return [Hop(chosen, host, port or DEFAULT_PORT[chosen])]
    failures: list[tuple[Query, str]] = []

    def fatal(query: Query, answer: Answer) -> bool:
        """Note a failed query; True when there is no point in asking more.

        A name that does not exist has no SRV records below it either
        (RFC 8020), and servers that do not answer will not answer the
        next query: the call should fail now, not after every query timed out.
        """
        if answer.error is None:
            return False
        failures.append((query, answer.error))
        return answer.error == TIMEOUT or (answer.error == NXDOMAIN and query.name == host)

    if port:
        direct = yield from _addresses(host, transport or "udp", port, families, fatal)
        return direct or _give_up(host, failures, f"{host} has no A or AAAA records")
    if transport is not None:
        plan = [(transport, SRV_PREFIX[transport] + host)]
    else:
        query = Query(host, "NAPTR")
        answer = yield query
        if fatal(query, answer):
            _give_up(host, failures, "")
        plan = order_naptr(answer.records, transports)
        if not plan:
            plan = [(t, SRV_PREFIX[t] + host) for t in PREFERENCE if t in transports]
    hops: list[Hop] = []
    srv_found = declined = False
    for chosen, name in plan:
        query = Query(name, "SRV")
        answer = yield query
        if fatal(query, answer):
            _give_up(host, failures, "")
        records = [r for r in answer.records if isinstance(r, Srv)]
        srv_found = srv_found or bool(records)
        ordered = order_srv(records, rng)
        declined = declined or (bool(records) and not ordered)
        for srv in ordered:
            found = yield from _addresses(srv.target, chosen, srv.port, families, fatal)
            if failures and failures[-1][1] == TIMEOUT:
                _give_up(host, failures, "")
            hops.extend(hop for hop in found if hop not in hops)
    if hops:
        return hops
    if declined:
        _give_up(host, failures, f'{host} offers no SIP service here (SRV target ".")')
    if srv_found:
        _give_up(host, failures, f"the SRV targets of {host} have no A or AAAA records")
    # No SRV records: the name's own addresses on the default port of the
    # transport chosen so far (RFC 3263 §4.2).
    chosen = plan[0][0] if plan else "udp"
    hops = yield from _addresses(host, chosen, DEFAULT_PORT[chosen], families, fatal)
    looked_for = "SRV, A or AAAA" if transport else "NAPTR, SRV, A or AAAA"
    return hops or _give_up(host, failures, f"{host} has no {looked_for} records")


def _addresses(
    name: str, transport: str, port: int, families: Sequence[str], fatal: Callable[..., bool]
) -> Steps:
    if _is_ip(name):
        # RFC 2782 wants a name as SRV target, but some zones hold an address.
        return [Hop(transport, name, port)]
    hops: list[Hop] = []
    for rdtype in families:
        query = Query(name, rdtype)
        answer = yield query
        if fatal(query, answer) or answer.error == NXDOMAIN:
            break  # no AAAA either for a name that does not exist
        hops.extend(Hop(transport, r, port) for r in answer.records if isinstance(r, str))
    return hops


def _give_up(host: str, failures: list[tuple[Query, str]], otherwise: str) -> NoReturn:
    """Raise the LocateError that says best why `host` has no hops."""
    for query, error in failures:
        if error == TIMEOUT:
            raise LocateError(f"no answer from the DNS servers for {query.name} {query.rdtype}")
    for query, error in failures:
        if error == NXDOMAIN and query.name == host:
            raise LocateError(f"{host} does not exist in DNS (NXDOMAIN)")
    for query, error in failures:
        if error == SERVFAIL:
            raise LocateError(f"the DNS servers failed to answer for {query.name} {query.rdtype}")
    raise LocateError(otherwise)


def order_naptr(records: Sequence[Record], transports: Collection[str]) -> list[tuple[str, str]]:
    """(transport, SRV name) of the usable NAPTR records, most preferred first.

    Usable: an "s" flag (the replacement is an SRV name) and a service for a
    transport the node can send on (RFC 3263 §4.1 says to discard the rest).
    """
    usable = [
        r
        for r in records
        if isinstance(r, Naptr)
        and r.flags.lower() == "s"
        and SERVICES.get(r.service.upper()) in transports
        and r.replacement not in ("", ".")
    ]
    usable.sort(key=lambda r: (r.order, r.preference))
    plan: list[tuple[str, str]] = []
    for r in usable:
        step = (SERVICES[r.service.upper()], r.replacement.rstrip("."))
        if step not in plan:
            plan.append(step)
    return plan


def order_srv(records: Sequence[Srv], rng: random.Random) -> list[Srv]:
    """SRV records in the order to try them (RFC 2782, "Usage rules").

    Lowest priority first; within a priority, repeatedly pick one at random
    with probability proportional to its weight (weight 0 records get a
    small chance, placed first as RFC 2782 asks; when all weights are 0,
    each has the same chance). A lone record whose
    target is "." says the service is not offered here: no targets.
    """
    if len(records) == 1 and records[0].target in ("", "."):
        return []
    ordered: list[Srv] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority and r.target not in ("", ".")]
        group.sort(key=lambda r: r.weight != 0)  # zero weights first; stable otherwise
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                # No weights: no preference; a uniform choice spreads the load.
                ordered.append(group.pop(rng.randrange(len(group))))
                continue
            pick = rng.randint(0, total)
            running = 0
            for index, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return [Srv(r.priority, r.weight, r.port, r.target.rstrip(".")) for r in ordered]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
