"""Trunk registration through a live node: we to a carrier, a PBX to us.

The carrier is SIPp (its <verifyauth> checks our digest) or a UdpPhone
playing a registrar, so that a test can look at every REGISTER and answer
with 423, 403 or an INVITE of its own.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import pytest

from switch.sip.digest import DigestAuthenticator, compute_ha1, parse_credentials
from switch.sip.message import Request, Response, make_response
from tests.integration.conftest import running_node, sip_address
from tests.support.sipclient import UdpPhone, authorization, register, register_agent
from tests.support.sipp import free_port, needs_sipp, run_sipp

KEY = "demo/demo-trunk"


def registering_to(port: int, host: str = "127.0.0.1", **extra: str) -> dict[str, str]:
    """Demo config changes: demo-trunk registers to host:port as "acct"."""
    settings = "".join(f"{key} = {value}\n" for key, value in extra.items())
    return {
        'inbound_from = ["127.0.0.1"]\noutbound_host = "127.0.0.1:5090"': (
            f'inbound_from = ["127.0.0.9"]\noutbound_host = "{host}:{port}"'
        ),
        '# username = "account" ': 'username = "acct" ',
        '# password = "secret"': 'password = "s3cret"',
        "# register = true": "register = true\n" + settings,
    }


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def next_register(carrier: UdpPhone, timeout: float = 5.0) -> Request:
    while True:
        msg = await carrier.receive(timeout)
        if isinstance(msg, Request) and msg.method == "REGISTER":
            return msg


class Registrar:
    """The carrier's registrar, played by a test: a real digest check."""

    def __init__(self, phone: UdpPhone, password: str = "s3cret") -> None:
        self.phone = phone
        self.digest = DigestAuthenticator("carrier.test", b"k" * 32)
        # It offers SHA-256 first (the verifier's default order), then MD5.
        self.ha1s = {
            a: compute_ha1("acct", "carrier.test", password, a) for a in ("MD5", "SHA-256")
        }

    def challenge(self, req: Request) -> None:
        values = self.digest.challenge_values(time.time())
        headers = [("WWW-Authenticate", v) for v in values]
        self.phone.send(bytes(make_response(req, 401, to_tag="r1", headers=headers)), self.src)

    def valid(self, req: Request) -> bool:
        creds = parse_credentials(req.get("Authorization") or "")
        result = self.digest.verify(
            "REGISTER",
            creds,
            lambda user, alg: self.ha1s.get(alg) if user == "acct" else None,
            time.time(),
        )
        return result.ok

    def answer(self, req: Request, status: int, headers: list[tuple[str, str]] = ()) -> None:
        self.phone.send(bytes(make_response(req, status, to_tag="r1", headers=headers)), self.src)

    def ok(self, req: Request, expires: int) -> None:
        self.answer(req, 200, [("Contact", f"{req.get('Contact')};expires={expires}")])

    @property
    def src(self) -> tuple[str, int]:
        return self.node_address

    async def register(self, expires: int = 60) -> Request:
        """Serve one challenge-and-register exchange; returns the authorised REGISTER."""
        first = await next_register(self.phone)
        self.challenge(first)
        second = await next_register(self.phone)
        assert self.valid(second), second.get("Authorization")
        self.ok(second, expires)
        return second


@needs_sipp
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_the_node_registers_to_a_sipp_carrier_refreshes_and_unregisters(tmp_path, transport):
    port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    changes = registering_to(port) | {'transport = "udp" ': f'transport = "{transport}" '}
    carrier = asyncio.create_task(
        run_sipp(
            "carrier_registrar.xml", ("127.0.0.1", 9), port=port, timeout=20,
            transport="u1" if transport == "udp" else "t1",
            extra=["-key", "user", "acct", "-key", "pass", "s3cret", "-key", "expires", "4"],
        )
    )  # fmt: skip
    await asyncio.sleep(0.3)  # the registrar listens before the node starts
    async with running_node(tmp_path, changes=changes) as node:
        assert node.carriers is not None
        await wait_for(lambda: node.status()["trunk_registrations"][KEY]["registered"])
        reg = node.carriers.registrations[("demo", "demo-trunk")]
        assert reg.granted == 4
        async with aiohttp.ClientSession() as http, http.get(f"{node.http_url}/healthz") as resp:
            health = await resp.json()
        assert health["trunk_registrations"][KEY]["registered"] is True
        first_until = reg.registered_until
        # Refreshed at 3/4 of the 4 s granted, before it runs out.
        await wait_for(lambda: reg.registered_until != first_until, timeout=5)
        assert node.status()["trunk_registrations"][KEY]["state"] == "registered"
    result = await carrier
    assert result.ok, result.output


