"""DTMF across a relayed call whose two legs carry it differently (Asterisk's dtmfmode).

Each leg of a call carries keys in one form (`LegDtmf.mode`):

- "rfc4733": telephone-events in its RTP (agents, browsers, most trunks);
- "info": SIP INFO requests (application/dtmf-relay) in its dialog;
- "inband": the tones themselves, in its audio.

When both legs use the same form nothing is done here: the relay passes
the packets (or the b2bua the INFOs) through untouched, and no tap is put
on either leg. When they differ, `DtmfBridge` (sans-IO) turns each key from
one form into the other, in real time:

- from a leg in "rfc4733": its telephone-events are read (`EventReceiver`:
  one key per press, whatever the network duplicated or lost) and not
  passed on (from a leg in another form, stray events are dropped too: the
  other leg gets the node's own, never both);
- from a leg in "inband": its audio is decoded (G.711, through a jitter
  buffer) and listened to (`ToneDetector`); the audio still passes on, tone
  and all. Only such a leg pays for decoding;
- from a leg in "info": the b2bua hands each INFO's key to `info()`;
- to a leg in "rfc4733": events of the node's own (`EventSender`), on the
  leg's telephone-event payload type and clock;
- to a leg in "inband": the key's tones (`ToneSender`), 20 ms frames in
  place of the audio relayed to it for as long as the tone and the pause
  after it last (replacing, not mixing: Asterisk does the same, and mixing
  would need the far side decoded too). G.711 only: a leg in another codec
  gets no tones, and the key is counted in `lost`;
- to a leg in "info": a `SendInfo` for the b2bua to send, when the key is up.

Taking packets out of a stream and putting the node's own in is done by one
`Splice` per direction, which keeps each leg's stream continuous; so a leg
whose stream is changed has a tap that takes every packet from the other
leg and forwards it itself (`switch.media.relay.RtpPort.add_tap`).

Packets are seen as the relay carries them: on a browser's leg that is
transcoded, that is the other leg's codec and telephone-event numbering
(`switch.media.packet_transcoder` maps events to and from the browser's).

`DtmfLink` is the asyncio glue: it puts the taps on the legs' RTP ports,
emits the packets, runs the bridge's timer and hands INFOs to send to a
callable of the b2bua's.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import g711
from .dtmf import Digit, DigitBegin
from .dtmf.events import EventReceiver
from .dtmf.inband import ToneDetector
from .dtmf.outgoing import EventSender, Out, ToneSender
from .jitter import Frame, JitterBuffer
from .packet_transcoder import payload as rtp_payload
from .relay import MediaSession
from .rtp import ts_distance
from .splice import Splice

log = logging.getLogger("switch.media")
MODES = ("rfc4733", "info", "inband")
_HEADER = struct.Struct("!BBHII")
_DECODE = {"pcmu": g711.ulaw_decode, "pcma": g711.alaw_decode}
_ENCODE = {"pcmu": g711.ulaw_encode, "pcma": g711.alaw_encode}
DEFAULT_EVENT = (101, 8000)  # when a leg said rfc4733 without a telephone-event of its own


@dataclass(frozen=True, slots=True)
class LegDtmf:
    """How one leg carries DTMF, in the numbering of the packets the relay
    carries for it (its side of the relay)."""

    mode: str  # "rfc4733", "info" or "inband"
    events: Mapping[int, int] = field(default_factory=dict)  # telephone-event PT -> clock
    event_out: tuple[int, int] | None = None  # (PT, clock) of the events the node sends it
    g711: Mapping[int, str] = field(default_factory=dict)  # PT -> "pcmu"/"pcma"
    clocks: Mapping[int, int] = field(default_factory=dict)  # PT -> clock of its audio types

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"DTMF mode {self.mode!r}; use one of {', '.join(MODES)}")


@dataclass(frozen=True, slots=True)
class Emit:
    """Send `packet` (RTP, its payload on a `rate` Hz clock) to leg `side`'s endpoint."""

    side: str
    packet: bytes
    rate: int


@dataclass(frozen=True, slots=True)
class SendInfo:
    """Send leg `side` an INFO saying `digit` was held `duration` seconds."""

    side: str
    digit: str
    duration: float


