"""Registrar: REGISTER from the first 401 to the 200, against the memory location store."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from switch.config import load_config
from switch.registrar.accounts import Accounts
from switch.registrar.auth import Authenticator
from switch.registrar.bindings import Policy
from switch.registrar.service import Registrar, flow_of
from switch.sip.digest import Credentials, compute_ha1, compute_response, parse_challenge
from switch.sip.flow import Flow
from switch.sip.message import Request, Response, parse_message
from switch.sip.transaction import RequestReceived
from switch.store.bans import MemoryBanStore
from switch.store.location import Binding, Change, MemoryLocationStore

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
IP = "198.51.100.7"
FLOW = Flow("tcp", (IP, 40000), ("192.0.2.10", 5060), conn_id=7)
NODE = "node-a"
AOR = "demo/1001"
CONTACT = f"sip:1001@{IP}:40000;transport=tcp"
OTHER_CONTACT = "sip:1001@203.0.113.20:5070"
INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'
POLICY = Policy(min_expires=60, default_expires=3600, max_expires=7200, max_contacts=10)

CONFIG = """
[tenants.demo]
domains = ["demo.example"]
[tenants.demo.agents."1001"]
password = "secret-1001"
[tenants.demo.agents."1002"]
password = "secret-1002"

[tenants.acme]
domains = ["acme.example"]
[tenants.acme.agents."1001"]
password = "acme-1001"
[tenants.acme.agents."3001"]
password = "acme-3001"
"""
PASSWORDS = {"1001": "secret-1001", "1002": "secret-1002"}
REFUSED = re.compile(
    r"register refused: ip=(\S+) user=(\S+) tenant=(\S+) aor=(\S+) reason=aor_not_own"
)
OUT_OF_ORDER = f"register refused: ip={IP} aor={AOR} status=500 reason=cseq_out_of_order"
CALL_ID = "reg-call-1@198.51.100.7"

Headers = list[tuple[str, str]]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """A registrar with a memory store, a fake reply and a record of on_registered."""

    def __init__(
        self, tmp_path: Path, store: MemoryLocationStore | None = None, *, eager: bool = False
    ) -> None:
        path = tmp_path / "switch.toml"
        path.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
        self.accounts = Accounts(load_config(path))
        self.clock = Clock()
        self.bans = MemoryBanStore(threshold=5, window=60, ban_time=600)
        self.auth = Authenticator(self.accounts, b"secret", self.bans, clock=self.clock)
        self.store = store if store is not None else MemoryLocationStore()
        self.replies: list[tuple[Request, int, str | None, Headers]] = []
        self.registered: list[tuple[str, list[Binding]]] = []
        self.registrar = Registrar(
            self.accounts,
            self.auth,
            self.store,
            POLICY,
            NODE,
            lambda req, status, reason, headers: self.replies.append(
                (req, status, reason, headers)
            ),
            on_registered=lambda aor, bindings: self.registered.append((aor, bindings)),
            server="switch-test",
            eager=eager,
            clock=self.clock,
        )
        self.cseq = 0

    def request(
        self,
        *headers: str,
        user: str = "1001",
        host: str = "demo.example",
        to: str | None = None,
        method: str = "REGISTER",
        call_id: str = CALL_ID,
    ) -> Request:
        self.cseq += 1
        lines = [
            f"{method} sip:{host} SIP/2.0",
            f"Via: SIP/2.0/TCP {IP}:40000;branch=z9hG4bK-reg-{self.cseq}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{host}>;tag=f1",
            f"To: {to if to is not None else f'<sip:{user}@{host}>'}",
            f"Call-ID: {call_id}",
            f"CSeq: {self.cseq} {method}",
            *headers,
            "Content-Length: 0",
        ]
        msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert isinstance(msg, Request)
        return msg

    async def register(
        self,
        *headers: str,
        user: str = "1001",
        auth_user: str | None = None,
        password: str | None = None,
        host: str = "demo.example",
        to: str | None = None,
        algorithm: str = "MD5",
        call_id: str = CALL_ID,
    ) -> tuple[int, str | None, Headers]:
        """401 first, then the answer with credentials: the final (status, reason, headers)."""
        auth_user = auth_user or user
        password = password if password is not None else PASSWORDS.get(auth_user, "none")
        first = self.request(*headers, user=user, host=host, to=to, call_id=call_id)
        status, _, challenge_headers = await self.registrar.register(first, FLOW)
        assert status == 401, (status, challenge_headers)
        value = answer(challenge_headers, auth_user, password, algorithm)
        second = self.request(
            *headers, f"Authorization: {value}", user=user, host=host, to=to, call_id=call_id
        )
        return await self.registrar.register(second, FLOW)

    async def bindings(self, aor: str = AOR) -> list[Binding]:
        return await self.store.get(aor, self.clock.now)


def answer(headers: Headers, user: str, password: str, algorithm: str = "MD5") -> str:
    offered = [parse_challenge(v) for name, v in headers if name == "WWW-Authenticate"]
    [challenge] = [c for c in offered if c.algorithm == algorithm]
    uri = "sip:demo.example"
    ha1 = compute_ha1(user, challenge.realm, password, algorithm)
    response = compute_response(
        ha1, "REGISTER", uri, challenge.nonce, algorithm, "auth", "00000001", "c0ffee"
    )
    return Credentials(
        username=user,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce="c0ffee",
        qop="auth",
        nc="00000001",
    ).to_header_value()


def values(headers: Headers, name: str) -> list[str]:
    return [value for n, value in headers if n.lower() == name.lower()]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# -- the usual registration ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_401_then_200_with_the_binding_and_the_date(h: Harness, algorithm: str) -> None:
    first = h.request(f"Contact: <{CONTACT}>", "User-Agent: deskphone/2.1")
    status, reason, headers = await h.registrar.register(first, FLOW)
    assert (status, reason) == (401, "Unauthorized")
    realms = {parse_challenge(v).realm for v in values(headers, "WWW-Authenticate")}
    assert realms == {"demo"}
    assert await h.bindings() == [] and h.registered == []

    value = answer(headers, "1001", PASSWORDS["1001"], algorithm)
    second = h.request(
        f"Contact: <{CONTACT}>", "User-Agent: deskphone/2.1", f"Authorization: {value}"
    )
    status, reason, headers = await h.registrar.register(second, FLOW)
    assert (status, reason) == (200, "OK")
    assert values(headers, "Contact") == [f"<{CONTACT}>;expires=3600"]
    assert values(headers, "Date") == [email.utils.formatdate(NOW, usegmt=True)]
    assert values(headers, "Require") == [] and values(headers, "Path") == []

    [binding] = await h.bindings()
    assert binding.aor == AOR and binding.contact == CONTACT
    assert binding.expires_at == NOW + 3600
    assert binding.node == NODE and binding.user_agent == "deskphone/2.1"
    assert h.registered == [(AOR, [binding])]


async def test_flow_of_a_binding_is_the_flow_it_registered_on(h: Harness) -> None:
    status, _, _ = await h.register(f"Contact: <{CONTACT}>")
    assert status == 200
    [binding] = await h.bindings()
    assert flow_of(binding) == FLOW
    udp = Binding(
        AOR,
        "sip:x@h",
        NOW + 60,
        "c",
        1,
        transport="udp",
        source=("203.0.113.9", 5060),
        local=("192.0.2.10", 5060),
    )
    assert flow_of(udp) == Flow("udp", ("203.0.113.9", 5060), ("192.0.2.10", 5060), None)


async def test_a_query_lists_the_bindings_and_calls_nobody(h: Harness) -> None:
    assert (await h.register(f"Contact: <{CONTACT}>;expires=600"))[0] == 200
    h.clock.now += 100
    status, _, headers = await h.register()
    assert status == 200
    assert values(headers, "Contact") == [f"<{CONTACT}>;expires=500"]
    assert len(h.registered) == 1  # only the first REGISTER changed anything


async def test_another_user_authenticated_cannot_register_this_aor(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switch.registrar")
    status, reason, headers = await h.register(f"Contact: <{CONTACT}>", auth_user="1002")
    assert status == 403 and headers == []
    assert reason == "Forbidden (the To address is not the authenticated user's)"
    assert await h.bindings() == [] and await h.bindings("demo/1002") == []
    assert h.registered == []
    lines = [
        REFUSED.fullmatch(r.getMessage())
        for r in caplog.records
        if r.name == "switch.registrar" and "register refused" in r.getMessage()
    ]
    assert [m.groups() if m else None for m in lines] == [(IP, "1002", "demo", "1001")]


async def test_the_aor_not_own_log_line_stays_one_line(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switch.registrar")
    # An agent with a valid password writes a fake fail2ban line into the log.
    to = "<sip:1001%0Aauth%20failure%3A%20ip%3D203.0.113.9%20port%3D5060@demo.example>"
    status, _, _ = await h.register(user="1001", to=to)
    assert status == 403
    [message] = [r.getMessage() for r in caplog.records if "register refused" in r.getMessage()]
    assert "\n" not in message and REFUSED.fullmatch(message) is not None, message


async def test_too_short_an_expiry_gets_423_with_min_expires(h: Harness) -> None:
    status, reason, headers = await h.register(f"Contact: <{CONTACT}>;expires=30")
    assert (status, reason, headers) == (423, "Interval Too Brief", [("Min-Expires", "60")])
    assert await h.bindings() == [] and h.registered == []
    status, _, headers = await h.register(f"Contact: <{CONTACT}>", "Expires: 59")
    assert (status, headers) == (423, [("Min-Expires", "60")])


async def test_expires_zero_removes_the_binding(h: Harness) -> None:
    await h.register(f"Contact: <{CONTACT}>", f"Contact: <{OTHER_CONTACT}>")
    assert len(await h.bindings()) == 2
    status, _, headers = await h.register(f"Contact: <{CONTACT}>;expires=0")
    assert status == 200
    assert values(headers, "Contact") == [f"<{OTHER_CONTACT}>;expires=3600"]
    assert [b.contact for b in await h.bindings()] == [OTHER_CONTACT]
    status, _, headers = await h.register(f"Contact: <{OTHER_CONTACT}>", "Expires: 0")
    assert status == 200 and values(headers, "Contact") == []
    assert await h.bindings() == []
    assert [(aor, len(bindings)) for aor, bindings in h.registered] == [
        (AOR, 2),
        (AOR, 1),
        (AOR, 0),
    ]


async def test_contact_star_with_expires_zero_removes_everything(h: Harness) -> None:
    await h.register(f"Contact: <{CONTACT}>")
    await h.register(f"Contact: <{OTHER_CONTACT}>")
    assert len(await h.bindings()) == 2
    status, _, _ = await h.register("Contact: *")
    assert status == 400  # '*' only with Expires: 0
    assert len(await h.bindings()) == 2
    status, _, headers = await h.register("Contact: *", "Expires: 0")
    assert status == 200 and values(headers, "Contact") == []
    assert values(headers, "Date") == [email.utils.formatdate(NOW, usegmt=True)]
    assert await h.bindings() == []
    assert h.registered[-1] == (AOR, [])


@pytest.mark.parametrize(
    ("supported", "contact_params", "require"),
    [
        ("Supported: outbound", f";+sip.instance={INSTANCE};reg-id=1", ["outbound"]),
        ("Supported: path, outbound", f";+sip.instance={INSTANCE};reg-id=1", ["outbound"]),
        (None, f";+sip.instance={INSTANCE};reg-id=1", []),
        ("Supported: outbound", f";+sip.instance={INSTANCE}", []),
        ("Supported: path", f";+sip.instance={INSTANCE};reg-id=1", []),
    ],
)
async def test_require_outbound_only_when_asked_and_used(
    h: Harness, supported: str | None, contact_params: str, require: list[str]
) -> None:
    headers_in = [f"Contact: <{CONTACT};ob>{contact_params}"]
    if supported is not None:
        headers_in.append(supported)
    status, _, headers = await h.register(*headers_in)
    assert status == 200
    assert values(headers, "Require") == ([", ".join(require)] if require else [])


@pytest.mark.parametrize(
    ("supported", "echoed"),
    [
        ("Supported: path", True),
        ("Supported: outbound, path", True),
        ("Supported: outbound", False),
        (None, False),
    ],
)
async def test_path_is_echoed_only_to_a_ua_that_supports_it(
    h: Harness, supported: str | None, echoed: bool
) -> None:
    paths = ["<sip:edge1.example;lr>", "<sip:edge2.example;lr>"]
    headers_in = [f"Contact: <{CONTACT}>", f"Path: {paths[0]}", f"Path: {paths[1]}"]
    if supported is not None:
        headers_in.append(supported)
    status, _, headers = await h.register(*headers_in)
    assert status == 200
    assert values(headers, "Path") == (paths if echoed else [])
    [binding] = await h.bindings()
    assert binding.path == tuple(paths)  # stored either way


@pytest.mark.parametrize(
    "to", ["<tel:+15551234567>", "<sip:demo.example>", "<sips:demo.example:5061>"]
)
async def test_a_to_without_a_sip_user_is_404_before_any_challenge(h: Harness, to: str) -> None:
    req = h.request(f"Contact: <{CONTACT}>", to=to)
    status, reason, headers = await h.registrar.register(req, FLOW)
    assert status == 404 and headers == []
    assert reason is not None and reason.startswith("Not Found")
    assert h.registrar.stateless_challenge(req, FLOW) is None


async def test_a_malformed_to_is_400(h: Harness) -> None:
    req = h.request(f"Contact: <{CONTACT}>", to="<sip:1001@demo.example")
    status, reason, _ = await h.registrar.register(req, FLOW)
    assert status == 400
    assert reason is not None and reason.startswith("Bad Request (malformed To:")
    assert h.registrar.stateless_challenge(req, FLOW) is None


async def test_a_domain_we_do_not_serve_cannot_register(h: Harness) -> None:
    # 1001 exists in two tenants and other.example is neither's: no tenant.
    first = h.request(f"Contact: <{CONTACT}>", host="other.example")
    status, _, headers = await h.registrar.register(first, FLOW)
    assert status == 401
    assert {parse_challenge(v).realm for v in values(headers, "WWW-Authenticate")} == {
        "other.example"
    }
    status, _, _ = await h.register(f"Contact: <{CONTACT}>", host="other.example")
    assert status == 403
    assert h.registered == []


async def test_an_agent_of_one_tenant_cannot_register_in_another(h: Harness) -> None:
    # demo's 1002 with demo's password, under acme's domain: no such acme agent.
    status, _, _ = await h.register(f"Contact: <{CONTACT}>", user="1002", host="acme.example")
    assert status == 403
    # demo's 1001 with demo's password, under acme's 1001: the wrong password there.
    status, _, _ = await h.register(f"Contact: <{CONTACT}>", host="acme.example")
    assert status == 403
    assert await h.bindings("acme/1001") == [] and await h.bindings("acme/1002") == []
    assert h.registered == []
    # acme's 1001 with acme's password gets an acme binding, not a demo one.
    status, _, _ = await h.register(
        f"Contact: <{CONTACT}>", host="acme.example", password="acme-1001"
    )
    assert status == 200
    assert [b.aor for b in await h.bindings("acme/1001")] == ["acme/1001"]
    assert await h.bindings() == []


async def test_credentials_of_another_tenants_realm_get_a_new_challenge(h: Harness) -> None:
    # Answering demo's challenge, but sending it to acme's domain.
    first = h.request(f"Contact: <{CONTACT}>")
    _, _, headers = await h.registrar.register(first, FLOW)
    value = answer(headers, "1001", PASSWORDS["1001"])
    second = h.request(f"Contact: <{CONTACT}>", f"Authorization: {value}", host="acme.example")
    status, _, headers = await h.registrar.register(second, FLOW)
    assert status == 401
    assert {parse_challenge(v).realm for v in values(headers, "WWW-Authenticate")} == {"acme"}


# -- what the store decides: order of REGISTERs, devices per AOR --------------------------


class RecordingStore(MemoryLocationStore):
    """Records which store calls a REGISTER makes, and with what options."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, object]]] = []

    async def get(self, aor: str, now: float) -> list[Binding]:
        self.calls.append(("get", {}))
        return await super().get(aor, now)

    async def apply(
        self, aor: str, changes: Sequence[Change], now: float, **options: object
    ) -> list[Binding]:
        self.calls.append(("apply", options))
        return await super().apply(aor, changes, now, **options)  # type: ignore[arg-type]


