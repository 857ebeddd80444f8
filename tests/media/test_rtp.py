"""RTP arithmetic of the relay, pure: continuity across a source change, and
reception statistics (RFC 3550 A.1 and A.8), wrap-arounds included."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from switch.media.rtp import (
    HEADER,
    MAX_DROPOUT,
    MAX_MISORDER,
    Reception,
    Sending,
    clock_rate,
    rewrite,
    seq_distance,
    seq_offset,
    ts_distance,
    ts_offset,
)


def _packet(seq: int, ts: int, ssrc: int, pt: int = 0, marker: bool = False) -> bytes:
    first = (0x80 if marker else 0) | pt
    return struct.pack("!BBHII", 0x80, first, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xd5" * 160


def test_distances_go_round_the_circle():
    assert seq_distance(2, 65534) == 4 and seq_distance(65534, 2) == -4
    assert ts_distance(10, 0xFFFFFFF0) == 26 and ts_distance(0xFFFFFFF0, 10) == -26


def test_offsets_carry_on_from_the_last_packet_sent_across_wrap_arounds():
    # The last packet sent was seq 65535; the new source starts at 1000.
    offset = seq_offset(65535, 1000)
    assert (1000 + offset) & 0xFFFF == 0  # the next one, wrapped
    assert (1001 + offset) & 0xFFFF == 1
    # 60 ms after a timestamp near the top, at 8000 Hz: 480 ticks on, wrapped.
    offset = ts_offset(0xFFFFFF00, 0.060, 8000, 12345)
    assert (12345 + offset) & 0xFFFFFFFF == (0xFFFFFF00 + 480) & 0xFFFFFFFF
    # Opus runs at 48000: the same gap is 2880 ticks.
    assert (7 + ts_offset(1000, 0.060, 48000, 7)) & 0xFFFFFFFF == 1000 + 2880
    # No time at all still moves the clock on by one tick.
    assert (5 + ts_offset(1000, 0.0, 8000, 5)) & 0xFFFFFFFF == 1001


@given(
    last_seq=st.integers(0, 0xFFFF),
    first=st.integers(0, 0xFFFF),
    last_ts=st.integers(0, 0xFFFFFFFF),
    first_ts=st.integers(0, 0xFFFFFFFF),
    gap=st.floats(0.001, 30),
    rate=st.sampled_from([8000, 16000, 48000]),
)
def test_the_stream_after_a_switch_continues_for_any_numbers(
    last_seq, first, last_ts, first_ts, gap, rate
):
    s_off, t_off = seq_offset(last_seq, first), ts_offset(last_ts, gap, rate, first_ts)
    out = rewrite(_packet(first, first_ts, 1), 0xABCD, first + s_off, first_ts + t_off, True)
    flags, seq, ts, ssrc = HEADER.unpack_from(out)
    assert seq_distance(seq, last_seq) == 1
    assert ts_distance(ts, last_ts) == max(1, round(gap * rate))
    assert ssrc == 0xABCD and flags & 0x80


def test_rewrite_changes_the_header_only():
    original = _packet(7, 1600, 0x1111, pt=8)
    out = rewrite(original, 0x2222, 70000, 0x1_0000_0005, marker=False)
    assert HEADER.unpack_from(out) == (8, 70000 & 0xFFFF, 5, 0x2222)
    assert out[12:] == original[12:] and out[0] == original[0]


def test_clock_rates_come_from_the_sdp_then_rfc_3551():
    assert clock_rate({}, 0) == 8000 and clock_rate({}, 9) == 8000  # G.722's RTP clock
    assert clock_rate({111: 48000}, 111) == 48000
    assert clock_rate({}, 111) == 8000  # a dynamic type nobody described: the usual guess


def test_sending_passes_the_first_source_untouched_and_rewrites_the_next():
    sending = Sending()
    sending.switch(0xAAAA, 100, 16000, 8000, now=10.0)
    assert not sending.rewriting and sending.ssrc == 0xAAAA
    sending.last, sending.at = _packet(100, 16000, 0xAAAA), 10.0
    # A new source 100 ms later: same SSRC out, seq 101, ts 800 ticks on, marker.
    sending.switch(0xBBBB, 5000, 999, 8000, now=10.1)
    assert sending.rewriting and sending.switches == 1
    first = sending.rewrite(_packet(5000, 999, 0xBBBB), 5000, 999)
    second = sending.rewrite(_packet(5001, 999 + 160, 0xBBBB), 5001, 999 + 160)
    assert HEADER.unpack_from(first) == (0x80, 101, 16800, 0xAAAA)
    assert HEADER.unpack_from(second) == (0, 102, 16960, 0xAAAA)  # marker only once


def _feed(rx: Reception, seqs, ssrc=0x42, start=100.0, step=0.020, rate=8000):
    """Packets `seqs` sent every `step` s and arriving on time; returns the jumps."""
    jumps = []
    for i, seq in enumerate(seqs):
        now = start + i * step
        jumps.append(rx.update(ssrc, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0, now))
    return jumps


def test_reception_counts_loss_and_wraps_the_sequence_number():
    rx = Reception()
    seqs = [s for s in range(65500, 65500 + 100) if s % 10 != 3]  # every tenth lost
    assert not any(_feed(rx, seqs))
    assert (rx.expected, rx.packets, rx.lost) == (100, 90, 10)
    assert rx.extended_max == 65599 and rx.cycles == 65536
    assert rx.interval() == 10 * 256 // 100
    assert rx.interval() == 0  # a new interval: nothing lost since


def test_reception_jitter_is_zero_on_time_and_follows_a_8_when_not():
    rx = Reception()
    _feed(rx, range(50))
    assert rx.jitter_units == 0
    # Every other packet 10 ms late: |D| = 80 ticks each time, the mean tends to it.
    rx = Reception()
    for i in range(2000):
        late = 0.010 if i % 2 else 0.0
        rx.update(1, i & 0xFFFF, i * 160, 0, 100.0 + i * 0.020 + late)
    assert 78 <= rx.jitter_units <= 80
    assert abs(rx.jitter_seconds - 0.010) < 0.0005


def test_jitter_is_measured_in_the_payload_clock():
    rx = Reception({111: 48000})
    for i in range(2000):
        late = 0.010 if i % 2 else 0.0
        rx.update(1, i, i * 960, 111, 100.0 + i * 0.020 + late)
    assert 470 <= rx.jitter_units <= 480  # 10 ms at 48 kHz
    assert abs(rx.jitter_seconds - 0.010) < 0.0005


def test_jitter_survives_a_timestamp_wrap():
    rx = Reception()
    base = 0xFFFFFFFF - 160 * 10
    for i in range(50):
        rx.update(1, i, (base + i * 160) & 0xFFFFFFFF, 0, 100.0 + i * 0.020)
    assert rx.jitter_units == 0


def test_a_sequence_jump_is_reported_and_restarts_the_count_when_confirmed():
    rx = Reception()
    assert not any(_feed(rx, range(10)))
    far = 10 + MAX_DROPOUT + 5
    assert rx.update(0x42, far, far * 160, 0, 100.2) is True
    # The next one follows on: the jump was real, and the receiver already follows it.
    assert rx.update(0x42, far + 1, (far + 1) * 160, 0, 100.22) is False
    assert rx.expected == 1 and rx.lost == 0  # counting started again at the jump


def test_a_stray_packet_is_a_jump_there_and_back():
    rx = Reception()
    _feed(rx, range(10))
    assert rx.update(0x42, 40000, 10 * 160, 0, 100.2) is True
    assert rx.update(0x42, 10, 10 * 160, 0, 100.2) is True  # back: the receiver follows
    assert rx.update(0x42, 11, 11 * 160, 0, 100.22) is False
    assert rx.expected == 12 and rx.lost == 0


def test_a_late_or_duplicate_packet_is_no_jump():
    rx = Reception()
    _feed(rx, range(200))
    assert rx.update(0x42, 150, 150 * 160, 0, 104.0 + 0.02) is False  # 50 behind: late
    assert rx.max_seq == 199


def test_a_timestamp_jump_against_the_clock_is_reported():
    rx = Reception()
    _feed(rx, range(10))
    assert rx.update(0x42, 10, 10 * 160 + 8000 * 60, 0, 100.2) is True  # a minute ahead
    assert rx.jitter_units == 0  # and it does not count as jitter


def test_a_new_ssrc_starts_new_statistics():
    rx = Reception()
    _feed(rx, range(0, 20, 2))
    assert rx.lost > 0
    rx.update(0x99, 5000, 0, 0, 200.0)
    assert (rx.ssrc, rx.expected, rx.lost, rx.packets) == (0x99, 1, 0, 1)


@given(
    start=st.integers(0, 0xFFFF),
    steps=st.lists(st.integers(-(MAX_MISORDER - 1), 300), min_size=1, max_size=400),
)
def test_reception_counts_like_the_extended_sequence_numbers_say(start, steps):
    # Extended sequence numbers: mostly forward (gaps are losses), some late
    # packets and duplicates (steps <= 0, never further back than A.1 allows).
    sequence, highest = [start], start
    for step in steps:
        sequence.append(highest + step)
        highest = max(highest, sequence[-1])
    rx = Reception()
    for i, ext in enumerate(sequence):
        assert rx.update(7, ext & 0xFFFF, ext * 160, 0, 10.0 + i * 0.02) is False
    assert rx.extended_max == highest & 0xFFFFFFFF
    assert rx.expected == highest - start + 1
    assert rx.lost == rx.expected - len(sequence)
