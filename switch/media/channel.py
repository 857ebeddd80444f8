"""A channel: the node's end of one call leg it answered itself. Prompts out, keys in.

An application that answers a call (the echo test, the IVR, voicemail) is
given a `Channel` on the caller's leg (`switch.media.relay.LegMedia`, plain
RTP or a browser's WebRTC leg). What the channel does:

Out. `play(player)` sends the player's frames (`switch.media.player`),
encoded for the leg's codec (`frame_encoder`: PCMU, PCMA, or Opus toward a
browser; a prompt's frames are encoded once per node and shared by every
caller who hears it), one packet per 20 ms of the node's `media_clock`,
as a stream of the channel's own (SSRC, sequence numbers, timestamps:
`own_stream`), through the leg's `emit()`. Once it has sent anything, it
sends silence when it has nothing to play, so the caller's side never
takes the call for dead. `send_digits()` sends keys as RFC 4733 events when
the call negotiated telephone-event (in tones otherwise).

In. The leg's tap hands the channel every packet from the caller: RFC 4733
events become keys at once; the voice is decoded (`inbound`: jitter buffer
and decoder) only when something must hear it: in-band DTMF, a recording,
an echo with a delay. SIP INFO keys come from the call layer
(`info_digit`). Which of these forms counts is the trunk's `dtmf` setting
(`digit_listener`). Keys, the end of a play and of a recording, and the end
of the channel come out as events on `events`, an asyncio queue, in the
order they happened: `DigitBegin`, `Digit`, `Played`, `Recorded`,
`Closed`. A play marked barge-in stops at the first `DigitBegin`, on the
very next frame.

`record()` keeps what the caller says (`take`) as a mono WAV file, written
atomically (`switch.media.wav.write_wav`), after an optional beep.

`echo()` is the echo test: with no delay every packet goes back as it came
(codec, NAT and all: what an installer wants to hear); with a delay the
audio goes through `switch.media.echo`.

`close()` stops everything: the clock forgets the channel, the tap is
removed, a recording under way is kept (a voicemail ends when the caller
hangs up), and `Closed` is the last event.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sip.sdp import Codec
from .clock import PERIOD, MediaClock, media_clock
from .digit_listener import DigitEvent, DigitListener
from .dtmf.digits import DIGITS, Digit, DigitBegin
from .dtmf.events import EventPacket, event_code, event_packets
from .dtmf.inband import generate
from .echo import Echo
from .frame_encoder import RATES, FrameEncoder
from .inbound import RATE as INBOUND_RATE
from .inbound import Inbound, rtp_payload
from .own_stream import OwnStream
from .player import Clip, Item, Player, ToneItem
from .relay import LegMedia
from .resample import Resampler
from .take import RecordResult, Take
from .tones import BEEP
from .wav import Audio, write_wav

log = logging.getLogger("switch.media")

_HEADER = struct.Struct("!BBHII")
QUEUE_SIZE = 256  # events waiting for the application; more are dropped (and counted)
DIGIT_DURATION = 0.1  # seconds a key sent by the node is held
DIGIT_GAP_FRAMES = 3  # 60 ms between two keys sent (ITU-T Q.24 asks at least 40)
DIGIT_LEVEL = -7.0  # dBm0 per frequency of a key sent in-band
_SILENT_FRAME = bytes(INBOUND_RATE // 50 * 2)  # 20 ms of the caller's audio, silent


@dataclass(frozen=True, slots=True)
class Played:
    """A play ended: "end" (all of it), "digit" (barge-in), "stopped" (another
    play or a recording took its place, or `stop()`) or "closed". `play` is
    the `Playback.number` of the play it was, to tell one play from the next."""

    reason: str
    digit: str | None = None
    play: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recording ended (see `RecordResult`)."""

    result: RecordResult


@dataclass(frozen=True, slots=True)
class Closed:
    """The channel is closed (the call ended); the last event."""

    reason: str


