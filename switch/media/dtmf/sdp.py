"""telephone-event (RFC 4733) in SDP: which a stream has, and adding or removing it.

The node converts DTMF between legs that carry it differently (see
`switch.media.dtmf_bridge`), so what each leg is shown about telephone-event
is the node's to decide, leg by leg, as Asterisk does with its per-peer
dtmfmode:

- `events_of`: the telephone-event formats of an SDP's audio stream;
- `without_events`: the SDP with them removed (for a trunk that takes DTMF
  as SIP INFO or as tones: it must not start sending RFC 4733);
- `with_events`: an offer with a telephone-event for each clock rate given
  that it lacks (8000 for G.711, 48000 beside Opus: RFC 4733 §7.1.1 wants
  the event clock to be the audio's), on a payload type free in the stream;
- `answer_keeping_events`: an answer that keeps the telephone-event its
  receiver offered even when the far side answered none: the node then
  turns that side's DTMF into events for it.

All are pure (bytes in, bytes out); an SDP that does not parse is returned
as it came (the far end will say what is wrong with it).
"""

from __future__ import annotations

from collections.abc import Iterable

from ...sip.sdp import Codec, MediaDescription, SdpError, SessionDescription, parse_sdp

TELEPHONE_EVENT = "telephone-event"
EVENTS_FMTP = "0-16"  # the sixteen keys and flash (RFC 4733 §7.1.1's example)
PREFERRED_PT = 101  # what most phones and carriers use


def is_event(codec: Codec) -> bool:
    return codec.name.casefold() == TELEPHONE_EVENT


def _audio(sdp: SessionDescription) -> MediaDescription | None:
    return next((m for m in sdp.media if m.media == "audio" and m.port), None)


def _parse(body: bytes) -> tuple[SessionDescription, MediaDescription] | None:
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return None
    audio = _audio(sdp)
    return (sdp, audio) if audio is not None else None


def events_of(body: bytes) -> list[Codec]:
    """The telephone-event formats of `body`'s audio stream, in its order."""
    parsed = _parse(body) if body else None
    if parsed is None:
        return []
    return [c for c in parsed[1].rtpmaps().values() if is_event(c)]


def event_for(events: Iterable[Codec], clock_rate: int) -> Codec | None:
    """The telephone-event to use beside audio of `clock_rate`: the one on the
    same clock, else the first there is."""
    events = list(events)
    return next((e for e in events if e.clock_rate == clock_rate), events[0] if events else None)


def free_payload_type(used: Iterable[int], preferred: int = PREFERRED_PT) -> int:
    """A dynamic payload type (96-127) not in `used`, `preferred` if it is free."""
    taken = set(used)
    if preferred not in taken:
        return preferred
    return next(pt for pt in range(96, 128) if pt not in taken)


def _drop_formats(audio: MediaDescription, drop: set[str]) -> None:
    audio.formats = [f for f in audio.formats if f not in drop]
    audio.attributes[:] = [
        (n, v)
        for n, v in audio.attributes
        if n not in ("rtpmap", "fmtp") or (v or "").partition(" ")[0] not in drop
    ]


def without_events(body: bytes) -> bytes:
    """`body` without telephone-event in its audio stream (unchanged if it had none)."""
    parsed = _parse(body) if body else None
    if parsed is None:
        return body
    sdp, audio = parsed
    drop = {str(pt) for pt, c in audio.rtpmaps().items() if is_event(c)}
    if not drop or len(drop) == len(audio.formats):
        return body  # none, or nothing else: an m= line needs a format
    _drop_formats(audio, drop)
    return sdp.to_bytes()


def _add(audio: MediaDescription, codec: Codec) -> None:
    audio.formats.append(str(codec.payload_type))
    audio.attributes.append(("rtpmap", f"{codec.payload_type} {codec.rtpmap}"))
    audio.attributes.append(("fmtp", f"{codec.payload_type} {codec.fmtp or EVENTS_FMTP}"))


def with_events(body: bytes, rates: Iterable[int] = (8000,)) -> bytes:
    """An offer with a telephone-event on each clock of `rates` it lacks."""
    parsed = _parse(body) if body else None
    if parsed is None:
        return body
    sdp, audio = parsed
    codecs = audio.rtpmaps()
    have = {c.clock_rate for c in codecs.values() if is_event(c)}
    used = {int(f) for f in audio.formats if f.isdigit()}
    added = False
    for rate in dict.fromkeys(rates):
        if rate in have:
            continue
        pt = free_payload_type(used)
        used.add(pt)
        _add(audio, Codec(TELEPHONE_EVENT, rate, 1, pt, EVENTS_FMTP))
        added = True
    return sdp.to_bytes() if added else body


def audio_rates(body: bytes) -> list[int]:
    """The clock rates of the voice codecs of `body`'s audio stream, in order."""
    parsed = _parse(body) if body else None
    if parsed is None:
        return []
    rates = [
        c.clock_rate
        for c in parsed[1].rtpmaps().values()
        if not is_event(c) and c.name.casefold() != "cn"
    ]
    return list(dict.fromkeys(rates))


def answer_keeping_events(answer: bytes, offered: Iterable[Codec]) -> bytes:
    """`answer` with the telephone-event of the receiver's offer (`offered`)
    when it has none itself: on the clock of its first voice codec if the
    offer had one there, with the offer's payload type and fmtp."""
    events = [c for c in offered if is_event(c)]
    parsed = _parse(answer) if answer and events else None
    if parsed is None:
        return answer
    sdp, audio = parsed
    codecs = audio.rtpmaps()
    if any(is_event(c) for c in codecs.values()):
        return answer
    voice = [c for c in codecs.values() if c.name.casefold() != "cn"]
    event = event_for(events, voice[0].clock_rate if voice else 8000)
    used = {int(f) for f in audio.formats if f.isdigit()}
    if event is None or event.payload_type is None or event.payload_type in used:
        return answer
    _add(audio, event)
    return sdp.to_bytes()
