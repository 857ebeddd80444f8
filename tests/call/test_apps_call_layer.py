"""Applications in the call layer, without sockets: the node's SDP answer and the
format it agrees, who may reach an application, and the names the config
and the node share."""

from __future__ import annotations

import textwrap

import pytest

from switch.apps.builtin import builtin_apps
from switch.call.app import CAUSES, AppCall, Party
from switch.call.app_sdp import answer_offer
from switch.call.routing import App, Router
from switch.config import BUILTIN_APPS, ConfigError, load_config, load_demo_config
from switch.media.channel import MediaFormat
from switch.registrar.guard import Caller
from switch.sip.offer_answer import OfferAnswerError
from switch.sip.sdp import parse_sdp
from switch.store.location import MemoryLocationStore


def _offer(formats: str, *maps: str, extra: str = "") -> bytes:
    lines = "".join(f"a={m}\r\n" for m in maps)
    return (
        "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\n{lines}{extra}"
    ).encode()


def test_the_answer_names_the_offers_first_codec_the_node_speaks_and_its_events():
    offer = _offer(
        "9 8 0 101", "rtpmap:9 G722/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15",
        extra="a=ptime:30\r\n",
    )  # fmt: skip
    body, fmt = answer_offer(offer, "198.51.100.5", 10000)
    audio = parse_sdp(body).media[0]
    assert audio.formats == ["8", "101"] and audio.port == 10000
    assert audio.direction == "sendrecv" and not audio.rtcp_mux
    assert fmt == MediaFormat("pcma", 8, 8000, 101, 8000, 30)


def test_a_browsers_opus_gets_the_telephone_event_of_its_clock():
    offer = _offer(
        "111 0 110 126", "rtpmap:111 opus/48000/2", "rtpmap:110 telephone-event/48000",
        "rtpmap:126 telephone-event/8000",
    )  # fmt: skip
    body, fmt = answer_offer(offer, "198.51.100.5", 10000)
    assert parse_sdp(body).media[0].formats == ["111", "110"]
    assert fmt == MediaFormat("opus", 111, 48000, 110, 48000, 20)


def test_no_telephone_event_offered_means_none_agreed():
    _, fmt = answer_offer(_offer("0"), "198.51.100.5", 10000)
    assert fmt.event_payload_type is None


def test_a_reoffer_keeps_the_codec_the_call_has():
    _, first = answer_offer(_offer("8 0"), "198.51.100.5", 10000)
    _, again = answer_offer(_offer("0 8"), "198.51.100.5", 10000, keep=first)
    assert again.codec == "pcma"
    with pytest.raises(OfferAnswerError, match=r"speaks here \(PCMA\)"):
        answer_offer(_offer("0"), "198.51.100.5", 10000, keep=first)


@pytest.mark.parametrize(
    ("offer", "message"),
    [
        (_offer("9 18", "rtpmap:9 G722/8000"), "no codec of the offer is one the node speaks"),
        (b"v=0\r\nnot sdp", "cannot be read"),
        (_offer("0").replace(b"m=audio 4000", b"m=audio 0"), "no audio stream"),
        (_offer("0").replace(b"RTP/AVP", b"RTP/SAVP"), "speaks RTP/AVP"),
    ],
)
def test_an_offer_the_node_cannot_answer_says_why(offer, message):
    with pytest.raises(OfferAnswerError, match=message):
        answer_offer(offer, "198.51.100.5", 10000)


async def test_agents_reach_their_tenants_applications_by_the_did():
    router = Router(load_demo_config(), MemoryLocationStore())
    assert await router.route(Caller("demo", "agent", "1004"), "300") == App("echo")


def test_the_config_knows_the_nodes_applications(tmp_path):
    assert set(BUILTIN_APPS) == set(builtin_apps())
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent("""
        [dids."300"]
        app = "voicemail"
    """))  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [f"{path}: dids.300.app: 'voicemail' is not one of echo"]
    config = load_config(path, apps=["echo", "voicemail"])
    assert config.tenants["default"].dids["300"].target == ("app", "voicemail")
    # Overrides from the command line check against the same names.
    assert config.with_overrides(sip_listen="127.0.0.1:5070").sip.listen.port == 5070


async def test_an_app_call_refuses_causes_it_does_not_know():
    ended: list = []

    async def answer():
        raise AssertionError("not asked")

    call = AppCall("x", "", Party("+1", "", "demo"), "300", 1, answer,
                   lambda cause, status: ended.append((cause, status)))  # fmt: skip
    with pytest.raises(ValueError, match="unknown hangup cause"):
        call.hangup("sleepy")
    with pytest.raises(ValueError, match="300-699"):
        call.hangup("busy", status=200)
    call.hangup("busy")
    assert ended == [("busy", None)] and CAUSES["busy"] == (486, "Busy Here")
    call.finished("caller hung up")
    call.hangup()  # over: nothing more
    assert ended == [("busy", None)] and await call.wait_ended() == "caller hung up"
