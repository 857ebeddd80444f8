"""The RTP relay: SDP anchoring (pure) and packets between two legs (loopback)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from switch.media import relay
from switch.media.relay import LegOrigin, MediaSession, PortPool, anchor, clock_rates
from switch.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
)
from switch.media.rtp import HEADER, ts_distance
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


# -- rewriting and RTCP ------------------------------------------------------------------


def _rtp(seq: int, ts: int, ssrc: int, payload: bytes = b"\xd5" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


async def _drain(sock: socket.socket, count: int) -> list[bytes]:
    return [(await _recv(sock))[0] for _ in range(count)]


async def _nothing(sock: socket.socket, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 2048), wait)


@pytest.fixture
def quick_rtcp(monkeypatch):
    """Reports every 50 ms, and a far side silent for 0.3 s counts as sending none."""
    monkeypatch.setattr(relay, "report_interval", lambda rand, initial=False: 0.05)
    monkeypatch.setattr(relay, "REPORT_TICK", 0.05)
    monkeypatch.setattr(relay, "FAR_SILENT", 0.3)


async def test_a_receiver_sees_one_stream_when_its_source_changes():
    session = await PortPool("127.0.0.1", 34000, 34100).session()
    alice, bob, carol = _udp(), _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        sent = [_rtp(65530 + i, 0xFFFFFF00 + 160 * i, 0xA11CE) for i in range(8)]
        before_sent = time.monotonic()  # the relay relays Alice's last packet after this
        for packet in sent:
            alice.sendto(packet, ("127.0.0.1", session.a.port))
        assert await _drain(bob, 8) == sent  # one source: untouched, byte for byte
        last_sent = time.monotonic()  # ... and before this
        await asyncio.sleep(0.2)
        # Alice is transferred away: Carol takes her port, with her own SSRC and numbers.
        switched = time.monotonic()
        for i in range(3):
            carol.sendto(
                _rtp(7000 + i, 90000 + 160 * i, 0xCA201, b"carol"), ("127.0.0.1", session.a.port)
            )
        got = [(*HEADER.unpack_from(p), p[12:]) for p in await _drain(bob, 3)]
        flags, seq, ts, ssrc, payload = got[0]
        assert ssrc == 0xA11CE and payload == b"carol"
        assert seq == (65530 + 8) & 0xFFFF  # the one after Alice's last, wrapped
        gap = ts_distance(ts, 0xFFFFFF00 + 160 * 7)
        # Advanced by the wall-clock time between Alice's last and Carol's
        # first packet, as the relay saw it (bounded by what the test saw).
        assert (switched - last_sent) * 8000 * 0.9 <= gap <= (time.monotonic() - before_sent) * 8000
        assert flags & 0x80  # the marker tells Bob's jitter buffer to resync
        assert [g[1] for g in got] == [seq, seq + 1, seq + 2]
        assert [g[2] - ts for g in got] == [0, 160, 320] and not got[1][0] & 0x80
        assert session.b.rtp.sending.switches == 1
        # Bob's answers go to Carol now (latched), untouched: her first source.
        bob.sendto(_rtp(1, 160, 0xB0B), ("127.0.0.1", session.b.port))
        assert (await _recv(carol))[0] == _rtp(1, 160, 0xB0B)
    finally:
        session.close()
        for sock in (alice, bob, carol):
            sock.close()


async def test_re_pairing_two_calls_legs_keeps_each_stream_continuous():
    # Attended transfer: the customer (first call, leg a) joins the colleague
    # (second call, leg b); the agent between them leaves both calls.
    pool = PortPool("127.0.0.1", 34100, 34200)
    first, second = await pool.session(), await pool.session()
    customer, agent1, agent2, colleague = _udp(), _udp(), _udp(), _udp()
    try:
        first.a.expect(customer.getsockname())
        first.b.expect(agent1.getsockname())
        second.a.expect(agent2.getsockname())
        second.b.expect(colleague.getsockname())
        for seq in range(3):
            agent1.sendto(_rtp(seq, seq * 160, 0xA6E), ("127.0.0.1", first.b.port))
        await _drain(customer, 3)
        # The colleague's phone happens to use the agent's SSRC: only the
        # re-pairing itself says the source changed.
        for seq in range(3):
            colleague.sendto(_rtp(500 + seq, 0, 0xA6E), ("127.0.0.1", second.b.port))
        await _drain(agent2, 3)
        joined = MediaSession(first.a, second.b)
        first.b.close()
        second.a.close()
        colleague.sendto(_rtp(503, 480, 0xA6E), ("127.0.0.1", second.b.port))
        flags, seq, _, ssrc = HEADER.unpack_from((await _recv(customer))[0])
        assert (seq, ssrc) == (3, 0xA6E) and flags & 0x80
        customer.sendto(_rtp(42, 0, 0xC057), ("127.0.0.1", first.a.port))
        assert (await _recv(colleague))[0] == _rtp(42, 0, 0xC057)  # its first source
        joined.close()
    finally:
        for sock in (customer, agent1, agent2, colleague):
            sock.close()


async def test_the_call_layer_can_say_the_source_changed():
    session = await PortPool("127.0.0.1", 34200, 34300).session()
    alice, bob = _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        alice.sendto(_rtp(10, 1600, 1), ("127.0.0.1", session.a.port))
        await _recv(bob)
        session.b.source_changed()  # e.g. a re-INVITE that restarted Alice's stream
        alice.sendto(_rtp(11, 1760, 1), ("127.0.0.1", session.a.port))
        flags, seq, _, _ = HEADER.unpack_from((await _recv(bob))[0])
        assert seq == 11 and flags & 0x80 and session.b.rtp.sending.switches == 1
    finally:
        session.close()
        alice.close()
        bob.close()


async def test_a_sequence_jump_is_smoothed_over():
    session = await PortPool("127.0.0.1", 34300, 34400).session()
    alice, bob = _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        for seq in (100, 101, 30000, 30001):  # Alice's phone restarted its stream
            alice.sendto(_rtp(seq, seq * 160, 1), ("127.0.0.1", session.a.port))
        seqs = [HEADER.unpack_from(p)[1] for p in await _drain(bob, 4)]
        assert seqs == [100, 101, 102, 103]
    finally:
        session.close()
        alice.close()
        bob.close()


async def test_rtcp_is_relayed_as_it_came_while_the_streams_are_untouched():
    session = await PortPool("127.0.0.1", 34400, 34500).session()
    alice, bob, alice_rtcp, bob_rtcp = _udp(), _udp(), _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.a.rtcp.expect(alice_rtcp.getsockname())
        session.b.rtcp.expect(bob_rtcp.getsockname())
        ntp = ntp_timestamp(time.time())
        report = build_compound(
            [
                SenderReport(0xA11CE, SenderInfo(ntp, 1600, 10, 1600)),
                SourceDescription.cname(0xA11CE, "alice@example.com"),
            ]
        )
        alice_rtcp.sendto(report, ("127.0.0.1", session.a.rtcp.port))
        assert (await _recv(bob_rtcp))[0] == report
        assert session.b.rtcp.relayed == 1 and session.a.rtcp.last_sr[0] == ntp_middle(ntp)
        # Bob answers at once with an RR on Alice's SR: the node learns its
        # round trip to Bob from the echo.
        block = ReportBlock(0xA11CE, 0, 0, 10, 0, ntp_middle(ntp), 0)
        bob_rtcp.sendto(
            build_compound([ReceiverReport(0xB0B, (block,))]), ("127.0.0.1", session.b.rtcp.port)
        )
        await _recv(alice_rtcp)
        assert 0 <= session.b.quality().rtt < 1
    finally:
        session.close()
        for sock in (alice, bob, alice_rtcp, bob_rtcp):
            sock.close()


async def test_malformed_rtcp_is_counted_and_dropped_and_the_relay_goes_on():
    session = await PortPool("127.0.0.1", 34500, 34600).session()
    alice_rtcp, bob_rtcp = _udp(), _udp()
    try:
        session.b.rtcp.expect(bob_rtcp.getsockname())
        for junk in (b"", b"\x80", b"\x80\xc9\x00\x09\0\0\0\1", b"GET / HTTP/1.0\r\n\r\n"):
            alice_rtcp.sendto(junk, ("127.0.0.1", session.a.rtcp.port))
        await _nothing(bob_rtcp)
        assert session.a.rtcp.malformed == 4 and session.a.quality().rtcp_malformed == 4
        good = build_compound([ReceiverReport(1)])
        alice_rtcp.sendto(good, ("127.0.0.1", session.a.rtcp.port))
        assert (await _recv(bob_rtcp))[0] == good
    finally:
        session.close()
        alice_rtcp.close()
        bob_rtcp.close()


async def test_the_node_reports_to_a_side_whose_far_side_sends_no_rtcp(quick_rtcp):
    session = await PortPool("127.0.0.1", 34600, 34700).session()
    alice, bob, alice_rtcp = _udp(), _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.a.rtcp.expect(alice_rtcp.getsockname())
        # Alice sends 50 packets of which 10 are lost on the way (never sent);
        # Bob sends 30, all relayed to Alice. Neither sends RTCP.
        for seq in range(50):
            if seq % 5 != 2:
                alice.sendto(_rtp(seq, seq * 160, 0xA11CE), ("127.0.0.1", session.a.port))
        for seq in range(30):
            bob.sendto(_rtp(seq, seq * 160, 0xB0B, b"x" * 160), ("127.0.0.1", session.b.port))
        await _drain(bob, 40)
        await _drain(alice, 30)
        sr, sdes = parse_compound((await _recv(alice_rtcp))[0])
        # An SR for the stream Alice gets (Bob's SSRC: the node speaks for it) ...
        assert isinstance(sr, SenderReport) and sr.ssrc == 0xB0B
        assert (sr.info.packets, sr.info.octets) == (30, 30 * 160)
        assert abs(ntp_timestamp(time.time()) - sr.info.ntp) >> 32 < 2
        assert ts_distance(sr.info.rtp_ts, 29 * 160) >= 0
        # ... with what the node received from Alice: 10 of 50 lost.
        (block,) = sr.blocks
        assert (block.ssrc, block.highest_seq, block.cumulative_lost) == (0xA11CE, 49, 10)
        assert block.fraction_lost == 10 * 256 // 50
        assert sdes.chunks == ((0xB0B, ((1, b"switch@127.0.0.1"),)),)
        quality = session.a.quality()
        assert (quality.packets_received, quality.packets_lost, quality.packets_sent) == (
            40,
            10,
            30,
        )
        # Alice's RR echoes the SR: the node has its round trip to her.
        echo = ReportBlock(0xB0B, 0, 0, 29, 0, ntp_middle(sr.info.ntp), 0)
        alice_rtcp.sendto(
            build_compound([ReceiverReport(0xA11CE, (echo,))]), ("127.0.0.1", session.a.rtcp.port)
        )
        await asyncio.sleep(0.05)
        assert session.a.quality().rtt is not None and session.a.quality().rtt < 1
        assert session.a.quality().reported_fraction_lost == 0
        assert session.a.rtcp.generated >= 1
    finally:
        session.close()
        for sock in (alice, bob, alice_rtcp):
            sock.close()


async def test_after_a_rewrite_the_far_sides_rtcp_is_not_passed_on(quick_rtcp):
    session = await PortPool("127.0.0.1", 34700, 34800).session()
    alice, bob, carol, alice_rtcp, bob_rtcp = _udp(), _udp(), _udp(), _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.a.rtcp.expect(alice_rtcp.getsockname())
        session.b.rtcp.expect(bob_rtcp.getsockname())
        alice.sendto(_rtp(1, 160, 0xA11CE), ("127.0.0.1", session.a.port))
        await _recv(bob)
        carol.sendto(_rtp(900, 0, 0xCA201), ("127.0.0.1", session.a.port))  # Bob now hears Carol
        await _recv(bob)
        # Carol's reports name an SSRC Bob never heard of: the node reports instead.
        carol_sr = build_compound([SenderReport(0xCA201, SenderInfo(0, 0, 1, 160))])
        alice_rtcp.sendto(carol_sr, ("127.0.0.1", session.a.rtcp.port))
        for _ in range(3):
            packets = parse_compound((await _recv(bob_rtcp))[0])
            assert packets[0].ssrc == 0xA11CE  # the stream Bob knows, from the node
        assert session.b.rtcp.relayed == 0
    finally:
        session.close()
        for sock in (alice, bob, carol, alice_rtcp, bob_rtcp):
            sock.close()


async def test_a_leg_that_ends_says_bye_in_rtcp():
    session = await PortPool("127.0.0.1", 34800, 34900).session()
    alice, bob, bob_rtcp = _udp(), _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.b.rtcp.expect(bob_rtcp.getsockname())
        alice.sendto(_rtp(1, 160, 0xA11CE), ("127.0.0.1", session.a.port))
        await _recv(bob)
        session.close()
        packets = parse_compound((await _recv(bob_rtcp))[0])
        assert isinstance(packets[0], SenderReport) and packets[-1] == Bye((0xA11CE,))
    finally:
        session.close()
        for sock in (alice, bob, bob_rtcp):
            sock.close()


def test_clock_rates_come_from_the_first_audio_stream():
    sdp = OFFER.replace(
        b"m=audio 4000 RTP/AVP 0 8 101\r\n",
        b"m=audio 4000 RTP/AVP 111 9 0 101\r\na=rtpmap:111 opus/48000/2\r\n"
        b"a=rtpmap:9 G722/16000\r\n",
    )
    assert clock_rates(sdp) == {111: 48000, 9: 8000, 0: 8000, 101: 8000}
    assert clock_rates(b"not sdp") == {}


async def test_what_is_not_rtp_on_the_rtp_port_passes_as_it_came():
    session = await PortPool("127.0.0.1", 34900, 35000).session()
    alice, bob = _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        alice.sendto(_rtp(1, 160, 0xA11CE), ("127.0.0.1", session.a.port))
        await _recv(bob)
        muxed_rtcp = build_compound([ReceiverReport(0xA11CE)])  # RFC 5761
        for other in (muxed_rtcp, b"\0\1\0\0 a STUN request", b"\r\n\r\n"):
            alice.sendto(other, ("127.0.0.1", session.a.port))
            assert (await _recv(bob))[0] == other
        alice.sendto(_rtp(2, 320, 0xA11CE), ("127.0.0.1", session.a.port))
        assert (await _recv(bob))[0] == _rtp(2, 320, 0xA11CE)  # still untouched
        assert session.a.rtp.reception.packets == 2 and session.b.rtp.sending.switches == 0
    finally:
        session.close()
        alice.close()
        bob.close()


async def test_a_side_whose_far_side_reports_gets_those_reports_only(quick_rtcp, monkeypatch):
    monkeypatch.setattr(relay, "FAR_SILENT", 1.0)  # far beyond the checks below
    session = await PortPool("127.0.0.1", 35000, 35100).session()
    alice_rtcp, bob_rtcp = _udp(), _udp()
    try:
        session.a.rtcp.expect(alice_rtcp.getsockname())
        session.b.rtcp.expect(bob_rtcp.getsockname())
        sent = []
        for i in range(10):  # Alice reports every 50 ms; Bob never does
            sent.append(build_compound([ReceiverReport(0xA11CE), SourceDescription.cname(i, "a")]))
            alice_rtcp.sendto(sent[-1], ("127.0.0.1", session.a.rtcp.port))
            await asyncio.sleep(0.05)
        assert await _drain(bob_rtcp, 10) == sent
        await _nothing(bob_rtcp)
        assert session.b.rtcp.generated == 0 and session.b.rtcp.relayed == 10
        # Alice hears from the node once Bob has been silent for FAR_SILENT.
        packets = parse_compound((await _recv(alice_rtcp))[0])
        assert isinstance(packets[0], ReceiverReport) and session.a.rtcp.generated >= 1
    finally:
        session.close()
        alice_rtcp.close()
        bob_rtcp.close()


async def test_the_sdps_clock_rates_time_a_legs_stream():
    session = await PortPool("127.0.0.1", 35100, 35200).session()
    alice, bob = _udp(), _udp()
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        opus = struct.pack("!BBHII", 0x80, 111, 1, 960, 0xA11CE) + b"o" * 60
        alice.sendto(opus, ("127.0.0.1", session.a.port))
        await _recv(bob)
        assert session.a.rtp.reception.rate == 8000  # nobody said what 111 is: the usual guess
        # The answer names it: Opus, 48 kHz, from the next packet on.
        session.a.expect(
            alice.getsockname(),
            clock_rates(
                OFFER.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2")
            ),
        )
        alice.sendto(opus, ("127.0.0.1", session.a.port))
        await _recv(bob)
        assert session.a.rtp.reception.rate == 48000
    finally:
        session.close()
        alice.close()
        bob.close()


def test_each_leg_sees_one_origin_whose_version_follows_changes() -> None:
    def origin_of(body: bytes) -> tuple[str, str, int]:
        o = parse_sdp(body).origin
        return o.username, o.sess_id, o.sess_version

    leg = LegOrigin()
    alice = b"v=0\r\no=alice 7 7 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    first, _ = anchor(alice + b"m=audio 4000 RTP/AVP 0\r\n", "198.51.100.1", 10000, leg)
    assert origin_of(first) == ("switch", leg.session_id, 1)
    again, _ = anchor(alice + b"m=audio 4000 RTP/AVP 0\r\n", "198.51.100.1", 10000, leg)
    assert again == first  # the same SDP again (a refresh): the same version
    # Another party behind the leg, another codec: the leg sees a new version
    # of its one session, not a stranger's o= line (RFC 3264 §8).
    carol = alice.replace(b"o=alice 7 7", b"o=carol 99 1")
    changed, _ = anchor(carol + b"m=audio 4002 RTP/AVP 8\r\n", "198.51.100.1", 10000, leg)
    assert origin_of(changed) == ("switch", leg.session_id, 2)


async def test_a_tap_sees_each_rtp_packet_and_the_nodes_own_packets_join_the_stream():
    session = await PortPool("127.0.0.1", 34400, 34500).session()
    alice, bob = _udp(), _udp()
    tapped: list[bytes] = []
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.a.rtp.add_tap(tapped.append)
        also: list[bytes] = []
        session.a.rtp.add_tap(also.append)
        first = _rtp(10, 1600, 0xA11CE)
        alice.sendto(first, ("127.0.0.1", session.a.port))
        assert (await _recv(bob))[0] == first  # relayed as it came...
        assert tapped == also == [first]  # ... and seen by both taps
        session.a.rtp.remove_tap(also.append)
        alice.sendto(b"\x00not rtp", ("127.0.0.1", session.a.port))
        await _recv(bob)
        assert tapped == [first]  # only RTP reaches the tap
        # The node plays something to Bob (a prompt): its own SSRC and
        # numbers become Alice's stream, the one Bob already knows.
        session.b.rtp.emit(_rtp(500, 80000, 0x5EED, b"prompt"), 8000)
        flags, seq, ts, ssrc = HEADER.unpack_from(packet := (await _recv(bob))[0])
        assert (ssrc, seq, packet[12:]) == (0xA11CE, 11, b"prompt") and flags & 0x80
        assert ts_distance(ts, 1600) >= 1
        assert session.b.rtp.sending.packets == 2
        # With no peer (an application holds the leg) the tap still sees everything.
        session.a.rtp.peer = None
        alice.sendto(_rtp(11, 1760, 0xA11CE), ("127.0.0.1", session.a.port))
        await _nothing(bob)
        assert len(tapped) == 2 and len(also) == 1
        session.a.rtp.remove_tap(tapped.append)
        assert session.a.rtp.tap is None
    finally:
        session.close()
        for sock in (alice, bob):
            sock.close()


def test_a_legs_codec_is_named_from_its_sdp_and_its_quality_rated() -> None:
    body = OFFER.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 96 0 101").replace(
        b"m=video", b"a=rtpmap:96 opus/48000/2\r\nm=video"
    )
    assert relay.codec_name(body, 96) == "opus"
    assert relay.codec_name(body, 8) == "pcma"  # static: named by RFC 3551 though not offered
    assert relay.codec_name(body, 101) is None  # an event is no codec
    assert relay.codec_name(b"", 0) == "pcmu" and relay.codec_name(b"junk", 99) is None
    figures = dict(
        packets_received=990, packets_lost=10, jitter=0.002, packets_sent=1000, rtt=0.1,
        reported_fraction_lost=None, reported_jitter=None, rtcp_malformed=0,
    )  # fmt: skip
    good = relay.LegQuality(**figures, codec="pcmu").to_dict()
    assert good["jitter_ms"] == 2.0 and good["rtt_ms"] == 100.0 and good["codec"] == "pcmu"
    worse = relay.LegQuality(**{**figures, "packets_lost": 100}, codec="pcmu").to_dict()
    assert 1.0 <= worse["mos"] < good["mos"] <= 4.5
    assert relay.LegQuality(**figures, codec="g723").to_dict()["mos"] is None  # no E-model values


async def test_a_tap_that_takes_a_packet_stops_the_relay_forwarding_it():
    session = await PortPool("127.0.0.1", 34500, 34600).session()
    alice, bob = _udp(), _udp()
    seen: list[bytes] = []
    try:
        session.a.expect(alice.getsockname())
        session.b.expect(bob.getsockname())
        session.a.rtp.add_tap(seen.append)  # a recorder: returns None, takes nothing

        def take_odd(packet: bytes) -> bool:
            return HEADER.unpack_from(packet)[1] % 2 == 1

        session.a.rtp.add_tap(take_odd)
        for seq in (10, 11, 12):
            alice.sendto(_rtp(seq, 160 * seq, 0xA11CE), ("127.0.0.1", session.a.port))
        assert HEADER.unpack_from((await _recv(bob))[0])[1] == 10
        assert HEADER.unpack_from((await _recv(bob))[0])[1] == 12  # 11 was taken
        assert len(seen) == 3  # every tap still sees every packet
        session.a.rtp.remove_tap(take_odd)
        alice.sendto(_rtp(13, 160 * 13, 0xA11CE), ("127.0.0.1", session.a.port))
        assert HEADER.unpack_from((await _recv(bob))[0])[1] == 13
    finally:
        session.close()
        for sock in (alice, bob):
            sock.close()
