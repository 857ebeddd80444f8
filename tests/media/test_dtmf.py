"""DTMF, sans-IO: RFC 4733 telephone-events sent and received through loss,
duplication and reordering (and from sip-tester's captures), SIP INFO
bodies, and in-band Goertzel detection on tones in noise and on speech.

Levels in the in-band tests: 0 dBm0 is a sine 3.17 dB below 16-bit full
scale (G.711's convention, `inband.ZERO_DBM0`, amplitude 22 748). A key
"at -20 dBm0" here is the pair at -20 dBm0 in all: each frequency at
-23 dBm0 (amplitude 1610). Noise is white Gaussian, its power stated as the
signal-to-noise ratio against the pair.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.media.dtmf import DIGITS, Digit, DigitBegin, DtmfError
from switch.media.dtmf.events import (
    Event,
    EventReceiver,
    event_packets,
    parse_event,
)
from switch.media.dtmf.inband import (
    COLUMNS,
    PROBES,
    RATE,
    ZERO_DBM0,
    ToneDetector,
    generate,
    goertzel_power,
    probe_powers,
    window_powers,
)
from switch.media.dtmf.info import DTMF, DTMF_RELAY, info_body, parse_info
from tests.support.pcap import read_udp

FRAME = 160  # samples in 20 ms at 8 kHz

# -------------------------------------------------------------- RFC 4733


def digits_of(events: list) -> str:
    return "".join(e.digit for e in events if isinstance(e, Digit))


def begins_of(events: list) -> str:
    return "".join(e.digit for e in events if isinstance(e, DigitBegin))


def test_payload_round_trip_and_the_rfc_layout():
    # Event 5, end, volume 10, duration 800: 05 8a 03 20.
    assert Event(5, True, 10, 800).to_bytes() == bytes.fromhex("058a0320")
    assert parse_event(bytes.fromhex("0b0a0140")) == Event(11, False, 10, 320)
    assert parse_event(bytes.fromhex("0b0a0140")).digit == "#"
    assert parse_event(bytes.fromhex("0b4a0140")).volume == 10  # the R bit is ignored
    assert parse_event(bytes.fromhex("10000000")).digit is None  # flash is no key


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_any_event_survives_the_round_trip(code, end, volume, duration):
    event = Event(code, end, volume, duration)
    assert parse_event(event.to_bytes()) == event


@pytest.mark.parametrize("payload", [b"", b"\x05", b"\x05\x8a\x03"])
def test_a_short_payload_is_an_error_and_the_receiver_counts_it(payload):
    with pytest.raises(DtmfError, match="needs 4"):
        parse_event(payload)
    receiver = EventReceiver()
    assert receiver.receive(payload, 0, 1, 0.0) == []
    assert receiver.malformed == 1


def test_the_sender_sends_start_updates_and_three_ends_at_one_timestamp():
    packets = event_packets("7", 1000, 0.18)
    assert [p.at for p in packets] == [0.0, 0.05, 0.1, 0.15, 0.18, 0.18, 0.18]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {1000}
    events = [parse_event(p.payload) for p in packets]
    assert [e.duration for e in events] == [0, 400, 800, 1200, 1440, 1440, 1440]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {(e.code, e.volume) for e in events} == {(7, 10)}


@pytest.mark.parametrize(
    ("digit", "kwargs"), [("x", {}), ("10", {}), ("", {}), ("1", {"volume": 64})]
)
def test_the_sender_refuses_what_is_no_key(digit, kwargs):
    with pytest.raises(DtmfError):
        event_packets(digit, 0, 0.1, **kwargs)


def test_a_press_longer_than_the_duration_field_goes_in_segments_and_is_one_digit():
    packets = event_packets("5", 0xFFFFFF00, 20.0)  # 160 000 units: three segments
    stamps = sorted({p.timestamp for p in packets}, key=lambda ts: (ts - 0xFFFFFF00) & 0xFFFFFFFF)
    assert stamps == [0xFFFFFF00, (0xFFFFFF00 + 0xFFFF) & 0xFFFFFFFF, 0x1FEFE]
    assert sum(p.marker for p in packets) == 1
    events = [parse_event(p.payload) for p in packets]
    assert max(e.duration for e in events) == 0xFFFF
    assert [e.end for e in events].count(True) == 3
    receiver = EventReceiver()
    out = []
    for seq, p in enumerate(packets):
        out += receiver.receive(p.payload, p.timestamp, seq, p.at)
    assert out == [DigitBegin("5"), Digit("5", 20.0)]


def send(presses, start_ts=0, start_seq=0):
    """The packets of `presses` [(digit, held, pause after)], each as
    (send time, seq, timestamp, payload), one stream of 8 kHz."""
    out, t, seq = [], 0.0, start_seq
    for digit, held, pause in presses:
        ts = (start_ts + round(t * 8000)) & 0xFFFFFFFF
        for p in event_packets(digit, ts, held):
            out.append((t + p.at, seq & 0xFFFF, p.timestamp, p.payload))
            seq += 1
        t += held + pause
    return out


def receive(arrivals, receiver=None):
    """Feed (arrival time, seq, ts, payload) in arrival order, timers included."""
    receiver = receiver or EventReceiver()
    out = []
    for at, seq, ts, payload in sorted(arrivals, key=lambda a: a[0]):
        deadline = receiver.next_deadline()
        if deadline is not None and deadline <= at:
            out += receiver.handle_timer(deadline)
        out += receiver.receive(payload, ts, seq, at)
    deadline = receiver.next_deadline()
    if deadline is not None:
        out += receiver.handle_timer(deadline)
    return out


def test_every_key_once_through_sender_and_receiver():
    out = receive(send([(d, 0.1, 0.1) for d in DIGITS]))
    assert digits_of(out) == begins_of(out) == DIGITS
    assert {e.duration for e in out if isinstance(e, Digit)} == {0.1}


def test_the_same_key_twice_is_two_digits_and_the_end_copies_are_one():
    out = receive(send([("1", 0.1, 0.06), ("1", 0.1, 0.06), ("1", 0.06, 0.0)]))
    assert out == [DigitBegin("1"), Digit("1", 0.1)] * 2 + [DigitBegin("1"), Digit("1", 0.06)]


def test_a_lost_start_packet_still_begins_the_press():
    packets = send([("9", 0.2, 0.0)])[1:]
    assert receive([(at, s, ts, p) for at, s, ts, p in packets]) == [
        DigitBegin("9"), Digit("9", 0.2),
    ]  # fmt: skip


def test_lost_end_packets_end_the_press_after_the_timeout():
    packets = send([("4", 0.2, 0.0)])[:-3]  # start and updates only
    receiver = EventReceiver(timeout=0.4)
    out = []
    for at, seq, ts, payload in packets:
        out += receiver.receive(payload, ts, seq, at)
    assert out == [DigitBegin("4")]
    last = packets[-1][0]
    assert receiver.next_deadline() == pytest.approx(last + 0.4)
    assert receiver.handle_timer(last + 0.39) == []
    assert receiver.handle_timer(last + 0.4) == [Digit("4", 0.15)]
    assert receiver.next_deadline() is None
    # Its updates arriving late do not make it a second digit.
    assert receiver.receive(packets[-1][3], packets[-1][2], packets[-1][1], last + 1) == []


def test_a_new_timestamp_ends_a_press_whose_end_was_lost():
    first, second = send([("2", 0.1, 0.05), ("3", 0.1, 0.0)])[:3], send([("3", 0.1, 0.0)])
    second = [(at + 0.15, seq + 3, ts + 1200, p) for at, seq, ts, p in second]
    assert receive(first + second) == [
        DigitBegin("2"), Digit("2", 0.1), DigitBegin("3"), Digit("3", 0.1),
    ]  # fmt: skip


def test_a_late_packet_of_an_earlier_press_is_dropped():
    packets = send([("6", 0.1, 0.06), ("6", 0.1, 0.0)])
    late = packets[1]  # an update of the first press
    arrivals = [(at, s, ts, p) for at, s, ts, p in packets] + [(10.0, *late[1:])]
    assert digits_of(receive(arrivals)) == "66"


def test_events_that_are_no_keys_are_ignored():
    receiver = EventReceiver()
    assert receiver.receive(Event(16, False, 10, 0).to_bytes(), 0, 0, 0.0) == []  # flash
    assert receiver.receive(Event(36, True, 10, 800).to_bytes(), 0, 1, 0.1) == []  # fax CNG
    assert receiver.next_deadline() is None


@st.composite
def network(draw):
    """Presses (a few keys, repeats likely, or all sixteen in some order),
    and what the network does to their packets: each lost, sent once or
    twice, each copy delayed up to 50 ms (less than the pause between two
    keys, so reordering never moves a whole press)."""
    keys = draw(
        st.one_of(
            st.lists(st.sampled_from("15#"), min_size=1, max_size=6),  # repeats likely
            st.permutations(DIGITS),
        )
    )
    held = st.integers(40, 400).map(lambda ms: ms / 1000)
    pause = st.integers(60, 300).map(lambda ms: ms / 1000)
    presses = [(key, draw(held), draw(pause)) for key in keys]
    packets = send(presses, draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, 0xFFFF)))
    arrivals, kept_by_press, press = [], {}, -1
    for at, seq, ts, payload in packets:
        if parse_event(payload).duration == 0:  # the start packet of the next press
            press += 1
        copies = draw(st.sampled_from([0, 1, 1, 1, 2]))
        for _ in range(copies):
            delay = draw(st.integers(0, 50)) / 1000
            arrivals.append((at + delay, seq, ts, payload))
        kept_by_press[press] = kept_by_press.get(press, 0) + copies
    # A press the network lost entirely is not one the receiver can hear.
    heard = "".join(p[0] for i, p in enumerate(presses) if kept_by_press.get(i))
    return heard, arrivals


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network())
def test_each_press_is_one_digit_through_loss_duplication_and_reordering(case):
    heard, arrivals = case
    out = receive(arrivals)
    assert digits_of(out) == heard
    assert begins_of(out) == heard
    for begin, end in zip(out[::2], out[1::2], strict=True):  # always begin, then end
        assert isinstance(begin, DigitBegin) and isinstance(end, Digit)
        assert begin.digit == end.digit


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=0, max_size=6),
            st.integers(0, 0xFFFFFFFF).map(lambda ts: ts & 0xFFFFFF03),  # a few timestamps
            st.integers(0, 0xFFFF),
            st.integers(0, 3000).map(lambda ms: ms / 1000),
        ),
        max_size=40,
    )
)
def test_any_packets_give_a_begin_then_one_end_per_press(packets):
    receiver = EventReceiver()
    out = []
    for payload, ts, seq, at in sorted(packets, key=lambda p: p[3]):
        deadline = receiver.next_deadline()
        if deadline is not None and deadline <= at:
            out += receiver.handle_timer(at)
        out += receiver.receive(payload, ts, seq, at)
    assert receiver.malformed == sum(len(p[0]) < 4 for p in packets)
    for begin, end in zip(out[::2], out[1::2], strict=False):
        assert isinstance(begin, DigitBegin) and isinstance(end, Digit)
        assert begin.digit == end.digit and end.duration >= 0
    if len(out) % 2:
        assert isinstance(out[-1], DigitBegin) and receiver.next_deadline() is not None


SIPP_CAPTURES = Path("/usr/share/sip-tester")
CAPTURE_DIGITS = {**{str(d): str(d) for d in range(10)}, "pound": "#", "star": "*"}


def capture_packets(name: str) -> list[tuple[float, int, int, bytes]]:
    path = SIPP_CAPTURES / f"dtmf_2833_{name}.pcap"
    if not path.exists():
        pytest.fail(f"{path} is missing: install the Debian package sip-tester")
    out = []
    for datagram in read_udp(path):
        rtp = datagram.payload
        assert rtp[0] >> 6 == 2 and rtp[1] & 0x7F == 101  # RTP, telephone-event
        seq = int.from_bytes(rtp[2:4], "big")
        ts = int.from_bytes(rtp[4:8], "big")
        out.append((datagram.time, seq, ts, rtp[12:]))
    return out


@pytest.mark.parametrize("name", sorted(CAPTURE_DIGITS))
def test_the_sipp_captures_are_their_digit_once(name):
    packets = capture_packets(name)
    assert len(packets) == 10  # start, six updates, the end three times over
    out = receive(packets)
    assert out == [DigitBegin(CAPTURE_DIGITS[name]), Digit(CAPTURE_DIGITS[name], 0.28)]


def test_the_sipp_captures_played_one_after_another_are_each_digit_once():
    # They were cut from one stream: in its order (by sequence number) they
    # follow on, "*" before "#", "0" last.
    names = sorted(CAPTURE_DIGITS, key=lambda n: capture_packets(n)[0][1])
    assert "".join(CAPTURE_DIGITS[n] for n in names) == "123456789*#0"
    arrivals, offset = [], 0.0
    for name in names:
        packets = capture_packets(name)
        start = packets[0][0]
        arrivals += [(offset + at - start, seq, ts, p) for at, seq, ts, p in packets]
        offset += 1.0
    assert digits_of(receive(arrivals)) == "".join(CAPTURE_DIGITS[n] for n in names)


# -------------------------------------------------------------- SIP INFO


@pytest.mark.parametrize(
    ("content_type", "body", "digit", "duration"),
    [
        (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n", "5", 0.16),
        ("Application/DTMF-Relay; charset=utf-8", b"signal = #\nduration= 250", "#", 0.25),
        (DTMF_RELAY, b"Signal=*\r\nDuration=100", "*", 0.1),
        (DTMF_RELAY, b"Signal=10\r\nDuration=100", "*", 0.1),  # event numbers
        (DTMF_RELAY, b"Signal=11\r\nDuration=100", "#", 0.1),
        (DTMF_RELAY, b"Signal=d\r\nDuration=100", "D", 0.1),
        (DTMF_RELAY, b"Signal=1\r\n", "1", 0.1),  # no Duration: the default
        (DTMF_RELAY, b"Signal=1\r\nDuration=long", "1", 0.1),
        (DTMF_RELAY, b"Signal=1\r\nDuration=-5", "1", 0.1),
        (DTMF_RELAY, b"Signal=1\r\nDuration=99999999", "1", 10.0),  # clamped
        (DTMF_RELAY, b"Volume=10\r\nSignal=2\r\nDuration=80\r\n\r\n", "2", 0.08),
        (DTMF, b"7", "7", 0.1),
        (DTMF, b" a\r\n", "A", 0.1),
        (DTMF, b"11", "#", 0.1),  # an event number, as in dtmf-relay
        (DTMF, "9", "9", 0.1),
    ],
)
def test_info_bodies_as_phones_send_them(content_type, body, digit, duration):
    assert parse_info(content_type, body) == Digit(digit, duration)


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/sdp", b"v=0", "carries no DTMF"),
        (DTMF_RELAY, b"", "without a Signal"),
        (DTMF_RELAY, b"Duration=100", "without a Signal"),
        (DTMF_RELAY, b"Signal=\r\n", "is not a DTMF key"),
        (DTMF_RELAY, b"Signal=16", "is not a DTMF key"),
        (DTMF_RELAY, b"Signal=55", "is not a DTMF key"),
        (DTMF_RELAY, b"Signal=\xb2", "is not a DTMF key"),  # a superscript two
        (DTMF_RELAY, "Signal=\u00b2".encode(), "is not a DTMF key"),
        (DTMF_RELAY, b"Signal=E", "is not a DTMF key"),
        (DTMF, b"5 6", "is not a DTMF key"),
        (DTMF, b"", "is not a DTMF key"),
        (DTMF_RELAY, b"Signal=1\r\n" + b"x" * 2000, "a few dozen"),
    ],
)
def test_info_junk_is_a_clear_error(content_type, body, message):
    with pytest.raises(DtmfError, match=message):
        parse_info(content_type, body)


@pytest.mark.parametrize("content_type", [DTMF_RELAY, DTMF])
def test_info_bodies_built_are_read_back(content_type):
    for digit in DIGITS + "abcd":
        body = info_body(digit, 0.16, content_type)
        expected = 0.16 if content_type == DTMF_RELAY else 0.1
        assert parse_info(content_type, body) == Digit(digit.upper(), expected)
    assert info_body("5", 0.16) == b"Signal=5\r\nDuration=160\r\n"
    with pytest.raises(DtmfError):
        info_body("5", 0.1, "text/plain")


@given(st.binary(max_size=200), st.sampled_from([DTMF_RELAY, DTMF]))
def test_no_body_breaks_the_info_reader(body, content_type):
    try:
        digit = parse_info(content_type, body)
    except DtmfError:
        return
    assert digit.digit in DIGITS and 0 < digit.duration <= 10


# -------------------------------------------------------------- in-band


def frames(pcm: bytes, size: int = FRAME * 2):
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def detect(pcm: bytes, detector: ToneDetector | None = None, size: int = FRAME * 2) -> list:
    detector = detector or ToneDetector()
    out = []
    for frame in frames(pcm, size):
        out += detector.feed(frame)
    return out + detector.flush()


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * RATE))


def with_noise(pcm: bytes, snr_db: float, signal_power: float, seed: int) -> bytes:
    """`pcm` plus white noise `snr_db` below `signal_power` (mean square)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    sigma = np.sqrt(signal_power / 10 ** (snr_db / 10))
    x += np.random.default_rng(seed).normal(0.0, sigma, len(x))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