ChannelEvent = DigitBegin | Digit | Played | Recorded | Closed


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """What a leg speaks: its voice codec and telephone-event, as negotiated."""

    codec: str  # "pcmu", "pcma" or "opus"
    payload_type: int
    clock_rate: int
    event_payload_type: int | None = None
    event_rate: int = 8000
    ptime: int = 20  # ms of audio per packet from the caller

    @classmethod
    def of(cls, voice: Codec, event: Codec | None = None, ptime: int | None = None) -> MediaFormat:
        """From the codecs an SDP answer agreed (payload types included)."""
        name = voice.name.lower()
        if name not in RATES or voice.payload_type is None:
            raise ValueError(f"a channel speaks PCMU, PCMA or Opus; not {voice.rtpmap}")
        return cls(
            name,
            voice.payload_type,
            voice.clock_rate,
            event.payload_type if event is not None else None,
            event.clock_rate if event is not None else 8000,
            ptime if ptime in (10, 20, 30, 40, 60) else 20,
        )


class Playback:
    """A play under way: await it for its reason ("end", "digit", "stopped", "closed")."""

    def __init__(
        self, player: Player, done: asyncio.Future[str], announce: bool = True, number: int = 0
    ) -> None:
        self.player = player
        self.done = done
        self.announce = announce  # a Played event when it ends (not for the node's own beep)
        self.number = number  # the channel's count of plays: 1, 2, ...

    def __await__(self) -> Generator[Any, None, str]:
        return asyncio.shield(self.done).__await__()


class Recording:
    """A recording under way: await it for its `RecordResult`."""

    def __init__(self, path: Path, take: Take, stop_on: str, done: asyncio.Future) -> None:
        self.path = path
        self.take = take
        self.stop_on = stop_on
        self.done: asyncio.Future[RecordResult] = done
        self.started = False  # after the beep

    def __await__(self) -> Generator[Any, None, RecordResult]:
        return asyncio.shield(self.done).__await__()


_writing: set[asyncio.Task[None]] = set()  # recordings being written (held until done)


