"""A browser agent's call through a live node whose WebRTC legs use a TURN
relay (a real coturn on loopback), and an ICE restart in a re-INVITE.

The browser (aiortc, 1 kHz tone, SIP over the node's WebSocket) calls out
through the demo trunk; the far end answers in PCMU and sends 400 Hz. Each
side must hear the other's tone at the right frequency.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from switch.call.b2bua import Call
from switch.media import g711
from switch.media.webrtc import WebRtcLeg
from switch.media.webrtc_sdp import RemoteTransport, is_webrtc, remote_transport
from switch.node import Node
from switch.sip.message import Request, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.integration.test_webrtc_calls import (
    _far_end_talks,
    _final,
    _register,
    _request,
    _request_of,
)
from tests.media.audio import peaks
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone, WsBrowser, authorization
from tests.support.turn import Coturn

SECONDS = 3.0
URI, TO = "sip:95551234@demo.invalid", "<sip:95551234@demo.invalid>"


def _heard_both_tones(far_end_got: list[bytes], browser: Browser, skip: int) -> None:
    pcm = b"".join(g711.ulaw_decode(p[12:]) for p in far_end_got if p[1] & 0x7F == 0)
    assert len(pcm) > 2 * 8000 * (SECONDS - 2), "the far end heard too little"
    assert peaks(pcm[-2 * 8000 :], 8000, 1) == pytest.approx([1000], abs=15)
    heard = browser.heard()[skip:][48000:]
    assert len(heard) > 48000 * (SECONDS - 2), "the browser heard too little"
    assert peaks(heard[::6].copy(), 8000, 1) == pytest.approx([400], abs=15)


def _browser_leg(node: Node) -> WebRtcLeg:
    assert node.calls is not None
    (call,) = node.calls._by_invite.values()
    assert call.media is not None and isinstance(call.media.a, WebRtcLeg)
    return call.media.a


class _Dialog:
    """The browser's side of the call: what it needs for in-dialog requests."""

    def __init__(self, call_id: str, to: str, contact: str) -> None:
        self.call_id, self.to, self.contact, self.cseq = call_id, to, contact, 2

    def request(self, method: str, body: str = "", cseq: int | None = None) -> str:
        if cseq is None:
            self.cseq += 1
        return _request(method, self.contact, cseq or self.cseq, self.to, "b1", self.call_id, body)


