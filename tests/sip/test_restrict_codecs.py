"""restrict_codecs: the offer a trunk sees keeps only the codecs it takes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from switch.sip.offer_answer import restrict_codecs
from switch.sip.sdp import parse_sdp

OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 111 9 0 8 101 13\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=rtcp-fb:* nack\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
    "m=video 4002 RTP/AVP 96\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
)


def test_only_the_allowed_codecs_and_their_lines_stay():
    restricted = restrict_codecs(parse_sdp(OFFER), ["pcma", "telephone-event"])
    assert restricted is not None
    audio = restricted.media[0]
    assert audio.formats == ["8", "101"]  # static PCMA needs no rtpmap; order kept
    assert audio.rtpmaps()[101].name == "telephone-event"
    assert audio.attributes == [
        ("rtpmap", "101 telephone-event/8000"),
        ("fmtp", "101 0-15"),
        ("rtcp-fb", "* nack"),
        ("ptime", "20"),
        ("sendrecv", None),
    ]
    assert restricted.media[1].formats == ["96"]  # not audio: not ours to filter


def test_dynamic_codecs_are_known_by_their_rtpmap_and_names_by_any_case():
    restricted = restrict_codecs(parse_sdp(OFFER), ["OPUS"])
    assert restricted is not None
    assert restricted.media[0].formats == ["111"]
    assert ("fmtp", "111 minptime=10;useinbandfec=1") in restricted.media[0].attributes


def test_no_audio_codec_left_is_none_and_dtmf_alone_is_no_audio():
    assert restrict_codecs(parse_sdp(OFFER), ["g729"]) is None
    only_dtmf = OFFER.replace("111 9 0 8 101 13", "101")
    assert restrict_codecs(parse_sdp(only_dtmf), ["pcmu", "telephone-event"]) is None


def test_the_received_description_is_not_changed():
    sdp = parse_sdp(OFFER)
    before = sdp.to_bytes()
    restrict_codecs(sdp, ["pcmu"])
    assert sdp.to_bytes() == before


def test_a_declined_stream_is_left_alone():
    declined = OFFER.replace("m=audio 4000 RTP/AVP 111", "m=audio 0 RTP/AVP 111")
    restricted = restrict_codecs(parse_sdp(declined), ["g729"])
    assert restricted is not None and restricted.media[0].port == 0


NAMES = ["pcmu", "pcma", "g722", "opus", "telephone-event", "cn"]


@given(st.sets(st.sampled_from(NAMES)))
def test_what_is_kept_is_exactly_what_was_allowed_and_offered(allowed):
    restricted = restrict_codecs(parse_sdp(OFFER), allowed)
    offered = parse_sdp(OFFER).media[0].rtpmaps()
    expected = [str(pt) for pt, c in offered.items() if c.name.casefold() in allowed]
    audio_left = [n for n in allowed if n not in ("telephone-event", "cn")]
    if not audio_left:
        assert restricted is None
        return
    assert restricted is not None
    assert restricted.media[0].formats == expected
    # Serialised, it parses again, with an rtpmap for every dynamic payload type kept.
    again = parse_sdp(restricted.to_bytes()).media[0]
    assert sorted(again.rtpmaps()) == sorted(int(pt) for pt in expected)


def test_nothing_to_drop_gives_the_same_description_back():
    sdp = parse_sdp(OFFER)
    assert restrict_codecs(sdp, ["opus", "g722", "pcmu", "pcma", "telephone-event", "cn"]) is sdp
