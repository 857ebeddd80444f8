"""RTCP packets, pure: round trips, what real phones send, malformed input,
report blocks from reception statistics, intervals, round-trip times."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.media.rtcp import (
    COMPENSATION,
    Bye,
    OtherPacket,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    report_block,
    report_interval,
    round_trip,
)
from switch.media.rtp import Reception

BLOCK = ReportBlock(0x11223344, 25, -3, 0x0001_0005, 40, 0xAABBCCDD, 65536)


def test_a_compound_packet_round_trips():
    packets = [
        SenderReport(0xCAFE, SenderInfo(0x1234_5678_9ABC_DEF0, 160_000, 1000, 160_000), (BLOCK,)),
        SourceDescription.cname(0xCAFE, "switch@192.0.2.1"),
        Bye((0xCAFE,), b"call ended"),
    ]
    data = build_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


def test_receiver_report_with_no_blocks_and_an_app_packet_round_trip():
    packets = [ReceiverReport(7), OtherPacket(204, 1, b"\0\0\0\7name1234")]
    assert parse_compound(build_compound(packets)) == packets


def test_cumulative_loss_is_24_bit_signed_and_clamped():
    for lost, expected in (
        (-1, -1),
        (0x7FFFFF, 0x7FFFFF),
        (10**9, 0x7FFFFF),
        (-(10**9), -0x800000),
    ):
        block = ReportBlock(1, 0, lost, 0, 0)
        assert ReportBlock.from_bytes(block.to_bytes(), 0).cumulative_lost == expected


def test_what_a_phone_sends_is_read():
    # An RR with one block, an SDES with CNAME and TOOL, padded with one null
    # to the 32-bit boundary, as Linphone's oRTP writes it.
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x01020304) + BLOCK.to_bytes()
    items = b"\x01\x0aalice@host\x06\x04oRTP"  # 12 + 6 bytes
    chunk = struct.pack("!I", 0x01020304) + items + b"\0\0"  # end item + padding: 24 bytes
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    rr_packet, description = parse_compound(rr + sdes)
    assert rr_packet == ReceiverReport(0x01020304, (BLOCK,))
    assert description.chunks == ((0x01020304, ((1, b"alice@host"), (6, b"oRTP"))),)


def test_padding_on_the_last_packet_is_taken_off():
    body = struct.pack("!I", 9) + b"\0\0\0\4"  # an RR, then 4 bytes of padding
    data = struct.pack("!BBH", 0xA0, 201, 2) + body
    assert parse_compound(data) == [ReceiverReport(9)]


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (b"\x80\xc9\x00", "stray bytes"),
        (b"\x40\xc9\x00\x01\0\0\0\1", "version 1"),
        (b"\x80\xc9\x00\x05\0\0\0\1", "says 24 bytes"),
        (b"\x81\xc9\x00\x01\0\0\0\1", "RR too short for 1 blocks"),
        (b"\x80\xc8\x00\x01\0\0\0\1", "SR too short"),
        (b"\xa0\xc9\x00\x01\0\0\0\0", "padding of 0"),
        (b"\xa0\xc9\x00\x01\0\0\0\x09", "padding of 9"),
        (b"\x81\xca\x00\x02\0\0\0\1\x01\x09abc", "SDES item longer"),
        (b"\x81\xca\x00\x02\0\0\0\1\x01\x02ab", "without its end item"),
        (b"\x82\xca\x00\x02\0\0\0\1\0\0\0\0", "SDES chunk cut short"),
        (b"\x82\xcb\x00\x01\0\0\0\1", "BYE too short"),
        (b"\x81\xcb\x00\x02\0\0\0\1\x09abc", "BYE reason longer"),
        (b"\x80\x00\x00\x01\0\0\0\1", "not RTCP"),  # RTP (PT 0) on the RTCP port
    ],
)
def test_malformed_packets_are_refused_with_a_reason(data, why):
    with pytest.raises(RtcpError, match=why):
        parse_compound(data)


@given(st.binary(max_size=300))
def test_no_input_makes_the_parser_fail_otherwise(data):
    try:
        packets = parse_compound(data)
    except RtcpError:
        return
    assert packets  # and what it read builds again (padding aside)
    build_compound(packets)


_u32 = st.integers(0, 0xFFFFFFFF)
_blocks = st.lists(
    st.builds(
        ReportBlock, _u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF),
        _u32, _u32, _u32, _u32,
    ),
    max_size=31,
)  # fmt: skip
_packets = st.one_of(
    st.builds(
        SenderReport, _u32,
        st.builds(SenderInfo, st.integers(0, 2**64 - 1), _u32, _u32, _u32),
        _blocks.map(tuple),
    ),
    st.builds(ReceiverReport, _u32, _blocks.map(tuple)),
    st.builds(lambda s, t: SourceDescription.cname(s, t), _u32, st.text(max_size=60)),
    st.builds(
        Bye, st.lists(_u32, max_size=31).map(tuple),
        st.binary(min_size=1, max_size=255).filter(lambda r: b"\0" not in r[-1:]) | st.just(b""),
    ),
)  # fmt: skip


@given(st.lists(_packets, min_size=1, max_size=5))
def test_any_compound_packet_round_trips(packets):
    data = build_compound(packets)
    parsed = parse_compound(data)
    # A BYE reason keeps its bytes; an SDES name is cut at 255 bytes.
    assert parsed == packets or build_compound(parsed) == data


@given(st.lists(_packets, min_size=1, max_size=4), st.integers(0, 400), st.binary(max_size=8))
def test_any_corruption_is_an_rtcp_error_or_packets(packets, at, junk):
    data = bytearray(build_compound(packets))
    data[at : at + len(junk)] = junk
    try:
        parse_compound(bytes(data))
    except RtcpError:
        pass


def test_ntp_timestamps_and_their_middle_bits():
    ntp = ntp_timestamp(0.5)  # half a second after the Unix epoch
    assert ntp >> 32 == 2_208_988_800 and ntp & 0xFFFFFFFF == 1 << 31
    assert ntp_middle(ntp) == ((2_208_988_800 & 0xFFFF) << 16) | 0x8000


def test_report_block_says_what_reception_counted():
    rx = Reception()
    for seq in range(100):
        if seq % 4:  # a quarter lost
            rx.update(0xBEEF, seq, seq * 160, 0, 50.0 + seq * 0.020)
    block = report_block(rx, (0x12345678, 51.0), now=53.5)
    assert block.ssrc == 0xBEEF
    assert block.highest_seq == 99 and block.cumulative_lost == 24
    assert block.fraction_lost == 24 * 256 // 99  # of the 99 expected (seq 1 to 99)
    assert block.lsr == 0x12345678 and block.dlsr == round(2.5 * 65536)
    assert block.jitter == 0
    assert report_block(rx, None, 60.0).fraction_lost == 0  # nothing new since
    assert report_block(rx, None, 60.0).lsr == 0


def test_round_trip_takes_off_the_hold_time():
    assert round_trip(10.0, 10.5, 65536 // 4) == pytest.approx(0.25)
    assert round_trip(10.0, 10.1, 65536) is None  # an echo of something else


def test_report_intervals_are_randomised_around_rfc_3550s_minimum():
    assert report_interval(0.0) == pytest.approx(2.5 / COMPENSATION)
    assert report_interval(0.999) == pytest.approx(7.5 / COMPENSATION, rel=1e-3)
    assert report_interval(0.5, initial=True) == pytest.approx(2.5 / COMPENSATION)
