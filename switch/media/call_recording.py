"""Recording a relayed call: both legs' RTP, decoded, into a `Recorder`.

The relay moves packets without looking at them; a recorded call adds a
tap on each leg's RTP port (`RtpPort.add_tap`): the caller's side (leg A)
is the left channel, the callee's (leg B, the agent on an inbound call)
the right. The tap only appends the packet and its arrival time to a list:
the fast path pays one call and one append per packet. The work is done on
a clock shared by every recording of the node (`RecordingClock`, one timer
for all of them rather than one per call) every TICK seconds: per
direction, the packets go through a jitter buffer (`switch.media.jitter`:
reordering, duplicates, loss), the frames it plays are decoded to 8 kHz
linear audio (G.711 by table, Opus by libopus at 8 kHz), and `Recorder`
aligns the two sides by the time each frame plays and writes them.

What a direction does with its packets:

- The payload type says the codec: PCMU, PCMA and Opus are recorded;
  telephone-event (RFC 4733 DTMF) and comfort noise are skipped (their
  time is concealed, then silent), as is anything else (counted in
  `ignored`). Payload types are looked up from the call's SDP
  (`payload_types`, asked again whenever a packet's type is new to the
  stream, so a re-INVITE or a late offer is followed).
- A lost frame is concealed: Opus by libopus's packet loss concealment,
  G.711 by the last frame again at half the level each time; after
  CONCEAL_FRAMES in a row, nothing is fed and the recorder records
  silence (a side on hold, or silence suppression, costs nothing).
- A new SSRC (a transfer brought someone else onto the leg, or the phone
  restarted its stream) or another codec drains what the buffer holds and
  starts a new stream.
- Each frame is stamped with the time the jitter buffer plays it: both
  directions are on the node's monotonic clock, so the channels line up.

Pause and resume: while paused, the taps drop packets as they arrive and
whatever the jitter buffers hold is thrown away, so paused audio is never
decoded nor buffered; the recorder writes silence for the span.

CPU: a tick costs, per direction, the jitter buffer's bookkeeping, one
`bytes.translate` per G.711 frame, and one write of the frames that follow
each other as one piece. `python -m bench --only recording` measures it
(60 recorded G.711 calls, on the development machine): a WAV recording
adds about 1.6 ms of CPU per call-second (0.16% of a core per call) to
the relay's own 2.7 ms; by profile about half of that is the jitter
buffer's push and pop, decoding by table 0.1 ms. Opus in Ogg adds about
4.9 ms (the encoder; see switch.media.recorder).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from ..sip.sdp import Codec
from . import g711
from .jitter import Frame, JitterBuffer
from .opus import OpusDecoder, OpusError
from .recorder import AGENT, CALLER, Recorder

log = logging.getLogger("switch.media")

TICK = 0.1  # seconds between two turns of the shared clock
RATE = 8000  # the recording's rate: telephone band
CONCEAL_FRAMES = 5  # lost frames in a row filled in before silence is left
MAX_INBOX = 400  # packets a direction holds between ticks (8 s of 20 ms packets)
RECORDED = {"pcmu": 8000, "pcma": 8000, "opus": 48000}  # codec -> RTP clock
FRAME_MS = (10, 20, 30, 40, 60)  # packet durations the jitter buffer is made for
_HEADER = struct.Struct("!BBHII")
_OPUS_FRAME = (  # RFC 6716 §3.1: samples at 48 kHz of one frame, by TOC config
    *[480, 960, 1920, 2880] * 3,  # SILK NB, MB, WB: 10, 20, 40, 60 ms
    *[480, 960] * 2,  # hybrid SWB, FB: 10, 20 ms
    *[120, 240, 480, 960] * 4,  # CELT: 2.5, 5, 10, 20 ms
)


class Tappable(Protocol):
    """What a recording needs of a leg's RTP port (`switch.media.relay.RtpPort`)."""

    last_received: float

    def add_tap(self, tap: Callable[[bytes], None]) -> None: ...
    def remove_tap(self, tap: Callable[[bytes], None]) -> None: ...


