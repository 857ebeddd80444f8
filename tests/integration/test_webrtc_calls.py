"""Browser agents' calls through a live node: SIP over WebSocket, WebRTC media.

The browser is aiortc (ICE, DTLS-SRTP, Opus/PCMU) sending a 1 kHz tone with
its SIP over the node's WebSocket; the trunk's far end is a test phone that
answers with PCMU and sends a 400 Hz tone. Each side must hear the other's
tone at the right frequency: in pass-through (PCMU on both legs) and
transcoded (Opus on the browser, PCMU on the trunk).
"""

from __future__ import annotations

import asyncio
import secrets

import numpy as np
import pytest

from switch.call.b2bua import Call
from switch.media import g711
from switch.media.webrtc_sdp import is_webrtc
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.media.audio import peaks
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone, WsBrowser, authorization, register
from tests.support.sipclient import invite as invite_text

HOST = "df7jal23ls0d.invalid"
CONTACT = f"<sip:k3j2h1@{HOST};transport=ws>"
SECONDS = 3.0


def _request(method: str, uri: str, cseq: int, to: str, from_tag: str, call_id: str,
             body: str = "", extra: tuple[str, ...] = ()) -> str:  # fmt: skip
    content = ["Content-Type: application/sdp"] if body else []
    return "\r\n".join([
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/WSS {HOST};branch=z9hG4bK{secrets.token_hex(8)}",
        "Max-Forwards: 70",
        f"From: <sip:1004@demo.invalid>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: {CONTACT}",
        *extra,
        *content,
        f"Content-Length: {len(body.encode())}",
        "",
        body,
    ])  # fmt: skip


async def _register(ws: WsBrowser) -> None:
    """Agent 1004's browser registers over the WebSocket (JsSIP style)."""
    contact = f'{CONTACT};+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000004>";reg-id=1'
    via = f"SIP/2.0/WSS {HOST}"
    first = await ws.request(register("1004", "demo.invalid", contact, via, call_id="r1", cseq=1))
    auth = authorization(first, "1004", "agent1004", "sip:demo.invalid")
    extra = (f"Authorization: {auth}",)
    ok = await ws.request(
        register("1004", "demo.invalid", contact, via, call_id="r1", cseq=2, extra=extra)
    )
    assert ok.status == 200, ok.reason


async def _final(ws: WsBrowser) -> Response:
    while True:
        msg = await ws.receive(timeout=10)
        if isinstance(msg, Response) and msg.status >= 200:
            return msg


async def _request_of(phone: UdpPhone, method: str) -> Request:
    while True:
        msg = await phone.receive(timeout=10)
        if isinstance(msg, Request) and msg.method == method:
            return msg