async def test_423_is_answered_with_min_expires_and_refresh_follows_the_grant(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as phone:
        registrar = Registrar(phone)
        changes = registering_to(phone.address[1], register_expires="30")
        async with running_node(tmp_path, changes=changes) as node:
            registrar.node_address = sip_address(node)
            first = await next_register(phone)
            assert first.get("Expires") == "30"
            assert (first.get("User-Agent") or "").startswith("switch/")
            registrar.challenge(first)
            second = await next_register(phone)
            assert registrar.valid(second)
            registrar.answer(second, 423, [("Min-Expires", "60")])
            third = await next_register(phone)
            assert third.get("Expires") == "60" and registrar.valid(third)
            assert third.call_id == first.call_id
            assert third.cseq.number == first.cseq.number + 2
            # The carrier grants less than asked: the refresh follows the grant.
            sent = time.monotonic()
            registrar.ok(third, 2)
            refresh = await next_register(phone)
            assert 1.2 < time.monotonic() - sent < 2.0  # 3/4 of 2 s
            assert registrar.valid(refresh)  # credentials at once, on the same nonce
            registrar.ok(refresh, 60)
            await wait_for(lambda: node.status()["trunk_registrations"][KEY]["registered"])
            stop = asyncio.create_task(node.stop())
            bye = await next_register(phone)
            assert bye.get("Expires") == "0" and registrar.valid(bye)
            assert bye.get("Contact") == first.get("Contact")
            registrar.ok(bye, 0)
            await stop
            assert node.carriers.registrations[("demo", "demo-trunk")].state == "stopped"


async def test_a_refused_registration_is_retried_with_backoff_and_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "switch.call")
    async with UdpPhone(("127.0.0.1", 9)) as phone:
        registrar = Registrar(phone)
        changes = registering_to(phone.address[1], register_retry="1")
        async with running_node(tmp_path, changes=changes) as node:
            registrar.node_address = sip_address(node)
            times = []
            for _ in range(3):
                req = await next_register(phone)
                times.append(time.monotonic())
                registrar.answer(req, 403)
            # 1 s, then 2 s: the wait doubles.
            assert 0.8 < times[1] - times[0] < 1.6
            assert 1.8 < times[2] - times[1] < 2.6
            await wait_for(lambda: node.status()["trunk_registrations"][KEY]["failures"] == 3)
            status = node.status()["trunk_registrations"][KEY]
            assert status["state"] == "failed" and status["last_status"] == 403
            assert status["registered"] is False
            line = next(r.getMessage() for r in caplog.records if "403" in r.getMessage())
            assert "trunk demo/demo-trunk" in line
            assert "check username, auth_username and password" in line
            # The account is fixed at the carrier: the next retry gets in.
            await registrar.register()
            await wait_for(lambda: node.status()["trunk_registrations"][KEY]["registered"])


async def test_the_carriers_call_to_our_contact_is_routed_by_the_did_in_to(tmp_path):
    to_agent = {
        '[tenants.demo.dids."100"]\nivr = "demo"': '[tenants.demo.dids."100"]\nagent = "1001"'
    }
    async with UdpPhone(("127.0.0.1", 9), host="127.0.0.2") as phone:
        registrar = Registrar(phone)
        changes = registering_to(phone.address[1], host="127.0.0.2") | to_agent
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node), host="127.0.0.3") as alice,
        ):
            registrar.node_address = sip_address(node)
            registered = await registrar.register()
            await wait_for(lambda: node.status()["trunk_registrations"][KEY]["registered"])
            assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
            # The carrier calls the Contact we registered; the number is in To.
            contact = registered.contact[0].uri
            assert contact.user == "acct"
            phone.send(_carrier_invite(phone, f"sip:acct@{contact.host_port}", "100"),
                       sip_address(node))  # fmt: skip
            invite = await _next(alice, "INVITE")
            assert invite.uri_text.startswith("sip:1001@127.0.0.3:")
            alice.send(bytes(make_response(invite, 486, to_tag="busy")))
            busy = await _next_response(phone, 486)
            assert busy.call_id == "carrier-call"
            # The same INVITE from an address that is neither inbound_from
            # nor the registrar's: not the carrier's call.
            async with UdpPhone(sip_address(node), host="127.0.0.4") as stranger:
                text = _carrier_invite(stranger, f"sip:acct@{contact.host_port}", "100")
                refused = await stranger.request(text)
                assert refused.status == 403


