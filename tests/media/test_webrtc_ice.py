"""ICE of a WebRTC leg behind NAT: STUN and TURN candidates (a real coturn on
loopback), the relay policy, dead servers and bad credentials, ICE-lite, ICE
restarts, and the node's RTCP reports to the browser (an aiortc browser)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest
from aiortc import RTCCertificate

from switch.media import g711, webrtc
from switch.media.ice import IceServer, IceSettings
from switch.media.relay import LegMedia, MediaSession, PortPool, anchor
from switch.media.transcode import CodecChoice
from switch.media.webrtc import GATHER_TIMEOUT, WebRtcLeg
from switch.media.webrtc_sdp import (
    LocalTransport,
    RemoteTransport,
    answer_codecs,
    codecs_of,
    remote_transport,
    to_plain,
    to_webrtc,
)
from switch.sip.sdp import parse_sdp
from tests.media.audio import peaks
from tests.media.test_webrtc import PCMU, PLAIN_OFFER, Trunk
from tests.support.browser import Browser
from tests.support.turn import PASSWORD, USER, Coturn

SECONDS = 2.5


def _turn(
    server: Coturn, username: str = USER, password: str = PASSWORD, transport: str = "udp"
) -> IceServer:
    return IceServer("turn", "127.0.0.1", server.port, transport, username, password)


def _stun(port: int) -> IceServer:
    return IceServer("stun", "127.0.0.1", port)


def _candidates(sdp: bytes) -> list[str]:
    return parse_sdp(sdp).media[0].get_all("candidate")


async def _browser_offers(leg: WebRtcLeg, browser: Browser) -> tuple[bytes, bytes]:
    """The browser offers, the node answers (PCMU, pass-through): (offer, answer)."""
    offer = (await browser.offer()).encode()
    body, choice = answer_codecs(PLAIN_OFFER, codecs_of(offer))
    leg.start(remote_transport(offer), offerer=False)
    answer = anchor(to_webrtc(body, leg.local("127.0.0.1", "active")), "127.0.0.1", leg.port)[0]
    await browser.accept(answer.decode())
    leg.transcode(choice)
    return offer, answer


async def _talk(leg: WebRtcLeg, browser: Browser, trunk: Trunk, plain_port: int) -> None:
    """Both tones heard at their frequency on the other side (the browser's
    1 kHz by the trunk, the trunk's 400 Hz by the browser)."""
    before = len(trunk.received)
    heard_before = len(browser.heard())
    await trunk.run(("127.0.0.1", plain_port), 400.0, SECONDS)
    heard_by_trunk = b"".join(
        g711.ulaw_decode(p[12:]) for p in trunk.received[before:] if p[1] & 0x7F == 0
    )
    assert len(heard_by_trunk) > 2 * 8000 * (SECONDS - 1.5), "the trunk heard too little"
    assert peaks(heard_by_trunk[8000:], 8000, 1) == pytest.approx([1000], abs=15)
    heard = browser.heard()[heard_before:][24000:]
    assert len(heard) > 48000 * (SECONDS - 1.5), "the browser heard too little"
    assert peaks(heard[::6].copy(), 8000, 1) == pytest.approx([400], abs=15)


class Call:
    """A WebRTC leg bridged to a plain RTP leg (the 'trunk'), torn down after."""

    def __init__(self, leg: WebRtcLeg, plain: LegMedia, browser: Browser, trunk: Trunk) -> None:
        self.leg, self.plain, self.browser, self.trunk = leg, plain, browser, trunk
        self.session = MediaSession(leg, plain)
        plain.expect(trunk.address)

    @classmethod
    async def open(cls, low: int, ice: IceSettings, freq: float = 1000.0) -> Call:
        pool = PortPool("127.0.0.1", low, low + 100)
        leg = await WebRtcLeg.open(pool, ice)
        return cls(leg, await pool.leg(), Browser(freq, ("PCMU",)), Trunk())

    async def close(self) -> None:
        await self.browser.close()
        self.session.close()
        self.trunk.sock.close()
        await asyncio.sleep(0.05)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "switch.media" and r.levelno == logging.WARNING]  # fmt: skip


# -- gathering ---------------------------------------------------------------------------------