PAIR_AT_MINUS_20 = -23.0  # dBm0 per frequency: the pair at -20 dBm0
PAIR_POWER = 2 * (ZERO_DBM0 * 10 ** (PAIR_AT_MINUS_20 / 20)) ** 2 / 2  # two sines' mean square


def test_the_vectorised_goertzel_is_the_textbook_recursion():
    rng = np.random.default_rng(7)
    windows = rng.normal(0, 3000, (3, 160))
    powers = probe_powers(windows)
    for i, window in enumerate(windows):
        for j, frequency in enumerate(PROBES):
            expected = goertzel_power(list(window), frequency)
            assert powers[i, j] == pytest.approx(expected, rel=1e-9)
    best = window_powers(windows)
    assert best.shape == (3, 8)
    assert best[1, 4] == max(powers[1, 12:15])  # 1209 Hz and 1.5% either side


def test_a_sine_on_a_dtmf_frequency_has_the_power_the_thresholds_assume():
    assert round(ZERO_DBM0) == 22748  # 0 dBm0, as the docstrings say
    # |X|^2 = (A N / 2)^2 for a sine of amplitude A on the probe's frequency.
    t = np.arange(160) / RATE
    window = 1000 * np.sin(2 * np.pi * COLUMNS[2] * t)
    # (Within 1%: 160 samples hold no whole number of periods.)
    assert window_powers(window[None, :])[0, 6] == pytest.approx((1000 * 80) ** 2, rel=1e-2)