def _carrier_invite(phone: UdpPhone, uri: str, did: str) -> str:
    host, port = phone.address
    return "\r\n".join(
        [
            f"INVITE {uri} SIP/2.0",
            f"Via: {phone.via};branch=z9hG4bKcarrier1;rport",
            "Max-Forwards: 70",
            "From: <sip:5551234@carrier.test>;tag=c1",
            f"To: <sip:{did}@carrier.test>",
            "Call-ID: carrier-call",
            "CSeq: 1 INVITE",
            f"Contact: <sip:5551234@{host}:{port}>",
            "Content-Length: 0",
            "",
            "",
        ]
    )


async def _next(phone: UdpPhone, method: str) -> Request:
    while True:
        msg = await phone.receive()
        if isinstance(msg, Request) and msg.method == method:
            return msg


async def _next_response(phone: UdpPhone, status: int) -> Response:
    while True:
        msg = await phone.receive()
        if isinstance(msg, Response) and msg.status == status:
            return msg


PBX = {
    "# Queues: callers wait here until an agent is free.": (
        "[tenants.demo.trunks.customer-pbx]\n"
        'inbound_register = { username = "pbx1", password = "pbx-secret" }\n\n'
        "[tenants.demo.outbound.to-pbx]\n"
        'prefix = "8"\nstrip = 1\ntrunk = "customer-pbx"\n\n'
        "# Queues: callers wait here until an agent is free."
    ),
    '[tenants.demo.dids."100"]\nivr = "demo"': '[tenants.demo.dids."100"]\nagent = "1001"',
}


async def register_pbx(pbx: UdpPhone, password: str = "pbx-secret") -> Response:
    contact = f"<sip:pbx1@{pbx.address[0]}:{pbx.address[1]}>"
    first = await pbx.request(
        register("pbx1", "demo.invalid", contact, pbx.via, call_id="pbx-reg", cseq=1)
    )
    assert first.status == 401
    auth = authorization(first, "pbx1", password, "sip:demo.invalid")
    return await pbx.request(
        register("pbx1", "demo.invalid", contact, pbx.via, call_id="pbx-reg", cseq=2,
                 extra=(f"Authorization: {auth}",))
    )  # fmt: skip


def pbx_invite(pbx: UdpPhone, did: str, cseq: int, extra: tuple[str, ...] = ()) -> str:
    host, port = pbx.address
    return "\r\n".join(
        [
            f"INVITE sip:{did}@demo.invalid SIP/2.0",
            f"Via: {pbx.via};branch=z9hG4bKpbx{cseq};rport",
            "Max-Forwards: 70",
            "From: <sip:2001@pbx.example>;tag=pbx",  # an extension of the PBX, not its account
            f"To: <sip:{did}@demo.invalid>",
            "Call-ID: pbx-call",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:2001@{host}:{port}>",
            *extra,
            "Content-Length: 0",
            "",
            "",
        ]
    )


async def test_a_pbx_trunk_registers_to_us_then_its_calls_are_the_trunks(tmp_path):
    async with (
        running_node(tmp_path, changes=PBX) as node,
        UdpPhone(sip_address(node), host="127.0.0.5") as pbx,
        UdpPhone(sip_address(node), host="127.0.0.3") as alice,
    ):
        assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
        # Not registered yet: its address is nobody's.
        assert (await pbx.request(pbx_invite(pbx, "100", 1))).status == 403
        assert (await register_pbx(pbx, "wrong")).status == 403
        assert (await register_pbx(pbx)).status == 200
        # Registered: challenged like a peer with auth, then routed by DID.
        challenge = await pbx.request(pbx_invite(pbx, "100", 2))
        assert challenge.status == 407
        creds = authorization(challenge, "pbx1", "pbx-secret", "sip:100@demo.invalid", "INVITE")
        pbx.send(pbx_invite(pbx, "100", 3, (f"Proxy-Authorization: {creds}",)))
        invite = await _next(alice, "INVITE")
        assert invite.uri_text.startswith("sip:1001@127.0.0.3:")
        assert invite.from_.uri.user == "+442001"  # the ANI in E.164, in the demo's plan
        alice.send(bytes(make_response(invite, 486, to_tag="busy")))
        assert (await _next_response(pbx, 486)).call_id == "pbx-call"