@dataclass(frozen=True, slots=True)
class Heard:
    """A key from leg `side`, in whatever form it came (for logs and counts)."""

    side: str
    digit: str
    duration: float


Action = Emit | SendInfo | Heard


class _ToneReader:
    """Keys in a leg's audio: jitter buffer, G.711 decoding, Goertzel."""

    def __init__(self, g711_types: Mapping[int, str]) -> None:
        self.g711 = g711_types
        self.detector = ToneDetector()
        self.jitter: JitterBuffer | None = None
        self._silence = bytes(320)

    def push(self, seq: int, ts: int, pt: int, payload: bytes, now: float) -> list:
        kind = self.g711.get(pt)
        if kind is None or not payload:
            return []  # not audio we can hear (comfort noise, another codec)
        if self.jitter is None:
            ms = len(payload) // 8  # G.711: 8 bytes a millisecond
            frame_ms = ms if ms in (10, 20, 30, 40, 60) else 20
            # More delay than a listener would want: only the keys wait for
            # it (the audio itself is relayed at once), and a key is not cut
            # in two by a packet that came late.
            self.jitter = JitterBuffer(8000, frame_ms, start_delay=0.1, max_delay=0.3)
            self._silence = bytes(2 * 8 * frame_ms)
        self.jitter.push(seq, ts, bytes([pt]) + payload, now)
        return self.pop(now)

    def pop(self, now: float) -> list:
        if self.jitter is None:
            return []
        out: list = []
        for item in self.jitter.pop(now):
            if isinstance(item, Frame):
                kind = self.g711.get(item.payload[0])
                pcm = _DECODE[kind](item.payload[1:]) if kind else self._silence
            else:
                pcm = self._silence  # a lost frame heard as silence
            out += self.detector.feed(pcm)
        return out

    def next_deadline(self) -> float | None:
        # Frames are due every 20 ms while there are some, or a key is
        # sounding (silence then ends it); otherwise no timer at all.
        if self.jitter is None or not (len(self.jitter) or self.detector.sounding):
            return None
        return self.jitter.next_deadline()


class _Direction:
    """What goes from one leg (`source`) to the other (`to`)."""

    def __init__(self, source: LegDtmf, to: LegDtmf, to_side: str) -> None:
        self.source, self.to, self.to_side = source, to, to_side
        self.splice = Splice()
        self.receivers: dict[int, EventReceiver] = {}  # source's events read, per payload type
        self.reader: _ToneReader | None = None
        if source.mode == "inband" and to.mode != "inband":
            self.reader = _ToneReader(source.g711)
        self.events: EventSender | None = None
        self.tones: ToneSender | None = None
        if to.mode == "rfc4733" and source.mode != "rfc4733":
            pt, rate = to.event_out or DEFAULT_EVENT
            self.event_pt = pt
            self.events = EventSender(self.splice.timestamp_at, rate)
        elif to.mode == "inband" and source.mode != "inband":
            self.tones = ToneSender(self.splice.timestamp_at)
        # Events from the source are read if it is in "rfc4733"; from a leg
        # in another form they are strays (the node sends its own): dropped.
        self.reads_events = source.mode == "rfc4733"
        self.tone_until: int | None = None  # the timestamp of the last tone frame sent

    def receiver(self, pt: int) -> EventReceiver:
        receiver = self.receivers.get(pt)
        if receiver is None:
            receiver = self.receivers[pt] = EventReceiver(self.source.events.get(pt, 8000))
        return receiver


