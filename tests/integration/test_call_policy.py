"""Numbers, permissions, caller ID, codecs and timeouts, through a live node.

The demo tenant's plan is the UK's (country code 44, "0", "00"); its trunk
sends numbers as E.164 unless a test says otherwise. Agents' phones are on
127.0.0.2 (127.0.0.1 is the demo trunk's address); carriers are sockets on
127.0.0.1 that the trunks point at.
"""

from __future__ import annotations

import asyncio
import contextlib

from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import running_node, sip_address
from tests.support.sipclient import UdpPhone, authorization, register_agent
from tests.support.sipclient import invite as invite_text

OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 111 0 8 101\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)


def _carrier_at(port: int) -> dict[str, str]:
    return {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{port}"'}


def _with_backup(port: int) -> dict[str, str]:
    """A second trunk, `backup`, after demo-trunk in the outbound route."""
    return {
        'trunk = "demo-trunk"\nallow_international = false': (
            'trunk = "demo-trunk"\ntrunks = ["backup"]\nallow_international = false'
        ),
        "[tenants.demo.outbound.external]": (
            f'[tenants.demo.trunks.backup]\noutbound_host = "127.0.0.1:{port}"\nkeepalive = 0'
            "\n\n[tenants.demo.outbound.external]"
        ),
    }


async def _dial(
    phone: UdpPhone, ext: str, dialled: str, sdp: str = "", extra: tuple[str, ...] = ()
) -> None:
    """Agent `ext` places a call: challenged (407), then sent again with credentials."""

    def text(cseq: int, more: tuple[str, ...] = ()) -> str:
        return invite_text(phone, ext, cseq, (*extra, *more)).replace("sip:200@", f"sip:{dialled}@")

    phone.send(text(1))
    challenge = await _final(phone, 407)
    creds = authorization(challenge, ext, f"agent{ext}", f"sip:{dialled}@demo.invalid", "INVITE")
    invite = text(2, (f"Proxy-Authorization: {creds}",))
    if sdp:
        length = f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}"
        invite = invite.replace("Content-Length: 0", length) + sdp
    phone.send(invite)


async def _request(phone: UdpPhone, method: str, timeout: float = 5.0) -> Request:
    while True:
        msg = await phone.receive(timeout)
        if isinstance(msg, Request) and msg.method == method:
            return msg


async def _final(phone: UdpPhone, status: int, timeout: float = 5.0) -> Response:
    """The next response with `status`; others (a 407 or 486 resent for want of
    an ACK, which these phones do not send) are passed over."""
    while True:
        msg = await phone.receive(timeout)
        if isinstance(msg, Response) and msg.status == status:
            return msg


async def _no_invite(phone: UdpPhone, seconds: float) -> bool:
    """True when no INVITE arrives for `seconds` (an ACK of an earlier call may)."""
    try:
        await _request(phone, "INVITE", timeout=seconds)
    except TimeoutError:
        return True
    return False


@contextlib.asynccontextmanager
async def _agent_and_carrier(tmp_path, changes: dict[str, str] | None = None, ext: str = "1001"):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        every = {**_carrier_at(carrier.address[1]), **(changes or {})}
        async with (
            running_node(tmp_path, changes=every) as node,
            UdpPhone(sip_address(node), host="127.0.0.2") as phone,
            UdpPhone(sip_address(node)) as trunk,  # from 127.0.0.1: the demo trunk
        ):
            assert (await register_agent(phone, ext, f"agent{ext}"))[1].status == 200
            yield node, phone, carrier, trunk


async def test_a_national_number_reaches_the_trunk_in_its_format(tmp_path):
    changes = {
        'number_format = "e164" ': 'number_format = "national" ',
        '# caller_id = "+442079460000"   # what': 'caller_id = "+442079460000"   # what',
    }
    async with _agent_and_carrier(tmp_path, changes) as (_node, alice, carrier, _trunk):
        await _dial(alice, "1001", "9(020)7946-0123")
        out = await _request(carrier, "INVITE")
        assert out.uri_text == f"sip:02079460123@127.0.0.1:{carrier.address[1]}"
        # The tenant's main number, in the trunk's format, with the agent's name.
        assert out.from_.uri.user == "02079460000"
        assert out.from_.display == "Alice Archer"