def _ulaw_tone(freq: float, i: int) -> bytes:
    t = (160 * i + np.arange(160)) / 8000
    return g711.ulaw_encode((8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


async def _far_end_talks(media: UdpPhone, to: tuple[str, int], seconds: float) -> list[bytes]:
    """Send a 400 Hz PCMU tone to the node in real time; return what came back."""
    received: list[bytes] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(int(seconds * 50)):
        header = bytes([0x80, 0]) + i.to_bytes(2, "big") + (160 * i).to_bytes(4, "big")
        media.send(header + b"\x00\x00\x12\x34" + _ulaw_tone(400, i), to)
        while True:
            try:
                received.append(await media.receive_bytes(timeout=0.001))
            except TimeoutError:
                break
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
    return received


async def _browser_calls_out(tmp_path, codecs: tuple[str, ...]) -> Call:
    async with UdpPhone(("127.0.0.1", 9)) as carrier, UdpPhone(("127.0.0.1", 9)) as media:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            # The browser's WebSocket comes from 127.0.0.1 too: not the trunk.
            'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]',
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            WsBrowser(f"{node.http_url}/sip") as ws,
        ):
            ended = ended_calls(node)
            await _register(ws)
            browser = Browser(1000.0, codecs)
            try:
                offer = await browser.offer()
                to, call_id, tag = "<sip:95551234@demo.invalid>", secrets.token_hex(8), "b1"
                uri = "sip:95551234@demo.invalid"
                challenge = await ws.request(_request("INVITE", uri, 1, to, tag, call_id, offer))
                assert challenge.status == 407, challenge.reason
                creds = authorization(challenge, "1004", "agent1004", uri, "INVITE")
                await ws.send(_request("INVITE", uri, 2, to, tag, call_id, offer,
                                       (f"Proxy-Authorization: {creds}",)))  # fmt: skip

                # The trunk is offered plain RTP, with PCMU among the codecs.
                invite = await _request_of(carrier, "INVITE")
                assert not is_webrtc(invite.body)
                plain = parse_sdp(invite.body).media[0]
                assert plain.proto == "RTP/AVP" and "0" in plain.formats
                node_b = (parse_sdp(invite.body).media_connection(plain).host, plain.port)
                answer = (
                    f"v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    f"t=0 0\r\nm=audio {media.address[1]} RTP/AVP 0\r\n"
                ).encode()
                ok = make_response(invite, 200, to_tag="far1", headers=[
                    ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                    ("Content-Type", "application/sdp"),
                ], body=answer)  # fmt: skip
                carrier.send(bytes(ok), sip_address(node))

                # The browser is answered in WebRTC, and connects.
                answered = await _final(ws)
                assert answered.status == 200, answered.reason
                assert is_webrtc(answered.body)
                # ...in its own codec: PCMU shared (pass-through), or Opus (transcoded)
                spoken = parse_sdp(answered.body).media[0].rtpmaps().values()
                assert [c.name.casefold() for c in spoken] == [codecs[0].casefold()]
                await browser.accept(answered.body.decode())
                contact = answered.contact[0].uri
                await ws.send(_request("ACK", str(contact), 2, answered.get("To"), tag, call_id))
                heard_by_trunk = await _far_end_talks(media, node_b, SECONDS)

                trunk_pcm = b"".join(g711.ulaw_decode(p[12:]) for p in heard_by_trunk
                                     if p[1] & 0x7F == 0)  # fmt: skip
                assert len(trunk_pcm) > 2 * 8000 * (SECONDS - 2), "the trunk heard too little"
                assert peaks(trunk_pcm[-2 * 8000 :], 8000, 1) == pytest.approx([1000], abs=15)
                heard = browser.heard(skip=1.0)
                assert len(heard) > 48000 * (SECONDS - 2), "the browser heard too little"
                assert peaks(heard[::6].copy(), 8000, 1) == pytest.approx([400], abs=15)

                await ws.send(_request("BYE", str(contact), 3, answered.get("To"), tag, call_id))
                bye = await _request_of(carrier, "BYE")
                carrier.send(bytes(make_response(bye, 200)), sip_address(node))
                assert (await _final(ws)).status == 200
                for _ in range(50):
                    if ended:
                        break
                    await asyncio.sleep(0.05)
                return ended[0]
            finally:
                await browser.close()


async def test_a_browser_agent_calls_out_through_the_trunk_in_pcmu_pass_through(tmp_path):
    call = await asyncio.wait_for(_browser_calls_out(tmp_path, ("PCMU",)), 40)
    assert call.quality["a"].packets_received > 50 * (SECONDS - 1)
    assert call.quality["b"].packets_received > 50 * (SECONDS - 1)


async def test_a_browser_agent_speaking_opus_is_transcoded_to_a_pcmu_trunk(tmp_path):
    call = await asyncio.wait_for(_browser_calls_out(tmp_path, ("opus",)), 40)
    assert call.quality["a"].packets_received > 50 * (SECONDS - 1)
    # Each leg's report names what its endpoint sent, and rates it.
    assert call.quality["a"].codec == "opus" and call.quality["b"].codec == "pcmu"
    assert call.quality["a"].to_dict()["mos"] > 4.0


async def _trunk_calls_browser(tmp_path, codecs: tuple[str, ...], refresh: bool = False) -> None:
    async with UdpPhone(("127.0.0.1", 9)) as media:
        changes = {
            '[tenants.demo.dids."400"]': (
                '[tenants.demo.dids."500"]\nagent = "1004"\n\n[tenants.demo.dids."400"]'
            )
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
            WsBrowser(f"{node.http_url}/sip") as ws,
        ):
            await _register(ws)
            if refresh:
                assert node.calls is not None
                node.calls.session_expires, node.calls.min_se = 2, 1  # seconds, for the test
            browser = Browser(1000.0, codecs)
            try:
                offer = (
                    f"v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    f"t=0 0\r\nm=audio {media.address[1]} RTP/AVP 0 8\r\n"
                )
                length = f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}"
                text = invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:500@")
                trunk.send(text.replace("Content-Length: 0", length) + offer)

                # The browser is offered WebRTC by the node, with Opus added.
                invite = await ws.receive(timeout=10)
                while not (isinstance(invite, Request) and invite.method == "INVITE"):
                    invite = await ws.receive(timeout=10)
                assert is_webrtc(invite.body)
                names = [
                    c.name.casefold() for c in parse_sdp(invite.body).media[0].rtpmaps().values()
                ]
                assert "opus" in names and "pcmu" in names
                answer = await browser.answer(invite.body.decode())
                ok = make_response(invite, 200, to_tag="ws1", headers=[
                    ("Contact", CONTACT), ("Content-Type", "application/sdp"),
                ], body=answer.encode())  # fmt: skip
                await ws.send(bytes(ok).decode())

                # The trunk gets plain RTP in a codec it offered.
                answered = await _trunk_final(trunk)
                assert answered.status == 200, answered.reason
                assert not is_webrtc(answered.body)
                audio = parse_sdp(answered.body).media[0]
                assert audio.proto == "RTP/AVP" and audio.formats[0] == "0"
                node_a = (parse_sdp(answered.body).media_connection(audio).host, audio.port)
                trunk.send(_ack(trunk, answered))
                heard_by_trunk = await _far_end_talks(media, node_a, SECONDS)

                trunk_pcm = b"".join(g711.ulaw_decode(p[12:]) for p in heard_by_trunk
                                     if p[1] & 0x7F == 0)  # fmt: skip
                assert len(trunk_pcm) > 2 * 8000 * (SECONDS - 2), "the trunk heard too little"
                assert peaks(trunk_pcm[-2 * 8000 :], 8000, 1) == pytest.approx([1000], abs=15)
                heard = browser.heard(skip=1.0)
                assert len(heard) > 48000 * (SECONDS - 2), "the browser heard too little"
                assert peaks(heard[::6].copy(), 8000, 1) == pytest.approx([400], abs=15)
                if refresh:
                    # The node refreshes the browser's leg (it runs no timer):
                    # the re-INVITE is WebRTC, the same ICE and DTLS end as before.
                    again = await ws.receive(timeout=5)
                    while not (isinstance(again, Request) and again.method == "INVITE"):
                        again = await ws.receive(timeout=5)
                    assert is_webrtc(again.body)
                    first, now = parse_sdp(invite.body).media[0], parse_sdp(again.body).media[0]
                    for name in ("ice-ufrag", "ice-pwd", "fingerprint"):
                        assert now.get(name) == first.get(name)
                    assert now.get_all("candidate") == first.get_all("candidate")
                    # ... and the trunk's leg (the node refreshes it as its
                    # UAS: the trunk does not do timers) is offered plain RTP
                    # again, never the browser's WebRTC SDP.
                    plain = await trunk.receive(timeout=5)
                    while not (isinstance(plain, Request) and plain.method == "INVITE"):
                        plain = await trunk.receive(timeout=5)
                    assert plain.body and not is_webrtc(plain.body)
                    assert parse_sdp(plain.body).media[0].proto == "RTP/AVP"
            finally:
                await browser.close()