@pytest.mark.parametrize("snr", [20.0, 12.0])
def test_every_key_at_minus_20_dbm0_in_noise_is_one_digit(snr):
    # Keys of 60 ms with 60 ms pauses (faster than any hand), starting at
    # an offset that does not line up with the frames.
    pcm = silence(0.013) + b"".join(
        generate(d, 0.06, PAIR_AT_MINUS_20) + silence(0.06) for d in DIGITS
    )
    out = detect(with_noise(pcm, snr, PAIR_POWER, seed=int(snr)))
    assert digits_of(out) == begins_of(out) == DIGITS
    for event in out:
        if isinstance(event, Digit):
            assert 0.05 <= event.duration <= 0.08


@pytest.mark.parametrize("size", [2, 160, 240, 320, 480, 1000])
def test_frame_size_does_not_matter(size):
    pcm = b"".join(generate(d, 0.1, -10) + silence(0.1) for d in "159#")
    assert digits_of(detect(pcm, size=size)) == "159#"


def test_an_odd_byte_count_and_a_tone_of_no_key_are_errors():
    with pytest.raises(DtmfError, match="2-byte samples"):
        ToneDetector().feed(b"\x00\x01\x02")
    with pytest.raises(DtmfError, match="not a DTMF key"):
        generate("E", 0.1)