async def test_stun_gives_a_server_reflexive_candidate_mapped_by_the_server(coturn):
    pool = PortPool("127.0.0.1", 42000, 42100)
    leg = await WebRtcLeg.open(pool, IceSettings(stun=(_stun(coturn.port),)))
    try:
        (srflx,) = [c for c in leg.agent.local_candidates if c.type == "srflx"]
        # On loopback there is no NAT: coturn saw the host socket's own address,
        # which is what the binding reports as the mapped address.
        assert (srflx.host, srflx.port) == ("127.0.0.1", leg.port)
        assert (srflx.related_address, srflx.related_port) == ("127.0.0.1", leg.port)
        # In SDP it is redundant with the host candidate at the same address
        # (RFC 8445 §5.1.3): left out; advertised at another address, it stays.
        assert [c.split()[7] for c in leg.local("127.0.0.1", "active").candidates] == ["host"]
        public = leg.local("203.0.113.5", "active").candidates
        assert [c.split()[7] for c in public] == ["host", "srflx"]
        assert "203.0.113.5" in public[0] and f"127.0.0.1 {leg.port} typ srflx" in public[1]
    finally:
        leg.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_turn_gives_a_relay_candidate_from_coturn(coturn, transport):
    turn = _turn(coturn, transport=transport)
    leg = await WebRtcLeg.open(PortPool("127.0.0.1", 42100, 42200), IceSettings(turn=(turn,)))
    try:
        (relay,) = [c for c in leg.agent.local_candidates if c.type == "relay"]
        low, high = coturn.relay_ports
        assert relay.host == "127.0.0.1" and low <= relay.port <= high
        assert coturn.allocations() == 1
        types = [c.split()[7] for c in leg.local("127.0.0.1", "active").candidates]
        assert types == ["host", "relay"]
    finally:
        leg.close()


async def test_minted_credentials_from_the_secret_are_accepted_by_coturn(coturn_secret):
    turn = IceServer("turn", "127.0.0.1", coturn_secret.port)  # no fixed credentials
    leg = await WebRtcLeg.open(
        PortPool("127.0.0.1", 42200, 42300), IceSettings(turn=(turn,), turn_secret="s3cret")
    )
    try:
        assert [c.type for c in leg.agent.local_candidates] == ["host", "relay"]
        assert coturn_secret.allocations() == 1
        assert "user <" in coturn_secret.text() and ":switch>" in coturn_secret.text()
    finally:
        leg.close()


async def test_dead_servers_cost_one_bounded_wait_and_one_warning(caplog):
    # Nothing listens on these ports: no answer, ever.
    dead_stun, dead_turn = _stun(9), IceServer("turn", "127.0.0.1", 7, "udp", "u", "p")
    settings = IceSettings(stun=(dead_stun,), turn=(dead_turn,))
    pool = PortPool("127.0.0.1", 42300, 42400)
    caplog.set_level(logging.INFO, "switch.media")
    start = time.monotonic()
    leg = await WebRtcLeg.open(pool, settings)
    took = time.monotonic() - start
    second = None
    try:
        assert GATHER_TIMEOUT - 0.1 < took < GATHER_TIMEOUT + 1.0
        assert [c.type for c in leg.agent.local_candidates] == ["host"]
        warnings = _warnings(caplog)
        assert len(warnings) == 2
        assert any("stun:127.0.0.1:9" in w and "no answer within 2 s" in w for w in warnings)
        # The next call does not wait for them again (nor logs again).
        start = time.monotonic()
        second = await WebRtcLeg.open(pool, settings)
        assert time.monotonic() - start < 0.5
        assert len(_warnings(caplog)) == 2
    finally:
        leg.close()
        if second is not None:
            second.close()


async def test_a_call_goes_on_on_host_candidates_when_the_servers_are_dead():
    settings = IceSettings(
        stun=(_stun(9),), turn=(IceServer("turn", "127.0.0.1", 7, "udp", "u", "p"),)
    )
    start = time.monotonic()
    call = await Call.open(42400, settings)
    assert time.monotonic() - start < GATHER_TIMEOUT + 1.0
    try:
        await _browser_offers(call.leg, call.browser)
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        assert call.leg.pair is not None and call.leg.pair.local_candidate.type == "host"
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()


async def test_bad_turn_credentials_are_logged_and_the_call_uses_host_candidates(coturn, caplog):
    caplog.set_level(logging.WARNING, "switch.media")
    call = await Call.open(42500, IceSettings(turn=(_turn(coturn, password="wrong"),)))
    try:
        (warning,) = _warnings(caplog)
        assert f"turn:127.0.0.1:{coturn.port}" in warning
        assert "refused the node's credentials (401" in warning
        assert "username and password in [media] turn_servers" in warning
        assert [c.type for c in call.leg.agent.local_candidates] == ["host"]
        await _browser_offers(call.leg, call.browser)
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()


