"""Inside a call through a live node: session timers, late offers, INFO,
redirects and attended transfers of every shape."""

from __future__ import annotations

import asyncio

from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.integration.test_calls import (
    _agent_calls,
    _in_dialog,
    _media_address,
    _next_request,
    _next_response,
    _sdp,
)
from tests.support.sipclient import UdpPhone, register_agent


def _ok(req: Request, phone: UdpPhone, tag: str | None, sdp: str = "", headers=()) -> bytes:
    """`phone`'s 200 to `req`, with its Contact and an SDP when given."""
    extra = [("Contact", f"<sip:x@{phone.address[0]}:{phone.address[1]}>"), *headers]
    if sdp:
        extra.append(("Content-Type", "application/sdp"))
    return bytes(make_response(req, 200, to_tag=tag, headers=extra, body=sdp.encode()))


async def _call_up(
    alice: UdpPhone,
    bob: UdpPhone,
    invite_extra: tuple[str, ...] = (),
    answer_headers: tuple[tuple[str, str], ...] = (),
    alice_port: int = 40100,
    bob_port: int = 40102,
) -> tuple[Request, Response]:
    """1001 (alice) calls 1002 (bob), who answers: (bob's INVITE, alice's 200)."""
    await _agent_calls(
        alice, "1001", "1002", _sdp("alice", "127.0.0.2", alice_port), extra=invite_extra
    )
    invite = await _next_request(bob, "INVITE")
    bob.send(_ok(invite, bob, "bob1", _sdp("bob", "127.0.0.1", bob_port), answer_headers))
    answered = await _next_response(alice, 200)
    alice.send(_in_dialog(alice, "ACK", answered, cseq=2))
    assert await _next_request(bob, "ACK")
    return invite, answered


async def _registered(node, *phones: tuple[UdpPhone, str]) -> None:
    for phone, ext in phones:
        assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200


def _from_callee(
    phone: UdpPhone, invite: Request, tag: str, method: str, extra: tuple[str, ...] = ()
) -> str:
    """A request of the callee of `invite` (its To tag `tag`) in that dialog."""
    return "\r\n".join([
        f"{method} {invite.contact[0].uri} SIP/2.0",
        f"Via: {phone.via};branch=z9hG4bK-{tag}-{method.lower()};rport",
        "Max-Forwards: 70",
        f"From: {invite.get('To')};tag={tag}",
        f"To: {invite.get('From')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: 1 {method}",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ])  # fmt: skip


async def _transferor_leaves(phone: UdpPhone) -> set[str]:
    """Answer the NOTIFYs and BYEs a transferor gets until two calls are
    over for it: their Call-IDs."""
    byes: set[str] = set()
    while len(byes) < 2:
        msg = await phone.receive()
        if isinstance(msg, Request) and msg.method in ("BYE", "NOTIFY"):
            phone.send(bytes(make_response(msg, 200)))
            if msg.method == "BYE":
                byes.add(msg.call_id)
    return byes