def codec_kind(codec: Codec) -> str | None:
    """The codec's name if it is recorded (pcmu, pcma, opus); None for the rest."""
    name = codec.name.casefold()
    return name if RECORDED.get(name) == codec.clock_rate else None


def opus_samples(payload: bytes) -> int:
    """Samples at 48 kHz an Opus packet holds (RFC 6716 §3.1); 0 if it is malformed."""
    if not payload:
        return 0
    toc = payload[0]
    code = toc & 3
    if code == 0:
        count = 1
    elif code < 3:
        count = 2
    elif len(payload) > 1:
        count = payload[1] & 0x3F
    else:
        return 0
    return _OPUS_FRAME[toc >> 3] * count


def rtp_payload(packet: bytes) -> bytes | None:
    """The payload of an RTP packet (after CSRCs and extension, before padding)."""
    first = packet[0]
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: 4 bytes, then its length in words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if first & 0x20 and end > start:  # padding: its length in the last byte
        end -= packet[-1]
    return packet[start:end] if end >= start else None


class Direction:
    """One side of a recorded call: packets from its leg in, timed linear frames out."""

    def __init__(self, port: Tappable, payload_types: Callable[[], Mapping[int, Codec]]) -> None:
        self.port = port
        self.payload_types = payload_types
        self.inbox: list[tuple[bytes, float]] = []
        self.open = True  # False while paused: the tap drops packets
        self.ssrc: int | None = None
        self.kind: str | None = None  # the codec of the current stream
        self.buffer: JitterBuffer | None = None
        self._kinds: dict[int, str | None] = {}  # payload type -> codec kind, this stream
        self._decoder: OpusDecoder | None = None
        self._last = b""  # the last G.711 frame, for concealment
        self._fade = 1.0
        self._gaps = 0  # frames concealed in a row
        # Figures, for the log and tests.
        self.packets = 0
        self.ignored = 0  # not recordable (DTMF events, comfort noise, unknown)
        self.overflow = 0  # dropped: the inbox was full
        self.errors = 0  # malformed or undecodable, concealed
        self.concealed = 0
        self.streams = 0  # SSRC or codec changes, the first included
        self.lost = self.late = 0  # from the jitter buffers of earlier streams

    @property
    def frame_length(self) -> float:
        """Seconds of audio in one frame of the current stream (0 if none)."""
        return self.buffer.frame if self.buffer is not None else 0.0

    def tap(self, data: bytes) -> None:
        """The relay's tap: keep the packet for the next tick. Runs per packet."""
        if self.open:
            if len(self.inbox) < MAX_INBOX:
                self.inbox.append((data, self.port.last_received))
            else:
                self.overflow += 1

    def attach(self, port: Tappable) -> None:
        """Record what arrives on `port` from now on (an attended transfer
        replaced the leg)."""
        self.port.remove_tap(self.tap)
        self.port = port
        port.add_tap(self.tap)

    def detach(self) -> None:
        self.port.remove_tap(self.tap)

    # -- a tick ----------------------------------------------------------------------

    def frames(self, now: float) -> list[tuple[float, bytes]]:
        """What is due at `now`: (when it plays, linear 8 kHz audio), frames
        that follow each other joined into one piece."""
        out: list[tuple[float, bytes]] = []
        inbox, self.inbox = self.inbox, []
        for data, arrival in inbox:
            self._take(data, arrival, out)
        if self.buffer is not None:
            self._play(self.buffer.pop(now), out)
        return out

    def drain(self) -> list[tuple[float, bytes]]:
        """Everything still buffered, as `frames` would give it in time (the call ended)."""
        out: list[tuple[float, bytes]] = []
        inbox, self.inbox = self.inbox, []
        for data, arrival in inbox:
            self._take(data, arrival, out)
        self._flush(out)
        return out

    def discard(self) -> None:
        """Throw away what is buffered (a pause began)."""
        self.inbox = []
        self._end_stream()

    def _take(self, data: bytes, arrival: float, out: list[tuple[float, bytes]]) -> None:
        if len(data) < 12:
            return
        first, flags, seq, ts, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            return
        self.packets += 1
        if ssrc != self.ssrc:
            self._flush(out)
            self.ssrc = ssrc
            self._kinds = {}
        pt = flags & 0x7F
        kind = self._kinds.get(pt, "?")
        if kind == "?":
            codec = self.payload_types().get(pt)
            kind = self._kinds[pt] = codec_kind(codec) if codec is not None else None
        if kind is None:
            self.ignored += 1
            return
        payload = rtp_payload(data)
        if not payload:
            self.errors += 1
            return
        if kind != self.kind or self.buffer is None:
            self._flush(out)
            self._start(kind, payload)
        assert self.buffer is not None
        self.buffer.push(seq, ts, payload, arrival)

    def _start(self, kind: str, payload: bytes) -> None:
        clock = RECORDED[kind]
        samples = opus_samples(payload) if kind == "opus" else len(payload)
        ms = samples * 1000 // clock
        self.kind = kind
        self.buffer = JitterBuffer(clock, ms if ms in FRAME_MS else 20)
        self._decoder = OpusDecoder(RATE) if kind == "opus" else None
        self._last, self._gaps = b"", 0
        self.streams += 1

    def _end_stream(self) -> None:
        if self.buffer is not None:
            self.lost += self.buffer.lost
            self.late += self.buffer.late
        self.buffer = None
        self.kind = None
        self.ssrc = None

    def _flush(self, out: list[tuple[float, bytes]]) -> None:
        """Play out what the current stream's buffer holds, then end the stream."""
        buffer = self.buffer
        if buffer is None:
            return
        # Each pop plays at least one frame or grows the delay by one (at
        # most max_delay's worth): bounded, but bounded here too.
        for _ in range(4 * len(buffer) + 64):
            deadline = buffer.next_deadline()
            if not len(buffer) or deadline is None:
                break
            self._play(buffer.pop(deadline), out)
        self._end_stream()

    def _play(self, items: list, out: list[tuple[float, bytes]]) -> None:
        if not items:
            return
        buffer = self.buffer
        assert buffer is not None
        # Each item plays one frame after the one before; the next one is due
        # at `next_deadline()`, so the times count back from there.
        after = buffer.next_deadline()
        assert after is not None
        frame = buffer.frame
        count = len(items)
        # Frames that follow each other go out as one piece: the recorder's
        # work is per piece, not per sample (five 20 ms frames a tick: one).
        start = -1.0
        piece = bytearray()
        for i, item in enumerate(items):
            pcm = self._decode(item) if type(item) is Frame else self._conceal()
            t = after - (count - i) * frame
            if piece and (not pcm or abs(t - start - len(piece) / (2 * RATE)) > 1e-6):
                out.append((start, bytes(piece)))
                piece.clear()
            if pcm:
                if not piece:
                    start = t
                piece += pcm
        if piece:
            out.append((start, bytes(piece)))

    def _decode(self, item: Frame) -> bytes:
        self._gaps = 0
        kind = self.kind
        if kind == "pcmu":
            pcm = g711.ulaw_decode(item.payload)
        elif kind == "pcma":
            pcm = g711.alaw_decode(item.payload)
        else:
            assert self._decoder is not None
            try:
                return self._decoder.decode(item.payload)
            except OpusError:
                self.errors += 1
                return self._decoder.conceal()
        self._last, self._fade = pcm, 1.0
        return pcm

    def _conceal(self) -> bytes:
        self._gaps += 1
        if self._gaps > CONCEAL_FRAMES:
            return b""  # silence: the recorder fills it in
        self.concealed += 1
        if self._decoder is not None:
            try:
                return self._decoder.conceal()
            except OpusError:
                return b""
        self._fade /= 2
        if not self._last:
            return b""
        faded = (np.frombuffer(self._last, "<i2") * self._fade).astype("<i2")
        return faded.tobytes()


