"""A supervisor on a relayed call: listen, whisper, barge (the media side).

Three parties: the call's two legs ("a", the caller's side; "b", the
callee's) and the supervisor's own leg ("s", a relay port the node dialled
out of, peered with nothing). A tap on each leg's RTP port
(`RtpPort.add_tap`) keeps its packets for the node's 20 ms media clock
(`switch.media.clock`); each tick, each party's due frames are decoded to
8 kHz linear audio (the recorder's `Direction`: jitter buffer, G.711 by
table, Opus by libopus, loss concealed), mixed by the `Mixer` with the
supervisor in the role of the mode, and encoded for whoever must hear the
mix:

| mode    | the supervisor hears | hears the supervisor |
|---------|----------------------|----------------------|
| listen  | both parties         | nobody               |
| whisper | both parties         | the agent's leg      |
| barge   | both parties         | both legs            |

A leg that hears nobody but the other party is left to the relay: the
tap on the other party's port returns False (pass-through), so listening
changes nothing the parties hear. A leg that must hear the supervisor gets
the mix instead of the other party's packets: the tap takes them (returns
True, once the mix toward that leg is in their codec; one the mixer cannot
encode is relayed as it came) and the mixed frame is sent with
`RtpPort.emit`, in one stream of the node's own (`OwnStream`; the relay
keeps what the leg sees one stream across the change, and again when it
ends). RFC 4733 events of the taken party are not mixed: they go on in
that stream, their timestamps moved onto it, so keys still reach the
other side.

The mix toward a leg is encoded in the codec of the packets it got before
(the other party's payload type, as the relay carried them: on a browser's
leg that transcodes, the relay's codec, which its transcoder turns into
Opus); toward the supervisor, in the codec its answer chose.

Each party's decoded audio waits in a small queue between the jitter
buffer and the clock: PREBUFFER frames before the first is mixed (the
buffer pops on its own deadlines, the clock on its own: one frame of slack
keeps a late pop from being a gap), at most MAX_QUEUED (older frames are
dropped, so the delay does not grow).

When the two legs stop being each other's peers (an attended transfer
joined other legs, the call's media closed), the supervision closes itself
and says so (`on_lost`).

A DTMF bridge on the same legs (`switch.media.dtmf_bridge`) makes the
stream toward a leg itself; the call layer tells it to send nothing to a
leg that hears the mix (`DtmfLink.muted`).

Not here: a supervisor of a conference (one call, two legs, is all this
knows).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping

from ..sip.sdp import Codec
from . import g711
from .call_recording import Direction
from .clock import MediaClock, media_clock
from .mixer import Mixer, Role
from .opus import OpusEncoder, OpusError
from .own_stream import OwnStream
from .relay import RtpPort

log = logging.getLogger("switch.media")

MODES = ("listen", "whisper", "barge")
RATE = 8000  # the mix: telephone band, as the decoders give it
FRAME = RATE * 20 // 1000 * 2  # bytes of one 20 ms frame of 16-bit audio
PREBUFFER = 2  # frames a party's queue holds before it is first mixed
MAX_QUEUED = 5  # frames a queue keeps at most (100 ms): older ones are dropped
_HEADER = struct.Struct("!BBHII")
_ENCODE = {"pcmu": g711.ulaw_encode, "pcma": g711.alaw_encode}
_CLOCK = {"pcmu": 8000, "pcma": 8000, "opus": 48000}
_SIDES = ("a", "b")


class SupervisionMediaError(ValueError):
    """A mode or side this media cannot take; the message says which would do."""


def hearers(mode: str, agent: str) -> frozenset[str]:
    """The legs ("a", "b") that hear the supervisor in `mode`, `agent` being
    the agent's side."""
    if mode not in MODES:
        raise SupervisionMediaError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    if agent not in _SIDES:
        raise SupervisionMediaError(f"agent side {agent!r}: use 'a' or 'b'")
    if mode == "listen":
        return frozenset()
    if mode == "whisper":
        return frozenset({agent})
    return frozenset(_SIDES)


class _Inlet:
    """One party's audio: its packets in (from its tap), 20 ms frames out."""

    def __init__(self, port: RtpPort, payload_types: Callable[[], Mapping[int, Codec]]) -> None:
        self.direction = Direction(port, payload_types)
        self.payload_types = payload_types
        self.queue = bytearray()
        self.primed = False
        self.audio_pt: int | None = None  # the payload type of its last audio packet
        self._events: dict[int, bool] = {}  # payload type -> is telephone-event

    def is_event(self, pt: int) -> bool:
        known = self._events.get(pt)
        if known is None:
            codec = self.payload_types().get(pt)
            known = self._events[pt] = (
                codec is not None and codec.name.casefold() == "telephone-event"
            )
        return known

    def pull(self, now: float) -> None:
        """What the jitter buffer plays by `now`, into the queue."""
        for _, pcm in self.direction.frames(now):
            self.queue += pcm
        excess = len(self.queue) - MAX_QUEUED * FRAME
        if excess > 0:
            del self.queue[: excess + (-excess) % FRAME]

    def take(self) -> bytes | None:
        """The next frame, or None (silence) while the queue fills or runs dry."""
        queue = self.queue
        if not self.primed:
            if len(queue) < PREBUFFER * FRAME:
                return None
            self.primed = True
        if len(queue) < FRAME:
            self.primed = False  # ran dry: fill again before the next
            return None
        frame = bytes(queue[:FRAME])
        del queue[:FRAME]
        return frame

    def discard(self) -> None:
        self.direction.discard()
        self.queue.clear()
        self.primed = False