async def test_an_international_call_is_refused_with_the_reason_and_logged(tmp_path, caplog):
    async with _agent_and_carrier(tmp_path) as (_node, alice, carrier, _trunk):
        await _dial(alice, "1001", "900493012345678")
        refused = await _final(alice, 403)
        assert "international numbers are not allowed for agent 1001" in refused.reason
        assert 'add "international" to may_dial' in refused.reason
        assert await _no_invite(carrier, 0.3)  # the carrier never hears of it
    assert "call refused: tenant=demo agent=1001 number=+493012345678 class=international" in (
        caplog.text
    )


async def test_an_agent_allowed_abroad_gets_through(tmp_path):
    changes = {
        '# may_dial = ["internal", "emergency", "national", "mobile", "international"]': (
            'may_dial = ["internal", "emergency", "national", "mobile", "international"]'
        )
    }
    async with _agent_and_carrier(tmp_path, changes) as (_node, alice, carrier, _trunk):
        await _dial(alice, "1001", "900493012345678")
        out = await _request(carrier, "INVITE")
        assert out.uri_text.startswith("sip:+493012345678@")


async def test_an_emergency_number_always_passes(tmp_path):
    # Even an agent who may dial nothing else reaches 999, sent as dialled.
    changes = {
        '# may_dial = ["internal", "emergency", "national", "mobile", "international"]': (
            'may_dial = ["emergency"]'
        )
    }
    async with _agent_and_carrier(tmp_path, changes) as (node, alice, carrier, _trunk):
        await _dial(alice, "1001", "999")
        out = await _request(carrier, "INVITE")
        assert out.uri_text == f"sip:999@127.0.0.1:{carrier.address[1]}"
        carrier.send(bytes(make_response(out, 486, to_tag="x")), sip_address(node))
        await _final(alice, 486)
        await _dial(alice, "1001", "902079460123")  # but a national number is refused
        await _final(alice, 403)


async def test_caller_id_asserted_on_a_trusted_trunk_and_withheld(tmp_path):
    changes = {
        "trusted = false ": "trusted = true ",
        '# caller_id = "+442079460001"  # presented': 'caller_id = "+442079460001"  # presented',
        '# caller_ids = ["+442079460001"]': 'caller_ids = ["+442079460001"]',
    }
    async with _agent_and_carrier(tmp_path, changes) as (node, alice, carrier, _trunk):
        await _dial(alice, "1001", "902079460123")
        out = await _request(carrier, "INVITE")
        assert out.from_.uri.user == "+442079460001" and out.from_.display == "Alice Archer"
        assert out.get("P-Asserted-Identity").startswith("<sip:+442079460001@")
        assert "Privacy" not in out
        carrier.send(bytes(make_response(out, 486, to_tag="x")), sip_address(node))
        await _final(alice, 486)

        # The phone asks to withhold it (RFC 3323): anonymous From, PAI with Privacy: id.
        await _dial(alice, "1001", "902079460123", extra=("Privacy: id",))
        hidden = await _request(carrier, "INVITE")
        assert hidden.from_.uri.user == "anonymous" and hidden.from_.display == "Anonymous"
        assert hidden.get("P-Asserted-Identity").startswith("<sip:+442079460001@")
        assert hidden.get("Privacy") == "id"


