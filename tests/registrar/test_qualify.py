"""Qualify: the OPTIONS pings and which bindings a round removes."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from switch.registrar.qualify import Qualifier, options_request
from switch.sip.message import Request, Response, parse_message
from switch.sip.uri import SipURI
from switch.sip.validate import check_request
from switch.store.location import Binding, MemoryLocationStore

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
AOR = "demo/1001"
NODE = "node-a"
SENT_BY = "192.0.2.10:5060"
UNREACHABLE = re.compile(r"qualify: aor=(\S+) contact=(\S+) unreachable \((\d+)\), binding removed")


def binding(
    contact: str, *, aor: str = AOR, node: str = NODE, transport: str = "udp", **fields: object
) -> Binding:
    values: dict[str, object] = {
        "aor": aor,
        "contact": contact,
        "expires_at": NOW + 3600,
        "call_id": f"call-{contact}",
        "cseq": 1,
        "transport": transport,
        "source": ("198.51.100.7", 40000),
        "local": ("192.0.2.10", 5060),
        "conn_id": 7 if transport != "udp" else None,
        "node": node,
        "registered_at": NOW - 10,
    }
    values.update(fields)
    return Binding(**values)  # type: ignore[arg-type]


# -- the OPTIONS request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "via"),
    [("udp", "UDP"), ("tcp", "TCP"), ("tls", "TLS"), ("ws", "WS"), ("wss", "WSS")],
)
def test_options_request_is_a_valid_request_over_the_binding_transport(
    transport: str, via: str
) -> None:
    contact = f"sip:1001@198.51.100.7:40000;transport={transport}"
    req = options_request(binding(contact, transport=transport), SENT_BY, "switch-test")
    parsed = parse_message(bytes(req))
    assert isinstance(parsed, Request)
    assert check_request(parsed) is None
    assert parsed.method == "OPTIONS" and parsed.uri_text == contact
    top = parsed.top_via
    assert top.transport == via
    assert f"{top.host}:{top.port}" == SENT_BY
    assert top.branch is not None and top.branch.startswith("z9hG4bK")
    assert "rport" in top.params and top.params["rport"] is None
    assert len(parsed.via) == 1
    assert str(parsed.to.uri) == contact and parsed.to.tag is None
    assert parsed.from_.tag
    assert isinstance(parsed.from_.uri, SipURI) and parsed.from_.uri.host == "192.0.2.10"
    assert (parsed.cseq.number, parsed.cseq.method) == (1, "OPTIONS")
    assert parsed.max_forwards == 70
    assert parsed.get("User-Agent") == "switch-test"
    assert parsed.call_id


def test_each_options_request_is_a_new_transaction() -> None:
    b = binding("sip:1001@198.51.100.7:5060")
    first = options_request(b, SENT_BY, "s")
    second = options_request(b, SENT_BY, "s")
    assert first.top_via.branch != second.top_via.branch
    assert first.call_id != second.call_id
    assert first.from_.tag != second.from_.tag


# -- a qualifier against a fake network ----------------------------------------------------


class Network:
    """send(): what each contact answers; None never answers."""

    def __init__(self, answers: dict[str, int | None]) -> None:
        self.answers = answers
        self.sent: list[tuple[Request, Binding]] = []
        self.cancelled: list[str] = []

    async def send(self, req: Request, b: Binding) -> Response:
        self.sent.append((req, b))
        status = self.answers[b.contact]
        if status is None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(b.contact)
                raise
        return Response(status)  # type: ignore[arg-type]


class Harness:
    def __init__(
        self, answers: dict[str, int | None], *, timeout: float = 0.05, now: float = NOW
    ) -> None:
        self.store = MemoryLocationStore()
        self.network = Network(answers)
        self.sent_by_asked: list[Binding] = []
        self.qualifier = Qualifier(
            self.store,
            self.network.send,
            self.sent_by,
            "switch-test",
            interval=3600,
            timeout=timeout,
            clock=lambda: now,
        )

    def sent_by(self, b: Binding) -> str:
        self.sent_by_asked.append(b)
        return SENT_BY

    async def register(self, *bindings: Binding, node: str = NODE) -> list[Binding]:
        """Put bindings in the store and watch them, as on_registered does."""
        aor = bindings[0].aor
        current = await self.store.apply(aor, list(bindings), NOW)
        self.qualifier.watch(aor, current, node)
        return current

    async def contacts(self, aor: str = AOR) -> list[str]:
        return sorted(b.contact for b in await self.store.get(aor, NOW))

    def pinged(self) -> list[str]:
        return sorted(b.contact for _, b in self.network.sent)


def unreachable_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, ...]]:
    out = []
    for record in caplog.records:
        if record.name == "switch.registrar" and record.getMessage().startswith("qualify"):
            match = UNREACHABLE.fullmatch(record.getMessage())
            assert match is not None, record.getMessage()
            out.append(match.groups())
    return sorted(out)


async def test_watch_keeps_only_the_bindings_made_on_this_node() -> None:
    h = Harness({})
    await h.register(
        binding("sip:a@h"),
        binding("sip:b@h", node="node-b"),
        binding("sip:c@h", node=""),
    )
    assert h.qualifier.watched == 1
    # A later REGISTER of the AOR replaces what is watched for it.
    h.qualifier.watch(AOR, [binding("sip:b@h", node="node-b")], NODE)
    assert h.qualifier.watched == 0
    h.qualifier.watch(AOR, [binding("sip:a@h"), binding("sip:d@h")], NODE)
    h.qualifier.watch("demo/1002", [binding("sip:e@h", aor="demo/1002")], NODE)
    assert h.qualifier.watched == 3
    h.qualifier.watch(AOR, [], NODE)
    assert h.qualifier.watched == 1


async def test_a_round_removes_what_does_not_answer_and_keeps_any_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switch.registrar")
    answers: dict[str, int | None] = {
        "sip:ok@198.51.100.1": 200,
        "sip:notfound@198.51.100.2": 404,
        "sip:notallowed@198.51.100.3": 405,
        "sip:busy@198.51.100.4": 486,
        "sip:timeout@198.51.100.5": 408,
        "sip:unavailable@198.51.100.6": 503,
        "sip:silent@198.51.100.7": None,
    }
    h = Harness(answers)
    await h.register(*(binding(contact) for contact in answers))
    assert h.qualifier.watched == 7

    started = time.monotonic()
    removed = await asyncio.wait_for(h.qualifier.round(), 5)
    assert time.monotonic() - started < 2  # the silent one costs one timeout, not more

    gone = ["sip:silent@198.51.100.7", "sip:timeout@198.51.100.5", "sip:unavailable@198.51.100.6"]
    assert sorted(b.contact for b in removed) == gone
    assert await h.contacts() == sorted(set(answers) - set(gone))
    assert h.qualifier.watched == 4
    assert h.pinged() == sorted(answers)
    assert h.network.cancelled == ["sip:silent@198.51.100.7"]  # given up, not left hanging
    assert unreachable_lines(caplog) == [
        (AOR, "sip:silent@198.51.100.7", "408"),
        (AOR, "sip:timeout@198.51.100.5", "408"),
        (AOR, "sip:unavailable@198.51.100.6", "503"),
    ]
    # Every ping is an OPTIONS to the binding's contact, from our address on its flow.
    for req, b in h.network.sent:
        assert req.method == "OPTIONS" and req.uri_text == b.contact
        assert req.top_via.transport == "UDP"
    assert sorted(b.contact for b in h.sent_by_asked) == sorted(answers)

    # The next round pings only what is left, and removes nothing more.
    h.network.sent.clear()
    assert await asyncio.wait_for(h.qualifier.round(), 5) == []
    assert h.pinged() == sorted(set(answers) - set(gone))


async def test_ping_gives_the_status_or_408_for_silence() -> None:
    h = Harness({"sip:a@h": 404, "sip:b@h": None})
    assert await h.qualifier.ping(binding("sip:a@h")) == 404
    assert await asyncio.wait_for(h.qualifier.ping(binding("sip:b@h")), 5) == 408


async def test_bindings_no_longer_in_the_store_are_forgotten_not_pinged() -> None:
    h = Harness({"sip:a@h": 200, "sip:b@h": 200, "sip:c@h": 200})
    a, b, c = binding("sip:a@h"), binding("sip:b@h"), binding("sip:c@h")
    await h.register(a, b, c)
    await h.store.remove(AOR, a.key)  # unregistered, or its connection closed
    # b re-registered (new CSeq and expiry): the watched copy is not that registration.
    await h.store.apply(AOR, [binding("sip:b@h", cseq=2, expires_at=NOW + 7200)], NOW)
    assert await asyncio.wait_for(h.qualifier.round(), 5) == []
    assert h.pinged() == ["sip:c@h"]
    assert h.qualifier.watched == 1
    assert await h.contacts() == ["sip:b@h", "sip:c@h"]  # nothing removed by the round


async def test_expired_bindings_are_forgotten() -> None:
    h = Harness({"sip:a@h": 200}, now=NOW + 2)
    await h.register(binding("sip:a@h", expires_at=NOW + 1))  # the qualifier's now is NOW + 2
    assert await asyncio.wait_for(h.qualifier.round(), 5) == []
    assert h.pinged() == [] and h.qualifier.watched == 0


async def test_a_round_with_nothing_watched_does_nothing() -> None:
    h = Harness({})
    assert await h.qualifier.round() == []
    assert h.network.sent == []


async def test_a_removal_keeps_the_other_aors() -> None:
    h = Harness({"sip:a@h": 408, "sip:b@h": 200})
    await h.register(binding("sip:a@h"))
    await h.register(binding("sip:b@h", aor="demo/1002"))
    [removed] = await asyncio.wait_for(h.qualifier.round(), 5)
    assert removed.contact == "sip:a@h"
    assert await h.contacts() == []
    assert await h.contacts("demo/1002") == ["sip:b@h"]