class _Outlet:
    """The node's stream toward one port: mixed frames encoded, events re-stamped."""

    def __init__(self, port: RtpPort) -> None:
        self.port = port
        self.stream: OwnStream | None = None
        self.kind: str | None = None
        self.pt: int | None = None
        self._encoder: OpusEncoder | None = None
        self._event_ts: tuple[int, int] | None = None  # (their event timestamp, ours)
        self.refused: set[int] = set()  # payload types `use` could not take
        self.sent = 0
        self.errors = 0

    def use(self, pt: int, codec: Codec | None) -> bool:
        """Encode in payload type `pt` (`codec`) from now on; False if it cannot be."""
        if pt == self.pt and self.stream is not None:
            return True
        kind = codec.name.casefold() if codec is not None else None
        if kind not in _CLOCK or codec is None or codec.clock_rate != _CLOCK[kind]:
            return False
        # Another codec is another source (its own SSRC and clock): the relay
        # keeps what the leg gets one stream across the change.
        self.stream = OwnStream(pt, _CLOCK[kind])
        self.kind, self.pt = kind, pt
        self._encoder = OpusEncoder(RATE) if kind == "opus" else None
        return True

    def send(self, pcm: bytes) -> None:
        stream = self.stream
        if stream is None:
            return
        if self._encoder is not None:
            try:
                payload = self._encoder.encode(pcm)
            except OpusError:
                self.errors += 1
                stream.skip()
                return
        else:
            payload = _ENCODE[self.kind](pcm)  # type: ignore[index]
        self.port.emit(stream.audio(payload), _CLOCK[self.kind])  # type: ignore[index]
        self.sent += 1

    def skip(self, frames: int) -> None:
        if self.stream is not None:
            self.stream.skip(frames)

    def event(self, packet: bytes) -> None:
        """A telephone-event packet of the taken party, into this stream: one
        key's packets share one timestamp, so each key start gets the stream's."""
        stream = self.stream
        if stream is None or len(packet) < 16:
            return  # no stream yet to put it in (no audio was mixed): dropped
        first, flags, _, ts, _ = _HEADER.unpack_from(packet)
        if self._event_ts is None or self._event_ts[0] != ts:
            self._event_ts = (ts, stream.timestamp)
        start = 12 + 4 * (first & 0x0F)
        out = _HEADER.pack(0x80, flags, stream.seq, self._event_ts[1], stream.ssrc)
        stream.seq = (stream.seq + 1) & 0xFFFF
        self.port.emit(out + packet[start:], _CLOCK.get(self.kind or "", 8000))
        self.sent += 1