async def test_the_node_refreshes_legs_that_do_not_run_timers_and_ends_a_dead_one(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        assert node.calls is not None
        node.calls.session_expires, node.calls.min_se = 2, 1  # seconds, for the test
        ended = ended_calls(node)
        await _registered(node, (bob, "1002"), (alice, "1001"))
        invite, answered = await _call_up(alice, bob)
        # Bob was offered a timer; Alice, who did not ask for one, is told the
        # node refreshes (RFC 4028 §9) and is not required to support it.
        assert invite.get("Session-Expires") == "2" and invite.get("Min-SE") == "1"
        assert answered.get("Session-Expires") == "2;refresher=uas"
        assert answered.get("Require") is None

        # Neither side allows UPDATE: each gets a re-INVITE with the SDP it has.
        refresh_b = await _next_request(bob, "INVITE")
        assert refresh_b.call_id == invite.call_id and refresh_b.to.tag == "bob1"
        assert refresh_b.get("Session-Expires") == "2;refresher=uac"
        assert _media_address(refresh_b.body) == _media_address(invite.body)
        bob.send(_ok(refresh_b, bob, None, _sdp("bob", "127.0.0.1", 40102)))
        assert (await _next_request(bob, "ACK")).cseq.number == refresh_b.cseq.number
        refresh_a = await _next_request(alice, "INVITE")
        assert refresh_a.call_id == answered.call_id
        assert _media_address(refresh_a.body) == _media_address(answered.body)
        alice.send(_ok(refresh_a, alice, None, _sdp("alice", "127.0.0.2", 40100)))

        # Bob's phone has forgotten the call: the next refresh gets 481 and
        # the node ends the call on both sides (RFC 4028 §10).
        again = await _next_request(bob, "INVITE")
        bob.send(bytes(make_response(again, 481)))
        bye = await _next_request(alice, "BYE")
        assert bye.call_id == answered.call_id
        alice.send(bytes(make_response(bye, 200)))
        await asyncio.sleep(0.1)
        assert len(node.calls) == 0
        assert ended[0].hangup is not None and ended[0].hangup.by == "node"
        assert "session refresh failed (481 from the callee)" in ended[0].hangup.reason
        assert [(leg.leg, leg.by, leg.status) for leg in ended[0].legs] == [
            ("a", "node", 0),
            ("b", "node", 0),
        ]
        assert ended[0].legs[0].party == "agent demo/1001"


async def test_a_refresher_that_falls_silent_has_its_call_ended(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        assert node.calls is not None
        node.calls.session_expires, node.calls.min_se = 2, 1
        ended = ended_calls(node)
        await _registered(node, (bob, "1002"), (alice, "1001"))
        # Alice asks to refresh; Bob says he will refresh his leg.
        invite, answered = await _call_up(
            alice,
            bob,
            invite_extra=("Supported: timer", "Session-Expires: 2;refresher=uac"),
            answer_headers=(("Session-Expires", "2;refresher=uas"), ("Require", "timer")),
        )
        assert answered.get("Session-Expires") == "2;refresher=uac"
        assert answered.get("Require") == "timer"

        # Alice refreshes once with an UPDATE: the node answers it itself.
        alice.send(
            _in_dialog(
                alice,
                "UPDATE",
                answered,
                cseq=3,
                extra=("Supported: timer", "Session-Expires: 2;refresher=uac"),
            )
        )
        refreshed = await _next_response(alice, 200)
        assert refreshed.cseq.method == "UPDATE"
        assert refreshed.get("Session-Expires") == "2;refresher=uac"
        assert await bob.silence(0.3)  # Bob's leg needs nothing from it

        # Then both fall silent: within the interval less a third, both get BYE.
        byes = await asyncio.gather(_next_request(alice, "BYE"), _next_request(bob, "BYE"))
        assert {b.call_id for b in byes} == {answered.call_id, invite.call_id}
        await asyncio.sleep(0.1)
        assert ended and ended[0].hangup is not None
        assert "session timer expired" in ended[0].hangup.reason


async def test_a_session_interval_below_min_se_gets_422(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        await _registered(node, (alice, "1001"))
        await _agent_calls(
            alice, "1001", "1002", _sdp("alice", "127.0.0.2", 40100), extra=("Session-Expires: 30",)
        )
        refused = await _next_response(alice, 422)
        assert refused.get("Min-SE") == "90"  # the demo's min_se


async def test_a_late_offer_is_anchored_and_answered_in_the_acks(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        UdpPhone(("127.0.0.1", 9)) as bob_audio,
        UdpPhone(("127.0.0.1", 9), host="127.0.0.2") as alice_audio,
    ):
        await _registered(node, (bob, "1002"), (alice, "1001"))
        await _agent_calls(alice, "1001", "1002")  # no SDP: the callee will offer
        invite = await _next_request(bob, "INVITE")
        assert invite.body == b""
        bob.send(_ok(invite, bob, "bob1", _sdp("bob", "127.0.0.1", bob_audio.address[1])))
        answered = await _next_response(alice, 200)
        relay_a = _media_address(answered.body)  # Bob's offer, on the node's port
        assert relay_a[0] == "127.0.0.1" and relay_a[1] != bob_audio.address[1]
        assert await bob.silence(0.2)  # no ACK for Bob until Alice answers
        alice_answer = _sdp("alice", "127.0.0.2", alice_audio.address[1])
        alice.send(_in_dialog(alice, "ACK", answered, cseq=2, sdp=alice_answer))
        ack = await _next_request(bob, "ACK")
        relay_b = _media_address(ack.body)  # Alice's answer, on the node's other port
        assert relay_b[0] == "127.0.0.1" and relay_b[1] not in (relay_a[1], alice_audio.address[1])

        alice_audio.send(b"\x80\x00\x00\x01from-alice", relay_a)
        assert await bob_audio.receive_bytes() == b"\x80\x00\x00\x01from-alice"
        bob_audio.send(b"\x80\x00\x00\x01from-bob", relay_b)
        assert await alice_audio.receive_bytes() == b"\x80\x00\x00\x01from-bob"
        bob.send(bytes(make_response(invite, 200, to_tag="bob1")))  # a late 2xx again
        assert await bob.silence(0.2) is False  # answered with the same ACK
        alice.send(_in_dialog(alice, "BYE", answered, cseq=3))
        assert await _next_request(bob, "BYE")


async def test_info_inside_a_call_reaches_the_other_side(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        await _registered(node, (bob, "1002"), (alice, "1001"))
        invite, answered = await _call_up(alice, bob)
        dtmf = "Signal=5\r\nDuration=160\r\n"
        info = _in_dialog(alice, "INFO", answered, cseq=3, sdp=dtmf)
        alice.send(
            info.replace("Content-Type: application/sdp", "Content-Type: application/dtmf-relay")
        )
        relayed = await _next_request(bob, "INFO")
        assert relayed.call_id == invite.call_id and relayed.to.tag == "bob1"
        assert relayed.body == dtmf.encode()
        assert relayed.content_type == "application/dtmf-relay"
        bob.send(bytes(make_response(relayed, 200)))
        assert (await _next_response(alice, 200)).cseq.method == "INFO"

        # INFO and UPDATE outside any call: no such dialog.
        for method in ("INFO", "UPDATE"):
            stray = _in_dialog(alice, method, answered, cseq=9)
            stray = stray.replace(f"To: {answered.get('To')}", "To: <sip:1002@demo.invalid>")
            alice.send(stray.replace(f"Call-ID: {answered.call_id}", "Call-ID: no-such-call"))
            assert (await _next_response(alice, 481)).cseq.method == method


async def test_a_redirect_is_reported_to_the_caller(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        await _registered(node, (bob, "1002"), (alice, "1001"))
        await _agent_calls(alice, "1001", "1002", _sdp("alice", "127.0.0.2", 40100))
        invite = await _next_request(bob, "INVITE")
        bob.send(
            bytes(
                make_response(
                    invite, 302, to_tag="bob1", headers=[("Contact", "<sip:1003@demo.invalid>")]
                )
            )
        )
        moved = await _next_response(alice, 302)
        assert moved.get("Contact") == "<sip:1003@demo.invalid>"


async def test_a_followed_redirect_reaches_the_new_number(tmp_path):
    changes = {'redirects = "report"': 'redirects = "follow"'}
    async with (
        running_node(tmp_path, changes=changes) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node)) as carol,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        await _registered(node, (bob, "1002"), (carol, "1003"), (alice, "1001"))
        await _agent_calls(alice, "1001", "1002", _sdp("alice", "127.0.0.2", 40100))
        invite = await _next_request(bob, "INVITE")
        bob.send(
            bytes(
                make_response(
                    invite,
                    302,
                    to_tag="bob1",
                    headers=[("Contact", "<sip:1003@elsewhere.invalid>")],
                )
            )
        )
        to_carol = await _next_request(carol, "INVITE")
        assert to_carol.uri_text.startswith("sip:1003@127.0.0.1:")  # routed, not sent to the host
        assert to_carol.call_id != invite.call_id
        carol.send(_ok(to_carol, carol, "carol1", _sdp("carol", "127.0.0.1", 40104)))
        assert (await _next_response(alice, 200)).call_id == "guarded-invite"


async def test_the_caller_transfers_the_callee_attended(tmp_path):
    # Agent Alice calls a customer (Bob), then a colleague (Carol), and joins them.
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002
        UdpPhone(sip_address(node)) as carol,  # 1003
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001, the transferor
        UdpPhone(("127.0.0.1", 9)) as bob_audio,
        UdpPhone(("127.0.0.1", 9)) as carol_audio,
    ):
        assert node.calls is not None
        await _registered(node, (bob, "1002"), (carol, "1003"), (alice, "1001"))
        await _agent_calls(
            alice, "1001", "1002", _sdp("alice", "127.0.0.2", 40100), call_id="call-1"
        )
        invite1 = await _next_request(bob, "INVITE")
        relay_b = _media_address(invite1.body)
        bob.send(_ok(invite1, bob, "bob1", _sdp("bob", "127.0.0.1", bob_audio.address[1])))
        answered1 = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered1, cseq=2))
        assert await _next_request(bob, "ACK")

        await _agent_calls(
            alice, "1001", "1003", _sdp("alice", "127.0.0.2", 40106), call_id="call-2"
        )
        invite2 = await _next_request(carol, "INVITE")
        carol.send(
            _ok(invite2, carol, "carol1", _sdp("carol", "127.0.0.1", carol_audio.address[1]))
        )
        answered2 = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered2, cseq=2))
        assert await _next_request(carol, "ACK")
        assert len(node.calls) == 2

        # Replaces names call 2 as Alice sees it: her tag is the from-tag.
        replaces = f"call-2%3Bto-tag%3D{answered2.to.tag}%3Bfrom-tag%3D{answered2.from_.tag}"
        refer_to = f"Refer-To: <sip:1003@demo.invalid?Replaces={replaces}>"
        alice.send(_in_dialog(alice, "REFER", answered1, cseq=3, extra=(refer_to,)))
        assert (await _next_response(alice, 202)).cseq.method == "REFER"
        assert await _transferor_leaves(alice) == {"call-1", "call-2"}  # Alice leaves both calls

        # Bob and Carol hear each other, nobody re-INVITEd, one call left.
        bob_audio.send(b"\x80\x00\x00\x01to-carol", relay_b)
        assert await carol_audio.receive_bytes() == b"\x80\x00\x00\x01to-carol"
        assert len(node.calls) == 1
        for phone in (bob, carol):
            try:
                msg = await phone.receive(0.2)
            except TimeoutError:
                continue
            raise AssertionError(bytes(msg))
        # Carol hangs up: Bob's leg gets the BYE.
        bye = _from_callee(carol, invite2, "carol1", "BYE")
        assert (await carol.request(bye)).status == 200
        assert (await _next_request(bob, "BYE")).call_id == invite1.call_id
        await asyncio.sleep(0.1)
        assert len(node.calls) == 0


