"""The registrar in a live node: Redis shared by two nodes, bans, scanners, browsers, qualify."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from switch.node import Node
from switch.registrar.service import flow_of
from switch.sip.message import Request, Response, make_response
from tests.integration.conftest import running_node, sip_address
from tests.support.sipclient import (
    UdpPhone,
    WsBrowser,
    authorization,
    invite,
    register,
    register_agent,
)


def _redis(url: str, name: str, prefix: str) -> dict[str, str]:
    return {
        '# name = "node1"': f'name = "{name}"',
        'backend = "memory"        # memory (one node)': (
            f'backend = "redis"\nredis_url = "{url}"\nkey_prefix = "{prefix}"\n#'
        ),
    }


async def test_a_binding_made_on_one_node_is_found_on_another(tmp_path, redis_url):
    prefix = f"t{secrets.token_hex(4)}:"
    async with (
        running_node(tmp_path, "a", _redis(redis_url, "a", prefix)) as a,
        running_node(tmp_path, "b", _redis(redis_url, "b", prefix)) as b,
        UdpPhone(sip_address(a)) as phone,
    ):
        # Challenged by node a, answered to node b: the nonce is signed with
        # a secret the nodes share through Redis.
        first, second = await register_agent(phone, "1001", "agent1001", sip_address(b))
        assert first.status == 401
        assert second.status == 200, second.reason
        now = time.time()
        [seen_by_a] = await a.state.locations.get("demo/1001", now)
        [seen_by_b] = await b.state.locations.get("demo/1001", now)
        assert seen_by_a == seen_by_b
        assert seen_by_a.node == "b"  # the node holding the flow
        assert seen_by_a.source == phone.address


async def test_a_ban_made_on_one_node_holds_on_another(tmp_path, redis_url):
    prefix = f"t{secrets.token_hex(4)}:"
    changes = {"auth_failures = 10": "auth_failures = 3"}
    async with (
        running_node(tmp_path, "a", {**_redis(redis_url, "a", prefix), **changes}) as a,
        running_node(tmp_path, "b", {**_redis(redis_url, "b", prefix), **changes}) as b,
        UdpPhone(sip_address(a)) as phone,
    ):
        try:
            for _ in range(3):
                _, refused = await register_agent(phone, "1002", "wrong")
                assert refused.status == 403
            # Node a dropped the address at once; node b within its refresh.
            phone.send(_options(phone))
            assert await phone.silence(0.5)
            deadline = time.monotonic() + 5
            while not b.gate.banned("127.0.0.1"):
                assert time.monotonic() < deadline, "node b never saw the ban"
                await asyncio.sleep(0.1)
            phone.send(_options(phone), sip_address(b))
            assert await phone.silence(0.5)
            assert b.stack.stats["dropped_banned"] >= 1
        finally:
            await a.state.bans.unban("127.0.0.1")


def _options(phone: UdpPhone, user_agent: str = "test phone") -> str:
    return (
        "OPTIONS sip:demo.invalid SIP/2.0\r\n"
        f"Via: {phone.via};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:monitor@demo.invalid>;tag={secrets.token_hex(4)}\r\n"
        "To: <sip:demo.invalid>\r\n"
        f"Call-ID: {secrets.token_hex(8)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"User-Agent: {user_agent}\r\n"
        "Content-Length: 0\r\n\r\n"
    )


async def test_ten_failures_ban_the_address_and_say_so(tmp_path, caplog):
    caplog.set_level("WARNING", logger="switch.auth")
    async with running_node(tmp_path) as node, UdpPhone(sip_address(node)) as phone:
        for i in range(10):
            # Unknown users and wrong passwords count alike.
            user, password = ("1003", "wrong") if i % 2 else ("9999", "x")
            _, refused = await register_agent(phone, user, password)
            assert refused.status == 403
        phone.send(_options(phone))
        assert await phone.silence(0.5)
        assert await node.state.bans.is_banned("127.0.0.1", time.time())
        lines = [r.getMessage() for r in caplog.records]
        assert sum(line.startswith("auth failure: ip=127.0.0.1 ") for line in lines) == 10
        assert "auth ban: ip=127.0.0.1 seconds=600 failures=10 window=60" in lines


async def test_scanners_get_no_answer_at_all(tmp_path):
    async with running_node(tmp_path) as node, UdpPhone(sip_address(node)) as phone:
        phone.send(_options(phone, "friendly-scanner"))
        phone.send(_options(phone, "Mozilla SIPVicious 0.3"))
        assert await phone.silence(0.5)
        resp = await phone.request(_options(phone))
        assert resp.status == 200
        assert node.stack.stats["dropped_scanner"] == 2


async def test_browser_registers_over_websocket_and_is_reached_over_it(tmp_path):
    async with running_node(tmp_path) as node, WsBrowser(f"{node.http_url}/sip") as browser:
        contact = (
            "<sip:k3j2h1@df7jal23ls0d.invalid;transport=ws>"
            ';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1'
        )
        via = "SIP/2.0/WSS df7jal23ls0d.invalid"
        supported = ("Supported: path, outbound, gruu",)
        first = await browser.request(
            register("1004", "demo.invalid", contact, via, call_id="ws1", cseq=1, extra=supported)
        )
        assert first.status == 401
        auth = authorization(first, "1004", "agent1004", "sip:demo.invalid")
        ok = await browser.request(
            register(
                "1004", "demo.invalid", contact, via, call_id="ws1", cseq=2,
                extra=(*supported, f"Authorization: {auth}"),
            )
        )  # fmt: skip
        assert ok.status == 200, ok.reason
        assert ok.get("Require") == "outbound"
        [binding] = await node.state.locations.get("demo/1004", time.time())
        assert binding.transport == "ws" and binding.conn_id is not None
        assert binding.instance == "<urn:uuid:00000000-0000-4000-8000-000000000001>"

        # A request for the agent goes over the browser's connection, not to
        # the made-up host of its Contact.
        ping = asyncio.ensure_future(node.qualifier.ping(binding))
        options = await browser.receive()
        assert isinstance(options, Request) and options.method == "OPTIONS"
        assert options.uri_text == binding.contact
        await browser.send(bytes(make_response(options, 200, to_tag="b1")).decode())
        assert await ping == 200
        assert flow_of(binding).conn_id == binding.conn_id

        # The connection ends: so does the binding (the browser re-registers).
        await browser.close()
        deadline = time.monotonic() + 5
        while await node.state.locations.get("demo/1004", time.time()):
            assert time.monotonic() < deadline, "the binding outlived its connection"
            await asyncio.sleep(0.05)


async def test_qualify_removes_a_device_that_stops_answering(tmp_path, caplog):
    caplog.set_level("WARNING", logger="switch.registrar")
    changes = {'name = "Alice Archer"': 'name = "Alice Archer"\nqualify = true'}
    async with (
        running_node(tmp_path, changes=changes) as node,
        UdpPhone(sip_address(node)) as alive,
        UdpPhone(sip_address(node)) as gone,
    ):
        assert node.qualifier is not None
        node.qualifier.timeout = 0.5
        for phone in (alive, gone):
            _, ok = await register_agent(phone, "1001", "agent1001")
            assert ok.status == 200
        assert node.qualifier.watched == 2

        async def answer_pings() -> None:
            while True:
                msg = await alive.receive(timeout=10)
                if isinstance(msg, Request) and msg.method == "OPTIONS":
                    alive.send(bytes(make_response(msg, 200, to_tag="q1")))

        answering = asyncio.ensure_future(answer_pings())
        try:
            removed = await node.qualifier.round()
        finally:
            answering.cancel()
        [binding] = await node.state.locations.get("demo/1001", time.time())
        assert binding.source == alive.address
        assert [b.source for b in removed] == [gone.address]
        assert any("unreachable (408), binding removed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("contact", "expires", "status", "reason_part"),
    [
        ("<sip:1005@127.0.0.1:5999>", "-5", 400, "Expires"),
        ("<sip:1005@127.0.0.1:5999>", "soon", 400, "Expires"),
        ("<sip:1005@127.0.0.1:5999>", "30", 423, "Interval Too Brief"),
        ("<http://example.com/>", "600", 400, "sip"),
        ("<sip:1005@127.0.0.1:5999;expires=x", "600", 400, "Contact"),
    ],
)
async def test_bad_registrations_get_a_specific_answer(
    tmp_path, contact, expires, status, reason_part
):
    async with running_node(tmp_path) as node, UdpPhone(sip_address(node)) as phone:
        call_id = secrets.token_hex(6)
        first = await phone.request(
            register("1005", "demo.invalid", contact, phone.via, call_id=call_id, cseq=1,
                     expires=None, extra=(f"Expires: {expires}",))
        )  # fmt: skip
        if first.status == 401:
            auth = authorization(first, "1005", "agent1005", "sip:demo.invalid")
            first = await phone.request(
                register("1005", "demo.invalid", contact, phone.via, call_id=call_id, cseq=2,
                         expires=None, extra=(f"Expires: {expires}", f"Authorization: {auth}"))
            )  # fmt: skip
        assert first.status == status
        assert reason_part in first.reason
        # ... and the node keeps serving.
        _, ok = await register_agent(phone, "1005", "agent1005")
        assert ok.status == 200


async def test_an_agent_cannot_register_another_agents_number(tmp_path, caplog):
    caplog.set_level("WARNING", logger="switch.registrar")
    async with running_node(tmp_path) as node, UdpPhone(sip_address(node)) as phone:
        contact = f"<sip:1002@{phone.address[0]}:{phone.address[1]}>"
        first = await phone.request(
            register("1002", "demo.invalid", contact, phone.via, call_id="x1", cseq=1)
        )
        # 1001 answers the challenge for 1002's address-of-record.
        auth = authorization(first, "1001", "agent1001", "sip:demo.invalid")
        refused = await phone.request(
            register("1002", "demo.invalid", contact, phone.via, call_id="x1", cseq=2,
                     extra=(f"Authorization: {auth}",))
        )  # fmt: skip
        assert refused.status == 403
        assert await node.state.locations.get("demo/1002", time.time()) == []
        assert any("reason=aor_not_own" in r.getMessage() for r in caplog.records)


async def test_calls_from_agents_are_challenged_and_trunks_are_not(tmp_path):
    async with running_node(tmp_path) as node:
        # 127.0.0.2 is no trunk's address: an agent's phone must prove who it is.
        async with UdpPhone(sip_address(node), host="127.0.0.2") as phone:
            # Not registered from here: refused at once, like any stranger.
            stranger = await phone.request(invite(phone, "1001", 1))
            assert stranger.status == 403 and "registered agent" in stranger.reason
            for ext in ("1001", "1002"):
                assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200
            challenged = await phone.request(invite(phone, "1001", 1))
            assert challenged.status == 407
            values = challenged.get_all("Proxy-Authenticate")
            assert [v.split("algorithm=")[1][:3] for v in values] == ["MD5", "SHA"]
            assert all('realm="demo"' in v for v in values)
            creds = authorization(challenged, "1001", "agent1001", "sip:200@demo.invalid", "INVITE")
            served = await phone.request(
                invite(phone, "1001", 2, (f"Proxy-Authorization: {creds}",))
            )
            # Authenticated: on to routing, where an agent dialling 200 (a
            # DID, not an extension or an outbound prefix) finds nothing.
            assert served.status == 404, served.reason
            again = await phone.request(invite(phone, "1002", 3))
            wrong = authorization(again, "1002", "nope", "sip:200@demo.invalid", "INVITE")
            refused = await phone.request(
                invite(phone, "1002", 4, (f"Proxy-Authorization: {wrong}",))
            )
            assert refused.status == 403
            # 1001's password does not make calls as 1002.
            again = await phone.request(invite(phone, "1002", 5))
            as_1001 = authorization(again, "1001", "agent1001", "sip:200@demo.invalid", "INVITE")
            refused = await phone.request(
                invite(phone, "1002", 6, (f"Proxy-Authorization: {as_1001}",))
            )
            assert refused.status == 403
        # 127.0.0.1 is demo-trunk's address: no challenge; DID 200 is the
        # support queue, which the node answers itself: not without an SDP offer.
        async with UdpPhone(sip_address(node)) as trunk:
            assert (await trunk.request(invite(trunk, "carrier", 1))).status == 488
        allow = (await trunk_options(node)).get("Allow")
        assert "INVITE" in allow and "REFER" not in allow and "MESSAGE" not in allow


async def trunk_options(node: Node) -> Response:
    async with UdpPhone(sip_address(node)) as phone:
        return await phone.request(_options(phone))


@pytest.mark.parametrize("method", ["MESSAGE", "REFER"])
async def test_messages_and_transfers_from_agents_are_challenged_too(tmp_path, method):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node), host="127.0.0.2") as phone,
    ):
        text = invite(phone, "1003", 1).replace("INVITE", method)
        assert (await phone.request(text)).status == 403  # not registered from here
        assert (await register_agent(phone, "1003", "agent1003"))[1].status == 200
        text = invite(phone, "1003", 2).replace("INVITE", method)
        assert (await phone.request(text)).status == 407