OFFSETS = (0.0, 0.0025, 0.005, 0.0075, 0.013)  # where the sound starts against the windows


def test_a_long_tone_is_one_digit_and_a_short_dropout_does_not_split_it():
    out = detect(generate("8", 3.0, -10) + silence(0.2))
    assert out == [DigitBegin("8"), Digit("8", 3.0)]
    for offset in OFFSETS:
        broken = generate("8", 0.3 + offset, -10) + silence(0.01) + generate("8", 0.3, -10)
        assert digits_of(detect(broken)) == "8", offset


def test_the_same_key_after_a_40_ms_pause_is_a_second_digit():
    for offset in OFFSETS:
        pcm = generate("3", 0.1 + offset, -10) + silence(0.04) + generate("3", 0.1, -10)
        assert digits_of(detect(pcm + silence(0.1))) == "33", offset


def test_a_key_ends_when_the_next_begins_without_a_pause():
    pcm = generate("1", 0.1, -10) + generate("2", 0.1, -10) + silence(0.1)
    assert digits_of(detect(pcm)) == "12"


@pytest.mark.parametrize(("seconds", "expected"), [(0.04, "4"), (0.02, ""), (0.015, "")])
def test_tones_shorter_than_the_minimum_are_not_keys(seconds, expected):
    for offset in OFFSETS:
        pcm = silence(offset) + generate("4", seconds, -10) + silence(0.1)
        assert digits_of(detect(pcm)) == expected, offset