async def _trunk_final(trunk: UdpPhone) -> Response:
    while True:
        msg = await trunk.receive(timeout=10)
        if isinstance(msg, Response) and msg.status >= 200:
            return msg


def _ack(trunk: UdpPhone, answered: Response) -> str:
    return "\r\n".join([
        f"ACK {answered.contact[0].uri} SIP/2.0",
        f"Via: {trunk.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: {answered.get('From')}",
        f"To: {answered.get('To')}",
        f"Call-ID: {answered.call_id}",
        "CSeq: 1 ACK",
        "Content-Length: 0",
        "",
        "",
    ])  # fmt: skip


async def test_a_trunk_call_reaches_a_browser_agent_in_pcmu_pass_through(tmp_path):
    await asyncio.wait_for(_trunk_calls_browser(tmp_path, ("PCMU",)), 40)


async def test_a_trunk_call_reaches_a_browser_agent_speaking_opus_transcoded(tmp_path):
    await asyncio.wait_for(_trunk_calls_browser(tmp_path, ("opus",)), 40)


async def test_a_browser_offer_without_a_fingerprint_is_refused_with_the_reason(tmp_path):
    changes = {'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]'}
    async with (
        running_node(tmp_path, changes=changes) as node,
        WsBrowser(f"{node.http_url}/sip") as ws,
    ):
        await _register(ws)
        browser = Browser(1000.0, ("PCMU",))
        try:
            offer = await browser.offer()
            offer = "".join(line for line in offer.splitlines(keepends=True)
                            if not line.startswith("a=fingerprint"))  # fmt: skip
            to, call_id, uri = "<sip:95551234@demo.invalid>", "nofp", "sip:95551234@demo.invalid"
            challenge = await ws.request(_request("INVITE", uri, 1, to, "b1", call_id, offer))
            creds = authorization(challenge, "1004", "agent1004", uri, "INVITE")
            await ws.send(_request("INVITE", uri, 2, to, "b1", call_id, offer,
                                   (f"Proxy-Authorization: {creds}",)))  # fmt: skip
            refused = await _final(ws)
            assert refused.status == 488
            assert "a=fingerprint" in refused.reason
        finally:
            await browser.close()


async def test_a_browser_agents_leg_is_refreshed_in_webrtc(tmp_path):
    await asyncio.wait_for(_trunk_calls_browser(tmp_path, ("PCMU",), refresh=True), 40)