async def test_a_refresh_met_by_glare_is_tried_again(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,
    ):
        assert node.calls is not None
        node.calls.session_expires, node.calls.min_se = 2, 1
        await _registered(node, (bob, "1002"), (alice, "1001"))
        _, answered = await _call_up(alice, bob)
        assert answered.get("Session-Expires") == "2;refresher=uas"

        async def alice_answers_refreshes() -> None:
            while True:
                msg = await alice.receive(30)
                if isinstance(msg, Request) and msg.method == "INVITE":
                    alice.send(_ok(msg, alice, None, _sdp("alice", "127.0.0.2", 40100)))

        alice_task = asyncio.ensure_future(alice_answers_refreshes())
        first = await _next_request(bob, "INVITE")
        bob.send(bytes(make_response(first, 491)))  # Bob was re-INVITEing too
        assert (await _next_request(bob, "ACK")).cseq.number == first.cseq.number
        # RFC 3261 §14.1: the node owns leg B's Call-ID, so it waits 2.1-4 s.
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await _next_request(bob, "INVITE")
        assert 2.0 <= loop.time() - started <= 4.5
        assert second.cseq.number == first.cseq.number + 1
        bob.send(_ok(second, bob, None, _sdp("bob", "127.0.0.1", 40102)))
        assert (await _next_request(bob, "ACK")).cseq.number == second.cseq.number
        assert len(node.calls) == 1
        alice_task.cancel()