@pytest.mark.parametrize(
    ("level", "twist", "expected"),
    [
        (-10.0, -6.0, "6"),  # the column 6 dB below the row: normal line loss
        (-10.0, 3.0, "6"),  # 3 dB above
        (-10.0, -11.0, ""),  # beyond the forward twist
        (-10.0, 7.0, ""),  # beyond the reverse twist
        (-33.0, 0.0, "6"),  # quiet, still a key
        (-40.0, 0.0, ""),  # below the minimum level
    ],
)
def test_levels_and_twist(level, twist, expected):
    pcm = generate("6", 0.1, level, twist) + silence(0.1)
    assert digits_of(detect(pcm)) == expected


def test_frequencies_off_by_one_and_a_half_percent_are_still_keys():
    t = np.arange(800) / RATE
    amplitude = ZERO_DBM0 * 10 ** (-10 / 20)
    for sign in (1, -1):
        wave = amplitude * (
            np.sin(2 * np.pi * 852 * (1 + sign * 0.015) * t)
            + np.sin(2 * np.pi * 1477 * (1 - sign * 0.015) * t)
        )
        pcm = np.round(wave).astype("<i2").tobytes() + silence(0.1)
        assert digits_of(detect(pcm)) == "9"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(DIGITS),
            st.integers(40, 300).map(lambda ms: ms / 1000),  # held
            st.integers(40, 300).map(lambda ms: ms / 1000),  # pause
            st.floats(-28.0, -5.0),  # dBm0 a frequency
            st.floats(-6.0, 3.0),  # twist
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 159),
    st.integers(0, 2**32 - 1),
)
def test_keys_at_any_pace_and_level_in_noise_are_each_one_digit(keys, offset, seed):
    # Keys and pauses of 40 ms and more (ITU-T Q.24's shortest), each
    # frequency between -28 and -5 dBm0, in noise 15 dB below the quietest.
    pcm = bytes(2 * offset) + b"".join(
        generate(d, held, level, twist) + silence(pause) for d, held, pause, level, twist in keys
    )
    quietest = min(level + min(twist, 0.0) for _, _, _, level, twist in keys)
    noise_power = 2 * (ZERO_DBM0 * 10 ** (quietest / 20)) ** 2 / 2
    out = detect(with_noise(pcm, 15.0, noise_power, seed))
    expected = "".join(k[0] for k in keys)
    assert digits_of(out) == begins_of(out) == expected