def out_of_order_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "switch.registrar" and "cseq_out_of_order" in r.getMessage()
    ]


async def test_a_register_is_one_apply_with_its_order_and_the_limit(tmp_path: Path) -> None:
    store = RecordingStore()
    h = Harness(tmp_path, store)
    assert (await h.register(f"Contact: <{CONTACT}>"))[0] == 200
    # The 401 asked nothing of the store; the 200 is one apply(), no get().
    assert store.calls == [("apply", {"order": (CALL_ID, 2), "max_bindings": 10})]


async def test_a_query_lists_the_bindings_without_apply(tmp_path: Path) -> None:
    store = RecordingStore()
    h = Harness(tmp_path, store)
    assert (await h.register(f"Contact: <{CONTACT}>", f"Contact: <{OTHER_CONTACT}>"))[0] == 200
    store.calls.clear()
    h.clock.now += 100
    status, reason, headers = await h.register()  # no Contact
    assert (status, reason) == (200, "OK")
    assert sorted(values(headers, "Contact")) == sorted(
        [f"<{CONTACT}>;expires=3500", f"<{OTHER_CONTACT}>;expires=3500"]
    )
    assert [name for name, _ in store.calls] == ["get"]
    assert len(h.registered) == 1  # only the first REGISTER changed anything


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param(f"Contact: <{CONTACT}>;expires=600", id="refresh"),
        pytest.param(f"Contact: <{CONTACT}>;expires=0", id="removal"),
        pytest.param("Contact: *", id="wildcard"),
    ],
)
async def test_a_register_not_newer_than_its_binding_is_500_with_retry_after(
    h: Harness, caplog: pytest.LogCaptureFixture, contact: str
) -> None:
    caplog.set_level(logging.INFO, logger="switch.registrar")
    h.cseq = 10
    assert (await h.register(f"Contact: <{CONTACT}>"))[0] == 200
    [made] = await h.bindings()
    assert (made.call_id, made.cseq) == (CALL_ID, 12)
    extra = ["Expires: 0"] if contact == "Contact: *" else []
    for cseq in (12, 11, 3):  # the same CSeq again (a late retransmission), and older ones
        h.cseq = cseq - 2  # register() sends the challenge's CSeq, then this one
        status, reason, headers = await h.register(contact, *extra)
        assert (status, reason, headers) == (
            500,
            "Server Internal Error (CSeq out of order)",
            [("Retry-After", "1")],
        )
        assert await h.bindings() == [made]
    assert out_of_order_lines(caplog) == [OUT_OF_ORDER] * 3
    assert len(h.registered) == 1
    # A newer CSeq of the same Call-ID goes through.
    h.cseq = 11
    status, _, _ = await h.register(contact, *extra)
    assert status == 200 and len(h.registered) == 2
    assert [b.cseq for b in await h.bindings()] == ([13] if "600" in contact else [])