async def test_an_agent_credential_does_not_pass_for_the_pbx(tmp_path):
    async with (
        running_node(tmp_path, changes=PBX) as node,
        UdpPhone(sip_address(node), host="127.0.0.5") as pbx,
    ):
        assert (await register_pbx(pbx)).status == 200
        challenge = await pbx.request(pbx_invite(pbx, "100", 1))
        creds = authorization(challenge, "1002", "agent1002", "sip:100@demo.invalid", "INVITE")
        refused = await pbx.request(pbx_invite(pbx, "100", 2, (f"Proxy-Authorization: {creds}",)))
        assert refused.status == 403


async def test_an_outbound_call_goes_to_the_registered_pbx_contact(tmp_path):
    async with (
        running_node(tmp_path, changes=PBX) as node,
        UdpPhone(sip_address(node), host="127.0.0.5") as pbx,
        UdpPhone(sip_address(node), host="127.0.0.3") as alice,
    ):
        assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
        # Before the PBX registers, there is nowhere to send the call.
        await _agent_invite(alice, "85551234", "before")
        assert (await _next_response(alice, 480)).call_id == "before"
        assert (await register_pbx(pbx)).status == 200
        await _agent_invite(alice, "85551234", "after")
        out = await _next(pbx, "INVITE")
        assert out.uri_text == f"sip:+445551234@127.0.0.5:{pbx.address[1]}"
        assert out.from_.uri.user == "1001"
        pbx.send(bytes(make_response(out, 486, to_tag="busy")))
        assert (await _next_response(alice, 486)).call_id == "after"


async def _agent_invite(phone: UdpPhone, dialled: str, call_id: str) -> None:
    """Agent 1001 places a call: 407, then again with credentials."""
    host, port = phone.address

    def text(cseq: int, extra: tuple[str, ...] = ()) -> str:
        return "\r\n".join(
            [
                f"INVITE sip:{dialled}@demo.invalid SIP/2.0",
                f"Via: {phone.via};branch=z9hG4bK{call_id}{cseq};rport",
                "Max-Forwards: 70",
                f"From: <sip:1001@demo.invalid>;tag={call_id}",
                f"To: <sip:{dialled}@demo.invalid>",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} INVITE",
                f"Contact: <sip:1001@{host}:{port}>",
                *extra,
                "Content-Length: 0",
                "",
                "",
            ]
        )

    challenge = await phone.request(text(1))
    assert challenge.status == 407
    creds = authorization(challenge, "1001", "agent1001", f"sip:{dialled}@demo.invalid", "INVITE")
    phone.send(text(2, (f"Proxy-Authorization: {creds}",)))


async def test_two_pbx_trunks_behind_one_address_are_told_apart_by_their_digest(tmp_path):
    two = dict(PBX)
    key = "# Queues: callers wait here until an agent is free."
    two[key] = two[key].replace(
        "[tenants.demo.outbound.to-pbx]",
        "[tenants.demo.trunks.second-pbx]\n"
        'inbound_register = { username = "pbx2", password = "pbx2-secret" }\n\n'
        "[tenants.demo.outbound.to-pbx]",
    )
    async with (
        running_node(tmp_path, changes=two) as node,
        UdpPhone(sip_address(node), host="127.0.0.5") as pbx,
        UdpPhone(sip_address(node), host="127.0.0.5") as pbx2,
        UdpPhone(sip_address(node), host="127.0.0.3") as alice,
    ):
        assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
        assert (await register_pbx(pbx)).status == 200
        contact = f"<sip:pbx2@{pbx2.address[0]}:{pbx2.address[1]}>"
        first = await pbx2.request(
            register("pbx2", "demo.invalid", contact, pbx2.via, call_id="r2", cseq=1)
        )
        auth = authorization(first, "pbx2", "pbx2-secret", "sip:demo.invalid")
        ok = await pbx2.request(
            register("pbx2", "demo.invalid", contact, pbx2.via, call_id="r2", cseq=2,
                     extra=(f"Authorization: {auth}",))
        )  # fmt: skip
        assert ok.status == 200
        challenge = await pbx2.request(pbx_invite(pbx2, "100", 1))
        creds = authorization(challenge, "pbx2", "pbx2-secret", "sip:100@demo.invalid", "INVITE")
        pbx2.send(pbx_invite(pbx2, "100", 2, (f"Proxy-Authorization: {creds}",)))
        await _next(alice, "INVITE")
        assert node.calls is not None
        assert node.calls.trunk_calls[("demo", "second-pbx")] == 1
        assert node.calls.trunk_calls[("demo", "customer-pbx")] == 0
