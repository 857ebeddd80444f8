"""Which codec each leg of a call speaks, and turning one leg's payloads into the other's.

The fast path relays packets untouched, so a call is transcoded only when
its two legs have no voice codec in common (issue #5). `choose_codecs(a, b)`
makes that decision from the two legs' codec lists, as
``MediaDescription.rtpmaps().values()`` gives them:

- a codec both lists have (matched by name, clock rate and channels, RFC
  3264 §6.1), in leg A's order of preference: pass-through, each leg keeping
  its own payload type number;
- otherwise the first codec of each list this module can transcode (PCMU,
  PCMA, Opus): a transcoding pair;
- otherwise None: the call cannot be bridged (the caller answers 488).

telephone-event (RFC 4733) and comfort noise are left out: they are not
voice, and DTMF events travel beside the audio, not through a codec.

A `Transcoder` converts one direction (make two per call). Its path is
decode -> linear -> resample (only if the two sides' linear rates differ)
-> encode, with these choices:

- PCMU <-> PCMA is one ``bytes.translate`` per payload (switch.media.g711).
- Opus toward or from G.711 runs libopus at 8 kHz by default: libopus
  band-limits and resamples inside its own coder, and an 8 kHz Opus stream
  is still a valid 48000-clock RTP stream to a browser. Measured on the
  development machine (``python -m bench --only codecs``) for one 20 ms
  frame each way (PCMU -> Opus and Opus -> PCMU, complexity 5, speech-like
  audio): about 140 µs at 8 kHz (0.7% of a core per call), against about
  400 µs (2%) with libopus at 48 kHz and switch.media.resample on both
  sides. Only the first keeps within the issue's 1% of a core per call.
  ``opus_rate=48000`` selects the second (wideband Opus to the browser, no
  gain with a G.711 far end).
- Output payloads are `frame_ms` long (20 ms by default): input is buffered
  as linear audio until a whole frame is ready, so a 60 ms Opus packet
  becomes three PCMU payloads and 30 ms PCMU packets become 20 ms Opus ones.
  `frame_ticks` is what the caller adds to the RTP timestamp per payload.
- A lost source frame (`conceal`, or a `Gap` from switch.media.jitter) is
  filled by Opus's loss concealment (or its FEC, given the next payload), or
  for G.711 by the last frame again at half the level each time, fading to
  silence. A corrupt Opus payload is concealed the same way and counted
  in `errors`: bad input from the network never raises out of `convert`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..sip.sdp import Codec
from . import g711
from .jitter import Frame, Gap
from .opus import OpusDecoder, OpusEncoder, OpusError
from .resample import Resampler

PCMU = "pcmu"
PCMA = "pcma"
OPUS = "opus"
# Encoding name -> the RTP clock rate we handle it at.
TRANSCODABLE = {PCMU: 8000, PCMA: 8000, OPUS: 48000}
_NOT_VOICE = frozenset({"telephone-event", "cn"})
G711_RATE = 8000


def _kind(codec: Codec) -> str | None:
    name = codec.name.casefold()
    return name if TRANSCODABLE.get(name) == codec.clock_rate else None


def can_transcode(codec: Codec) -> bool:
    """True for the codecs a `Transcoder` speaks: PCMU/8000, PCMA/8000, opus/48000."""
    return _kind(codec) is not None


@dataclass(slots=True, frozen=True)
class CodecChoice:
    """The codec of leg A and the codec of leg B, each with that leg's payload type,
    and (for a transcoded call) each leg's telephone-event, if it has one: DTMF
    events are mapped from one to the other (`switch.media.packet_transcoder`)."""

    a: Codec
    b: Codec
    a_event: Codec | None = None
    b_event: Codec | None = None

    def reversed(self) -> CodecChoice:
        """The same choice seen from leg B."""
        return CodecChoice(self.b, self.a, self.b_event, self.a_event)

    @property
    def passthrough(self) -> bool:
        """Both legs speak the same codec: relay the payloads as they are."""
        return self.a.same_format(self.b)


def choose_codecs(a: Iterable[Codec], b: Iterable[Codec]) -> CodecChoice | None:
    """A codec common to both legs, else a pair to transcode, else None. See the module doc."""
    voice_a = [c for c in a if c.name.casefold() not in _NOT_VOICE]
    voice_b = [c for c in b if c.name.casefold() not in _NOT_VOICE]
    for codec in voice_a:
        match = next((c for c in voice_b if c.same_format(codec)), None)
        if match is not None:
            return CodecChoice(codec, match)
    first_a = next((c for c in voice_a if can_transcode(c)), None)
    first_b = next((c for c in voice_b if can_transcode(c)), None)
    if first_a is None or first_b is None:
        return None
    return CodecChoice(first_a, first_b)


class Transcoder:
    """Payloads of `source` in, payloads of `target` out, for one direction of a call."""

    def __init__(
        self, source: Codec, target: Codec, *, frame_ms: int = 20, opus_rate: int = G711_RATE
    ) -> None:
        self.source, self.target = source, target
        self.errors = 0  # corrupt payloads concealed
        self.passthrough = source.same_format(target)
        src, dst = _kind(source), _kind(target)
        if not self.passthrough and (src is None or dst is None):
            unknown = source if src is None else target
            raise ValueError(
                f"cannot transcode {unknown.rtpmap}: only PCMU/8000, PCMA/8000 and "
                "opus/48000 are supported; offer one of them on that leg"
            )
        self._translate: Callable[[bytes], bytes] | None = None
        if self.passthrough:
            src = dst = None  # nothing to decode or encode
        elif src in (PCMU, PCMA) and dst in (PCMU, PCMA) and src != dst:
            self._translate = g711.ulaw_to_alaw if src == PCMU else g711.alaw_to_ulaw
        self._src, self._dst = src, dst
        # With Opus on both sides nothing needs 8 kHz: keep the full band.
        if src == OPUS and dst == OPUS:
            opus_rate = 48000
        self._rate_in = opus_rate if src == OPUS else G711_RATE
        self._rate_out = opus_rate if dst == OPUS else G711_RATE
        self._decoder = OpusDecoder(self._rate_in) if src == OPUS else None
        # A G.711 source is telephone-band speech: libopus's lowest complexity
        # sounds the same there and costs half (49 against 97 µs per 20 ms at
        # 8 kHz, measured), which keeps a transcoded call under 1% of a core.
        complexity = 1 if src in (PCMU, PCMA) else 5
        self._encoder = OpusEncoder(self._rate_out, complexity=complexity) if dst == OPUS else None
        self._resampler = (
            Resampler(self._rate_in, self._rate_out) if self._rate_in != self._rate_out else None
        )
        self.frame_ticks = target.clock_rate * frame_ms // 1000
        self._frame_samples_in = self._rate_in * frame_ms // 1000
        self._frame_bytes = self._rate_out * frame_ms // 1000 * 2
        self._pending = b""  # linear audio at the output rate, less than a frame
        self._last = b""  # the last G.711 frame decoded, for concealment
        self._fade = 1.0

    def convert(self, payload: bytes) -> list[bytes]:
        """One source payload to the target payloads it makes (none, one or several)."""
        if self.passthrough:
            return [payload]
        if self._translate is not None:
            return [self._translate(payload)]
        if self._decoder is not None:
            try:
                linear = self._decoder.decode(payload)
            except OpusError:
                self.errors += 1
                linear = self._decoder.conceal()
        else:
            decode = g711.ulaw_decode if self._src == PCMU else g711.alaw_decode
            linear = decode(payload)
            self._last, self._fade = linear, 1.0
        return self._encode(linear)

    def conceal(self, next_payload: bytes | None = None, samples: int | None = None) -> list[bytes]:
        """Target payloads for a source frame that did not arrive.

        `next_payload` (the one after the gap, if it is already here) lets an
        Opus source rebuild the frame from its FEC; `samples` is the length
        of the gap at the source's linear rate (default: one frame).
        """
        if self.passthrough or self._translate is not None:
            return []  # nothing decoded here: the far end conceals it itself
        if self._decoder is not None:
            return self._encode(self._decoder.conceal(next_payload, samples))
        count = samples if samples is not None else self._frame_samples_in
        self._fade /= 2
        if self._last and self._fade > 0.1:
            last = np.frombuffer(self._last, dtype="<i2")
            faded = (last * self._fade).astype("<i2")
            linear = np.resize(faded, count).astype("<i2").tobytes()
        else:
            linear = bytes(2 * count)
        return self._encode(linear)

    def feed(self, item: Frame | Gap) -> list[bytes]:
        """What a jitter buffer popped: a frame is converted, a gap concealed."""
        if isinstance(item, Frame):
            return self.convert(item.payload)
        return self.conceal()

    def _encode(self, linear: bytes) -> list[bytes]:
        if self._resampler is not None:
            linear = self._resampler.process(linear)
        pending = self._pending + linear if self._pending else linear
        size = self._frame_bytes
        whole = len(pending) - len(pending) % size
        self._pending = pending[whole:]
        if self._encoder is not None:
            return [self._encoder.encode(pending[i : i + size]) for i in range(0, whole, size)]
        encode = g711.ulaw_encode if self._dst == PCMU else g711.alaw_encode
        return [encode(pending[i : i + size]) for i in range(0, whole, size)]