class DtmfBridge:
    """DTMF between legs "a" and "b" of one call (see the module doc)."""

    def __init__(self, a: LegDtmf, b: LegDtmf) -> None:
        self.legs = {"a": a, "b": b}
        # Direction by source side: "a" is what goes from a to b.
        self._ways = {"a": _Direction(a, b, "b"), "b": _Direction(b, a, "a")}
        # Each leg whose stream changes gets every packet of the other leg through us.
        self.tapped = frozenset(("a", "b") if a.mode != b.mode else ())
        self.lost = 0  # keys that could not be sent in the other leg's form
        self._warned = False

    @property
    def needed(self) -> bool:
        """Whether the two legs differ at all (no bridge is needed otherwise)."""
        return bool(self.tapped)

    def takes_info(self, side: str) -> bool:
        """Whether INFO with DTMF from `side` is this bridge's (not relayed as it came)."""
        return self.legs[side].mode == "info" and self.needed

    # -- input ----------------------------------------------------------------------------

    def packet(self, side: str, data: bytes, now: float) -> list[Action]:
        """An RTP packet from leg `side`'s endpoint; what to do (its forwarding included)."""
        to = "b" if side == "a" else "a"
        way = self._ways[side]
        try:
            _, flags, seq, ts, _ssrc = _HEADER.unpack_from(data)
        except struct.error:
            return [Emit(to, data, 8000)]
        pt = flags & 0x7F
        out: list[Action] = []
        source = way.source
        if pt in source.events:
            way.splice.drop(data, now)
            if way.reads_events:
                body = rtp_payload(data) or b""
                self._keys(side, way.receiver(pt).receive(body, ts, seq, now), now, out)
            return out
        rate = source.clocks.get(pt, 8000)
        if way.reader is not None:
            body = rtp_payload(data) or b""
            self._keys(side, way.reader.push(seq, ts, pt, body, now), now, out)
        if way.tones is not None and self._covered(way, ts, rate):
            way.splice.drop(data, now, rate)  # the node's tone plays in its place
            return out
        out.append(Emit(to, way.splice.forward(data, now, rate), rate))
        return out

    @staticmethod
    def _covered(way: _Direction, ts: int, rate: int) -> bool:
        """Audio to leave out: a tone is playing, or the audio is of a time a
        tone frame already took (the tone is stamped a frame ahead of the
        audio it began after, so one packet may fall under it)."""
        assert way.tones is not None
        if way.tones.busy():
            return True
        if way.tone_until is None:
            return False
        if -rate <= ts_distance(ts, way.tone_until) <= 0:
            return True
        way.tone_until = None
        return False

    def info(self, side: str, digit: str, duration: float, now: float) -> list[Action]:
        """A key in an INFO from leg `side`."""
        out: list[Action] = [Heard(side, digit, duration)]
        way = self._ways[side]
        if way.events is not None:
            self._emit_events(way, way.events.press(digit, duration, now), out)
        elif way.tones is not None:
            self._emit_tones(way, way.tones.press(digit, duration, now), out)
        elif way.to.mode == "info":
            out.append(SendInfo(self._other(side), digit, duration))
        return out

    def next_deadline(self) -> float | None:
        deadlines = []
        for way in self._ways.values():
            for receiver in way.receivers.values():
                deadlines.append(receiver.next_deadline())
            if way.reader is not None:
                deadlines.append(way.reader.next_deadline())
            if way.events is not None:
                deadlines.append(way.events.next_deadline())
            if way.tones is not None:
                deadlines.append(way.tones.next_deadline())
        due = [d for d in deadlines if d is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        for side, way in self._ways.items():
            for receiver in way.receivers.values():
                self._keys(side, receiver.handle_timer(now), now, out)
            if way.reader is not None:
                self._keys(side, way.reader.pop(now), now, out)
            if way.events is not None:
                self._emit_events(way, way.events.tick(now), out)
            if way.tones is not None:
                self._emit_tones(way, way.tones.tick(now), out)
        return out

    # -- output ---------------------------------------------------------------------------

    @staticmethod
    def _other(side: str) -> str:
        return "b" if side == "a" else "a"

    def _keys(self, side: str, heard: list, now: float, out: list[Action]) -> None:
        """Keys from leg `side` (`DigitBegin`/`Digit`), on their way to the other leg."""
        way = self._ways[side]
        for key in heard:
            if isinstance(key, DigitBegin):
                if way.events is not None:
                    self._emit_events(way, way.events.begin(key.digit, now), out)
                elif way.tones is not None:
                    self._emit_tones(way, way.tones.begin(key.digit, now), out)
                continue
            assert isinstance(key, Digit)
            out.append(Heard(side, key.digit, key.duration))
            if way.events is not None:
                self._emit_events(way, way.events.end(key.digit, key.duration, now), out)
            elif way.tones is not None:
                self._emit_tones(way, way.tones.end(key.digit, key.duration, now), out)
            elif way.to.mode == "info":
                out.append(SendInfo(self._other(side), key.digit, key.duration))

    def _emit_events(self, way: _Direction, packets: list[Out], out: list[Action]) -> None:
        to = way.to_side
        rate = way.events.rate if way.events is not None else 8000
        for p in packets:
            packet = way.splice.insert(way.event_pt, p.timestamp, p.payload, p.marker)
            out.append(Emit(to, packet, rate))

    def _emit_tones(self, way: _Direction, frames: list[Out], out: list[Action]) -> None:
        if not frames:
            return
        to = way.to_side
        pt, kind = self._g711_toward(way)
        if kind is None:
            if not self._warned:
                log.warning("DTMF: no G.711 toward the in-band leg: its keys are not sent")
                self._warned = True
            self.lost += sum(1 for f in frames if f.marker)
            return
        encode = _ENCODE[kind]
        for f in frames:
            packet = way.splice.insert(pt, f.timestamp, encode(f.payload), f.marker)
            out.append(Emit(to, packet, 8000))
        way.tone_until = frames[-1].timestamp

    @staticmethod
    def _g711_toward(way: _Direction) -> tuple[int, str | None]:
        """The payload type and G.711 law of the audio relayed to the leg."""
        last = way.splice.last_pt
        if last is not None and last in way.to.g711:
            return last, way.to.g711[last]
        for pt, kind in way.to.g711.items():
            return pt, kind
        return 0, None


class DtmfLink:
    """A bridge at work on a call's relay: taps, timer, packets out, INFOs out."""

    def __init__(
        self,
        bridge: DtmfBridge,
        media: MediaSession,
        send_info: Callable[[str, str, float], None],
        on_key: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.bridge = bridge
        self.media = media
        self.send_info = send_info  # (side, digit, duration): the b2bua sends the INFO
        self.on_key = on_key  # (side, digit, duration): a key heard from a leg
        self.keys: list[Heard] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._due: float | None = None
        self._taps: dict[str, Callable[[bytes], bool]] = {}
        # Legs whose stream someone else makes for now (a supervisor's mix,
        # `switch.media.supervision`): the bridge's packets toward them are dropped.
        self.muted: set[str] = set()
        for side in sorted(bridge.tapped):
            tap = self._tap_for(side)
            self._taps[side] = tap
            self._leg(side).rtp.add_tap(tap)

    def _leg(self, side: str):  # type: ignore[no-untyped-def]
        return self.media.a if side == "a" else self.media.b

    def _tap_for(self, side: str) -> Callable[[bytes], bool]:
        def tap(data: bytes) -> bool:
            try:
                self._run(self.bridge.packet(side, data, self._loop.time()))
            except Exception:  # a bug here must not cut the call's audio
                log.exception("DTMF bridge failed on a packet; passed on as it came")
                return False
            return True

        return tap

    def info(self, side: str, digit: str, duration: float) -> None:
        """A key from an INFO of leg `side`."""
        self._run(self.bridge.info(side, digit, duration, self._loop.time()))

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Emit):
                if action.side not in self.muted:
                    self._leg(action.side).rtp.emit(action.packet, action.rate)
            elif isinstance(action, SendInfo):
                self.send_info(action.side, action.digit, action.duration)
            else:
                self.keys.append(action)
                log.debug("DTMF %s from leg %s (%.3f s)", action.digit, action.side,
                          action.duration)  # fmt: skip
                if self.on_key is not None:
                    self.on_key(action.side, action.digit, action.duration)
        self._arm()

    def _arm(self) -> None:
        due = self.bridge.next_deadline()
        if due == self._due:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = due
        if due is not None:
            self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer, self._due = None, None
        try:
            self._run(self.bridge.handle_timer(self._loop.time()))
        except Exception:
            log.exception("DTMF bridge timer failed")

    def close(self) -> None:
        """Take the taps off (the relay forwards as before) and stop the timer."""
        for side, tap in self._taps.items():
            self._leg(side).rtp.remove_tap(tap)
        self._taps.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
