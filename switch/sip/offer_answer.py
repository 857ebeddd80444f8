"""The SDP offer/answer model (RFC 3264): pure functions over SessionDescription.

We answer with at most one audio stream, on the address and port the media
layer gave us in ``LocalMedia``; every other stream is declined with port 0,
as RFC 3264 §6 prescribes, so the offerer keeps its m= lines aligned.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from switch.sip.errors import SipError
from switch.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

__all__ = [
    "LocalMedia",
    "OfferAnswerError",
    "bump_version",
    "common_codecs",
    "has_active_media",
    "is_hold",
    "is_refresh",
    "make_offer",
    "negotiate_answer",
    "reoffer",
    "restrict_codecs",
]

TELEPHONE_EVENT = "telephone-event"
_DYNAMIC_PTS = range(96, 128)


class OfferAnswerError(SipError, ValueError):
    """No answer can be made to this offer; a SIP caller answers 488 Not Acceptable Here."""


@dataclass(slots=True)
class LocalMedia:
    """Our side of a call's media, as the media layer sets it up."""

    address: str
    audio_port: int
    # Preference order. payload_type is a hint for offers; in answers the
    # offerer's numbers are kept.
    codecs: list[Codec]
    session_id: str
    session_version: int = 1
    username: str = "-"
    direction: Direction = "sendrecv"
    telephone_event: bool = True
    telephone_event_pt: int = 101
    telephone_events: str = "0-16"  # the fmtp of telephone-event: events we can receive
    rtcp_mux: bool = True
    ptime: int | None = None  # offered ptime; answers echo the offerer's instead
    protos: tuple[str, ...] = ("RTP/AVP",)  # first one is used in offers
    # Extra media-level attributes for an accepted/offered audio stream, such
    # as ICE and DTLS lines for a WebRTC leg.
    media_attributes: list[Attribute] = field(default_factory=list)

    @property
    def addrtype(self) -> str:
        return "IP6" if ":" in self.address else "IP4"


def _origin(local: LocalMedia) -> Origin:
    return Origin(
        local.username,
        local.session_id,
        local.session_version,
        "IN",
        local.addrtype,
        local.address,
    )


def _skeleton(local: LocalMedia) -> SessionDescription:
    return SessionDescription(
        origin=_origin(local),
        session_name="-",
        connection=Connection(local.address, "IN", local.addrtype),
        timings=[Timing(0, 0)],
    )


def _is_telephone_event(codec: Codec) -> bool:
    return codec.name.casefold() == TELEPHONE_EVENT


def _answer_direction(offered: Direction, preferred: Direction) -> Direction:
    """RFC 3264 §6.1: we may send only if they receive, and receive only if they send.

    This gives sendonly->recvonly, recvonly->sendonly, inactive->inactive and
    sendrecv->our preference, and narrows further when we prefer less.
    """
    we_send = offered in ("sendrecv", "recvonly") and preferred in ("sendrecv", "sendonly")
    we_receive = offered in ("sendrecv", "sendonly") and preferred in ("sendrecv", "recvonly")
    if we_send and we_receive:
        return "sendrecv"
    if we_send:
        return "sendonly"
    if we_receive:
        return "recvonly"
    return "inactive"


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: port 0, and the formats of the offer echoed because an
    # m= line must list at least one. The mid is echoed so that a browser
    # can still pair the declined section with its transceiver (RFC 5888 §9.1).
    rejected = MediaDescription(offered.media, 0, offered.proto, list(offered.formats))
    mid = offered.get("mid")
    if mid is not None:
        rejected.attributes.append(("mid", mid))
    return rejected


def _choose_codecs(offered: list[Codec], local: LocalMedia) -> list[Codec]:
    """Offered codecs we also support, in the offer's order with its payload types.

    RFC 3264 §6.1 recommends keeping the offer's order. Our fmtp wins when we
    have one; otherwise the offered one is echoed, since parameters such as
    G.729 ``annexb=no`` must agree on both sides. telephone-event is chosen
    separately, once the voice codecs are known.
    """
    chosen: list[Codec] = []
    for codec in offered:
        if _is_telephone_event(codec):
            continue
        mine = next((c for c in local.codecs if c.same_format(codec)), None)
        if mine is not None:
            chosen.append(replace(codec, fmtp=mine.fmtp if mine.fmtp is not None else codec.fmtp))
    return chosen