async def test_the_caller_transfers_to_a_colleague_who_called_in(tmp_path):
    # Agent Alice talks to Bob (she called him); Carol calls Alice; Alice
    # joins Bob and Carol: the transferor is the callee of the second call.
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002
        UdpPhone(sip_address(node), host="127.0.0.3") as carol,  # 1003, calls Alice
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001
        UdpPhone(("127.0.0.1", 9)) as bob_audio,
        UdpPhone(("127.0.0.1", 9), host="127.0.0.3") as carol_audio,
    ):
        await _registered(node, (bob, "1002"), (carol, "1003"), (alice, "1001"))
        invite1, answered1 = await _call_up(alice, bob, bob_port=bob_audio.address[1])
        relay_b = _media_address(invite1.body)

        await _agent_calls(
            carol,
            "1003",
            "1001",
            _sdp("carol", "127.0.0.3", carol_audio.address[1]),
            call_id="call-from-carol",
        )
        to_alice = await _next_request(alice, "INVITE")
        alice.send(_ok(to_alice, alice, "alice2", _sdp("alice", "127.0.0.2", 40110)))
        answered2 = await _next_response(carol, 200)
        carol.send(_in_dialog(carol, "ACK", answered2, cseq=2))
        assert await _next_request(alice, "ACK")

        # Alice's view of call 2: the node's tag is its From tag, hers the To tag.
        replaces = f"{to_alice.call_id}%3Bto-tag%3D{to_alice.from_.tag}%3Bfrom-tag%3Dalice2"
        refer_to = f"Refer-To: <sip:1003@demo.invalid?Replaces={replaces}>"
        alice.send(_in_dialog(alice, "REFER", answered1, cseq=3, extra=(refer_to,)))
        assert (await _next_response(alice, 202)).cseq.method == "REFER"
        assert await _transferor_leaves(alice) == {answered1.call_id, to_alice.call_id}

        bob_audio.send(b"\x80\x00\x00\x01to-carol", relay_b)
        assert await carol_audio.receive_bytes() == b"\x80\x00\x00\x01to-carol"
        carol_relay = _media_address(answered2.body)
        carol_audio.send(b"\x80\x00\x00\x01to-bob", carol_relay)
        assert await bob_audio.receive_bytes() == b"\x80\x00\x00\x01to-bob"
        assert len(node.calls) == 1
        # Bob hangs up: Carol gets the BYE in her own dialog.
        bye = _from_callee(bob, invite1, "bob1", "BYE")
        assert (await bob.request(bye)).status == 200
        assert (await _next_request(carol, "BYE")).call_id == "call-from-carol"