class CallRecording:
    """Records the relayed call between `a` (left) and `b` (right) into `recorder`.

    `payload_types(side)` gives the payload type -> codec map of the packets
    leg `side` ("a" or "b") sends, from the call's SDP. Registered with
    `clock` at once; `stop` ends it (then `commit`, in a thread).
    """

    def __init__(
        self,
        recorder: Recorder,
        a: Tappable,
        b: Tappable,
        payload_types: Callable[[str], Mapping[int, Codec]],
        clock: RecordingClock,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self._now = now
        self.sides = {
            "a": Direction(a, lambda: payload_types("a")),
            "b": Direction(b, lambda: payload_types("b")),
        }
        self.stopped = False
        self.failed: str | None = None  # why it stopped early (a disk error, say)
        for direction in self.sides.values():
            direction.port.add_tap(direction.tap)
        clock.add(self)

    @property
    def path(self) -> str:
        return str(self.recorder.path)

    @property
    def paused(self) -> bool:
        return self.recorder.paused

    def tick(self, now: float) -> None:
        """Decode what is due and hand it to the recorder (the clock calls it)."""
        recorder = self.recorder
        for channel, side in ((CALLER, "a"), (AGENT, "b")):
            for t, pcm in self.sides[side].frames(now):
                recorder.feed(channel, t, pcm)

    def pause(self) -> None:
        """Record silence from now until `resume`."""
        if self.stopped or self.paused:
            return
        now = self._now()
        # What plays before the pause is kept: the frames that end by `now`
        # (a frame that starts before and ends after it would be recorded
        # whole once both sides have it).
        for channel, side in ((CALLER, "a"), (AGENT, "b")):
            direction = self.sides[side]
            for t, pcm in direction.frames(now - direction.frame_length):
                self.recorder.feed(channel, t, pcm)
        for direction in self.sides.values():
            direction.open = False
            direction.discard()
        self.recorder.pause(now)

    def resume(self) -> None:
        if self.stopped or not self.paused:
            return
        self.recorder.resume(self._now())
        for direction in self.sides.values():
            direction.open = True

    def move(self, side: str, port: Tappable) -> None:
        """Leg `side` is now `port` (an attended transfer joined another call's party)."""
        direction = self.sides[side]
        out = direction.drain()
        channel = CALLER if side == "a" else AGENT
        for t, pcm in out:
            self.recorder.feed(channel, t, pcm)
        direction.attach(port)

    def _detach(self) -> None:
        self.stopped = True
        self.clock.discard(self)
        for direction in self.sides.values():
            direction.detach()

    def stop(self) -> dict:
        """End the recording: taps off, what is buffered written, the
        metadata made (returned). The file is complete once `commit` ran."""
        if self.stopped:
            raise RuntimeError(f"the recording {self.path} is already stopped")
        now = self._now()
        self._detach()
        if not self.recorder.paused:
            for channel, side in ((CALLER, "a"), (AGENT, "b")):
                for t, pcm in self.sides[side].drain():
                    self.recorder.feed(channel, t, pcm)
        for side, d in self.sides.items():
            log.debug(
                "recording %s, leg %s: %d packets, %d not audio, %d lost, %d late, "
                "%d concealed, %d malformed, %d over the inbox, %d streams",
                self.path, side, d.packets, d.ignored, d.lost, d.late, d.concealed,
                d.errors, d.overflow, d.streams,
            )  # fmt: skip
        return self.recorder.finish(now)

    async def commit(self) -> None:
        """Sync and rename, in a thread: the event loop does not wait for the disk."""
        await asyncio.to_thread(self.recorder.commit)

    def fail(self, reason: str) -> None:
        """Stop recording after an error; the partial file stays for the operator."""
        if self.stopped:
            return
        self.failed = reason
        self._detach()
        self.recorder.abandon()


class RecordingClock:
    """One timer for every recording of a node: each `TICK`, each recording's
    due audio is decoded and written. The timer runs only while there are
    recordings."""

    def __init__(self, tick: float = TICK, now: Callable[[], float] = time.monotonic) -> None:
        self.tick = tick
        self._now = now
        self.recordings: set[CallRecording] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, recording: CallRecording) -> None:
        self.recordings.add(recording)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._run)

    def discard(self, recording: CallRecording) -> None:
        self.recordings.discard(recording)
        if not self.recordings and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        self._timer = None
        now = self._now()
        for recording in list(self.recordings):
            try:
                recording.tick(now)
            except Exception as exc:  # one recording's fault must not stop the others
                log.exception("recording %s failed; stopped", recording.path)
                recording.fail(f"{type(exc).__name__}: {exc}")
        if self.recordings:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._run)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
