"""The keys one caller presses, from whichever form its side sends them in. Sans-IO.

A trunk's `dtmf` setting says where its keys come from:

- "rfc4733": telephone-event packets in the RTP stream (`EventReceiver`);
- "info": SIP INFO requests, which the call layer hands in (`info`);
- "inband": tones in the audio, found by `ToneDetector` in the decoded
  frames the channel feeds (`audio`);
- "auto" (agents, and trunks that say nothing): RFC 4733 when the call
  negotiated telephone-event, tones in the audio otherwise, and INFO
  either way. Some phones send a key both as events and as INFO: the first
  form a key arrives in is the caller's form for the rest of the call, so
  no key counts twice.

Every form reports `DigitBegin` then `Digit`, exactly once per press (an
INFO request says both at once). What a form that is not listened to says
is dropped and counted in `ignored`.
"""

from __future__ import annotations

from .dtmf.digits import Digit, DigitBegin
from .dtmf.events import EventReceiver
from .dtmf.inband import ToneDetector

MODES = ("rfc4733", "info", "inband", "auto")
RFC4733, INFO, INBAND = "rfc4733", "info", "inband"

DigitEvent = DigitBegin | Digit


class DigitListener:
    """DTMF of one caller; see the module's docstring."""

    def __init__(self, mode: str = "auto", *, telephone_event: bool, event_rate: int = 8000):
        if mode not in MODES:
            raise ValueError(f"dtmf mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        # auto: RFC 4733 if negotiated, else tones; and INFO either way.
        auto = {RFC4733 if telephone_event else INBAND, INFO}
        self.sources = frozenset(auto if mode == "auto" else {mode})
        self.latched: str | None = None if mode == "auto" else mode
        self.events = EventReceiver(event_rate) if RFC4733 in self.sources else None
        self.tones = ToneDetector() if INBAND in self.sources else None
        self.ignored = 0  # key events from a form not listened to

    @property
    def wants_audio(self) -> bool:
        """Whether the caller's audio must be decoded and fed to `audio`."""
        return self.tones is not None and self.latched in (None, INBAND)

    def _from(self, source: str, events: list[DigitEvent]) -> list[DigitEvent]:
        if not events:
            return events
        if source not in self.sources or (self.latched is not None and self.latched != source):
            self.ignored += len(events)
            return []
        self.latched = source
        return events

    def telephone_event(
        self, payload: bytes, timestamp: int, seq: int, now: float
    ) -> list[DigitEvent]:
        """A telephone-event packet's payload, with its RTP timestamp and sequence number."""
        if self.events is None:
            self.ignored += 1
            return []
        return self._from(RFC4733, self.events.receive(payload, timestamp, seq, now))

    def info(self, digit: Digit) -> list[DigitEvent]:
        """A key from a SIP INFO request."""
        return self._from(INFO, [DigitBegin(digit.digit), digit])

    def audio(self, pcm: bytes) -> list[DigitEvent]:
        """The caller's next frame of 8 kHz linear audio."""
        if self.tones is None:
            return []
        return self._from(INBAND, self.tones.feed(pcm))

    def next_deadline(self) -> float | None:
        """When an RFC 4733 press whose end packets were lost is over."""
        return self.events.next_deadline() if self.events is not None else None

    def handle_timer(self, now: float) -> list[DigitEvent]:
        if self.events is None:
            return []
        return self._from(RFC4733, self.events.handle_timer(now))

    def flush(self) -> list[DigitEvent]:
        """The call ended: a key still sounding in the audio has ended."""
        return self._from(INBAND, self.tones.flush()) if self.tones is not None else []