# -- media through coturn ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_with_the_relay_policy_media_flows_through_coturn_both_ways(coturn, transport):
    settings = IceSettings(turn=(_turn(coturn, transport=transport),), policy="relay")
    call = await Call.open(42600, settings)
    try:
        _, answer = await _browser_offers(call.leg, call.browser)
        # Only the relay is advertised, its related address hidden.
        (line,) = _candidates(answer)
        assert " typ relay raddr 0.0.0.0 rport 9" in line
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        pair = call.leg.pair
        assert pair is not None and pair.local_candidate.type == "relay"
        low, high = coturn.relay_ports
        assert low <= pair.local_candidate.port <= high
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()
    # coturn counts what it relayed when the allocation is deleted (at close).
    for _ in range(50):
        if coturn.relayed_to_peers():
            break
        await asyncio.sleep(0.1)
    assert coturn.relayed_to_peers() > 50 * (SECONDS - 1)


# -- ICE-lite ----------------------------------------------------------------------------------


def test_an_ice_lite_end_says_so_at_session_level_and_a_plain_leg_never_sees_it():
    host = "1 1 udp 2130706431 203.0.113.5 30000 typ host"
    local = LocalTransport("node", "p" * 22, ("sha-256", "AA:BB"), "actpass", (host,), True)
    body = to_webrtc(PLAIN_OFFER, local)
    sdp = parse_sdp(body)
    assert sdp.has("ice-lite") and not sdp.media[0].has("ice-lite")
    assert remote_transport(body).ice_lite
    assert b"ice-lite" not in to_plain(body)
    assert not parse_sdp(to_webrtc(PLAIN_OFFER, replace(local, ice_lite=False))).has("ice-lite")


async def test_ice_lite_answers_checks_only_and_the_browser_nominates():
    call = await Call.open(42700, IceSettings(lite=True))
    try:
        _, answer = await _browser_offers(call.leg, call.browser)
        sdp = parse_sdp(answer)
        assert sdp.has("ice-lite")
        assert [c.split()[7] for c in _candidates(answer)] == ["host"]
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        agent = call.leg.agent
        assert not agent.ice_controlling
        # No check of its own: its check list holds no pair it has checked.
        assert all(p.task is None for p in agent._check_list)
        assert agent._query_consent_task is None  # no consent checks either
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()


async def test_ice_lite_node_offering_stays_controlled_and_connects():
    call = await Call.open(42800, IceSettings(lite=True))
    try:
        local = call.leg.local("127.0.0.1", "actpass")
        offer = anchor(to_webrtc(PLAIN_OFFER, local), "127.0.0.1", call.leg.port)[0]
        answer = (await call.browser.answer(offer.decode())).encode()
        call.leg.start(remote_transport(answer), offerer=True)
        call.leg.transcode(CodecChoice(PCMU, PCMU))
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        assert not call.leg.agent.ice_controlling
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()


# -- ICE restarts ------------------------------------------------------------------------------


async def test_an_ice_restart_moves_media_to_the_browsers_new_path_keeping_srtp():
    call = await Call.open(42900, IceSettings())
    try:
        offer, answer = await _browser_offers(call.leg, call.browser)
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
        old_path, old_rx = call.leg.rtp.remote, call.leg._rx
        old_local = (call.leg.agent.local_username, call.leg.agent.local_password)

        # The browser restarts ICE: a new agent on a new socket, new credentials.
        restart = await call.browser.restart_ice()
        again = restart.offer(offer.decode()).encode()
        remote = remote_transport(again)
        assert (remote.ufrag, remote.pwd) != (
            remote_transport(offer).ufrag,
            remote_transport(offer).pwd,
        )
        assert remote.fingerprints == remote_transport(offer).fingerprints
        call.leg.start(remote, offerer=False)
        local = call.leg.local("127.0.0.1", "active")
        assert (local.ufrag, local.pwd) != old_local  # the node's answer: new credentials
        assert local.fingerprint == remote_transport(answer).fingerprints[0]
        await restart.complete(local)
        await asyncio.wait_for(call.leg.task, 10)
        assert call.leg.failure == ""
        assert call.leg.restarts == 1
        assert call.leg.rtp.remote != old_path and call.leg.rtp.remote == restart.address
        assert call.leg._rx is old_rx  # the same SRTP sessions: no new DTLS handshake
        await restart.drop_old_path()  # the browser's old socket is gone
        await _talk(call.leg, call.browser, call.trunk, call.plain.port)
    finally:
        await call.close()