async def test_a_transfer_to_a_party_with_another_codec_reoffers_to_the_one_who_stays(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as bob,  # 1002, transfers Alice to Carol
        UdpPhone(sip_address(node)) as carol,  # 1003
        UdpPhone(sip_address(node), host="127.0.0.2") as alice,  # 1001
    ):
        await _registered(node, (bob, "1002"), (carol, "1003"), (alice, "1001"))
        offer = _sdp("alice", "127.0.0.2", 40100).replace("RTP/AVP 0", "RTP/AVP 0 8")
        await _agent_calls(alice, "1001", "1002", offer)
        invite = await _next_request(bob, "INVITE")
        bob.send(_ok(invite, bob, "bob1", _sdp("bob", "127.0.0.1", 40102)))  # PCMU
        answered = await _next_response(alice, 200)
        alice.send(_in_dialog(alice, "ACK", answered, cseq=2))
        refer = _from_callee(bob, invite, "bob1", "REFER", ("Refer-To: <sip:1003@demo.invalid>",))
        assert (await bob.request(refer)).status == 202
        to_carol = await _next_request(carol, "INVITE")
        carol_sdp = _sdp("carol", "127.0.0.1", 40104).replace("RTP/AVP 0", "RTP/AVP 8")  # PCMA
        carol.send(_ok(to_carol, carol, "carol1", carol_sdp))
        # Alice had agreed PCMU with Bob: she is offered Carol's PCMA now.
        reoffer = await _next_request(alice, "INVITE")
        assert reoffer.call_id == answered.call_id
        assert b"RTP/AVP 8" in reoffer.body
        assert _media_address(reoffer.body) == _media_address(answered.body)  # same port
        # Alice sees one session: the node's o= line, its version one up.
        before, after = parse_sdp(answered.body).origin, parse_sdp(reoffer.body).origin
        assert (after.username, after.sess_id) == ("switch", before.sess_id)
        assert after.sess_version == before.sess_version + 1
        alice.send(_ok(reoffer, alice, None, offer.replace("RTP/AVP 0 8", "RTP/AVP 8")))
        assert (await _next_request(alice, "ACK")).cseq.number == reoffer.cseq.number


