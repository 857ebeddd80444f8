"""Choosing codecs for two legs, and transcoding between them checked by the audio's content."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from switch.media import g711
from switch.media.jitter import Frame, Gap
from switch.media.opus import OpusDecoder, OpusEncoder
from switch.media.transcode import Transcoder, can_transcode, choose_codecs
from switch.sip.sdp import Codec, parse_sdp

PCMU = Codec("PCMU", 8000, 1, 0)
PCMA = Codec("PCMA", 8000, 1, 8)
OPUS = Codec("opus", 48000, 2, 111, "minptime=10;useinbandfec=1")
G729 = Codec("G729", 8000, 1, 18)
G722 = Codec("G722", 8000, 1, 9)
EVENT = Codec("telephone-event", 8000, 1, 101, "0-16")


def tone(freq: float, rate: int, seconds: float, amplitude: float = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(float)


def peak_frequency(pcm: bytes, rate: int) -> float:
    x = as_float(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def level_db(pcm: bytes, reference: bytes) -> float:
    return 20 * math.log10(
        np.sqrt(np.mean(as_float(pcm) ** 2)) / np.sqrt(np.mean(as_float(reference) ** 2))
    )


# -- choosing ----------------------------------------------------------------


def test_a_common_codec_is_passed_through_in_leg_a_s_order():
    choice = choose_codecs([PCMA, PCMU, EVENT], [PCMU, PCMA])
    assert choice is not None and choice.passthrough
    assert choice.a == PCMA and choice.b == PCMA


def test_each_leg_keeps_its_own_payload_type_for_the_common_codec():
    browser_opus = Codec("opus", 48000, 2, 111)
    trunk_opus = Codec("OPUS", 48000, 2, 96)
    choice = choose_codecs([browser_opus, PCMU], [trunk_opus])
    assert choice is not None and choice.passthrough
    assert (choice.a.payload_type, choice.b.payload_type) == (111, 96)


def test_no_codec_in_common_gives_a_transcoding_pair():
    choice = choose_codecs([OPUS, EVENT], [G729, PCMU, PCMA, EVENT])
    assert choice is not None and not choice.passthrough
    assert choice.a == OPUS and choice.b == PCMU  # G.729 is skipped: we cannot decode it


def test_telephone_event_in_common_is_not_a_shared_voice_codec():
    choice = choose_codecs([OPUS, EVENT], [PCMU, EVENT])
    assert choice is not None and (choice.a, choice.b) == (OPUS, PCMU)


def test_nothing_transcodable_on_one_side_gives_none():
    assert choose_codecs([G729, EVENT], [PCMU]) is None
    assert choose_codecs([PCMU], [G722]) is None
    assert choose_codecs([], [PCMU]) is None


def test_choosing_from_two_sdp_bodies():
    browser = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 5000 UDP/TLS/RTP/SAVPF 111 9 126\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n"
    )
    trunk = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 6000 RTP/AVP 18 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    choice = choose_codecs(browser.media[0].rtpmaps().values(), trunk.media[0].rtpmaps().values())
    assert choice is not None
    assert (choice.a.name, choice.a.payload_type) == ("opus", 111)
    assert (choice.b.name, choice.b.payload_type) == ("PCMA", 8)


def test_can_transcode_checks_the_clock_rate_too():
    assert can_transcode(PCMU) and can_transcode(OPUS) and can_transcode(Codec("pcma", 8000))
    assert not can_transcode(Codec("PCMU", 16000)) and not can_transcode(G729)


# -- transcoding -------------------------------------------------------------


@pytest.mark.parametrize("opus_rate", [8000, 48000])
@pytest.mark.parametrize(("law", "encode"), [(PCMU, g711.ulaw_encode), (PCMA, g711.alaw_encode)])
def test_a_tone_crosses_g711_to_opus_and_back_at_its_frequency(law, encode, opus_rate):
    # Trunk -> browser: G.711 in, Opus out, decoded as a browser would (48 kHz).
    to_browser = Transcoder(law, OPUS, opus_rate=opus_rate)
    source = tone(1000, 8000, 1.0)
    payloads = [p for frame in chunks(encode(source), 160) for p in to_browser.convert(frame)]
    assert len(payloads) == 50
    browser = OpusDecoder(48000)
    heard = b"".join(browser.decode(p) for p in payloads)[48000 // 5 :]
    assert abs(peak_frequency(heard, 48000) - 1000) < 10
    assert abs(level_db(heard, source)) < 2

    # Browser -> trunk: Opus (48 kHz) in, G.711 out.
    browser_mic = OpusEncoder(48000)
    sent = [browser_mic.encode(f) for f in chunks(tone(700, 48000, 1.0), 1920)]
    to_trunk = Transcoder(OPUS, law, opus_rate=opus_rate)
    out = [p for payload in sent for p in to_trunk.convert(payload)]
    assert len(out) == 50 and all(len(p) == 160 for p in out)
    decode = g711.ulaw_decode if law is PCMU else g711.alaw_decode
    trunk_hears = decode(b"".join(out))[8000 // 5 :]
    assert abs(peak_frequency(trunk_hears, 8000) - 700) < 10
    assert abs(level_db(trunk_hears, tone(700, 8000, 1.0))) < 2


def test_pcmu_to_pcma_is_one_table_and_keeps_the_tone():
    transcoder = Transcoder(PCMU, PCMA)
    source = tone(1500, 8000, 0.5)
    out = b"".join(p for f in chunks(g711.ulaw_encode(source), 160) for p in transcoder.convert(f))
    assert out == g711.ulaw_to_alaw(g711.ulaw_encode(source))
    assert abs(peak_frequency(g711.alaw_decode(out), 8000) - 1500) < 10


def test_the_same_codec_passes_through_untouched():
    transcoder = Transcoder(OPUS, Codec("opus", 48000, 2, 96))
    assert transcoder.passthrough
    assert transcoder.convert(b"\x01\x02\x03") == [b"\x01\x02\x03"]
    assert transcoder.conceal() == []
    assert Transcoder(G729, G729).convert(b"\x10" * 20) == [b"\x10" * 20]  # not one we decode


def test_output_is_cut_into_frames_of_frame_ms():
    # A 60 ms Opus packet becomes three 20 ms PCMU payloads.
    encoder = OpusEncoder(48000)
    packet = encoder.encode(tone(440, 48000, 0.06))
    to_trunk = Transcoder(OPUS, PCMU)
    assert [len(p) for p in to_trunk.convert(packet)] == [160, 160, 160]
    assert to_trunk.frame_ticks == 160
    # 30 ms PCMU packets become 20 ms Opus payloads: 3 in, 4 out, half a frame pending.
    to_browser = Transcoder(PCMU, OPUS)
    assert to_browser.frame_ticks == 960
    out = [
        p
        for f in chunks(g711.ulaw_encode(tone(440, 8000, 0.09)), 240)
        for p in to_browser.convert(f)
    ]
    assert len(out) == 4
    decoder = OpusDecoder(48000)
    assert all(len(decoder.decode(p)) == 1920 for p in out)


def test_a_lost_opus_frame_is_concealed_into_a_g711_payload():
    encoder = OpusEncoder(48000)
    sent = [encoder.encode(f) for f in chunks(tone(500, 48000, 0.4), 1920)]
    to_trunk = Transcoder(OPUS, PCMU)
    for p in sent[:10]:
        to_trunk.convert(p)
    filled = to_trunk.conceal()
    assert len(filled) == 1 and len(filled[0]) == 160
    assert np.sqrt(np.mean(as_float(g711.ulaw_decode(filled[0])) ** 2)) > 1000
    assert len(to_trunk.conceal(next_payload=sent[11])) == 1  # from the FEC


def test_a_lost_g711_frame_repeats_the_last_one_fading_to_silence():
    assert Transcoder(PCMU, PCMA).conceal() == []  # G.711 to G.711: the far end conceals
    to_browser = Transcoder(PCMU, OPUS)
    browser = OpusDecoder(8000)
    for frame in chunks(g711.ulaw_encode(tone(400, 8000, 0.2)), 160):
        for p in to_browser.convert(frame):
            browser.decode(p)
    levels = []
    for _ in range(5):
        (payload,) = to_browser.conceal()
        levels.append(np.sqrt(np.mean(as_float(browser.decode(payload)) ** 2)))
    # The tone goes on at half the level each frame (the codec's delay
    # blurs the steps a little), then stops.
    assert levels[0] > 2000
    assert all(b < a * 0.75 for a, b in itertools.pairwise(levels[:4]))
    assert levels[4] < 100


def test_a_corrupt_opus_payload_is_concealed_and_counted():
    to_trunk = Transcoder(OPUS, PCMU)
    encoder = OpusEncoder(48000)
    to_trunk.convert(encoder.encode(tone(440, 48000, 0.02)))
    out = to_trunk.convert(b"\x03\x00")
    assert to_trunk.errors == 1 and len(out) == 1 and len(out[0]) == 160


def test_feeding_from_a_jitter_buffer():
    to_trunk = Transcoder(OPUS, PCMA)
    encoder = OpusEncoder(48000)
    payload = encoder.encode(tone(440, 48000, 0.02))
    assert len(to_trunk.feed(Frame(0, 1, payload))) == 1
    assert len(to_trunk.feed(Gap(960))) == 1


def test_a_codec_we_cannot_transcode_is_refused_with_what_we_can():
    with pytest.raises(ValueError, match="cannot transcode G729/8000: only PCMU/8000"):
        Transcoder(G729, PCMU)
    with pytest.raises(ValueError, match="cannot transcode G722/8000"):
        Transcoder(OPUS, G722)
