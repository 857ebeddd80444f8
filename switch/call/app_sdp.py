"""The node's SDP answer to a call an application answers, and the format it agreed. Pure.

The node itself is the far end: it speaks PCMU, PCMA, and Opus (toward a
browser), and RFC 4733 telephone-events at the clock rate of the codec. The
answer names one voice codec, the first of the offer's that the node speaks
(RFC 3264 §6.1: the offerer's preference), so that the caller sends what
the channel decodes; telephone-event is kept when offered at that rate.
The offer's payload type numbers are kept, as offer/answer requires.

`answer_offer` takes a plain RTP offer (a browser's WebRTC offer is made
plain first, `switch.media.webrtc_sdp.to_plain`, and the answer made WebRTC
after); addresses and the o= line are set by `switch.media.relay.anchor`.
"""

from __future__ import annotations

from dataclasses import replace

from ..media.channel import MediaFormat
from ..sip.offer_answer import LocalMedia, OfferAnswerError, has_active_media, negotiate_answer
from ..sip.sdp import Codec, SdpError, parse_sdp

# What a channel speaks, in the node's order of preference when it offers
# (an answer follows the offer's order).
CODECS = (
    Codec("PCMU", 8000, 1, 0),
    Codec("PCMA", 8000, 1, 8),
    Codec("opus", 48000, 2, 111, "minptime=10;useinbandfec=1"),
)
PROTOS = ("RTP/AVP", "RTP/AVPF")


def answer_offer(
    offer: bytes, address: str, port: int, keep: MediaFormat | None = None
) -> tuple[bytes, MediaFormat]:
    """Our answer to `offer` on `address`:`port`, and the format agreed.

    `keep`: the format of a call already up (a re-INVITE): its codec is the
    one answered, so the channel goes on as it is. Raises OfferAnswerError
    (the caller answers 488) when the offer has no codec the node speaks.
    """
    try:
        sdp = parse_sdp(offer)
    except SdpError as exc:
        raise OfferAnswerError(f"the offer cannot be read: {exc}") from None
    audio = next((m for m in sdp.media if m.media == "audio" and m.port), None)
    if audio is None:
        raise OfferAnswerError("the offer has no audio stream (an m=audio line with a port)")
    offered = list(audio.rtpmaps().values())
    wanted = [c for c in CODECS if keep is None or c.name.lower() == keep.codec]
    voice = next((c for c in offered if any(c.same_format(w) for w in wanted)), None)
    if voice is None:
        names = ", ".join(c.name for c in wanted)
        raise OfferAnswerError(
            f"no codec of the offer is one the node speaks here ({names}); offer one of them"
        )
    ours = next(w for w in wanted if w.same_format(voice))
    local = LocalMedia(
        address,
        port,
        [replace(ours, payload_type=voice.payload_type)],
        session_id="0",
        rtcp_mux=False,  # the relay's leg has its RTCP on the next port
        protos=PROTOS,
    )
    answer = negotiate_answer(sdp, local)
    if not has_active_media(answer):
        raise OfferAnswerError(f"the offer's audio is on {audio.proto}; the node speaks RTP/AVP")
    answered = next(m for m in answer.media if m.port)
    codecs = answered.rtpmaps()
    event = next((c for c in codecs.values() if c.name.lower() == "telephone-event"), None)
    chosen = codecs[voice.payload_type]  # type: ignore[index]
    return answer.to_bytes(), MediaFormat.of(chosen, event, audio.ptime)