async def test_a_call_that_comes_back_to_the_node_is_a_loop(tmp_path):
    # The carrier sends DID 400's forwarded call straight back to us.
    async with UdpPhone(("127.0.0.1", 9)) as mirror:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{mirror.address[1]}"'
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as carrier,
        ):
            carrier.send(
                "\r\n".join([
                    "INVITE sip:400@demo.invalid SIP/2.0",
                    f"Via: {carrier.via};branch=z9hG4bK-loop-1;rport",
                    "Max-Forwards: 70",
                    "From: <sip:5551234@carrier.invalid>;tag=c1",
                    "To: <sip:400@demo.invalid>",
                    "Call-ID: loop-test",
                    "CSeq: 1 INVITE",
                    "Contact: <sip:5551234@127.0.0.1>",
                    "Content-Length: 0",
                    "",
                    "",
                ])
            )  # fmt: skip
            forwarded = await _next_request(mirror, "INVITE")
            mirror.send(bytes(forwarded), sip_address(node))  # back where it came from
            looped = await _next_response(mirror, 482)
            assert looped.call_id == forwarded.call_id


async def test_a_new_offer_keeps_to_the_trunks_codecs(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        ):
            await _registered(node, (alice, "1001"))
            both = _sdp("alice", "127.0.0.2", 40100).replace("RTP/AVP 0", "RTP/AVP 9 0")
            await _agent_calls(alice, "1001", "95551234", both)
            out = await _next_request(carrier, "INVITE")
            assert b"RTP/AVP 0\r\n" in out.body  # G.722 is not among the demo trunk's codecs
            carrier.send(_ok(out, carrier, "c1", _sdp("carrier", "127.0.0.1", 40120)),
                         sip_address(node))  # fmt: skip
            answered = await _next_response(alice, 200)
            alice.send(_in_dialog(alice, "ACK", answered, cseq=2))
            assert await _next_request(carrier, "ACK")
            # Alice offers G.722 alone: refused here, the carrier never sees it.
            g722 = _sdp("alice", "127.0.0.2", 40100).replace("RTP/AVP 0", "RTP/AVP 9")
            alice.send(_in_dialog(alice, "INVITE", answered, cseq=3, sdp=g722))
            refused = await _next_response(alice, 488)
            assert "codec" in refused.reason
            assert await carrier.silence(0.3)
            # G.722 and PCMA: the carrier is offered PCMA only.
            alice.send(_in_dialog(alice, "INVITE", answered, cseq=4,
                                  sdp=g722.replace("RTP/AVP 9", "RTP/AVP 9 8")))  # fmt: skip
            reoffer = await _next_request(carrier, "INVITE")
            assert b"RTP/AVP 8\r\n" in reoffer.body


async def test_the_echo_did_answers_and_sends_the_audio_back(tmp_path):
    async with (
        running_node(tmp_path) as node,
        UdpPhone(sip_address(node)) as carrier,  # the demo trunk's address
        UdpPhone(("127.0.0.1", 9)) as audio,
    ):
        ended = ended_calls(node)
        offer = _sdp("caller", "127.0.0.1", audio.address[1]).replace("RTP/AVP 0", "RTP/AVP 0 8")
        carrier.send(
            "\r\n".join([
                "INVITE sip:300@demo.invalid SIP/2.0",
                f"Via: {carrier.via};branch=z9hG4bK-echo-1;rport",
                "Max-Forwards: 70",
                "From: <sip:+442079460001@carrier.invalid>;tag=e1",
                "To: <sip:300@demo.invalid>",
                "Call-ID: echo-test",
                "CSeq: 1 INVITE",
                f"Contact: <sip:caller@127.0.0.1:{carrier.address[1]}>",
                "Content-Type: application/sdp",
                f"Content-Length: {len(offer)}",
                "",
                offer,
            ])
        )  # fmt: skip
        answered = await _next_response(carrier, 200)
        relay = _media_address(answered.body)
        assert relay[0] == "127.0.0.1" and relay[1] != audio.address[1]
        assert parse_sdp(answered.body).origin.username == "switch"
        carrier.send(_in_dialog(carrier, "ACK", answered, cseq=1))
        for n in range(3):  # each packet comes back as it went, to where it came from
            packet = b"\x80\x00\x00" + bytes([n]) + b"\x00" * 8 + b"hello %d" % n
            audio.send(packet, relay)
            assert await audio.receive_bytes() == packet
        carrier.send(_in_dialog(carrier, "BYE", answered, cseq=2))
        assert (await _next_response(carrier, 200)).cseq.method == "BYE"
        await asyncio.sleep(0.05)
        assert len(node.calls) == 0
        assert ended[0].hangup is not None and ended[0].hangup.by == "caller"
        assert ended[0].quality["a"].packets_received == 3