async def test_a_new_call_id_may_start_again_at_any_cseq(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switch.registrar")
    h.cseq = 10
    assert (await h.register(f"Contact: <{CONTACT}>"))[0] == 200
    h.cseq = 0  # the phone rebooted: a new Call-ID, CSeq from 1 again
    status, _, headers = await h.register(f"Contact: <{CONTACT}>", call_id="rebooted@phone")
    assert status == 200 and values(headers, "Contact") == [f"<{CONTACT}>;expires=3600"]
    [binding] = await h.bindings()
    assert (binding.call_id, binding.cseq) == ("rebooted@phone", 2)
    assert out_of_order_lines(caplog) == []


async def test_the_oldest_device_makes_room_for_a_new_one(h: Harness) -> None:
    h.registrar.policy = dataclasses.replace(POLICY, max_contacts=2)
    devices = [f"sip:1001@203.0.113.{n}:5060" for n in (1, 2, 3)]
    for device in devices:
        status, _, _ = await h.register(f"Contact: <{device}>", call_id=f"call-{device}")
        assert status == 200
        h.clock.now += 10
    status, _, headers = await h.register()
    assert sorted(values(headers, "Contact")) == [
        f"<{devices[1]}>;expires=3580",
        f"<{devices[2]}>;expires=3590",
    ]
    assert sorted(b.contact for b in h.registered[-1][1]) == devices[1:]


# -- stateless challenge -------------------------------------------------------------------


async def test_stateless_challenge_is_the_401_the_full_path_would_give(h: Harness) -> None:
    req = h.request(f"Contact: <{CONTACT}>")
    resp = h.registrar.stateless_challenge(req, FLOW)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (401, "Unauthorized")
    assert resp.get("Server") == "switch-test"
    assert resp.to.tag  # a final response outside a dialog has a To tag
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    offered = [parse_challenge(v) for v in resp.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in offered] == ["MD5", "SHA-256"]
    assert {c.realm for c in offered} == {"demo"}
    # Its nonce verifies in the full path: no state was needed.
    value = answer(list(resp.headers()), "1001", PASSWORDS["1001"])
    second = h.request(f"Contact: <{CONTACT}>", f"Authorization: {value}")
    status, _, _ = await h.registrar.register(second, FLOW)
    assert status == 200
    assert h.registrar.stateless_challenge(second, FLOW) is None  # has Authorization


async def test_stateless_challenge_for_a_domain_we_do_not_serve_names_it(h: Harness) -> None:
    resp = h.registrar.stateless_challenge(h.request(host="other.example"), FLOW)
    assert resp is not None
    assert {parse_challenge(v).realm for v in resp.get_all("WWW-Authenticate")} == {"other.example"}


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "MESSAGE"])
def test_stateless_challenge_is_for_register_only(h: Harness, method: str) -> None:
    assert h.registrar.stateless_challenge(h.request(method=method), FLOW) is None