async def test_a_spoofed_preferred_identity_is_not_presented(tmp_path):
    changes = {'# caller_ids = ["+442079460001"]': 'caller_ids = ["+442079460001"]'}
    async with _agent_and_carrier(tmp_path, changes) as (node, alice, carrier, _trunk):
        await _dial(
            alice, "1001", "902079460123", extra=("P-Preferred-Identity: <sip:+12125550100@x>",)
        )
        spoofed = await _request(carrier, "INVITE")
        assert spoofed.from_.uri.user == "1001"  # nothing owned configured: the extension
        carrier.send(bytes(make_response(spoofed, 486, to_tag="x")), sip_address(node))
        await _final(alice, 486)
        await _dial(
            alice, "1001", "902079460123", extra=("P-Preferred-Identity: <sip:02079460001@x>",)
        )
        owned = await _request(carrier, "INVITE")
        assert owned.from_.uri.user == "+442079460001"


async def test_an_inbound_did_in_another_format_matches_and_the_ani_is_normalised(tmp_path):
    changes = {'[tenants.demo.dids."400"]': '[tenants.demo.dids."+442079460400"]'}
    async with _agent_and_carrier(tmp_path, changes) as (node, _alice, carrier, trunk):
        for did in ("02079460400", "442079460400"):
            invite = invite_text(trunk, "07700900123", 1).replace("sip:200@", f"sip:{did}@")
            trunk.send(invite.replace("Call-ID: guarded-invite", f"Call-ID: {did}"))
            out = await _request(carrier, "INVITE")
            assert out.uri_text.startswith("sip:+444000@")  # forwarded as configured
            assert out.from_.uri.user == "+447700900123"  # the customer's number, E.164
            carrier.send(bytes(make_response(out, 486, to_tag="x")), sip_address(node))
            await _final(trunk, 486)


async def test_the_trunk_sees_only_its_codecs_and_488_when_none_fits(tmp_path):
    changes = {
        'codecs = ["pcmu", "pcma", "telephone-event"]': 'codecs = ["pcma", "telephone-event"]'
    }
    async with _agent_and_carrier(tmp_path, changes) as (node, alice, carrier, _trunk):
        await _dial(alice, "1001", "902079460123", OFFER)
        out = await _request(carrier, "INVITE")
        audio = parse_sdp(out.body).media[0]
        assert audio.formats == ["8", "101"]
        assert [c.name for c in audio.rtpmaps().values()] == ["PCMA", "telephone-event"]
        carrier.send(bytes(make_response(out, 486, to_tag="x")), sip_address(node))
        await _final(alice, 486)

        opus_only = OFFER.replace("111 0 8 101", "111 101")
        await _dial(alice, "1001", "902079460123", opus_only)
        refused = await _final(alice, 488)
        assert "demo-trunk" in refused.reason
        assert await _no_invite(carrier, 0.3)  # the trunk was not bothered
        assert len(node.calls) == 0


async def test_a_trunk_callers_offer_is_filtered_toward_the_agent(tmp_path):
    changes = {
        'codecs = ["pcmu", "pcma", "telephone-event"]': 'codecs = ["pcmu"]',
        'app = "echo"              # plays back': 'agent = "1001"              # plays back',
    }
    async with _agent_and_carrier(tmp_path, changes) as (_node, alice, _carrier, trunk):
        invite = invite_text(trunk, "07700900123", 1).replace("sip:200@", "sip:300@")
        length = f"Content-Type: application/sdp\r\nContent-Length: {len(OFFER)}"
        trunk.send(invite.replace("Content-Length: 0", length) + OFFER)
        ringing = await _request(alice, "INVITE")
        codecs = parse_sdp(ringing.body).media[0].rtpmaps().values()
        assert [c.name for c in codecs if c.name != "telephone-event"] == ["PCMU"]
        # (The trunk carries no telephone-event; the agent is offered one all
        # the same: the node turns its events into tones for the trunk.)
        assert ringing.from_.uri.user == "+447700900123"  # the agent sees E.164


