"""Calls through the node, SIPp at both ends: trunk in, routing, trunk out."""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
from pathlib import Path

import pytest

from switch.call.b2bua import Hangup
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.support.sipclient import UdpPhone, authorization, register_agent
from tests.support.sipclient import invite as invite_text
from tests.support.sipp import free_port, needs_sipp, run_sipp


@needs_sipp
async def test_a_trunk_call_is_forwarded_out_through_the_trunk(tmp_path):
    # DID 400 is forwarded to 4000 through demo-trunk, whose far end is a
    # SIPp answering on the port the trunk points at.
    far_end = free_port(socket.SOCK_DGRAM)
    changes = {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{far_end}"'}
    async with running_node(tmp_path, changes=changes) as node:
        callee = asyncio.ensure_future(
            run_sipp("call_uas.xml", ("127.0.0.1", 9), calls=3, timeout=20, port=far_end)
        )
        await asyncio.sleep(0.3)  # the far end listens before the calls come
        caller = await run_sipp(
            "call_uac.xml", sip_address(node), calls=3, rate=10, timeout=20, extra=["-s", "400"]
        )
        answered = await callee
        assert caller.ok, caller.output
        assert answered.ok, answered.output
        assert len(node.calls) == 0  # every call ended and was let go


async def _through_node(tmp_path, caller: str, callee: str, calls: int = 2):
    far_end = free_port(socket.SOCK_DGRAM)
    changes = {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{far_end}"'}
    async with running_node(tmp_path, changes=changes) as node:
        ended = ended_calls(node)
        far = asyncio.ensure_future(
            run_sipp(callee, ("127.0.0.1", 9), calls=calls, timeout=20, port=far_end)
        )
        await asyncio.sleep(0.3)
        near = await run_sipp(
            caller, sip_address(node), calls=calls, rate=10, timeout=20, extra=["-s", "400"]
        )
        far_result = await far
        assert near.ok, near.output
        assert far_result.ok, far_result.output
        await asyncio.sleep(0.2)  # the last responses reach the node
        assert len(ended) == calls
        return ended, len(node.calls)


@needs_sipp
async def test_the_callee_hangs_up_first(tmp_path):
    ended, left = await _through_node(
        tmp_path, "call_uac_callee_hangs_up.xml", "call_uas_hangup.xml"
    )
    assert left == 0
    assert {call.hangup for call in ended} == {Hangup("callee", 200, "BYE")}
    assert all(c.started_at <= c.answered_at <= c.ended_at for c in ended)
    # Each leg's end, for the record: the callee's BYE, then ours to the caller.
    for call in ended:
        assert [(leg.leg, leg.by, leg.status, leg.reason) for leg in call.legs] == [
            ("b", "callee", 200, "BYE"),
            ("a", "node", 200, "BYE from the callee"),
        ]
        assert call.legs[0].party == f"trunk demo/demo-trunk {call.target.uri}"
        assert call.target.uri.startswith("sip:+444000@127.0.0.1:")


@needs_sipp
async def test_busy_comes_back_to_the_caller(tmp_path):
    ended, left = await _through_node(tmp_path, "call_uac_busy.xml", "call_uas_busy.xml")
    assert left == 0
    assert {call.hangup for call in ended} == {Hangup("callee", 486, "Busy Here")}
    assert all(call.answered_at is None for call in ended)


@needs_sipp
async def test_the_caller_gives_up_while_it_rings(tmp_path):
    ended, left = await _through_node(tmp_path, "call_uac_cancel.xml", "call_uas_cancel.xml")
    assert left == 0
    assert {call.hangup.by for call in ended} == {"caller"}
    assert {call.hangup.status for call in ended} == {487}
    for call in ended:
        assert [(leg.leg, leg.by, leg.status) for leg in call.legs] == [
            ("a", "caller", 487),
            ("b", "node", 487),
        ]


async def test_an_unknown_did_gets_404(tmp_path):
    async with running_node(tmp_path) as node, UdpPhone(sip_address(node)) as trunk:
        resp = await trunk.request(invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:999@"))
        assert resp.status == 404
        assert "999" in resp.reason


async def test_an_agent_calls_another_agent_over_its_registration(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002's phone
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001's phone
        UdpPhone(("127.0.0.1", 9)) as bob_audio,
        UdpPhone(("127.0.0.1", 9), host="127.0.0.2") as alice_audio,
    ):
        _, ok = await register_agent(bob, "1002", "agent1002")
        assert ok.status == 200
        assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
        offer = _sdp("alice", "127.0.0.2", alice_audio.address[1])
        await _agent_calls(alice, "1001", "1002", offer)
        # Bob's phone rings: the INVITE came to the address it registered
        # from, and the offer now names the node as where to send media.
        invite = await _next_request(bob, "INVITE")
        assert invite.uri_text.startswith("sip:1002@127.0.0.1:")
        assert invite.call_id != "guarded-invite"  # a leg of its own
        relay_b = _media_address(invite.body)
        assert relay_b[0] == "127.0.0.1" and relay_b[1] != alice_audio.address[1]
        answer = _sdp("bob", "127.0.0.1", bob_audio.address[1])
        ok = make_response(invite, 200, to_tag="bob1", headers=[
            ("Contact", f"<sip:1002@{bob.address[0]}:{bob.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=answer.encode())  # fmt: skip
        bob.send(bytes(ok))
        answered = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered, cseq=2))
        relay_a = _media_address(answered.body)
        assert relay_a[0] == "127.0.0.1" and relay_a[1] not in (relay_b[1], bob_audio.address[1])
        first_ack = await _next_request(bob, "ACK")  # the node acknowledged Bob's answer
        bob.send(bytes(ok))  # as if that ACK were lost: the 200 again
        again = await _next_request(bob, "ACK")
        assert bytes(again) == bytes(first_ack)  # the same ACK (RFC 3261 §13.2.2.4)
        assert await alice.silence(0.2)  # and Alice is not answered twice

        # Media flows through the node, payload untouched, both ways.
        alice_audio.send(b"\x80\x00\x00\x01rtp-from-alice", relay_a)
        assert await bob_audio.receive_bytes() == b"\x80\x00\x00\x01rtp-from-alice"
        bob_audio.send(b"\x80\x00\x00\x01rtp-from-bob", relay_b)
        assert await alice_audio.receive_bytes() == b"\x80\x00\x00\x01rtp-from-bob"

        # Alice puts Bob on hold: the new offer reaches Bob in his dialog,
        # his answer comes back to Alice, and each side gets its ACK.
        hold = offer + "a=sendonly\r\n"
        alice.send(_in_dialog(alice, "INVITE", answered, cseq=3, sdp=hold))
        reinvite = await _next_request(bob, "INVITE")
        assert reinvite.call_id == invite.call_id and reinvite.to.tag == "bob1"
        assert reinvite.cseq.number == 2 and b"a=sendonly" in reinvite.body
        assert _media_address(reinvite.body) == relay_b  # same relay ports
        held = answer + "a=recvonly\r\n"
        ok = make_response(reinvite, 200, headers=[
            ("Contact", f"<sip:1002@{bob.address[0]}:{bob.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=held.encode())  # fmt: skip
        bob.send(bytes(ok))
        on_hold = await _next_response(alice, 200)
        assert on_hold.cseq.method == "INVITE" and b"a=recvonly" in on_hold.body
        assert (await _next_request(bob, "ACK")).cseq.number == 2
        bob.send(bytes(ok))  # his 200 again, as if our ACK were lost
        assert (await _next_request(bob, "ACK")).cseq.number == 2  # ACKed again
        alice.send(_in_dialog(alice, "ACK", answered, cseq=3))
        assert await alice.silence(0.2)  # and Alice is not answered twice

        # Alice hangs up: Bob gets the BYE in his own dialog.
        bye = _in_dialog(alice, "BYE", answered, cseq=4)
        alice.send(bye)
        bob_bye = await _next_request(bob, "BYE")
        assert bob_bye.call_id == invite.call_id and bob_bye.to.tag == "bob1"
        bob.send(bytes(make_response(bob_bye, 200)))
        assert (await _next_response(alice, 200)).cseq.method == "BYE"
        assert len(node.calls) == 0


def _sdp(user: str, host: str, port: int) -> str:
    return (
        f"v=0\r\no={user} 1 1 IN IP4 {host}\r\ns={user}\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
    )


def _media_address(body: bytes) -> tuple[str, int]:
    sdp = parse_sdp(body)
    media = sdp.media[0]
    connection = sdp.media_connection(media)
    assert connection is not None
    return connection.host, media.port


async def _agent_calls(
    phone: UdpPhone,
    ext: str,
    dialled: str,
    sdp: str = "",
    call_id: str = "guarded-invite",
    extra: tuple[str, ...] = (),
) -> None:
    """An agent's phone places a call: challenged (407), then sent again with credentials."""

    def text(cseq: int, extra: tuple[str, ...] = ()) -> str:
        return (
            invite_text(phone, ext, cseq, extra)
            .replace("sip:200@", f"sip:{dialled}@")
            .replace("Call-ID: guarded-invite", f"Call-ID: {call_id}")
        )

    challenge = await phone.request(text(1))
    assert challenge.status == 407, challenge.reason
    creds = authorization(challenge, ext, f"agent{ext}", f"sip:{dialled}@demo.invalid", "INVITE")
    invite = text(2, (f"Proxy-Authorization: {creds}", *extra))
    if sdp:
        length = f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}"
        invite = invite.replace("Content-Length: 0", length) + sdp
    phone.send(invite)


async def _next_request(phone: UdpPhone, method: str) -> Request:
    while True:
        msg = await phone.receive()
        if isinstance(msg, Request) and msg.method == method:
            return msg


async def _next_response(phone: UdpPhone, status: int) -> Response:
    while True:
        msg = await phone.receive()
        if isinstance(msg, Response) and msg.status == status:
            return msg


def _in_dialog(
    phone: UdpPhone,
    method: str,
    answered: Response,
    cseq: int,
    sdp: str = "",
    extra: tuple[str, ...] = (),
) -> str:
    target = answered.contact[0].uri
    body = ["Content-Type: application/sdp"] if sdp else []
    host, port = phone.address
    return "\r\n".join(
        [
            f"{method} {target} SIP/2.0",
            f"Via: {phone.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {answered.get('From')}",
            f"To: {answered.get('To')}",
            f"Call-ID: {answered.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:1001@{host}:{port}>",
            *extra,
            *body,
            f"Content-Length: {len(sdp)}",
            "",
            sdp,
        ]
    )


async def test_a_trunk_at_its_call_limit_gets_503(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            # A forwarded call holds two channels of the trunk: in and out.
            "max_calls = 0 ": "max_calls = 2 ",
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            ended = ended_calls(node)
            first = invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:400@")
            trunk.send(first)
            ringing = await _next_request(carrier, "INVITE")  # forwarded out: one call up
            assert ringing.uri_text.startswith("sip:+444000@127.0.0.1:")
            second = (
                invite_text(trunk, "5551234", 1)
                .replace("sip:200@", "sip:400@")
                .replace("Call-ID: guarded-invite", "Call-ID: second-call")
            )
            refused = await trunk.request(second)
            assert refused.status == 503 and refused.get("Retry-After") == "5"
            assert node.calls.trunk_calls[("demo", "demo-trunk")] == 2
            # The refused call has its record, for the capacity reports.
            [record] = ended
            assert record.hangup == Hangup("node", 503, refused.reason)
            assert record.a_invite.call_id == "second-call" and record.target is None


async def test_an_agent_dials_9_and_the_number_goes_out_through_the_trunk(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        ):
            assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
            await _agent_calls(alice, "1001", "95551234")
            out = await _next_request(carrier, "INVITE")
            assert out.uri_text == f"sip:+445551234@127.0.0.1:{carrier.address[1]}"
            assert out.from_.uri.user == "1001"  # the agent's number as caller ID
            assert "Proxy-Authorization" not in out  # nothing of leg A leaks into leg B


async def test_a_failing_trunk_hands_the_call_to_the_next(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as first, UdpPhone(("127.0.0.1", 9)) as backup:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{first.address[1]}"',
            'trunk = "demo-trunk"\nallow_international = false': (
                'trunk = "demo-trunk"\ntrunks = ["backup"]\nallow_international = false'
            ),
            "[tenants.demo.outbound.external]": (
                f'[tenants.demo.trunks.backup]\noutbound_host = "127.0.0.1:{backup.address[1]}"'
                "\nkeepalive = 0"
                "\n\n[tenants.demo.outbound.external]"
            ),
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        ):
            assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
            await _agent_calls(alice, "1001", "95551234")
            tried = await _next_request(first, "INVITE")
            first.send(bytes(make_response(tried, 503, to_tag="down")), sip_address(node))
            assert (await _next_request(first, "ACK")).cseq.method == "ACK"
            retried = await _next_request(backup, "INVITE")
            assert retried.uri_text == f"sip:+445551234@127.0.0.1:{backup.address[1]}"
            assert retried.call_id != tried.call_id  # a new leg, not a resend
            backup.send(bytes(make_response(retried, 486, to_tag="busy")), sip_address(node))
            # A busy callee is the callee's answer, not a trunk failure.
            assert (await _next_response(alice, 486)).status == 486
            assert node.calls.trunk_calls == {}


async def test_a_call_whose_media_stops_is_hung_up_on_both_sides(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            "timeout = 60              # seconds without RTP": "timeout = 1 #",
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            offer = _sdp("caller", "127.0.0.1", 40000)
            trunk.send(
                invite_text(trunk, "5551234", 1)
                .replace("sip:200@", "sip:400@")
                .replace(
                    "Content-Length: 0",
                    f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}",
                )
                + offer
            )
            out = await _next_request(carrier, "INVITE")
            answer = _sdp("callee", "127.0.0.1", 40002).encode()
            ok = make_response(out, 200, to_tag="c1", headers=[
                ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                ("Content-Type", "application/sdp"),
            ], body=answer)  # fmt: skip
            carrier.send(bytes(ok), sip_address(node))
            answered = await _next_response(trunk, 200)
            trunk.send(_in_dialog(trunk, "ACK", answered, cseq=1))
            # No RTP from anyone: after the timeout both sides get a BYE.
            assert (await _next_request(trunk, "BYE")).call_id == "guarded-invite"
            assert (await _next_request(carrier, "BYE")).call_id == out.call_id
            assert len(node.calls) == 0


PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def _pcap_rtp_payloads(path: Path) -> list[bytes]:
    """The RTP payloads of an Ethernet/IPv4/UDP capture, in order."""
    data = path.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4, "a little-endian pcap"
    payloads, offset = [], 24
    while offset < len(data):
        length = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        frame = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        ip_header = (frame[14] & 0x0F) * 4
        payloads.append(frame[14 + ip_header + 8 + 12 :])  # after the RTP header
    return payloads


@needs_sipp
@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} is missing (apt-get install sip-tester)")
async def test_audio_crosses_the_relay_unchanged(tmp_path):
    expected = _pcap_rtp_payloads(PCAP)
    async with UdpPhone(("127.0.0.1", 9)) as carrier, UdpPhone(("127.0.0.1", 9)) as audio:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with running_node(tmp_path, changes=changes) as node:
            ended = ended_calls(node)
            media_port = free_port(socket.SOCK_DGRAM)
            caller = asyncio.ensure_future(
                run_sipp(
                    "call_uac_pcap.xml", sip_address(node), calls=1, timeout=30,
                    extra=["-s", "400", "-mi", "127.0.0.1", "-mp", str(media_port)],
                )
            )  # fmt: skip
            invite = await _next_request(carrier, "INVITE")
            answer = _sdp("callee", "127.0.0.1", audio.address[1]).encode()
            ok = make_response(invite, 200, to_tag="c1", headers=[
                ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                ("Content-Type", "application/sdp"),
            ], body=answer)  # fmt: skip
            carrier.send(bytes(ok), sip_address(node))
            received: list[bytes] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while len(received) < len(expected) and loop.time() < deadline:
                try:
                    packet = await audio.receive_bytes(timeout=deadline - loop.time())
                except TimeoutError:
                    break
                received.append(packet[12:])
            bye = await _next_request(carrier, "BYE")
            carrier.send(bytes(make_response(bye, 200)), sip_address(node))
            result = await caller
            assert result.ok, result.output
            assert len(received) == len(expected)  # no loss through the relay
            assert received == expected  # and not a byte changed
            # The record of the call says how its media went, leg by leg
            # (and the call layer answers the same once the media is gone).
            assert node.calls.quality(ended[0]) is ended[0].quality
            quality = ended[0].quality
            assert quality["a"].packets_received == len(expected)
            assert quality["a"].packets_lost == 0
            assert quality["b"].packets_sent == len(expected)
            # ... with the codec each side sent and a MOS estimate for the CTI and CDR.
            report = quality["a"].to_dict()
            assert report["codec"] == "pcma" and report["packets_lost"] == 0  # the pcap's A-law
            assert 4.0 < report["mos"] <= 4.5  # no loss, a short delay: G.711's best


async def test_a_trunk_that_requires_100rel_gets_its_prack(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            trunk.send(invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:400@"))
            invite = await _next_request(carrier, "INVITE")
            assert "100rel" in invite.get("Supported")
            early = "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            progress = make_response(invite, 183, to_tag="c1", headers=[
                ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                ("Require", "100rel"), ("RSeq", "1"),
                ("Content-Type", "application/sdp"),
            ], body=early.encode())  # fmt: skip
            carrier.send(bytes(progress), sip_address(node))
            carrier.send(bytes(progress), sip_address(node))  # retransmitted: one PRACK
            prack = await _next_request(carrier, "PRACK")
            assert prack.get("RAck") == "1 1 INVITE"
            assert prack.call_id == invite.call_id and prack.to.tag == "c1"
            carrier.send(bytes(make_response(prack, 200)), sip_address(node))
            relayed = await _next_response(trunk, 183)
            assert "Require" not in relayed  # the caller's leg knows nothing of it
            assert await carrier.silence(0.3)  # no second PRACK
            carrier.send(bytes(make_response(invite, 486, to_tag="c1")), sip_address(node))
            assert (await _next_response(trunk, 486)).status == 486


async def test_keepalive_marks_a_silent_trunk_down_and_routing_skips_it(tmp_path, caplog):
    async with UdpPhone(("127.0.0.1", 9)) as silent, UdpPhone(("127.0.0.1", 9)) as backup:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{silent.address[1]}"',
            "keepalive = 30 ": "keepalive = 1 ",
            'trunk = "demo-trunk"\nallow_international = false': (
                'trunk = "demo-trunk"\ntrunks = ["backup"]\nallow_international = false'
            ),
            "[tenants.demo.outbound.external]": (
                f'[tenants.demo.trunks.backup]\noutbound_host = "127.0.0.1:{backup.address[1]}"'
                "\nkeepalive = 1\n\n[tenants.demo.outbound.external]"
            ),
        }
        async with running_node(tmp_path, changes=changes) as node:
            assert node.trunks is not None
            node.trunks.timeout = 0.3

            async def answer_pings() -> None:
                while True:
                    ping = await _next_request(backup, "OPTIONS")
                    backup.send(bytes(make_response(ping, 200)), sip_address(node))

            answering = asyncio.ensure_future(answer_pings())
            try:
                deadline = asyncio.get_running_loop().time() + 5
                while node.trunks.is_up("demo", "demo-trunk"):
                    assert asyncio.get_running_loop().time() < deadline, "never marked down"
                    await asyncio.sleep(0.05)
                assert node.trunks.is_up("demo", "backup")
                # The operator reads what was tried and what to check.
                down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
                assert down == [
                    f"trunk demo/demo-trunk is down: no answer to OPTIONS from "
                    f"127.0.0.1:{silent.address[1]} (udp); routing skips it until it answers "
                    "(check outbound_host, or set keepalive = 0 for a carrier that ignores OPTIONS)"
                ]
            finally:
                answering.cancel()  # the INVITE below must not be taken for a ping
            # The backup stays up until its next ping goes unanswered (over 1 s).
            async with UdpPhone(sip_address(node), host="127.0.0.2") as alice:
                assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
                await _agent_calls(alice, "1001", "95551234")
                # Straight to the backup: the silent trunk is not even tried.
                call = await _next_request(backup, "INVITE")
                assert call.uri_text == f"sip:+445551234@127.0.0.1:{backup.address[1]}"


async def test_the_callee_transfers_the_caller_blind(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002, who answers and transfers
        UdpPhone(sip_address(node)) as carol,  # 1003, who gets the caller
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001, the caller
        UdpPhone(("127.0.0.1", 9), host="127.0.0.2") as alice_audio,
        UdpPhone(("127.0.0.1", 9)) as carol_audio,
    ):
        for phone, ext in ((bob, "1002"), (carol, "1003"), (alice, "1001")):
            assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200
        offer = _sdp("alice", "127.0.0.2", alice_audio.address[1])
        await _agent_calls(alice, "1001", "1002", offer)
        invite = await _next_request(bob, "INVITE")
        relay_b = _media_address(invite.body)
        bob.send(bytes(make_response(invite, 200, to_tag="bob1", headers=[
            ("Contact", f"<sip:1002@{bob.address[0]}:{bob.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=_sdp("bob", "127.0.0.1", 40010).encode())))  # fmt: skip
        answered = await _next_response(alice, 200)
        relay_a = _media_address(answered.body)
        alice.send(_in_dialog(alice, "ACK", answered, cseq=2))

        # Bob transfers Alice to Carol (1003).
        node_contact = invite.contact[0].uri
        refer = "\r\n".join([
            f"REFER {node_contact} SIP/2.0",
            f"Via: {bob.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {invite.get('To')};tag=bob1",
            f"To: {invite.get('From')}",
            f"Call-ID: {invite.call_id}",
            "CSeq: 1 REFER",
            f"Contact: <sip:1002@{bob.address[0]}:{bob.address[1]}>",
            "Refer-To: <sip:1003@demo.invalid>",
            "Content-Length: 0",
            "",
            "",
        ])  # fmt: skip
        accepted = await bob.request(refer)
        assert accepted.status == 202
        trying = await _next_request(bob, "NOTIFY")
        assert trying.body == b"SIP/2.0 100 Trying\r\n" and trying.get("Event") == "refer"
        bob.send(bytes(make_response(trying, 200)))
        to_carol = await _next_request(carol, "INVITE")
        # The caller's offer, on the same relay port Bob had: Alice's media path stays.
        assert _media_address(to_carol.body) == relay_b
        assert b"s=alice" in to_carol.body  # Alice's SDP (the o= line is the node's)
        # RFC 3892: Carol learns who sent the call her way (Bob, as the node knows him).
        assert (to_carol.get("Referred-By") or "").startswith("<sip:1002@127.0.0.1:")
        carol.send(bytes(make_response(to_carol, 200, to_tag="carol1", headers=[
            ("Contact", f"<sip:1003@{carol.address[0]}:{carol.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=_sdp("carol", "127.0.0.1", carol_audio.address[1]).encode())))  # fmt: skip
        assert await _next_request(carol, "ACK")
        done = await _next_request(bob, "NOTIFY")
        assert done.body == b"SIP/2.0 200 OK\r\n"
        assert done.get("Subscription-State").startswith("terminated")
        bob.send(bytes(make_response(done, 200)))
        bye = await _next_request(bob, "BYE")  # the transferor is let go
        bob.send(bytes(make_response(bye, 200)))

        # Alice now talks to Carol, through the same relay port as before.
        alice_audio.send(b"\x80\x00\x00\x01to-carol", relay_a)
        assert await carol_audio.receive_bytes() == b"\x80\x00\x00\x01to-carol"
        alice.send(_in_dialog(alice, "BYE", answered, cseq=3))
        carol_bye = await _next_request(carol, "BYE")
        assert carol_bye.call_id == to_carol.call_id
        carol.send(bytes(make_response(carol_bye, 200)))
        assert (await _next_response(alice, 200)).cseq.method == "BYE"
        assert len(node.calls) == 0


async def test_an_answer_without_contact_is_a_502_not_a_hang(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            trunk.send(invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:400@"))
            invite = await _next_request(carrier, "INVITE")
            # A 2xx must have a Contact (RFC 3261 §13.3.1.4); this one has none.
            carrier.send(bytes(make_response(invite, 200, to_tag="x")), sip_address(node))
            assert (await _next_response(trunk, 502)).status == 502
            assert len(node.calls) == 0


async def test_the_caller_transfers_the_callee_blind(tmp_path):
    # An agent calls out (leg A is the agent) and hands the customer on.
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002, the one called
        UdpPhone(sip_address(node)) as carol,  # 1003, who takes over
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001, who calls and leaves
        UdpPhone(("127.0.0.1", 9)) as bob_audio,
        UdpPhone(("127.0.0.1", 9)) as carol_audio,
    ):
        ended = ended_calls(node)
        for phone, ext in ((bob, "1002"), (carol, "1003"), (alice, "1001")):
            assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200
        offer = _sdp("alice", "127.0.0.2", 40020)
        await _agent_calls(alice, "1001", "1002", offer)
        invite = await _next_request(bob, "INVITE")
        relay_b = _media_address(invite.body)
        bob.send(bytes(make_response(invite, 200, to_tag="bob1", headers=[
            ("Contact", f"<sip:1002@{bob.address[0]}:{bob.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=_sdp("bob", "127.0.0.1", bob_audio.address[1]).encode())))  # fmt: skip
        answered = await _next_response(alice, 200)
        relay_a = _media_address(answered.body)
        alice.send(_in_dialog(alice, "ACK", answered, cseq=2))

        refer = _in_dialog(
            alice, "REFER", answered, cseq=3, extra=("Refer-To: <sip:1003@demo.invalid>",)
        )
        assert (await alice.request(refer)).status == 202
        trying = await _next_request(alice, "NOTIFY")
        assert trying.body == b"SIP/2.0 100 Trying\r\n"
        alice.send(bytes(make_response(trying, 200)))
        to_carol = await _next_request(carol, "INVITE")
        # Bob's SDP on the relay port Alice had: Bob's media path stays.
        assert _media_address(to_carol.body) == relay_a and b"s=bob" in to_carol.body
        assert to_carol.from_.uri.user == "1002"  # Carol sees who she is talking to
        carol.send(bytes(make_response(to_carol, 200, to_tag="carol1", headers=[
            ("Contact", f"<sip:1003@{carol.address[0]}:{carol.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=_sdp("carol", "127.0.0.1", carol_audio.address[1]).encode())))  # fmt: skip
        assert await _next_request(carol, "ACK")
        done = await _next_request(alice, "NOTIFY")
        assert done.body == b"SIP/2.0 200 OK\r\n"
        alice.send(bytes(make_response(done, 200)))
        bye = await _next_request(alice, "BYE")  # the transferor is let go
        alice.send(bytes(make_response(bye, 200)))

        bob_audio.send(b"\x80\x00\x00\x01to-carol", relay_b)
        assert await carol_audio.receive_bytes() == b"\x80\x00\x00\x01to-carol"
        # Carol hangs up: Bob gets the BYE, and the call is over.
        carol_bye = "\r\n".join([
            f"BYE {to_carol.contact[0].uri} SIP/2.0",
            f"Via: {carol.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {to_carol.get('To')};tag=carol1",
            f"To: {to_carol.get('From')}",
            f"Call-ID: {to_carol.call_id}",
            "CSeq: 1 BYE",
            "Content-Length: 0",
            "",
            "",
        ])  # fmt: skip
        assert (await carol.request(carol_bye)).status == 200
        bob_bye = await _next_request(bob, "BYE")
        assert bob_bye.call_id == invite.call_id
        bob.send(bytes(make_response(bob_bye, 200)))
        await asyncio.sleep(0.05)
        assert len(node.calls) == 0
        [call] = ended
        assert call.hangup == Hangup("caller", 200, "BYE")  # Carol stood in for the caller


async def test_the_callee_transfers_the_caller_attended(tmp_path):
    # A customer calls agent Bob; Bob calls Carol, then joins the customer to her.
    async with (
        running_node(tmp_path) as node,
        # Bob places a call too: not from 127.0.0.1, which is the demo trunk's address.
        UdpPhone(sip_address(node), host="127.0.0.3") as bob,  # 1002
        UdpPhone(sip_address(node)) as carol,  # 1003
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001, the customer here
        UdpPhone(("127.0.0.1", 9), host="127.0.0.2") as alice_audio,
        UdpPhone(("127.0.0.1", 9)) as carol_audio,
    ):
        assert node.calls is not None
        for phone, ext in ((bob, "1002"), (carol, "1003"), (alice, "1001")):
            assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200

        async def answer(callee: UdpPhone, tag: str, port: int) -> Request:
            invite = await _next_request(callee, "INVITE")
            callee.send(bytes(make_response(invite, 200, to_tag=tag, headers=[
                ("Contact", f"<sip:x@{callee.address[0]}:{callee.address[1]}>"),
                ("Content-Type", "application/sdp"),
            ], body=_sdp(tag, "127.0.0.1", port).encode())))  # fmt: skip
            return invite

        alice_sdp = _sdp("alice", "127.0.0.2", alice_audio.address[1])
        await _agent_calls(alice, "1001", "1002", alice_sdp, call_id="call-from-1001")
        invite1 = await answer(bob, "bob1", 40030)
        answered1 = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered1, cseq=2))
        relay_a = _media_address(answered1.body)

        bob_sdp = _sdp("bob", "127.0.0.1", 40032)
        await _agent_calls(bob, "1002", "1003", bob_sdp, call_id="call-from-1002")
        await answer(carol, "carol1", carol_audio.address[1])
        answered2 = await _next_response(bob, 200)
        bob_leg2 = (answered2.call_id, answered2.to.tag, answered2.from_.tag)

        # Bob transfers call 1 to call 2's Carol, replacing his own leg of call 2.
        replaces = f"{bob_leg2[0]}%3Bto-tag%3D{bob_leg2[1]}%3Bfrom-tag%3D{bob_leg2[2]}"
        refer = "\r\n".join([
            f"REFER {invite1.contact[0].uri} SIP/2.0",
            f"Via: {bob.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {invite1.get('To')};tag=bob1",
            f"To: {invite1.get('From')}",
            f"Call-ID: {invite1.call_id}",
            "CSeq: 1 REFER",
            f"Refer-To: <sip:1003@demo.invalid?Replaces={replaces}>",
            "Content-Length: 0",
            "",
            "",
        ])  # fmt: skip
        assert (await bob.request(refer)).status == 202
        byes = {(await _next_request(bob, "BYE")).call_id for _ in range(2)}
        assert byes == {invite1.call_id, bob_leg2[0]}  # Bob leaves both calls

        # Alice and Carol hear each other, with nobody re-INVITEd.
        alice_audio.send(b"\x80\x00\x00\x01to-carol", relay_a)
        assert await carol_audio.receive_bytes() == b"\x80\x00\x00\x01to-carol"
        assert len(node.calls) == 1
        alice.send(_in_dialog(alice, "BYE", answered1, cseq=3))
        assert (await _next_request(carol, "BYE")).to.tag == "carol1"


@pytest.mark.parametrize("trusted", [True, False])
async def test_asserted_identity_and_privacy_on_trusted_trunks(tmp_path, trusted):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            "trusted = false ": f"trusted = {str(trusted).lower()} ",
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            trunk.send(
                invite_text(
                    trunk, "5551234", 1,
                    ("P-Asserted-Identity: <sip:5550001@carrier.example>", "Privacy: id"),
                ).replace("sip:200@", "sip:400@")
            )  # fmt: skip
            out = await _next_request(carrier, "INVITE")
            assert out.from_.uri.user == "anonymous"  # the caller asked to be hidden
            if trusted:
                # The carrier is told who it is, and to keep it to itself.
                assert out.get("P-Asserted-Identity").startswith("<sip:+445550001@")
                assert out.get("Privacy") == "id"
            else:
                assert "P-Asserted-Identity" not in out and "Privacy" not in out