# -- handle(): the dispatcher's entry point ----------------------------------------------


# A REGISTER with a Contact costs the store one call, apply(); a query one get().


class BrokenStore(MemoryLocationStore):
    async def apply(
        self, aor: str, changes: Sequence[Change], now: float, **options: object
    ) -> list[Binding]:
        raise ConnectionError("redis is down")


class SlowStore(MemoryLocationStore):
    def __init__(self, delay: float | None) -> None:
        super().__init__()
        self.delay = delay

    async def apply(
        self, aor: str, changes: Sequence[Change], now: float, **options: object
    ) -> list[Binding]:
        if self.delay is None:
            await asyncio.Event().wait()  # never
        await asyncio.sleep(self.delay)
        return await super().apply(aor, changes, now, **options)  # type: ignore[arg-type]


class TimeoutStore(MemoryLocationStore):
    """Like redis-py's BlockingConnectionPool: asyncio.timeout() around taking a connection."""

    async def apply(
        self, aor: str, changes: Sequence[Change], now: float, **options: object
    ) -> list[Binding]:
        async with asyncio.timeout(5):
            await asyncio.sleep(0)
        return await super().apply(aor, changes, now, **options)  # type: ignore[arg-type]


async def authorized(h: Harness, *headers: str) -> Request:
    """A REGISTER with valid credentials, from a challenge of the stateless path."""
    resp = h.registrar.stateless_challenge(h.request(*headers), FLOW)
    assert resp is not None
    value = answer(list(resp.headers()), "1001", PASSWORDS["1001"])
    return h.request(*headers, f"Authorization: {value}")


