"""Offer/answer (RFC 3264), with cases in the style of RFC 4317's examples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.offer_answer import (
    LocalMedia,
    OfferAnswerError,
    bump_version,
    common_codecs,
    has_active_media,
    is_hold,
    is_refresh,
    make_offer,
    negotiate_answer,
    reoffer,
)
from switch.sip.sdp import Codec, Connection, Origin, SdpError, parse_sdp

PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
G722 = Codec("G722", 8000)
OPUS = Codec("opus", 48000, 2, payload_type=96)


def local(**overrides: object) -> LocalMedia:
    values: dict[str, object] = {
        "address": "192.0.2.10",
        "audio_port": 20000,
        "codecs": [PCMA, PCMU],
        "session_id": "777",
        "session_version": 5,
        "username": "switch",
    }
    values.update(overrides)
    return LocalMedia(**values)  # type: ignore[arg-type]


def offer(*media: str, session: str = "", address: str = "198.51.100.1") -> bytes:
    head = f"v=0\no=alice 2890844526 2890844526 IN IP4 {address}\ns=-\nc=IN IP4 {address}\nt=0 0\n"
    return (head + session + "".join(media)).replace("\n", "\r\n").encode()


AUDIO_4317 = (
    "m=audio 49170 RTP/AVP 0 8 97\n"
    "a=rtpmap:0 PCMU/8000\n"
    "a=rtpmap:8 PCMA/8000\n"
    "a=rtpmap:97 iLBC/8000\n"
)
VIDEO_4317 = "m=video 51372 RTP/AVP 31 32\na=rtpmap:31 H261/90000\na=rtpmap:32 MPV/90000\n"


def answer_to(offer_bytes: bytes, me: LocalMedia | None = None):
    return negotiate_answer(parse_sdp(offer_bytes), me or local())


# --- codec selection ----------------------------------------------------------


def test_codec_subset_keeps_offer_order_and_numbers() -> None:
    answer = answer_to(offer(AUDIO_4317))
    (audio,) = answer.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 20000, "RTP/AVP")
    assert audio.formats == ["0", "8"]  # offer order (RFC 3264 §6.1), iLBC dropped
    assert audio.attributes == [
        ("rtpmap", "0 PCMU/8000"),
        ("rtpmap", "8 PCMA/8000"),
        ("sendrecv", None),
    ]


def test_answer_session_level_lines() -> None:
    answer = answer_to(offer(AUDIO_4317))
    assert answer.origin == Origin("switch", "777", 5, "IN", "IP4", "192.0.2.10")
    assert answer.connection == Connection("192.0.2.10", "IN", "IP4")
    assert answer.session_name == "-"
    assert answer.to_bytes().startswith(
        b"v=0\r\no=switch 777 5 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        b"m=audio 20000 RTP/AVP 0 8\r\n"
    )
    assert parse_sdp(answer.to_bytes()) == answer


def test_ipv6_address_sets_addrtype() -> None:
    answer = answer_to(offer(AUDIO_4317), local(address="2001:db8::10"))
    assert answer.origin.addrtype == "IP6"
    assert answer.connection == Connection("2001:db8::10", "IN", "IP6")


def test_no_common_codec_rejects_with_port_zero_and_offered_formats() -> None:
    g729_only = "m=audio 49170 RTP/AVP 18\na=rtpmap:18 G729/8000\n"
    answer = answer_to(offer(g729_only))
    (audio,) = answer.media
    assert audio.port == 0
    assert audio.formats == ["18"]
    assert audio.attributes == []
    assert has_active_media(answer) is False
    assert b"m=audio 0 RTP/AVP 18\r\n" in answer.to_bytes()


def test_dynamic_payload_type_of_offer_is_kept() -> None:
    opus_offer = "m=audio 5004 RTP/AVP 109 0\na=rtpmap:109 OPUS/48000/2\na=fmtp:109 stereo=0\n"
    # Our opus hint is 96, but the answer must use the offerer's 109.
    (audio,) = answer_to(offer(opus_offer), local(codecs=[OPUS])).media
    assert audio.formats == ["109"]
    # Case-insensitive match; the offerer's name spelling and fmtp are echoed.
    assert audio.rtpmaps() == {109: Codec("OPUS", 48000, 2, 109, "stereo=0")}


def test_our_fmtp_wins_over_the_offered_one() -> None:
    opus_offer = "m=audio 5004 RTP/AVP 109\na=rtpmap:109 opus/48000/2\na=fmtp:109 stereo=1\n"
    me = local(codecs=[Codec("opus", 48000, 2, 96, "useinbandfec=1")])
    (audio,) = answer_to(offer(opus_offer), me).media
    assert audio.fmtp(109) == "useinbandfec=1"


def test_channels_must_match() -> None:
    stereo_only = "m=audio 5004 RTP/AVP 10\n"  # static L16/44100/2
    (audio,) = answer_to(offer(stereo_only), local(codecs=[Codec("L16", 44100)])).media
    assert audio.port == 0


def test_static_type_without_rtpmap_and_g729_annexb_echoed() -> None:
    trunk = "m=audio 31000 RTP/AVP 18 0\na=fmtp:18 annexb=no\n"
    me = local(codecs=[Codec("G729", 8000), PCMU])
    (audio,) = answer_to(offer(trunk), me).media
    assert audio.formats == ["18", "0"]
    assert ("fmtp", "18 annexb=no") in audio.attributes


def test_comfort_noise_alone_does_not_accept_a_stream() -> None:
    me = local(codecs=[PCMU, Codec("CN", 8000)])
    (audio,) = answer_to(offer("m=audio 4000 RTP/AVP 18 13\n"), me).media
    assert audio.port == 0
    (audio,) = answer_to(offer("m=audio 4000 RTP/AVP 0 13\n"), me).media
    assert audio.formats == ["0", "13"]


# --- telephone-event ----------------------------------------------------------


DTMF_OFFER = (
    "m=audio 49170 RTP/AVP 0 96\n"
    "a=rtpmap:0 PCMU/8000\n"
    "a=rtpmap:96 telephone-event/8000\n"
    "a=fmtp:96 0-15\n"
)


def test_telephone_event_negotiated_with_offer_number_and_our_events() -> None:
    (audio,) = answer_to(offer(DTMF_OFFER)).media
    assert audio.formats == ["0", "96"]
    assert audio.rtpmaps()[96] == Codec("telephone-event", 8000, 1, 96, "0-16")
    assert ("fmtp", "96 0-16") in audio.attributes


def test_telephone_event_left_out_when_we_do_not_support_it() -> None:
    (audio,) = answer_to(offer(DTMF_OFFER), local(telephone_event=False)).media
    assert audio.formats == ["0"]
    assert audio.fmtp(96) is None


def test_telephone_event_left_out_when_not_offered() -> None:
    (audio,) = answer_to(offer("m=audio 49170 RTP/AVP 0\n")).media
    assert audio.formats == ["0"]


def test_telephone_event_alone_is_not_a_common_codec() -> None:
    only_dtmf = "m=audio 49170 RTP/AVP 96\na=rtpmap:96 telephone-event/8000\n"
    (audio,) = answer_to(offer(only_dtmf)).media
    assert audio.port == 0


BROWSER_AUDIO = (
    "m=audio 9 RTP/AVP 111 0 110 126\n"
    "a=rtpmap:111 opus/48000/2\n"
    "a=rtpmap:0 PCMU/8000\n"
    "a=rtpmap:110 telephone-event/48000\n"
    "a=rtpmap:126 telephone-event/8000\n"
)


def test_telephone_event_rate_follows_the_chosen_codec() -> None:
    (audio,) = answer_to(offer(BROWSER_AUDIO), local(codecs=[OPUS, PCMU])).media
    assert audio.formats == ["111", "0", "110"]
    (audio,) = answer_to(offer(BROWSER_AUDIO), local(codecs=[PCMU])).media
    assert audio.formats == ["0", "126"]


# --- direction and hold -------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "preferred", "answered"),
    [
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendrecv", "recvonly", "recvonly"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendrecv", "inactive", "inactive"),
        ("sendonly", "sendonly", "inactive"),  # both only want to talk: nobody listens
    ],
)
def test_answer_direction(offered: str, preferred: str, answered: str) -> None:
    media = AUDIO_4317 + f"a={offered}\n"
    (audio,) = answer_to(offer(media), local(direction=preferred)).media
    assert audio.direction == answered


def test_session_level_direction_applies_to_media() -> None:
    answer = answer_to(offer(AUDIO_4317, session="a=sendonly\n"))
    assert answer.media[0].direction == "recvonly"


def test_hold_and_resume() -> None:
    hold = parse_sdp(offer(AUDIO_4317 + "a=sendonly\n"))
    assert is_hold(hold) is True
    assert is_hold(parse_sdp(offer(AUDIO_4317 + "a=inactive\n"))) is True
    assert is_hold(parse_sdp(offer(AUDIO_4317 + "a=recvonly\n"))) is False
    resume = parse_sdp(offer(AUDIO_4317 + "a=sendrecv\n"))
    assert is_hold(resume) is False
    assert negotiate_answer(resume, local()).media[0].direction == "sendrecv"


def test_rfc2543_hold_with_zero_address() -> None:
    old_hold = parse_sdp(offer(AUDIO_4317, address="0.0.0.0"))
    assert is_hold(old_hold) is True


def test_zero_address_with_ice_is_not_hold() -> None:
    # Trickle ICE puts 0.0.0.0 in c= before any candidate is known.
    trickle = parse_sdp(offer(AUDIO_4317 + "a=ice-ufrag:abcd\n", address="0.0.0.0"))
    assert is_hold(trickle) is False


def test_hold_needs_every_active_stream_held() -> None:
    mixed = parse_sdp(offer(AUDIO_4317 + "a=sendonly\n", VIDEO_4317))
    assert is_hold(mixed) is False
    no_media = parse_sdp(offer())
    assert is_hold(no_media) is False


# --- several streams ----------------------------------------------------------


def test_audio_and_video_where_video_is_rejected() -> None:
    answer = answer_to(offer(AUDIO_4317, VIDEO_4317))
    audio, video = answer.media
    assert audio.port == 20000
    assert (video.media, video.port, video.proto, video.formats) == (
        "video",
        0,
        "RTP/AVP",
        ["31", "32"],
    )
    assert b"m=video 0 RTP/AVP 31 32\r\n" in answer.to_bytes()
    assert has_active_media(answer) is True


def test_video_first_keeps_order() -> None:
    answer = answer_to(offer(VIDEO_4317, AUDIO_4317))
    assert [(m.media, m.port) for m in answer.media] == [("video", 0), ("audio", 20000)]


def test_only_the_first_audio_stream_is_accepted() -> None:
    answer = answer_to(offer(AUDIO_4317, AUDIO_4317))
    assert [m.port for m in answer.media] == [20000, 0]


def test_offered_port_zero_stays_zero() -> None:
    declined = AUDIO_4317.replace("49170", "0")
    answer = answer_to(offer(declined, AUDIO_4317))
    assert [m.port for m in answer.media] == [0, 20000]


def test_unsupported_proto_is_rejected() -> None:
    srtp = AUDIO_4317.replace("RTP/AVP", "RTP/SAVP")
    (audio,) = answer_to(offer(srtp)).media
    assert (audio.port, audio.proto) == (0, "RTP/SAVP")


def test_no_media_lines_raises_actionable_error() -> None:
    with pytest.raises(OfferAnswerError) as info:
        answer_to(offer())
    assert "the offer has no m= lines" in str(info.value)
    assert "488" in str(info.value)
    assert isinstance(info.value, ValueError)


# --- ptime, rtcp-mux, WebRTC ----------------------------------------------------


def test_ptime_carried_over() -> None:
    (audio,) = answer_to(offer(AUDIO_4317 + "a=ptime:30\n")).media
    assert audio.ptime == 30
    (audio,) = answer_to(offer(AUDIO_4317)).media
    assert audio.ptime is None


def test_rtcp_mux_echoed_only_when_offered_and_supported() -> None:
    muxed = offer(AUDIO_4317 + "a=rtcp-mux\n")
    assert answer_to(muxed).media[0].rtcp_mux is True
    assert answer_to(muxed, local(rtcp_mux=False)).media[0].rtcp_mux is False
    assert answer_to(offer(AUDIO_4317)).media[0].rtcp_mux is False


def test_webrtc_answer_bundle_mid_and_extra_attributes() -> None:
    browser = offer(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 110\n"
        "a=mid:0\na=rtcp-mux\n"
        "a=rtpmap:111 opus/48000/2\na=fmtp:111 minptime=10;useinbandfec=1\n"
        "a=rtpmap:110 telephone-event/48000\n",
        "m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:1\na=rtpmap:96 VP8/90000\n",
        session="a=group:BUNDLE 0 1\n",
        address="0.0.0.0",
    )
    me = local(
        codecs=[OPUS, PCMU],
        protos=("UDP/TLS/RTP/SAVPF",),
        media_attributes=[("ice-ufrag", "srv1"), ("ice-pwd", "p" * 22), ("setup", "passive")],
    )
    answer = answer_to(browser, me)
    audio, video = answer.media
    assert answer.get("group") == "BUNDLE 0"
    assert audio.get("mid") == "0"
    assert audio.formats == ["111", "0", "110"]
    assert audio.fmtp(111) == "minptime=10;useinbandfec=1"
    assert audio.rtcp_mux is True
    assert audio.get("setup") == "passive"
    assert audio.get("ice-ufrag") == "srv1"
    assert (video.port, video.get("mid")) == (0, "1")
    assert parse_sdp(answer.to_bytes()) == answer


# --- make_offer ---------------------------------------------------------------


def test_make_offer_lists_codecs_in_preference_order() -> None:
    sdp = make_offer(local(codecs=[Codec("opus", 48000, 2), G722, PCMU, PCMA], ptime=20))
    (audio,) = sdp.media
    assert audio.proto == "RTP/AVP"
    assert audio.port == 20000
    # opus gets the first free dynamic number, telephone-event its hint (101)
    # at 48000 and the next free one at 8000.
    assert audio.formats == ["96", "9", "0", "8", "101", "97"]
    assert audio.rtpmaps() == {
        96: Codec("opus", 48000, 2, 96),
        9: Codec("G722", 8000, 1, 9),
        0: Codec("PCMU", 8000, 1, 0),
        8: Codec("PCMA", 8000, 1, 8),
        101: Codec("telephone-event", 48000, 1, 101, "0-16"),
        97: Codec("telephone-event", 8000, 1, 97, "0-16"),
    }
    assert audio.ptime == 20
    assert audio.rtcp_mux is True
    assert audio.direction == "sendrecv"
    assert parse_sdp(sdp.to_bytes()) == sdp


def test_make_offer_resolves_payload_type_clashes() -> None:
    me = local(codecs=[Codec("opus", 48000, 2, 101), PCMU], telephone_event_pt=101)
    (audio,) = make_offer(me).media
    # The hint 101 is taken by opus, so telephone-event at 48000 and at 8000
    # get the first free dynamic numbers.
    assert audio.formats == ["101", "0", "96", "97"]
    assert audio.rtpmaps()[96] == Codec("telephone-event", 48000, 1, 96, "0-16")
    assert audio.rtpmaps()[97] == Codec("telephone-event", 8000, 1, 97, "0-16")


def test_make_offer_without_codecs_is_an_error() -> None:
    with pytest.raises(OfferAnswerError, match=r"LocalMedia\.codecs is empty"):
        make_offer(local(codecs=[]))


def test_make_offer_with_too_many_codecs_is_an_error() -> None:
    many = [Codec(f"X{i}", 8000) for i in range(40)]
    with pytest.raises(OfferAnswerError, match="dynamic payload types 96-127"):
        make_offer(local(codecs=many, telephone_event=False))


def test_offer_and_answer_between_two_of_us() -> None:
    caller = local(codecs=[OPUS, PCMU], address="192.0.2.1", audio_port=4000)
    callee = local(codecs=[PCMA, PCMU], address="192.0.2.2", audio_port=6000)
    sent = make_offer(caller)
    answer = negotiate_answer(parse_sdp(sent.to_bytes()), callee)
    # PCMU is chosen, so the telephone-event at 8000 (97), not the one at 48000 (101).
    assert answer.media[0].formats == ["0", "97"]
    common = common_codecs(sent.media[0], answer.media[0])
    assert [c.name for c in common] == ["PCMU", "telephone-event"]


def test_common_codecs_by_format_not_number() -> None:
    offered = parse_sdp(offer("m=audio 4000 RTP/AVP 96 0\na=rtpmap:96 opus/48000/2\n"))
    answered = parse_sdp(offer("m=audio 5000 RTP/AVP 100 8\na=rtpmap:100 OPUS/48000/2\n"))
    common = common_codecs(offered.media[0], answered.media[0])
    assert common == [Codec("OPUS", 48000, 2, 100)]
    rejected = parse_sdp(offer("m=audio 0 RTP/AVP 0\n"))
    assert common_codecs(offered.media[0], rejected.media[0]) == []


# --- versions -----------------------------------------------------------------


def test_bump_version_copies() -> None:
    original = make_offer(local())
    bumped = bump_version(original)
    assert bumped.origin.sess_version == 6
    assert original.origin.sess_version == 5


def test_reoffer_bumps_only_when_changed() -> None:
    first = make_offer(local())
    same = reoffer(first, make_offer(local(session_version=99)))
    assert same.origin.sess_version == 5
    assert same.to_bytes() == first.to_bytes()
    held = make_offer(local(direction="sendonly"))
    changed = reoffer(first, held)
    assert changed.origin.sess_version == 6
    assert changed.origin.sess_id == "777"
    assert changed.media[0].direction == "sendonly"
    assert held.origin.sess_version == 5  # input left alone


def test_is_refresh() -> None:
    first = parse_sdp(offer(AUDIO_4317))
    again = parse_sdp(offer(AUDIO_4317))
    assert is_refresh(first, again) is True
    assert is_refresh(first, bump_version(again)) is False


# --- properties ---------------------------------------------------------------

_MEDIA_LINES = [
    "m=audio 4000 RTP/AVP 0 8 101\n",
    "m=audio 4000 RTP/AVP 18\n",
    "m=audio 0 RTP/AVP 0\n",
    "m=audio 4000 RTP/SAVP 0\n",
    "m=video 4002 RTP/AVP 31\n",
    "m=audio 4000 RTP/AVP 96 97\n",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n",
    "m=audio 4000 RTP/AVP\n",
]
_ATTRIBUTES = [
    "a=rtpmap:96 opus/48000/2\n",
    "a=rtpmap:97 telephone-event/8000\n",
    "a=rtpmap:101 telephone-event/8000\n",
    "a=rtpmap:8 PCMU/8000\n",
    "a=fmtp:101 0-15\n",
    "a=sendonly\n",
    "a=inactive\n",
    "a=recvonly\n",
    "a=rtcp-mux\n",
    "a=ptime:20\n",
    "a=mid:a\n",
    "a=group:BUNDLE a\n",
    "a=group\n",
]
_section = st.tuples(
    st.sampled_from(_MEDIA_LINES), st.lists(st.sampled_from(_ATTRIBUTES), max_size=4)
).map(lambda t: t[0] + "".join(t[1]))


@settings(max_examples=300)
@given(
    st.lists(_section, max_size=4),
    st.lists(st.sampled_from(_ATTRIBUTES), max_size=2),
    st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
)
def test_answer_always_mirrors_the_offer(
    sections: list[str], session_attributes: list[str], preferred: str
) -> None:
    try:
        offered = parse_sdp(offer(*sections, session="".join(session_attributes)))
    except SdpError:
        return
    try:
        answer = negotiate_answer(offered, local(direction=preferred))
    except OfferAnswerError:
        assert offered.media == []
        return
    assert len(answer.media) == len(offered.media)
    assert sum(m.port != 0 for m in answer.media) <= 1
    for asked, answered in zip(offered.media, answer.media, strict=True):
        assert answered.media == asked.media
        assert answered.proto == asked.proto
        if answered.port == 0:
            assert answered.formats == asked.formats
        else:
            assert asked.port != 0
            assert set(answered.formats) <= set(asked.formats)
    assert parse_sdp(answer.to_bytes()) == answer