async def _answer(carrier: UdpPhone, node: Node, invite: Request, port: int) -> None:
    """The far end answers (or re-answers) in PCMU, its media at `port`."""
    answer = (
        f"v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    ).encode()
    ok = make_response(invite, 200, to_tag="far1", headers=[
        ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
        ("Content-Type", "application/sdp"),
    ], body=answer)  # fmt: skip
    carrier.send(bytes(ok), sip_address(node))


async def _call_out(tmp_path, coturn: Coturn, media: str, restart: bool = False) -> Call:
    async with UdpPhone(("127.0.0.1", 9)) as carrier, UdpPhone(("127.0.0.1", 9)) as far_media:
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            'inbound_from = ["127.0.0.1"]': 'inbound_from = ["127.0.0.9"]',
            "[media]\n": f"[media]\n{media}\n",
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            WsBrowser(f"{node.http_url}/sip") as ws,
        ):
            ended = ended_calls(node)
            await _register(ws)
            browser = Browser(1000.0, ("PCMU",))
            try:
                offer = await browser.offer()
                call_id = secrets.token_hex(8)
                challenge = await ws.request(_request("INVITE", URI, 1, TO, "b1", call_id, offer))
                creds = authorization(challenge, "1004", "agent1004", URI, "INVITE")
                await ws.send(_request("INVITE", URI, 2, TO, "b1", call_id, offer,
                                       (f"Proxy-Authorization: {creds}",)))  # fmt: skip
                invite = await _request_of(carrier, "INVITE")
                plain = parse_sdp(invite.body).media[0]
                node_b = (parse_sdp(invite.body).media_connection(plain).host, plain.port)
                await _answer(carrier, node, invite, far_media.address[1])
                answered = await _final(ws)
                assert answered.status == 200, answered.reason
                first = remote_transport(answered.body)
                await browser.accept(answered.body.decode())
                dialog = _Dialog(call_id, answered.get("To"), str(answered.contact[0].uri))
                await ws.send(dialog.request("ACK", cseq=2))
                got = await _far_end_talks(far_media, node_b, SECONDS)
                _heard_both_tones(got, browser, 0)
                leg = _browser_leg(node)
                assert leg.pair is not None
                candidates = [c.split()[7] for c in first.candidates]
                if "ice_policy" in media:
                    # Only the relay was offered, and media flows through it.
                    assert candidates == ["relay"]
                    assert leg.pair.local_candidate.type == "relay"
                    assert coturn.allocations() >= 1
                if restart:
                    await _restart_ice(browser, ws, carrier, node, dialog, offer, first)
                    assert leg.restarts == 1 and leg.pair.local_candidate.type == "host"
                    skip = len(browser.heard())
                    got = await _far_end_talks(far_media, node_b, SECONDS)
                    _heard_both_tones(got, browser, skip)
                else:
                    # Until the node has sent an SR and the browser's report on
                    # it came back (reports go every 2-6 s): at most 12 s.
                    for _ in range(12):
                        if leg.quality().rtt is not None:
                            break
                        await _far_end_talks(far_media, node_b, 1.0)

                await ws.send(dialog.request("BYE"))
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


async def _restart_ice(
    browser: Browser, ws: WsBrowser, carrier: UdpPhone, node: Node, dialog: _Dialog,
    offer: str, first: RemoteTransport,
) -> None:  # fmt: skip
    """The browser re-offers with new ICE credentials; the far end re-answers."""
    restart = await browser.restart_ice()
    await ws.send(dialog.request("INVITE", restart.offer(offer)))
    reinvite = await _request_of(carrier, "INVITE")
    assert not is_webrtc(reinvite.body)  # the far end sees plain RTP, as before
    await _answer(carrier, node, reinvite, parse_sdp(reinvite.body).media[0].port)
    again = await _final(ws)
    assert again.status == 200, again.reason
    await ws.send(dialog.request("ACK", cseq=dialog.cseq))
    second = remote_transport(again.body)
    # New credentials of the node's own; the same DTLS end.
    assert (second.ufrag, second.pwd) != (first.ufrag, first.pwd)
    assert second.fingerprints == first.fingerprints
    await asyncio.wait_for(restart.complete(second), 10)
    await restart.drop_old_path()
    leg = _browser_leg(node)
    await asyncio.wait_for(leg.task, 10)  # type: ignore[arg-type]
    assert leg.failure == ""
    assert leg.rtp.remote == restart.address


async def test_with_the_relay_policy_a_browsers_call_flows_through_coturn(tmp_path, coturn_secret):
    media = (
        'ice_policy = "relay"\n'
        f'turn_servers = [{{ url = "{coturn_secret.url}" }}]\n'
        f'turn_secret = "{coturn_secret.secret}"'
    )
    call = await asyncio.wait_for(_call_out(tmp_path, coturn_secret, media), 60)
    assert call.quality["a"].packets_received > 50 * (SECONDS - 1)
    # The node reported to the browser, and learnt the round trip from its reports.
    assert call.quality["a"].rtt is not None


async def test_a_browser_restarting_ice_in_a_reinvite_keeps_talking(tmp_path, coturn):
    stun = f'stun_servers = ["stun:127.0.0.1:{coturn.port}"]'
    call = await asyncio.wait_for(_call_out(tmp_path, coturn, stun, restart=True), 60)
    assert call.quality["a"].packets_received > 2 * 50 * (SECONDS - 1)