class Channel:
    """The node's end of one answered leg; see the module's docstring."""

    def __init__(
        self,
        leg: LegMedia,
        media: MediaFormat,
        dtmf: str = "auto",
        *,
        clock: MediaClock | None = None,
        browser: bool = False,
    ) -> None:
        self.leg = leg
        self.format = media
        self.browser = browser  # a WebRTC leg: an echo is sent under our own SSRC
        self.encoder = FrameEncoder(media.codec)
        self.rate = self.encoder.rate  # of the linear audio a player must make
        self.stream = OwnStream(media.payload_type, media.clock_rate)
        self.listener = DigitListener(
            dtmf, telephone_event=media.event_payload_type is not None, event_rate=media.event_rate
        )
        self.events: asyncio.Queue[ChannelEvent] = asyncio.Queue(QUEUE_SIZE)
        self.dropped_events = 0
        self.closed = False
        self.close_reason = ""
        self._loop = asyncio.get_running_loop()
        self._voice_pt = media.payload_type
        self._event_pt = media.event_payload_type if media.event_payload_type is not None else -1
        self._inbound: Inbound | None = None
        self._playback: Playback | None = None
        self._plays = 0
        self._recording: Recording | None = None
        self._talking = False  # sent something: idle frames are silence from now on
        self._loopback = False
        self._echo: Echo | None = None
        self._echo_out: collections.deque[bytes] = collections.deque(maxlen=50)
        self._echo_resampler: Resampler | None = None
        self._keys: collections.deque[tuple[str, float]] = collections.deque()  # keys to send
        self._key_packets: list[EventPacket] | None = None  # RFC 4733 packets of the key sent
        self._key_sent = 0  # of those, sent so far
        self._key_frames = 0  # frames since the key went down
        self._key_tones: Player | None = None  # an in-band key being sent
        self._key_wait = 0  # frames to wait before the next key
        self._saving = 0  # recordings being written: `Closed` comes after them
        self._clock = clock if clock is not None else media_clock()
        self._clock.add(self._tick)
        leg.rtp.add_tap(self._packet)

    # -- what the application calls ----------------------------------------------------

    def play(
        self,
        source: Player | Iterable[Item],
        *,
        barge_in: bool | None = None,
        loop: bool = False,
    ) -> Playback:
        """Play `source` (a Player at `self.rate`, or playlist items) from the
        next frame on, in place of whatever played before (which ends
        "stopped"). `barge_in`: the first key stops it (default: the
        player's own `interruptible`). Await the result for why it ended."""
        player = source if isinstance(source, Player) else Player(source, self.rate, loop=loop)
        if player.rate != self.rate:
            raise ValueError(
                f"this channel plays {self.rate} Hz audio ({self.format.codec}); "
                f"make the player with rate=channel.rate, not {player.rate}"
            )
        if barge_in is not None:
            player.interruptible = barge_in
        return self._start_play(player, announce=True)

    def _start_play(self, player: Player, announce: bool) -> Playback:
        self._end_play("stopped")
        self._plays += 1
        playback = Playback(player, self._loop.create_future(), announce, self._plays)
        if self.closed:
            playback.done.set_result("closed")
            return playback
        self._playback = playback
        if player.finished:  # an empty playlist
            self._end_play(player.reason or "end")
        return playback

    def stop(self) -> None:
        """Stop the play under way (it ends "stopped")."""
        self._end_play("stopped")

    @property
    def playing(self) -> bool:
        return self._playback is not None

    def send_digits(self, digits: str, duration: float = DIGIT_DURATION) -> None:
        """Send keys to the caller, one after the other: RFC 4733 events when the
        call negotiated telephone-event, else tones in the audio. A prompt
        playing meanwhile pauses for each key."""
        for digit in digits:
            event_code(digit)  # DtmfError for what is no key, before any is sent
        if not 0.04 <= duration <= 5.0:
            raise ValueError(f"a key is held 0.04 to 5 s; not {duration}")
        self._keys.extend((d.upper(), duration) for d in digits)

    def info_digit(self, digit: Digit) -> None:
        """A key from a SIP INFO request of this call (the call layer hands it in)."""
        if not self.closed:
            self._digits(self.listener.info(digit))

    def record(
        self,
        path: str | Path,
        *,
        max_seconds: float = 120.0,
        silence_seconds: float = 5.0,
        stop_on: str = DIGITS,
        beep: bool = True,
        threshold: float = -40.0,
    ) -> Recording:
        """Record what the caller says to `path` (a mono 8 kHz WAV), after a beep.

        It ends after `max_seconds`, after `silence_seconds` without speech
        (0: never), at a key in `stop_on` (the key is not recorded), by
        `stop_recording()`, or when the channel closes; the file is kept in
        every case, unless nothing but silence was heard (then no file, and
        the result's path is None). Await the result (`RecordResult`); it is
        also the `Recorded` event. A play under way is stopped.
        """
        for digit in stop_on:
            event_code(digit)
        take = Take(max_seconds, silence_seconds, threshold=threshold)
        self._end_record("stopped")
        self._end_play("stopped")
        recording = Recording(Path(path), take, stop_on.upper(), self._loop.create_future())
        self._recording = recording
        if self.closed:
            self._end_record("hangup")
        elif beep:
            self._start_play(Player([ToneItem(BEEP, BEEP.cycle_ms)], self.rate), announce=False)
        else:
            self._start_take()
        return recording

    def stop_recording(self) -> None:
        self._end_record("stopped")

    def echo(self, delay_ms: float = 0.0, prompt: Iterable[bytes] | None = None) -> None:
        """The echo test. No delay and no prompt: every packet from the caller
        goes straight back as it came. Otherwise the caller's decoded audio
        comes back `delay_ms` later, after `prompt` (8 kHz linear frames)."""
        self._end_play("stopped")
        if delay_ms == 0 and prompt is None:
            self._loopback = True
            return
        self._echo = Echo(INBOUND_RATE, delay_ms, prompt)
        if self.rate != INBOUND_RATE:
            self._echo_resampler = Resampler(INBOUND_RATE, self.rate)
        self._need_inbound()

    def close(self, reason: str = "hangup") -> None:
        """Stop sending and listening; a recording under way is kept. Idempotent."""
        if self.closed:
            return
        self._clock.remove(self._tick)
        self.leg.rtp.remove_tap(self._packet)
        self._digits(self.listener.flush())
        self.closed = True
        self.close_reason = reason
        self._end_play("closed")
        self._end_record("hangup")
        if not self._saving:
            self._put(Closed(reason), force=True)

    # -- events --------------------------------------------------------------------------

    def _put(self, event: ChannelEvent, force: bool = False) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped_events += 1
            if force:  # the last event must get in: the oldest goes instead
                self.events.get_nowait()
                self.events.put_nowait(event)

    def _digits(self, events: list[DigitEvent]) -> None:
        for event in events:
            if self.closed:
                return
            self._put(event)
            if isinstance(event, DigitBegin):
                play = self._playback
                if play is not None and play.announce and play.player.digit(event.digit):
                    self._end_play("digit", event.digit)  # barge-in: from the next frame
                recording = self._recording
                if recording is not None and recording.started and event.digit in recording.stop_on:
                    self._end_record("digit", event.digit)

    def _end_play(self, reason: str, digit: str | None = None) -> None:
        playback = self._playback
        if playback is None:
            return
        self._playback = None
        playback.player.stop()
        if not playback.done.done():
            playback.done.set_result(reason)
        if playback.announce:
            self._put(Played(reason, digit, playback.number))
        elif self._recording is not None and not self._recording.started:
            if reason == "end":
                self._start_take()  # the beep is over: the caller speaks now
            else:
                self._end_record("hangup" if reason == "closed" else "stopped")

    # -- recording -----------------------------------------------------------------------

    def _start_take(self) -> None:
        recording = self._recording
        if recording is None or recording.started:
            return
        recording.started = True
        inbound = self._need_inbound()
        inbound.pop(time.monotonic())  # what the caller said before the beep is not kept

    def _end_record(self, reason: str, digit: str | None = None) -> None:
        recording = self._recording
        if recording is None:
            return
        self._recording = None
        take = recording.take
        audio = take.audio(reason) if recording.started else b""
        heard = recording.started and take.heard and bool(audio)
        if not recording.started and self._playback is not None and not self._playback.announce:
            self._end_play("stopped")  # the beep, cut short
        self._saving += 1
        kept = audio if heard else None
        task = self._loop.create_task(self._save(recording, kept, reason, digit))
        _writing.add(task)
        task.add_done_callback(_writing.discard)

    async def _save(
        self, recording: Recording, audio: bytes | None, reason: str, digit: str | None
    ) -> None:
        path: Path | None = None
        error = None
        try:
            if audio is not None:
                await asyncio.to_thread(write_wav, recording.path, Audio(audio, INBOUND_RATE))
                path = recording.path
        except OSError as exc:
            error = f"cannot write {recording.path}: {exc.strerror or exc}"
            log.warning("recording lost: %s; check that the directory exists and that the "
                        "node may write there", error)  # fmt: skip
        finally:
            self._saving -= 1
            seconds = len(audio) / 2 / INBOUND_RATE if path is not None and audio else 0.0
            result = RecordResult(path, seconds, reason, digit, error)
            if not recording.done.done():
                recording.done.set_result(result)
            self._put(Recorded(result), force=self.closed)
            if self.closed and not self._saving:  # Closed stays the last event
                self._put(Closed(self.close_reason), force=True)

    # -- the caller's audio --------------------------------------------------------------

    def _need_inbound(self) -> Inbound:
        if self._inbound is None:
            self._inbound = Inbound(self.format.codec, self.format.clock_rate, self.format.ptime)
        return self._inbound

    def _listening(self) -> bool:
        """Whether anything needs the caller's decoded audio."""
        return self.listener.wants_audio or self._recording is not None or self._echo is not None

    def _packet(self, data: bytes) -> None:
        """The leg's tap: every RTP packet from the caller (the relay's fast path)."""
        try:
            self._take_packet(data)
        except Exception:  # a tap must not raise into the relay
            log.exception("channel: a packet from %s could not be read", self.leg.rtp.remote)

    def _take_packet(self, data: bytes) -> None:
        if self._loopback:
            if self.browser:  # under our SSRC: a browser drops its own coming back
                data = data[:8] + self.stream.ssrc.to_bytes(4, "big") + data[12:]
            self.leg.rtp.emit(data, self.format.clock_rate)
            return
        payload_type = data[1] & 0x7F
        if payload_type == self._event_pt:
            _, _, seq, timestamp, _ = _HEADER.unpack_from(data)
            payload = rtp_payload(data)
            if payload is not None:
                self._digits(
                    self.listener.telephone_event(payload, timestamp, seq, time.monotonic())
                )
        elif payload_type == self._voice_pt:
            if self._inbound is None:
                if not self.listener.wants_audio:
                    return
                self._need_inbound()
            payload = rtp_payload(data)
            if payload is not None:
                _, _, seq, timestamp, _ = _HEADER.unpack_from(data)
                self._inbound.push(seq, timestamp, payload, time.monotonic())  # type: ignore[union-attr]

    # -- every 20 ms ---------------------------------------------------------------------

    def _tick(self, now: float, send: int, skip: int) -> None:
        try:
            self._step(now, send, skip)
        except Exception:
            # A bug here must not leave the caller in silence for ever: the
            # application hears the channel closed and ends the call.
            log.exception("channel to %s failed; closing it", self.leg.rtp.remote)
            self.close("error")

    def _step(self, now: float, send: int, skip: int) -> None:
        deadline = self.listener.next_deadline()
        if deadline is not None and now >= deadline:
            self._digits(self.listener.handle_timer(now))
        inbound = self._inbound
        if inbound is not None:
            if not self._listening():
                self._inbound = None  # nobody listens any more
            elif inbound.buffer.next_deadline() is None:
                # The caller has sent nothing yet: that is silence, in time.
                for _ in range(send + skip):
                    self._heard(_SILENT_FRAME)
            else:
                for pcm in inbound.pop(now):
                    self._heard(pcm)
        for _ in range(send):
            self._send_frame()
        if skip:
            self.stream.skip(skip)

    def _heard(self, pcm: bytes) -> None:
        """One frame of the caller's decoded audio, to whatever listens."""
        if self.listener.wants_audio:
            self._digits(self.listener.audio(pcm))
        recording = self._recording
        if recording is not None and recording.started:
            reason = recording.take.feed(pcm)
            if reason is not None:
                self._end_record(reason)
        if self._echo is not None:
            out = self._echo.receive(pcm)
            if self._echo_resampler is not None:
                out = self._echo_resampler.process(out)
            self._echo_out.append(out)

    def _send_frame(self) -> None:
        keys = self._key_packets is not None or self._key_tones is not None or self._keys
        if keys and self._send_key():
            return
        if self._loopback:
            return
        playback = self._playback
        if playback is not None:
            frame = playback.player.next_frame()
            if frame is not None:
                self._emit(self.stream.audio(self.encoder.encode(frame)))
                self._talking = True
            if playback.player.finished:
                self._end_play(playback.player.reason or "end")
            if frame is not None:
                return
        if self._echo is not None and self._echo_out:
            frame = self._echo_out.popleft()
            self._emit(self.stream.audio(self.encoder.encode(frame, cached=False)))
            self._talking = True
        elif self._talking:
            self._emit(self.stream.audio(self.encoder.silence()))
        else:
            self.stream.skip(1)

    def _send_key(self) -> bool:
        """This frame's part of the keys being sent; False: the frame is free."""
        if self._key_wait:
            self._key_wait -= 1
            return False
        if self._key_packets is None and self._key_tones is None:
            digit, duration = self._keys.popleft()
            if self._event_pt >= 0:
                self._key_packets = event_packets(
                    digit, self.stream.timestamp, duration, clock_rate=self.format.event_rate
                )
                self._key_sent = self._key_frames = 0
            else:
                tone = Audio(generate(digit, duration, DIGIT_LEVEL), INBOUND_RATE)
                self._key_tones = Player([Clip(tone)], self.rate)
        if self._key_tones is not None:
            frame = self._key_tones.next_frame()
            if frame is not None:
                self._emit(self.stream.audio(self.encoder.encode(frame)))
                self._talking = True
            if self._key_tones.finished:
                self._key_tones = None
                self._key_wait = DIGIT_GAP_FRAMES
            return True
        packets = self._key_packets
        assert packets is not None
        elapsed = self._key_frames * PERIOD + 1e-9
        while self._key_sent < len(packets) and packets[self._key_sent].at <= elapsed:
            self._emit(self.stream.event(packets[self._key_sent], self._event_pt))
            self._key_sent += 1
        self._key_frames += 1
        self.stream.skip(1)  # the audio's clock runs on under the event
        self._talking = True
        if self._key_sent == len(packets):
            self._key_packets = None
            self._key_wait = DIGIT_GAP_FRAMES
        return True

    def _emit(self, packet: bytes) -> None:
        self.leg.rtp.emit(packet, self.format.clock_rate)