async def test_a_silent_trunk_is_cancelled_and_the_next_one_tried(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as backup:
        changes = {**_with_backup(backup.address[1]), "setup_timeout = 5 ": "setup_timeout = 0.4 "}
        async with _agent_and_carrier(tmp_path, changes) as (node, alice, silent, _trunk):
            loop = asyncio.get_running_loop()
            await _dial(alice, "1001", "902079460123")
            first = await _request(silent, "INVITE")
            started = loop.time()
            retried = await _request(backup, "INVITE")
            assert 0.3 < loop.time() - started < 2.0
            assert retried.uri_text.startswith("sip:+442079460123@")
            # The silent trunk wakes up late: its call is CANCELled, not left ringing.
            silent.send(bytes(make_response(first, 180, to_tag="late")), sip_address(node))
            cancel = await _request(silent, "CANCEL")
            assert cancel.call_id == first.call_id
            # Its answer crosses the CANCEL: acknowledged, then hung up at once.
            answer = make_response(first, 200, to_tag="late", headers=[
                ("Contact", f"<sip:x@127.0.0.1:{silent.address[1]}>"),
            ])  # fmt: skip
            silent.send(bytes(answer), sip_address(node))
            assert (await _request(silent, "ACK")).call_id == first.call_id
            assert (await _request(silent, "BYE")).call_id == first.call_id
            backup.send(bytes(make_response(retried, 486, to_tag="busy")), sip_address(node))
            await _final(alice, 486)
            assert node.calls.trunk_calls == {}


async def test_no_trunk_answering_at_all_is_408(tmp_path):
    changes = {"setup_timeout = 5 ": "setup_timeout = 0.3 "}
    async with _agent_and_carrier(tmp_path, changes) as (_node, alice, silent, _trunk):
        await _dial(alice, "1001", "902079460123")
        assert (await _request(silent, "INVITE")).method == "INVITE"
        timeout = await _final(alice, 408)
        assert "demo-trunk" in timeout.reason


async def test_a_callee_ringing_too_long_is_cancelled_and_the_caller_gets_480(tmp_path):
    changes = {"ring_timeout = 60 ": "ring_timeout = 1 "}
    async with _agent_and_carrier(tmp_path, changes) as (node, alice, carrier, _trunk):
        loop = asyncio.get_running_loop()
        await _dial(alice, "1001", "902079460123")
        out = await _request(carrier, "INVITE")
        carrier.send(bytes(make_response(out, 100)), sip_address(node))
        await asyncio.sleep(0.5)  # a 100 Trying is not ringing: the clock has not started
        carrier.send(bytes(make_response(out, 180, to_tag="ring")), sip_address(node))
        rang = loop.time()
        cancel = await _request(carrier, "CANCEL")
        assert 0.8 < loop.time() - rang < 2.0
        carrier.send(bytes(make_response(cancel, 200)), sip_address(node))
        carrier.send(bytes(make_response(out, 487, to_tag="ring")), sip_address(node))
        ended = await _final(alice, 480)
        assert "no answer within 1 s" in ended.reason
        await asyncio.sleep(0.1)
        assert len(node.calls) == 0


async def test_an_agent_rung_longer_than_its_ring_timeout_is_cancelled(tmp_path):
    changes = {'password = "agent1002"': 'password = "agent1002"\nring_timeout = 1'}
    async with (
        _agent_and_carrier(tmp_path, changes) as (node, alice, _carrier, _trunk),
        UdpPhone(sip_address(node)) as bob,
    ):
        assert (await register_agent(bob, "1002", "agent1002"))[1].status == 200
        await _dial(alice, "1001", "1002")
        ringing = await _request(bob, "INVITE")
        bob.send(bytes(make_response(ringing, 180, to_tag="bob")))
        cancel = await _request(bob, "CANCEL", timeout=3)
        assert cancel.call_id == ringing.call_id
        bob.send(bytes(make_response(cancel, 200)))
        bob.send(bytes(make_response(ringing, 487, to_tag="bob")))
        ended = await _final(alice, 480)
        assert "no answer within 1 s" in ended.reason