class SupervisionMedia:
    """The media of one supervision: taps on legs `a` and `b` and on the
    supervisor's port `s`, mixed on the media clock (see the module doc).

    `payload_types(side)`: payload type -> codec of what leg `side` ("a",
    "b") sends, as the relay carries it. `s_codec`: the codec the
    supervisor's answer chose (its payload type), what the node sends it;
    `s_types`, every codec of that answer, what it may send (default: that
    one). `agent`: the side of the agent, who alone hears a whisper.
    """

    def __init__(
        self,
        a: RtpPort,
        b: RtpPort,
        s: RtpPort,
        payload_types: Callable[[str], Mapping[int, Codec]],
        s_codec: Codec,
        mode: str,
        agent: str = "b",
        clock: MediaClock | None = None,
        on_lost: Callable[[str], None] | None = None,
        s_types: Mapping[int, Codec] | None = None,
    ) -> None:
        self.hearing = hearers(mode, agent)  # (checks both)
        self.mode = mode
        self.agent = agent
        self.ports = {"a": a, "b": b, "s": s}
        if s_types is None:
            s_types = {s_codec.payload_type: s_codec} if s_codec.payload_type is not None else {}
        self.inlets = {
            "a": _Inlet(a, lambda: payload_types("a")),
            "b": _Inlet(b, lambda: payload_types("b")),
            "s": _Inlet(s, lambda: s_types),
        }
        self.outlets = {side: _Outlet(port) for side, port in self.ports.items()}
        if not self.outlets["s"].use(s_codec.payload_type or 0, s_codec):
            raise SupervisionMediaError(
                f"the supervisor's codec {s_codec.name}/{s_codec.clock_rate} cannot be "
                "mixed; offer PCMU, PCMA or Opus"
            )
        self.payload_types = payload_types
        self.mixer = Mixer(RATE)
        self.mixer.join("a")
        self.mixer.join("b")
        role, kw = self._role(mode)
        self.mixer.join("s", role, **kw)
        self.on_lost = on_lost  # called (once) when the legs are no longer this call's
        self.closed = False
        self.ticks = 0
        self._taps: dict[str, Callable[[bytes], bool | None]] = {
            "a": self._tap_a, "b": self._tap_b, "s": self._tap_s,
        }  # fmt: skip
        for side, port in self.ports.items():
            port.add_tap(self._taps[side])
        self.clock = clock or media_clock()
        self.clock.add(self.tick)

    def _role(self, mode: str) -> tuple[Role, dict[str, str]]:
        if mode == "listen":
            return Role.LISTEN, {}
        if mode == "whisper":
            return Role.WHISPER, {"to": self.agent}
        return Role.BARGE, {}

    # -- the taps (per packet: quick) ------------------------------------------------

    def _tap_a(self, data: bytes) -> bool:
        return self._tap("a", "b", data)

    def _tap_b(self, data: bytes) -> bool:
        return self._tap("b", "a", data)

    def _tap(self, side: str, other: str, data: bytes) -> bool:
        inlet = self.inlets[side]
        pt = data[1] & 0x7F
        if inlet.is_event(pt):
            if other in self.hearing:
                self.outlets[other].event(data)
                return True
            return False
        inlet.audio_pt = pt
        inlet.direction.tap(data)
        # Taken when `other` gets the mix in its place: once the mix toward it
        # is in this packet's codec (until then, or for a codec the mixer
        # cannot encode, the relay goes on carrying it).
        return other in self.hearing and self.outlets[other].pt == pt

    def _tap_s(self, data: bytes) -> bool:
        inlet = self.inlets["s"]
        # (Listening, nobody hears the supervisor: its audio is not decoded.)
        if self.hearing and not inlet.is_event(data[1] & 0x7F):
            inlet.direction.tap(data)
        return True  # (the supervisor's port is peered with nothing anyway)

    # -- the clock ---------------------------------------------------------------------

    def tick(self, now: float, send: int, skip: int) -> None:
        """The media clock's 20 ms: mix what is due and send it."""
        self.ticks += 1
        a, b = self.ports["a"], self.ports["b"]
        if a.peer is not b or b.peer is not a or a.closed or b.closed:
            # A transfer joined other legs, or the call's media closed: the
            # relay no longer joins these two, and nothing here is heard.
            self.close()
            if self.on_lost is not None:
                self.on_lost("the call's legs changed")
            return
        for inlet in self.inlets.values():
            inlet.pull(now)
        wanted = ("s", *self.hearing)
        outlets = self.outlets
        for side in self.hearing:
            # Toward a leg, the codec of the other party's packets it had
            # (looked up when it changes: the lookup reads the call's SDP).
            other = "a" if side == "b" else "b"
            pt = self.inlets[other].audio_pt
            outlet = outlets[side]
            if pt is None or pt == outlet.pt or pt in outlet.refused:
                continue
            if not outlet.use(pt, self.payload_types(other).get(pt)):
                outlet.refused.add(pt)
                log.warning("supervision: payload type %d toward leg %s is no codec the "
                            "mixer encodes (PCMU, PCMA, Opus)", pt, side)  # fmt: skip
        for _ in range(send):
            frames = {}
            for name, inlet in self.inlets.items():
                frame = inlet.take()
                if frame is not None:
                    frames[name] = frame
            mixed = self.mixer.mix(frames)
            for side in wanted:
                outlets[side].send(mixed[side])
        if skip:
            for side in wanted:
                outlets[side].skip(skip)

    # -- control -----------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """Listen, whisper or barge from the next packet on."""
        hearing = hearers(mode, self.agent)
        if self.closed:
            raise SupervisionMediaError("this supervision's media is closed")
        if not hearing:
            self.inlets["s"].discard()  # (not fed while nobody hears it)
        for side in _SIDES:
            other = "a" if side == "b" else "b"
            if side in hearing and side not in self.hearing:
                # From now on `other`'s packets are mixed, not relayed: what its
                # buffer holds was relayed already and is not heard twice.
                self.inlets[other].discard()
        role, kw = self._role(mode)
        self.mixer.set_role("s", role, **kw)
        self.hearing = hearing
        self.mode = mode

    def close(self) -> None:
        """Taps off, clock off: the relay carries the call as before."""
        if self.closed:
            return
        self.closed = True
        self.clock.remove(self.tick)
        for side, port in self.ports.items():
            port.remove_tap(self._taps[side])