def test_silence_clipping_and_odd_frames_do_not_upset_the_detector():
    full_scale = np.where(np.arange(800) % 8 < 4, 32767, -32768).astype("<i2").tobytes()
    assert detect(silence(1.0) + full_scale + bytearray(generate("0", 0.1, 3.17))) == [
        DigitBegin("0"), Digit("0", 0.1),
    ]  # fmt: skip
    detector = ToneDetector()
    assert detector.feed(b"") == [] and detector.feed(memoryview(bytes(2))) == []


def test_noise_alone_is_no_key():
    pcm = with_noise(silence(60.0), 0.0, (ZERO_DBM0 * 10 ** (-20 / 20)) ** 2, seed=3)
    assert detect(pcm) == []


# About ten minutes of speech-like audio: a call-center script read by
# espeak-ng in English and in Mandarin, each in several voices and pitches
# (a female voice puts harmonics right across the DTMF rows).
ENGLISH = (
    "Thank you for calling customer service. Your call is important to us, and it may "
    "be recorded for quality and training purposes. Please listen carefully, as our menu "
    "options have changed. For billing questions and payments, press one. To report a "
    "problem with your service, press two. For new orders, press three. If you know the "
    "extension of the person you are calling, you may dial it at any time. Hello, my name "
    "is Maria, how can I help you today? I see, you were charged twice last month. Let me "
    "look into that for you. Could you please read me the account number, one digit at a "
    "time? Seven, four, nine, nine, two, zero, eight, five, six, three. Thank you. And the "
    "postcode? Nine four one zero seven. Wonderful. Oh, oh, I see, hmm, ah yes, mmm, eee, "
    "ooh, la la la, whee! Is there anything else I can help you with? Have a lovely day. "
    "All of our agents are busy right now. Your estimated waiting time is four minutes. "
    "You are number three in the queue. Music plays softly while you wait; please stay on "
    "the line and the next available agent will be with you shortly."
)
MANDARIN = (
    "您好, 欢迎致电客户服务中心。您的来电对我们非常重要, 通话可能会被录音以提高服务质量。"
    "查询账单和缴费请按一, 报告故障请按二, 办理新业务请按三, 人工服务请按零。"
    "您好, 我是客服小王, 请问有什么可以帮您? 好的, 请您提供一下账户号码, 一位一位地读。"
    "七四九九二零八五六三。谢谢您。您上个月被重复扣费了, 我马上为您处理。"
    "嗯, 啊, 哦, 是的, 没问题。请问还有其他需要帮助的吗? 祝您生活愉快, 再见。"
    "目前所有座席都在忙, 预计等待时间四分钟, 您前面还有三位客户, 请不要挂机。"
)
VOICES = [  # about 80 s each
    ("en-us", "f2", 85, 175),
    ("en", "m1", 40, 150),
    ("en-us", "f4", 70, 165),
    ("en", "klatt", 55, 160),
    ("cmn", "f4", 95, 175),
    ("cmn", "m1", 35, 140),
    ("cmn", "f2", 70, 160),
    ("cmn", "m3", 50, 150),
]


