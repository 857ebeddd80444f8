"""The adaptive jitter buffer on a fake clock: order, loss, lateness, wrap-arounds, adaptation."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.media.jitter import SHRINK_EVERY, Frame, Gap, JitterBuffer

SPF = 160  # samples in 20 ms at 8 kHz


def run(
    buffer: JitterBuffer,
    arrivals: list[tuple[float, int, int, bytes]],
    until: float,
    tick_offset: float = 0.0005,
) -> list[tuple[float, Frame | Gap]]:
    """Pushes (arrival, seq, ts, payload) at their times and pops every 20 ms.

    The ticks start with the first packet, a little after it like a real timer.
    """
    events = sorted(arrivals, key=lambda a: a[0])
    out: list[tuple[float, Frame | Gap]] = []
    tick = events[0][0] + tick_offset
    i = 0
    while tick <= until:
        while i < len(events) and events[i][0] <= tick:
            arrival, seq, ts, payload = events[i]
            buffer.push(seq, ts, payload, arrival)
            i += 1
        out.extend((tick, item) for item in buffer.pop(tick))
        tick += 0.02
    return out


def stream(count: int, seq0: int = 1000, ts0: int = 5000, start: float = 100.0, delays=None):
    """Packets sent every 20 ms from `start`, each arriving after its delay."""
    packets = []
    for n in range(count):
        delay = delays(n) if delays else 0.005
        packets.append(
            (
                start + n * 0.02 + delay,
                (seq0 + n) & 0xFFFF,
                (ts0 + n * SPF) & 0xFFFFFFFF,
                n.to_bytes(4, "big"),
            )
        )
    return packets


def numbers(out) -> list[int | None]:
    """The frame numbers played, None for a missing packet, inserted gaps left out."""
    played = []
    for _, item in out:
        if isinstance(item, Frame):
            played.append(int.from_bytes(item.payload, "big"))
        elif not item.inserted:
            played.append(None)
    return played


def test_a_steady_stream_plays_in_order_one_frame_per_tick():
    buffer = JitterBuffer()
    out = run(buffer, stream(100), until=102.05)
    played = numbers(out)
    assert played == list(range(100))
    times = [t for t, item in out if isinstance(item, Frame)]
    assert all(abs(b - a - 0.02) < 1e-9 for a, b in itertools.pairwise(times))
    assert buffer.late == buffer.duplicates == 0
    assert buffer.played == 100


def test_out_of_order_packets_are_put_back_in_order():
    packets = stream(50)
    for i in range(5, 45, 7):  # swap neighbours' arrival times
        (a1, *r1), (a2, *r2) = packets[i], packets[i + 1]
        packets[i], packets[i + 1] = (a2, *r1), (a1, *r2)
    buffer = JitterBuffer()
    assert numbers(run(buffer, packets, until=101.05)) == list(range(50))
    assert buffer.lost == 0 and buffer.late == 0


def test_a_missing_packet_is_reported_as_a_gap_with_its_timestamp():
    packets = [p for p in stream(30) if p[1] != 1010]
    buffer = JitterBuffer()
    out = run(buffer, packets, until=100.7)
    played = numbers(out)
    assert played[:30] == [*range(10), None, *range(11, 30)]
    gap = next(item for _, item in out if isinstance(item, Gap) and not item.inserted)
    assert gap.timestamp == 5000 + 10 * SPF
    assert buffer.lost >= 1


def test_a_packet_after_its_slot_is_dropped_and_counted_late():
    packets = stream(30)
    arrival, seq, ts, payload = packets[12]
    packets[12] = (arrival + 0.5, seq, ts, payload)
    buffer = JitterBuffer(max_delay=0.1)
    played = numbers(run(buffer, packets, until=101.0))
    assert played[:30] == [*range(12), None, *range(13, 30)]
    assert buffer.late == 1


def test_a_second_copy_is_a_duplicate():
    buffer = JitterBuffer()
    assert buffer.push(1, 0, b"a", 10.0)
    assert buffer.push(2, 160, b"b", 10.02)
    assert not buffer.push(2, 160, b"b", 10.021)
    assert buffer.duplicates == 1 and len(buffer) == 2


@pytest.mark.parametrize(
    ("seq0", "ts0"), [(65500, 5000), (10, 0xFFFFFFFF - 50 * SPF), (65530, 0xFFFFF000)]
)
def test_sequence_and_timestamp_wrap_arounds_are_seamless(seq0, ts0):
    buffer = JitterBuffer()
    out = run(buffer, stream(120, seq0=seq0, ts0=ts0), until=102.5)
    assert numbers(out)[:120] == list(range(120))
    frames = [item for _, item in out if isinstance(item, Frame)]
    assert frames[-1].seq == (seq0 + 119) & 0xFFFF
    assert frames[-1].timestamp == (ts0 + 119 * SPF) & 0xFFFFFFFF
    assert buffer.resyncs == 0 and buffer.late == 0


def test_the_target_delay_follows_the_jitter_and_stays_within_bounds():
    rng = random.Random(7)
    buffer = JitterBuffer(min_delay=0.02, max_delay=0.2)
    # 10 s with up to 80 ms of random extra delay on each packet.
    out = run(buffer, stream(500, delays=lambda n: rng.uniform(0, 0.08)), until=111.0)
    assert 0.08 <= buffer.target_delay <= 0.11
    assert buffer.delay is not None and abs(buffer.delay - buffer.target_delay) <= 0.03
    # Once adapted (after the first two seconds), hardly anything is late.
    late_after = [i for i, n in enumerate(numbers(out)[:500]) if n is None and i > 100]
    assert len(late_after) <= 10
    assert buffer.jitter > 0.01

    # The network calms down: within a few seconds the delay comes back down.
    calm = stream(400, seq0=1500, ts0=5000 + 500 * SPF, start=110.0)
    run(buffer, calm, until=118.0)
    assert buffer.target_delay == 0.02  # no jitter: one frame, the minimum
    assert buffer.delay is not None and buffer.delay <= buffer.target_delay + 0.04 + 1e-6
    assert buffer.discarded + buffer.lost > 0  # it shrank by skipping slots

    stormy = JitterBuffer(min_delay=0.02, max_delay=0.15)
    run(stormy, stream(200, delays=lambda n: rng.uniform(0, 0.5)), until=104.0)
    assert stormy.target_delay == 0.15


def test_shrinking_skips_at_most_one_frame_per_few_frames():
    buffer = JitterBuffer(start_delay=0.2, max_delay=0.2)
    out = run(buffer, stream(100), until=102.3)
    played = numbers(out)
    skipped = sorted(set(range(100)) - {n for n in played if n is not None})
    assert played[-1] is None  # the stream was played to its end
    assert skipped  # it did shrink from 200 ms towards the 20-40 ms it needs
    assert all(b - a >= SHRINK_EVERY - 1 for a, b in itertools.pairwise(skipped))


def test_growing_plays_inserted_gaps_until_the_delay_covers_the_jitter():
    # Every tenth packet 85 ms later than the others: the target rises above
    # it, the buffer grows with inserted gaps, and then nothing is late.
    buffer = JitterBuffer(min_delay=0.02, max_delay=0.3)
    jittery = stream(200, delays=lambda n: 0.005 if n % 10 else 0.09)
    out = run(buffer, jittery, until=104.3)
    assert buffer.target_delay == pytest.approx(0.105, abs=0.001)
    assert buffer.inserted >= 2  # from 60 ms to about 105 ms
    assert any(isinstance(item, Gap) and item.inserted for _, item in out)
    played = numbers(out)
    assert buffer.late <= 2  # only while it was growing
    assert [n for n in played if n is not None][-100:] == list(range(100, 200))


def test_a_timestamp_jump_restarts_the_stream():
    buffer = JitterBuffer()
    first = stream(20)
    # A new source after a transfer: other numbering, same arrival pace.
    second = stream(20, seq0=40000, ts0=123456789, start=100.4)
    played = numbers(run(buffer, first + second, until=101.2))
    assert buffer.resyncs == 1
    assert [n for n in played if n is not None][-20:] == list(range(20))
    assert buffer.late == 0


def test_a_sequence_jump_restarts_the_stream():
    buffer = JitterBuffer()
    run(buffer, stream(10) + stream(10, seq0=30000, ts0=5000 + 10 * SPF, start=100.2), until=100.8)
    assert buffer.resyncs == 1


def test_nothing_is_due_before_the_first_packet_and_deadlines_step_by_a_frame():
    buffer = JitterBuffer(start_delay=0.06)
    assert buffer.pop(1.0) == [] and buffer.next_deadline() is None and buffer.delay is None
    buffer.push(7, 1000, b"x", 50.0)
    assert buffer.next_deadline() == pytest.approx(50.06)
    assert buffer.pop(50.05) == []
    assert buffer.pop(50.06) == [Frame(1000, 7, b"x")]
    assert buffer.next_deadline() == pytest.approx(50.08)
    # A caller that wakes up late gets everything that was due, in order.
    buffer.push(8, 1160, b"y", 50.07)
    assert buffer.pop(50.105) == [Frame(1160, 8, b"y"), Gap(1320)]


def test_reset_forgets_the_stream():
    buffer = JitterBuffer()
    buffer.push(1, 0, b"a", 1.0)
    buffer.reset()
    assert len(buffer) == 0 and buffer.next_deadline() is None and buffer.discarded == 1
    buffer.push(500, 99999, b"b", 2.0)
    assert buffer.pop(2.06) == [Frame(99999, 500, b"b")]


def test_other_clock_rates_and_frame_lengths():
    buffer = JitterBuffer(clock_rate=48000, frame_ms=20)
    assert buffer.samples_per_frame == 960
    assert JitterBuffer(clock_rate=8000, frame_ms=30).samples_per_frame == 240


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock_rate": 8000, "frame_ms": 0}, "whole number of ticks"),
        ({"clock_rate": 11025, "frame_ms": 20}, "whole number of ticks"),
        ({"min_delay": 0.3, "max_delay": 0.2}, "min_delay <= max_delay"),
        ({"window": 1}, "at least 2 packets"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JitterBuffer(**kwargs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq0=st.integers(0, 0xFFFF),
    ts0=st.integers(0, 0xFFFFFFFF),
    delays=st.lists(st.floats(0, 0.25), min_size=20, max_size=120),
    dropped=st.sets(st.integers(0, 119)),
    copies=st.sets(st.integers(0, 119)),
)
def test_any_arrival_order_plays_each_packet_at_most_once_in_order(
    seq0, ts0, delays, dropped, copies
):
    packets = [
        p
        for n, p in enumerate(stream(len(delays), seq0=seq0, ts0=ts0, delays=lambda n: delays[n]))
        if n not in dropped
    ]
    packets += [
        (a + 0.003, s, t, pl) for a, s, t, pl in packets if int.from_bytes(pl, "big") in copies
    ]
    if not packets:
        return
    buffer = JitterBuffer(max_delay=0.2)
    out = run(buffer, packets, until=100.0 + 0.02 * len(delays) + 0.6)
    played = [int.from_bytes(item.payload, "big") for _, item in out if isinstance(item, Frame)]
    assert played == sorted(set(played))  # in order, never twice
    assert not set(played) & dropped
    # Every packet pushed is accounted for exactly once.
    assert buffer.received == len(packets)
    assert buffer.received == (
        buffer.played + buffer.late + buffer.duplicates + buffer.discarded + len(buffer)
    )
    assert buffer.min_delay <= buffer.target_delay <= buffer.max_delay


def test_a_caller_back_after_a_long_pause_gets_what_is_due_not_the_backlog():
    buffer = JitterBuffer(start_delay=0.04)
    for n in range(5):
        buffer.push(n, n * SPF, bytes([n]), 10.0 + n * 0.02)
    assert len(buffer.pop(10.04)) == 1
    # Three seconds without a pop; the packets meanwhile kept coming.
    for n in range(5, 155):
        buffer.push(n, n * SPF, bytes([n % 256]), 10.0 + n * 0.02)
    # Slot n is due at 10.04 + n * 20 ms: slot 150 now, 1 to 149 are skipped.
    assert buffer.pop(13.04) == [Frame(150 * SPF, 150, bytes([150]))]
    assert buffer.pop(13.06) == [Frame(151 * SPF, 151, bytes([151]))]
    assert buffer.discarded == 149
    assert buffer.received == buffer.played + buffer.discarded + len(buffer)
