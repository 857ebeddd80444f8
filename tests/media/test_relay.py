"""The RTP relay: SDP anchoring (pure) and packets between two legs (loopback)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from switch.media.relay import PortPool, anchor
from switch.sip.sdp import parse_sdp

OFFER = (
    b"v=0\r\no=alice 7 7 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
)


def test_anchor_moves_audio_to_the_node_and_says_where_it_was():
    body, remote = anchor(OFFER, "203.0.113.5", 30000)
    assert remote == ("192.0.2.10", 4000)
    sdp = parse_sdp(body)
    audio, video = sdp.media
    assert (audio.port, audio.connection.host) == (30000, "203.0.113.5")
    assert audio.formats == ["0", "8", "101"]  # codecs untouched: the relay does not decode
    assert sdp.connection.host == "203.0.113.5" and sdp.origin.address == "203.0.113.5"
    assert video.port == 0  # refused: the relay carries audio only


def test_anchor_of_a_stream_on_hold_with_port_zero_names_no_remote():
    body, remote = anchor(OFFER.replace(b"audio 4000", b"audio 0"), "203.0.113.5", 30000)
    assert remote is None
    assert parse_sdp(body).media[0].port == 30000


def test_anchor_leaves_what_is_not_sdp_alone():
    assert anchor(b"not sdp at all", "203.0.113.5", 30000) == (b"not sdp at all", None)


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def _recv(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)


async def test_packets_cross_between_legs_and_latch_to_their_real_source():
    pool = PortPool("127.0.0.1", 31000, 31100)
    session = await pool.session()
    alice, bob, alice_after_nat = _udp(), _udp(), _udp()
    try:
        assert session.a.port % 2 == 0 and session.a.rtcp.port == session.a.port + 1
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        alice.sendto(b"from alice", ("127.0.0.1", session.a.port))
        data, source = await _recv(bob)
        assert data == b"from alice" and source == ("127.0.0.1", session.b.port)
        # Alice's packets now come from elsewhere (a NAT rebinding): answers follow them.
        alice_after_nat.sendto(b"again", ("127.0.0.1", session.a.port))
        assert (await _recv(bob))[0] == b"again"
        bob.sendto(b"from bob", ("127.0.0.1", session.b.port))
        assert (await _recv(alice_after_nat))[0] == b"from bob"
        # RTCP takes the same way on the next ports.
        bob.sendto(b"rtcp", ("127.0.0.1", session.b.rtcp.port))
        session.a.rtcp.expect(alice.getsockname())
        await asyncio.sleep(0.05)
        assert session.b.rtcp.received == 1
        assert session.a.rtp.received == 2 and session.b.rtp.sent == 2
    finally:
        session.close()
        for sock in (alice, bob, alice_after_nat):
            sock.close()


async def test_the_pool_skips_ports_in_use_and_says_when_none_is_left():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 32000))
    pool = PortPool("127.0.0.1", 32000, 32006)
    first = await pool.leg()
    try:
        assert first.port == 32002  # 32000 was taken
        second = await pool.leg()
        assert second.port == 32004
        with pytest.raises(OSError, match="no free RTP port pair"):
            await pool.leg()
    finally:
        blocker.close()
        for leg in (first, second):
            leg.rtp.close()
            leg.rtcp.close()


async def test_a_bind_error_without_errno_moves_on_too(monkeypatch):
    # uvloop says "could not bind to local_addr" with no errno for a port in use.
    loop = asyncio.get_running_loop()
    real = loop.create_datagram_endpoint
    refused = []

    async def flaky(factory, local_addr=None, **kwargs):
        if local_addr[1] == 33000:
            refused.append(local_addr)
            raise OSError(f"could not bind to local_addr {local_addr}")
        return await real(factory, local_addr=local_addr, **kwargs)

    monkeypatch.setattr(loop, "create_datagram_endpoint", flaky)
    leg = await PortPool("127.0.0.1", 33000, 33010).leg()
    try:
        assert refused and leg.port == 33002
    finally:
        leg.rtp.close()
        leg.rtcp.close()