def _sdp(leg: WebRtcLeg, setup: str) -> RemoteTransport:
    """The ICE and DTLS end of `leg`, as its peer reads it from its SDP."""
    body = anchor(to_webrtc(PLAIN_OFFER, leg.local("127.0.0.1", setup)), "127.0.0.1", leg.port)[0]
    return remote_transport(body)


async def test_a_new_fingerprint_makes_a_new_dtls_handshake(monkeypatch):
    # Two node legs face each other; the far one is then replaced by a new
    # endpoint with a certificate of its own, which re-offers (an ICE restart
    # and a new DTLS association at once).
    near_pool, far_pool = PortPool("127.0.0.1", 43000, 43100), PortPool("127.0.0.1", 43100, 43200)
    near, far = await WebRtcLeg.open(near_pool), await WebRtcLeg.open(far_pool)
    new_far = None
    try:
        offer = _sdp(far, "actpass")
        near.start(offer, offerer=False)
        far.start(_sdp(near, "active"), offerer=True)
        both = asyncio.gather(near.connected, far.connected)
        assert await asyncio.wait_for(both, 15) == [True, True]
        old_rx, old_dtls = near._rx, near.dtls

        mine = webrtc.certificate()  # (the node's: one per process)
        monkeypatch.setattr(webrtc, "_certificate", RTCCertificate.generateCertificate())
        new_far = await WebRtcLeg.open(far_pool)
        again = _sdp(new_far, "actpass")
        monkeypatch.setattr(webrtc, "_certificate", mine)
        assert again.fingerprints != offer.fingerprints
        near.start(again, offerer=False)
        new_far.start(_sdp(near, "active"), offerer=True)
        assert await asyncio.wait_for(new_far.connected, 15), new_far.failure
        await asyncio.wait_for(near.task, 15)  # type: ignore[arg-type]
        assert near.failure == ""
        assert near.dtls is not old_dtls and near._rx is not old_rx
        # SRTP with the new keys, both ways.
        got: dict[str, list[bytes]] = {"near": [], "far": []}
        near.rtp.from_browser = got["near"].append  # type: ignore[method-assign]
        new_far.rtp.from_browser = got["far"].append  # type: ignore[method-assign]
        for i in range(5):
            packet = bytes([0x80, 0]) + i.to_bytes(2, "big") + bytes(8) + b"x" * 160
            near.rtp.transport.sendto(packet)
            new_far.rtp.transport.sendto(packet)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert len(got["near"]) == len(got["far"]) == 5
        assert near.rtp.srtp_errors == new_far.rtp.srtp_errors == 0
    finally:
        for leg in (near, far, new_far):
            if leg is not None:
                leg.close()
        await asyncio.sleep(0.05)


# -- RTCP toward the browser -------------------------------------------------------------------


async def _browser_stats(browser: Browser) -> tuple[list, list]:  # type: ignore[type-arg]
    """What the browser made of the node's reports: its sender's
    remote-inbound-rtp (the node's report block on the browser's stream) and
    its receiver's remote-outbound-rtp (the node's SR)."""
    sender = await browser.transceiver.sender.getStats()
    receiver = await browser.transceiver.receiver.getStats()
    return (
        [s for s in sender.values() if s.type == "remote-inbound-rtp"],
        [s for s in receiver.values() if s.type == "remote-outbound-rtp"],
    )


async def test_the_node_reports_to_the_browser_and_learns_the_round_trip():
    call = await Call.open(43200, IceSettings())
    talk = None
    try:
        await _browser_offers(call.leg, call.browser)
        assert await asyncio.wait_for(call.leg.connected, 10), call.leg.failure
        # Media until the node has sent an SR and the browser's report on it
        # came back (reports go every 2-6 s, RFC 3550 §6.2): at most 12 s.
        talk = asyncio.ensure_future(call.trunk.run(("127.0.0.1", call.plain.port), 400.0, 12.0))
        deadline = time.monotonic() + 12.0
        while time.monotonic() < deadline and not talk.done():
            inbound, outbound = await _browser_stats(call.browser)
            if inbound and outbound and call.leg.quality().rtt is not None:
                break
            await asyncio.sleep(0.25)
        assert call.leg.rtcp.generated >= 1  # SRTCP sent to the browser, and read:
        inbound, outbound = await _browser_stats(call.browser)
        assert inbound and inbound[0].packetsLost == 0 and inbound[0].packetsReceived > 0
        assert outbound and outbound[0].packetsSent > 0
        # The browser's receiver reports carry the SR's LSR/DLSR: the round trip.
        rtt = call.leg.quality().rtt
        assert rtt is not None and 0 <= rtt < 1.0
    finally:
        if talk is not None:
            talk.cancel()
        await call.close()