def _choose_telephone_event(
    offered: list[Codec], voice: list[Codec], local: LocalMedia
) -> Codec | None:
    """The offered telephone-event whose clock rate fits our codecs (RFC 4733 §2.1).

    A browser offers telephone-event at 48000 and 8000; the one matching the
    primary codec is preferred, then any other chosen codec's rate.
    """
    if not local.telephone_event:
        return None
    events = [c for c in offered if _is_telephone_event(c)]
    for rate in dict.fromkeys(c.clock_rate for c in voice):
        for event in events:
            if event.clock_rate == rate:
                return replace(event, fmtp=local.telephone_events)
    return None


def _codec_attributes(codecs: list[Codec]) -> list[Attribute]:
    attributes: list[Attribute] = []
    for codec in codecs:
        attributes.append(("rtpmap", f"{codec.payload_type} {codec.rtpmap}"))
        if codec.fmtp:
            attributes.append(("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    return attributes


def _answer_audio(
    offer: SessionDescription, offered: MediaDescription, local: LocalMedia
) -> MediaDescription | None:
    """Our answer to one offered audio stream, or None when nothing in it fits."""
    offered_codecs = list(offered.rtpmaps().values())
    chosen = _choose_codecs(offered_codecs, local)
    # Comfort noise alone carries no voice: not a reason to accept the stream.
    voice = [c for c in chosen if c.name.casefold() != "cn"]
    if not voice:
        return None
    event = _choose_telephone_event(offered_codecs, voice, local)
    if event is not None:
        chosen.append(event)
    attributes: list[Attribute] = []
    mid = offered.get("mid")
    if mid is not None:
        attributes.append(("mid", mid))
    attributes.extend(_codec_attributes(chosen))
    if offered.ptime is not None:
        attributes.append(("ptime", str(offered.ptime)))
    if offered.rtcp_mux and local.rtcp_mux:
        attributes.append(("rtcp-mux", None))
    attributes.extend(local.media_attributes)
    attributes.append((_answer_direction(offer.media_direction(offered), local.direction), None))
    return MediaDescription(
        "audio",
        local.audio_port,
        offered.proto,
        [str(c.payload_type) for c in chosen],
        attributes=attributes,
    )


def _bundle_group(offer: SessionDescription, answer: SessionDescription) -> Attribute | None:
    """``a=group:BUNDLE`` for the answer: the offered group cut to the accepted mids.

    RFC 8843 §7.3: the answer's group holds the accepted sections that the
    offer bundled. We accept one audio stream, so it is a group of one, which
    a browser using bundlePolicy max-bundle still requires.
    """
    accepted = {m.get("mid") for m in answer.media if m.port != 0} - {None}
    for value in offer.get_all("group"):
        semantics, *mids = value.split(" ") if value else ("",)
        if semantics == "BUNDLE":
            kept = [mid for mid in mids if mid in accepted]
            if kept:
                return "group", " ".join(["BUNDLE", *kept])
    return None


def negotiate_answer(offer: SessionDescription, local: LocalMedia) -> SessionDescription:
    """Build our answer to ``offer`` (RFC 3264 §6).

    One m= line per offered m= line, in the same order. The first offered
    audio stream on a protocol we speak with a codec in common is accepted;
    every other stream gets port 0. An answer that declines every stream is
    still a valid answer; check ``has_active_media`` to decide on a 488.
    """
    if not offer.media:
        raise OfferAnswerError(
            "the offer has no m= lines, so there is no stream to answer;"
            " send an offer with at least one audio stream (SIP: 488 Not Acceptable Here)"
        )
    answer = _skeleton(local)
    accepted = False
    for offered in offer.media:
        stream = None
        usable = (
            not accepted
            and offered.media == "audio"
            and offered.port != 0
            and offered.proto in local.protos
        )
        if usable:
            stream = _answer_audio(offer, offered, local)
        if stream is None:
            answer.media.append(_rejected(offered))
        else:
            answer.media.append(stream)
            accepted = True
    group = _bundle_group(offer, answer)
    if group is not None:
        answer.attributes.append(group)
    return answer


def _static_payload_type(codec: Codec) -> int | None:
    return next((pt for pt, s in STATIC_PAYLOAD_TYPES.items() if s.same_format(codec)), None)


def _number(codecs: list[Codec]) -> list[Codec]:
    """Give every codec a payload type: its hint, else its static number, else a free dynamic one.

    A hint already taken by an earlier codec is dropped rather than sent twice.
    """
    wanted = [
        c.payload_type if c.payload_type is not None else _static_payload_type(c) for c in codecs
    ]
    used: set[int] = set()
    for i, pt in enumerate(wanted):
        if pt in used:
            wanted[i] = None
        elif pt is not None:
            used.add(pt)
    free = (n for n in _DYNAMIC_PTS if n not in used)
    numbered: list[Codec] = []
    for codec, pt in zip(codecs, wanted, strict=True):
        if pt is None:
            pt = next(free, None)
            if pt is None:
                raise OfferAnswerError(
                    f"cannot number {len(codecs)} payload formats: more than the dynamic"
                    " payload types 96-127 allow; offer fewer codecs"
                )
        numbered.append(replace(codec, payload_type=pt))
    return numbered


def make_offer(local: LocalMedia) -> SessionDescription:
    """An initial offer: one audio stream with our codecs in preference order."""
    if not local.codecs:
        raise OfferAnswerError("cannot offer audio without codecs: LocalMedia.codecs is empty")
    codecs = list(local.codecs)
    if local.telephone_event:
        # One telephone-event per clock rate we offer, so the peer can pair
        # it with whichever codec it picks (RFC 4733 §2.1).
        rates = dict.fromkeys(c.clock_rate for c in local.codecs)
        for i, rate in enumerate(rates):
            hint = local.telephone_event_pt if i == 0 else None
            codecs.append(Codec(TELEPHONE_EVENT, rate, 1, hint, local.telephone_events))
    codecs = _number(codecs)
    attributes = _codec_attributes(codecs)
    if local.ptime is not None:
        attributes.append(("ptime", str(local.ptime)))
    if local.rtcp_mux:
        attributes.append(("rtcp-mux", None))
    attributes.extend(local.media_attributes)
    attributes.append((local.direction, None))
    offer = _skeleton(local)
    offer.media.append(
        MediaDescription(
            "audio",
            local.audio_port,
            local.protos[0],
            [str(c.payload_type) for c in codecs],
            attributes=attributes,
        )
    )
    return offer


def has_active_media(sdp: SessionDescription) -> bool:
    """Whether any stream is accepted/offered (port not 0)."""
    return any(m.port != 0 for m in sdp.media)


def is_hold(sdp: SessionDescription) -> bool:
    """Whether the description puts the call on hold.

    Hold is every active stream being sendonly or inactive (RFC 6337 §5.3),
    or its address being 0.0.0.0, the RFC 2543 way some old phones still use.
    With ICE, 0.0.0.0 only means "no candidate yet" (trickle ICE, RFC 8838
    §5.2), so it is not read as hold when the stream has an ice-ufrag.
    """
    active = [m for m in sdp.media if m.port != 0]
    if not active:
        return False
    session_ice = sdp.has("ice-ufrag")
    for m in active:
        connection = sdp.media_connection(m)
        old_style = connection is not None and connection.host == "0.0.0.0"
        if old_style and not (session_ice or m.has("ice-ufrag")):
            continue
        if sdp.media_direction(m) not in ("sendonly", "inactive"):
            return False
    return True


def common_codecs(offer_media: MediaDescription, answer_media: MediaDescription) -> list[Codec]:
    """Codecs of the answer that the offer also lists, in the answer's order.

    Matched by encoding name, clock rate and channels, so it stays right even
    when the answerer renumbered a dynamic payload type. Empty when declined.
    """
    if offer_media.port == 0 or answer_media.port == 0:
        return []
    offered = list(offer_media.rtpmaps().values())
    return [c for c in answer_media.rtpmaps().values() if any(c.same_format(o) for o in offered)]


# Attributes that name one payload type first: "a=fmtp:101 0-15".
_PER_PAYLOAD = frozenset({"rtpmap", "fmtp", "rtcp-fb"})
# Payload formats that carry no voice of their own: DTMF and comfort noise.
_NOT_VOICE = frozenset({TELEPHONE_EVENT, "cn"})


def restrict_codecs(sdp: SessionDescription, allowed: Collection[str]) -> SessionDescription | None:
    """The offer with its audio streams listing only `allowed` encodings.

    `allowed` holds encoding names in any case ("pcmu", "opus",
    "telephone-event"); a payload type is known by its rtpmap, or by the
    static table (RFC 3551) when it has none. Lines about a dropped payload
    type go with it. None when an active audio stream keeps no voice codec
    (telephone-event and CN carry none): the offer is not acceptable (488).
    `sdp` itself when nothing is dropped (the common case, and no copy).
    """
    names = {name.casefold() for name in allowed}
    streams: list[MediaDescription] = []
    for media in sdp.media:
        if media.media != "audio" or media.port == 0:
            streams.append(media)
            continue
        codecs = media.rtpmaps()
        kept = {pt for pt, codec in codecs.items() if codec.name.casefold() in names}
        if all(codecs[pt].name.casefold() in _NOT_VOICE for pt in kept):
            return None
        formats = [f for f in media.formats if f.isdigit() and int(f) in kept]
        if formats == media.formats:
            streams.append(media)
            continue
        attributes = [
            (name, value)
            for name, value in media.attributes
            if name not in _PER_PAYLOAD or value is None or _payload_of(value) in kept
            or value.startswith("* ")
        ]  # fmt: skip
        streams.append(replace(media, formats=formats, attributes=attributes))
    if all(new is old for new, old in zip(streams, sdp.media, strict=True)):
        return sdp  # nothing to drop: the very same description, no copy
    # The streams not changed are shared with `sdp`: neither is to be edited in place.
    return replace(sdp, media=streams)


def _payload_of(value: str) -> int | None:
    head = value.partition(" ")[0]
    return int(head) if head.isdigit() else None


def bump_version(sdp: SessionDescription) -> SessionDescription:
    """A copy with the o= session version increased by one."""
    bumped = copy.deepcopy(sdp)
    bumped.origin.sess_version += 1
    return bumped


def _body_without_version(sdp: SessionDescription) -> bytes:
    neutral = copy.deepcopy(sdp)
    neutral.origin.sess_version = 0
    return neutral.to_bytes()


def reoffer(previous: SessionDescription, proposed: SessionDescription) -> SessionDescription:
    """The description to send in a re-offer, versioned as RFC 3264 §8 requires.

    The o= line keeps ``previous``'s username, session id and address; the
    version goes up by one if anything else changed, and stays the same if
    not (a session refresh must repeat the previous description unchanged).
    """
    candidate = copy.deepcopy(proposed)
    candidate.origin = replace(previous.origin)
    if _body_without_version(candidate) != _body_without_version(previous):
        candidate.origin.sess_version = previous.origin.sess_version + 1
    return candidate


def is_refresh(previous: SessionDescription, received: SessionDescription) -> bool:
    """Whether a received re-offer repeats the previous one (same o= id and version).

    RFC 3264 §8: an unchanged version means an unchanged description, so the
    media need not be touched.
    """
    a, b = previous.origin, received.origin
    return (a.username, a.sess_id, a.address, a.sess_version) == (
        b.username,
        b.sess_id,
        b.address,
        b.sess_version,
    )
