"""DTMF between legs that carry it differently, sans-IO: the splice that keeps a
leg's stream continuous, the senders that put keys into it in real time,
the bridge (RFC 4733 <-> SIP INFO <-> in-band), telephone-event through the
Opus <-> G.711 transcoder, and telephone-event in SDP.

Everything runs on a fake clock: a stream is a list of (time, packet) and
the bridge's timer is run at the deadlines it asks for.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest

from switch.media import g711
from switch.media.dtmf import DIGITS, Digit, DigitBegin
from switch.media.dtmf.events import END_COPIES, EventReceiver, event_packets, parse_event
from switch.media.dtmf.inband import ZERO_DBM0, ToneDetector, generate
from switch.media.dtmf.outgoing import EventSender, ToneSender
from switch.media.dtmf.sdp import (
    answer_keeping_events,
    audio_rates,
    events_of,
    with_events,
    without_events,
)
from switch.media.dtmf_bridge import DtmfBridge, Emit, Heard, LegDtmf, SendInfo
from switch.media.opus import OpusEncoder
from switch.media.packet_transcoder import PacketTranscoder
from switch.media.splice import Splice
from switch.media.webrtc_sdp import answer_codecs, codecs_of
from switch.sip.sdp import Codec, parse_sdp

HEADER = struct.Struct("!BBHII")
PCMU = Codec("PCMU", 8000, 1, 0)
OPUS = Codec("opus", 48000, 2, 111)
TE8 = Codec("telephone-event", 8000, 1, 101)
TE48 = Codec("telephone-event", 48000, 1, 110)
PAIR_AT_MINUS_20 = -23.0  # dBm0 per frequency: the pair at -20 dBm0
PAIR_POWER = (ZERO_DBM0 * 10 ** (PAIR_AT_MINUS_20 / 20)) ** 2  # two sines' mean square


def rtp(pt: int, seq: int, ts: int, payload: bytes, ssrc: int = 0xA, marker: bool = False) -> bytes:
    flags = (0x80 if marker else 0) | pt
    return HEADER.pack(0x80, flags, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def fields(packet: bytes) -> tuple[int, int, int, int, bool]:
    """(payload type, seq, ts, ssrc, marker)."""
    _, flags, seq, ts, ssrc = HEADER.unpack_from(packet)
    return flags & 0x7F, seq, ts, ssrc, bool(flags & 0x80)


def digits_of(events: list) -> str:
    return "".join(e.digit for e in events if isinstance(e, Digit))


# -- the splice -------------------------------------------------------------------------


def test_the_splice_keeps_one_stream_around_what_it_drops_and_inserts():
    splice = Splice()
    sent = [splice.forward(rtp(0, 100, 0, b"a"), 0.0, 8000)]
    assert sent[0] == rtp(0, 100, 0, b"a")  # untouched while nothing changed
    splice.drop(rtp(101, 101, 160, b"ev"), 0.02)  # an event left out
    sent.append(splice.forward(rtp(0, 102, 320, b"b"), 0.04, 8000))
    # The node's own packet 30 ms later, on the audio's timeline.
    ts = splice.timestamp_at(0.07)
    assert ts == 320 + 240
    sent.append(splice.insert(101, ts, b"mine", marker=True))
    sent.append(splice.insert(101, ts, b"mine", marker=False))
    sent.append(splice.forward(rtp(0, 103, 480, b"c"), 0.08, 8000))
    assert [fields(p)[1] for p in sent] == [100, 101, 102, 103, 104]
    assert {fields(p)[3] for p in sent} == {0xA}  # the source's SSRC throughout
    assert fields(sent[2])[4] and not fields(sent[3])[4]
    assert [p[12:] for p in sent] == [b"a", b"b", b"mine", b"mine", b"c"]
    assert (splice.inserted, splice.dropped) == (2, 1)


def test_the_splice_wraps_sequence_numbers_and_starts_a_stream_of_its_own():
    splice = Splice()
    first = splice.insert(101, splice.timestamp_at(5.0), b"x", True)
    assert fields(first)[2] == splice.timestamp_at(5.0)  # nothing relayed: its own timeline
    splice = Splice()
    out = [splice.forward(rtp(0, 0xFFFF, 0, b""), 0.0, 8000)]
    out.append(splice.insert(0, 160, b"", False))
    out.append(splice.forward(rtp(0, 0, 160, b""), 0.02, 8000))
    assert [fields(p)[1] for p in out] == [0xFFFF, 0, 1]


# -- the senders --------------------------------------------------------------------------


def run_sender(sender, calls, until: float) -> list[tuple[float, object]]:
    """Drive a sender: `calls` are (time, method, args); its timer at its deadlines."""
    out: list[tuple[float, object]] = []
    pending = sorted(calls, key=lambda c: c[0])
    now = 0.0
    while True:
        due = sender.next_deadline()
        upcoming = pending[0][0] if pending else None
        if due is not None and (upcoming is None or due < upcoming) and due <= until:
            now = max(now, due)
            out += [(now, p) for p in sender.tick(now)]
        elif upcoming is not None:
            now, method, args = pending.pop(0)
            out += [(now, p) for p in getattr(sender, method)(*args, now)]
        else:
            return out


def test_the_event_sender_sends_a_press_as_it_happens():
    sender = EventSender(lambda now: round(now * 8000), rate=8000)
    out = run_sender(sender, [(1.0, "begin", ("5",)), (1.23, "end", ("5", 0.23))], 5.0)
    stamps = {p.timestamp for _, p in out}
    assert stamps == {8000}  # every packet of the press at the instant it began
    assert [t for t, p in out if p.marker] == [1.0]  # the start packet, at once
    events = [(t, parse_event(p.payload)) for t, p in out]
    updates = [t for t, e in events if not e.end]
    assert updates == pytest.approx([1.0, 1.05, 1.1, 1.15, 1.2])  # every 50 ms
    ends = [e for _, e in events if e.end]
    assert len(ends) == END_COPIES and {e.duration for e in ends} == {round(0.23 * 8000)}
    assert {e.code for _, e in events} == {5}


def test_presses_that_come_together_are_sent_one_after_another():
    sender = EventSender(lambda now: round(now * 48000), rate=48000)
    calls = [(0.0, "press", (d, 0.1)) for d in "123"]
    out = run_sender(sender, calls, 5.0)
    receiver = EventReceiver(48000)
    got = []
    for seq, (t, p) in enumerate(out):
        got += receiver.receive(p.payload, p.timestamp, seq, t)
    assert digits_of(got) == "123"
    assert all(d.duration == pytest.approx(0.1) for d in got if isinstance(d, Digit))
    starts = [t for t, p in out if p.marker]
    assert starts == pytest.approx([0.0, 0.15, 0.3])  # 100 ms each, 50 ms apart


def test_the_tone_sender_plays_each_press_then_a_pause_of_silence():
    sender = ToneSender(lambda now: round(now * 8000))
    calls = [(0.0, "press", (d, 0.06)) for d in DIGITS]
    calls.append((0.0, "begin", ("5",)))
    calls.append((3.0, "end", ("5", 0.5)))
    out = run_sender(sender, calls, 10.0)
    times = [t for t, _ in out]
    assert times == sorted(times)
    stamps = [p.timestamp for _, p in out]
    assert all(b - a == 160 for a, b in itertools.pairwise(stamps) if b - a < 800)
    pcm = b"".join(p.payload for _, p in out)
    detector = ToneDetector()
    heard = detector.feed(pcm) + detector.flush()
    # 60 ms asked: sent for the 80 ms minimum; the open press for as long as it was down.
    assert digits_of(heard) == DIGITS + "5"
    assert not sender.busy()


# -- the bridge ---------------------------------------------------------------------------

AGENT = LegDtmf("rfc4733", {101: 8000}, (101, 8000), {0: "pcmu"}, {0: 8000})


def leg(mode: str) -> LegDtmf:
    return LegDtmf(mode, {101: 8000}, (101, 8000), {0: "pcmu", 8: "pcma"}, {0: 8000, 8: 8000})


class Sim:
    """A bridge on a fake clock; what it emits to each side, and the INFOs it sends."""

    def __init__(self, bridge: DtmfBridge) -> None:
        self.bridge = bridge
        self.now = 0.0
        self.sent: dict[str, list[bytes]] = {"a": [], "b": []}
        self.infos: list[SendInfo] = []
        self.heard: list[Heard] = []

    def _act(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Emit):
                self.sent[action.side].append(action.packet)
            elif isinstance(action, SendInfo):
                self.infos.append(action)
            else:
                self.heard.append(action)

    def advance(self, until: float) -> None:
        while (due := self.bridge.next_deadline()) is not None and due <= until:
            self.now = max(self.now, due)
            self._act(self.bridge.handle_timer(self.now))
        self.now = max(self.now, until)

    def play(self, stream: list[tuple[float, str, bytes]]) -> None:
        for at, side, packet in sorted(stream, key=lambda x: x[0]):
            self.advance(at)
            self._act(self.bridge.packet(side, packet, self.now))

    def info(self, at: float, side: str, digit: str, duration: float) -> None:
        self.advance(at)
        self._act(self.bridge.info(side, digit, duration, self.now))


def audio(side: str, pcm: bytes, start: float = 0.0, ssrc: int = 0xA) -> list:
    """PCMU packets of `pcm` (8 kHz linear), one every 20 ms from `start`."""
    out = []
    for i in range(len(pcm) // 320):
        frame = g711.ulaw_encode(pcm[320 * i : 320 * (i + 1)])
        out.append((start + 0.02 * i, side, rtp(0, i, 160 * i, frame, ssrc)))
    return out


def noise(seconds: float, seed: int = 1, level: float = 200.0) -> bytes:
    x = np.random.default_rng(seed).normal(0.0, level, round(seconds * 8000))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def with_keys(seconds: float, keys: str, snr_db: float = 15.0, seed: int = 3) -> bytes:
    """`seconds` of noise with `keys` at -20 dBm0, 70 ms on, 80 ms off, from 0.5 s."""
    pcm = np.zeros(round(seconds * 8000))
    at = 0.5
    for key in keys:
        tone = np.frombuffer(generate(key, 0.07, PAIR_AT_MINUS_20), "<i2")
        i = round(at * 8000)
        pcm[i : i + len(tone)] += tone
        at += 0.15
    sigma = np.sqrt(PAIR_POWER / 10 ** (snr_db / 10))
    pcm += np.random.default_rng(seed).normal(0.0, sigma, len(pcm))
    return np.clip(np.round(pcm), -32768, 32767).astype("<i2").tobytes()


def agent_keys(side: str, keys: str, start: float, seconds: float, extra_ends: int = 1) -> list:
    """An agent's stream: PCMU noise every 20 ms, and each key (100 ms, 200 ms
    apart) as RFC 4733 events in the same sequence space, in place of the
    audio while it is down, each end packet sent `END_COPIES + extra_ends` times."""
    timeline: list[tuple[float, int, bytes, int]] = []  # (time, pt, payload, ts)
    busy: list[tuple[float, float]] = []
    for k, key in enumerate(keys):
        t0 = start + 0.2 * k
        ts0 = round(t0 * 8000)
        packets = event_packets(key, ts0, 0.1, end_copies=END_COPIES + extra_ends)
        timeline += [(t0 + p.at, 101, p.payload, p.timestamp) for p in packets]
        busy.append((t0, t0 + 0.1))
    pcm = noise(seconds)
    for i in range(len(pcm) // 320):
        t = 0.02 * i
        if not any(a <= t <= b for a, b in busy):
            timeline.append((t, 0, g711.ulaw_encode(pcm[320 * i : 320 * (i + 1)]), 160 * i))
    timeline.sort(key=lambda x: x[0])
    return [
        (t, side, rtp(pt, seq, ts, body, 0xB, marker=pt == 101 and body[2:] == b"\x00\x00"))
        for seq, (t, pt, body, ts) in enumerate(timeline)
    ]


def contiguous(packets: list[bytes]) -> bool:
    seqs = [fields(p)[1] for p in packets]
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def events_in(packets: list[bytes]) -> str:
    receiver = EventReceiver()
    out = []
    for p in packets:
        pt, seq, ts, _, _ = fields(p)
        if pt == 101:
            out += receiver.receive(p[12:], ts, seq, 0.0)
    return digits_of(out)


def tones_in(packets: list[bytes]) -> str:
    ordered = sorted(packets, key=lambda p: fields(p)[1])
    pcm = b"".join(g711.ulaw_decode(p[12:]) for p in ordered if fields(p)[0] == 0)
    detector = ToneDetector()
    return digits_of(detector.feed(pcm) + detector.flush())


def test_legs_that_agree_need_no_bridge_and_no_tap():
    assert not DtmfBridge(leg("rfc4733"), leg("rfc4733")).needed
    assert DtmfBridge(leg("info"), leg("info")).tapped == frozenset()
    assert DtmfBridge(leg("inband"), leg("rfc4733")).tapped == {"a", "b"}
    with pytest.raises(ValueError, match="rfc2833"):
        LegDtmf("rfc2833")


def test_events_from_an_agent_become_one_info_each_for_the_trunk():
    sim = Sim(DtmfBridge(leg("info"), leg("rfc4733")))
    stream = agent_keys("b", DIGITS, 0.3, 4.0, extra_ends=2)
    sim.play(stream)
    sim.advance(6.0)
    assert [i.digit for i in sim.infos] == list(DIGITS)  # once each, end copies and all
    assert {i.side for i in sim.infos} == {"a"}
    assert all(i.duration == pytest.approx(0.1) for i in sim.infos)
    toward_trunk = sim.sent["a"]
    assert all(fields(p)[0] == 0 for p in toward_trunk)  # no event reaches it
    assert len(toward_trunk) == sum(1 for _, _, p in stream if fields(p)[0] == 0)
    assert contiguous(toward_trunk)  # the events' numbers closed up


def test_infos_from_a_trunk_become_events_for_the_agent_on_its_audio_timeline():
    sim = Sim(DtmfBridge(leg("info"), leg("rfc4733")))
    stream = audio("a", noise(4.0))
    sim.play([s for s in stream if s[0] < 0.5])
    for digit in DIGITS:  # sixteen INFOs back to back
        sim.info(0.5, "a", digit, 0.12)
    sim.play([s for s in stream if s[0] >= 0.5])
    sim.advance(6.0)
    to_agent = sim.sent["b"]
    assert events_in(to_agent) == DIGITS
    assert contiguous(to_agent)
    assert sum(1 for p in to_agent if fields(p)[0] == 0) == len(stream)  # the audio all passed
    # Each press is stamped where the audio is when it starts (within a frame).
    last_audio_ts = 0
    for p in to_agent:
        pt, _, ts, ssrc, marker = fields(p)
        assert ssrc == 0xA
        if pt == 0:
            last_audio_ts = ts
        elif marker:
            assert 0 <= ts - last_audio_ts <= 160 + 8
    assert [h.digit for h in sim.heard] == list(DIGITS)


def test_tones_from_a_trunk_become_events_for_the_agent_and_still_pass():
    sim = Sim(DtmfBridge(leg("inband"), leg("rfc4733")))
    stream = audio("a", with_keys(4.0, DIGITS))
    sim.play(stream)
    sim.advance(6.0)
    to_agent = sim.sent["b"]
    assert events_in(to_agent) == DIGITS
    assert tones_in(to_agent) == DIGITS  # the tones themselves went on too
    assert contiguous(to_agent)
    assert sim.infos == []


def test_tones_are_heard_through_jitter_and_reordering():
    rng = np.random.default_rng(11)
    sim = Sim(DtmfBridge(leg("inband"), leg("rfc4733")))
    stream = audio("a", with_keys(4.0, DIGITS))
    # Up to 50 ms late at random: packets overtake each other.
    jittered = [(t + rng.uniform(0, 0.05), side, p) for t, side, p in stream]
    sim.play(jittered)
    sim.advance(6.0)
    assert events_in(sim.sent["b"]) == DIGITS


def test_events_from_an_agent_become_tones_in_place_of_the_trunks_audio():
    sim = Sim(DtmfBridge(leg("inband"), leg("rfc4733")))
    stream = agent_keys("b", DIGITS, 0.3, 4.5)
    sim.play(stream)
    sim.advance(6.0)
    to_trunk = sim.sent["a"]
    assert tones_in(to_trunk) == DIGITS
    assert all(fields(p)[0] == 0 for p in to_trunk)
    assert contiguous(to_trunk)
    times = sorted(fields(p)[2] for p in to_trunk)
    assert len(times) == len(set(times))  # a tone frame replaces the audio, never both


def test_infos_from_a_trunk_become_tones_for_an_agent_without_events():
    sim = Sim(DtmfBridge(leg("info"), leg("inband")))
    stream = audio("b", noise(4.0))
    sim.play([s for s in stream if s[0] < 0.5])
    for digit in DIGITS:
        sim.info(0.5, "a", digit, 0.1)
    sim.play([s for s in stream if s[0] >= 0.5])
    sim.advance(6.0)
    # The agent's side is "b": the tones go to it; its noise still reaches the trunk.
    assert tones_in(sim.sent["b"]) == DIGITS
    assert len(sim.sent["a"]) == len(stream)


def test_a_key_on_a_leg_in_no_g711_is_counted_lost():
    opus_leg = LegDtmf("inband", {}, None, {}, {111: 48000})
    bridge = DtmfBridge(leg("info"), opus_leg)
    sim = Sim(bridge)
    sim.info(0.0, "a", "7", 0.1)
    sim.advance(1.0)
    assert sim.sent["b"] == [] and bridge.lost == 1


# -- telephone-event across the transcoder --------------------------------------------------


def test_events_cross_the_transcoder_on_the_audio_timeline_with_their_clock():
    to_trunk = PacketTranscoder(OPUS, PCMU, TE48, TE8)
    encoder = OpusEncoder(48000)
    out = []
    for i in range(5):
        out += to_trunk.convert(rtp(111, i, 960 * i, encoder.encode(bytes(1920))))
    press = event_packets("#", 960 * 5, 0.1, clock_rate=48000)
    for i, p in enumerate(press):
        out += to_trunk.convert(rtp(110, 5 + i, p.timestamp, p.payload, marker=p.marker))
    out += to_trunk.convert(rtp(111, 5 + len(press), 960 * 10, encoder.encode(bytes(1920))))
    assert contiguous(out)
    assert [fields(p)[2] for p in out if fields(p)[0] == 0] == [
        160 * i for i in (0, 1, 2, 3, 4, 10)
    ]
    events = [p for p in out if fields(p)[0] == 101]
    assert len(events) == len(press) and {fields(p)[2] for p in events} == {800}
    assert fields(events[0])[4]  # the marker kept
    durations = [parse_event(p[12:]).duration for p in events]
    assert durations[-1] == 800  # 100 ms at 8 kHz
    assert events_in(out) == "#"
    assert to_trunk.events == len(press)


def test_events_toward_a_browser_scale_up_and_hold_at_the_field_limit():
    to_browser = PacketTranscoder(PCMU, OPUS, TE8, TE48)
    long_press = event_packets("1", 1000, 1.5)  # 12000 ticks at 8 kHz: 72000 at 48
    out = [p for e in long_press for p in to_browser.convert(rtp(101, 0, e.timestamp, e.payload))]
    assert {fields(p)[0] for p in out} == {110}
    assert {fields(p)[2] for p in out} == {6000}
    assert max(parse_event(p[12:]).duration for p in out) == 0xFFFF
    without = PacketTranscoder(PCMU, OPUS)
    assert without.convert(rtp(101, 0, 0, long_press[0].payload)) == []
    assert without.dropped == 1


# -- telephone-event in SDP ----------------------------------------------------------------

PLAIN = (
    b"v=0\r\no=t 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=ptime:20\r\n"
)


def test_telephone_event_is_removed_added_and_kept_in_answers():
    assert [c.payload_type for c in events_of(PLAIN)] == [101]
    bare = without_events(PLAIN)
    assert events_of(bare) == [] and parse_sdp(bare).media[0].formats == ["0", "8"]
    assert b"fmtp:101" not in bare and b"a=ptime:20" in bare
    again = with_events(bare, audio_rates(bare))
    assert [(c.payload_type, c.clock_rate) for c in events_of(again)] == [(101, 8000)]
    assert with_events(PLAIN, [8000]) == PLAIN  # had one on that clock already
    opus = bare.replace(b"RTP/AVP 0 8", b"RTP/AVP 111 0") + b"a=rtpmap:111 opus/48000/2\r\n"
    both = events_of(with_events(opus, audio_rates(opus)))
    assert sorted(c.clock_rate for c in both) == [8000, 48000]
    # An answer without events keeps the receiver's offered one.
    kept = answer_keeping_events(
        bare.replace(b"0 8", b"0"), parse_sdp(PLAIN).media[0].rtpmaps().values()
    )
    assert [c.payload_type for c in events_of(kept)] == [101]
    assert without_events(b"not sdp") == b"not sdp"


def test_the_bridge_hears_each_side_once_and_reports_it():
    sim = Sim(DtmfBridge(leg("rfc4733"), leg("info")))
    sim.info(0.0, "b", "9", 0.2)
    sim.play(agent_keys("a", "0", 0.5, 1.5))
    sim.advance(3.0)
    assert [(h.side, h.digit) for h in sim.heard] == [("b", "9"), ("a", "0")]
    assert [(i.side, i.digit) for i in sim.infos] == [("b", "0")]
    assert events_in(sim.sent["a"]) == "9"
    assert not any(isinstance(x, DigitBegin) for x in sim.heard)


def test_stray_events_from_a_leg_that_takes_info_are_not_passed_on_beside_the_nodes():
    sim = Sim(DtmfBridge(leg("info"), leg("rfc4733")))
    sim.play(agent_keys("a", "4", 0.3, 1.0))  # the INFO trunk sends events all the same
    sim.info(0.6, "a", "4", 0.1)
    sim.advance(2.0)
    assert events_in(sim.sent["b"]) == "4"  # the INFO's, once
    assert sim.infos == []


def test_a_transcoded_answer_keeps_events_and_gives_the_side_without_a_number_of_the_nodes():
    trunk_offer = PLAIN.replace(b" 0 8 101", b" 0 8").replace(
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", b""
    )
    browser_answer = (
        b"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        b"m=audio 9 UDP/TLS/RTP/SAVPF 111 110\r\nc=IN IP4 0.0.0.0\r\n"
        b"a=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n"
    )
    body, choice = answer_codecs(browser_answer, codecs_of(trunk_offer))
    assert choice is not None and not choice.passthrough
    # The trunk offered no telephone-event: its answer has none...
    assert events_of(body) == [] and parse_sdp(body).media[0].formats == ["0"]
    # ...but the relay's side of the call numbers them (for the node's own).
    assert choice.a_event == Codec("telephone-event", 8000, 1, 101, "0-16")
    assert choice.b_event == Codec("telephone-event", 48000, 1, 110)
    assert choice.reversed().a_event == choice.b_event