async def replies_soon(h: Harness, count: int = 1) -> list[tuple[int, str | None, Headers]]:
    for _ in range(500):
        if len(h.replies) >= count:
            break
        await asyncio.sleep(0.01)
    return [(status, reason, headers) for _, status, reason, headers in h.replies]


async def test_eager_handle_answers_at_once_with_the_memory_store(tmp_path: Path) -> None:
    h = Harness(tmp_path, eager=True)
    req = await authorized(h, f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    [(replied, status, reason, headers)] = h.replies  # before any loop iteration
    assert replied is req and (status, reason) == (200, "OK")
    assert values(headers, "Contact") == [f"<{CONTACT}>;expires=3600"]
    assert h.registrar._tasks == set()


async def test_handle_answers_from_a_task_unless_eager(h: Harness) -> None:
    req = await authorized(h, f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    assert h.replies == [] and len(h.registrar._tasks) == 1
    [(status, _, headers)] = await replies_soon(h)
    assert status == 200 and values(headers, "Contact") == [f"<{CONTACT}>;expires=3600"]


@pytest.mark.parametrize("eager", [True, False])
async def test_a_store_failure_is_answered_500_with_retry_after(
    tmp_path: Path, eager: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="switch.registrar")
    h = Harness(tmp_path, BrokenStore(), eager=eager)
    req = await authorized(h, f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    assert await replies_soon(h) == [(500, "Server Internal Error", [("Retry-After", "5")])]
    [record] = [r for r in caplog.records if r.name == "switch.registrar"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    # Without credentials the store is never asked: the 401 goes out as usual.
    unauthenticated = h.request(f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(unauthenticated, FLOW, None))  # type: ignore[arg-type]
    assert [status for status, _, _ in await replies_soon(h, 2)] == [500, 401]


@pytest.mark.parametrize("eager", [True, False])
async def test_handle_with_a_store_that_waits_answers_from_a_task(
    tmp_path: Path, eager: bool
) -> None:
    h = Harness(tmp_path, SlowStore(0.01), eager=eager)
    req = await authorized(h, f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    assert h.replies == [] and len(h.registrar._tasks) == 1
    [task] = h.registrar._tasks
    await asyncio.wait_for(task, 5)
    assert [status for _, status, _, _ in h.replies] == [200]
    await asyncio.sleep(0)  # the done callback runs on the next iteration
    assert h.registrar._tasks == set()


@pytest.mark.parametrize("eager", [True, False])
async def test_close_cancels_answers_still_waiting(tmp_path: Path, eager: bool) -> None:
    h = Harness(tmp_path, SlowStore(None), eager=eager)
    req = await authorized(h, f"Contact: <{CONTACT}>")
    h.registrar.handle(RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    [task] = h.registrar._tasks
    await asyncio.wait_for(h.registrar.close(), 5)
    assert task.cancelled() and h.replies == []


async def test_a_store_using_timeouts_is_served_from_a_transport_callback(
    tmp_path: Path,
) -> None:
    # The node turns eager off for Redis: redis-py enters asyncio.timeout()
    # before its first wait, which needs to run inside a task.
    h = Harness(tmp_path, TimeoutStore())
    req = await authorized(h, f"Contact: <{CONTACT}>")
    loop = asyncio.get_running_loop()
    # UDP datagram_received is a plain callback: no current task.
    loop.call_soon(h.registrar.handle, RequestReceived(req, FLOW, None))  # type: ignore[arg-type]
    assert [status for status, _, _ in await replies_soon(h)] == [200]