def espeak(text: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """`text` spoken, resampled to 8 kHz: espeak-ng speaks at 22 050 Hz; the
    FFT resampler drops everything above 4 kHz, as a phone line would."""
    run = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert run.stdout[:4] == b"RIFF" and run.stdout[36:40] == b"data"
    x = np.frombuffer(run.stdout[44 : len(run.stdout) // 2 * 2], dtype="<i2").astype(float)
    n = round(len(x) * RATE / 22050)
    spectrum = np.fft.rfft(x)[: n // 2 + 1]
    return np.fft.irfft(spectrum, n) * n / len(x)


@pytest.fixture(scope="session")
def speech(request, tmp_path_factory) -> bytes:
    """Ten minutes of speech at 8 kHz, rendered once and kept in pytest's
    cache (in the session's tmp dir when the cache is off)."""
    if not Path("/usr/bin/espeak-ng").exists():
        pytest.fail("espeak-ng is missing: install the Debian package espeak-ng")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(repr((ENGLISH, MANDARIN, VOICES, version)).encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("dtmf-speech") if cache else tmp_path_factory.mktemp("dtmf-speech")
    path = Path(folder) / f"{key}.pcm"
    if not path.exists():
        parts = []
        for voice, variant, pitch, speed in VOICES:
            text = MANDARIN if voice == "cmn" else ENGLISH
            parts.append(espeak(text, f"{voice}+{variant}", pitch, speed))
        audio = np.concatenate(parts)
        # As loud as a talker gets on a line: peaks at -3 dB full scale.
        audio *= 0.7 * 32767 / np.abs(audio).max()
        path.write_bytes(np.round(audio).astype("<i2").tobytes())
    return path.read_bytes()


def test_ten_minutes_of_speech_have_no_digit(speech):
    assert len(speech) / 2 / RATE >= 600
    assert detect(speech) == []
    # The speech is a real trial: without the tone-share check, its
    # harmonics would pass for keys.
    loose = ToneDetector(tone_share=0.0)
    assert len(digits_of(detect(speech, loose, size=32000))) > 10
