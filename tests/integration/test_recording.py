"""Recorded calls through a live node (issue #5).

A trunk calls DID 400 (`record = true`), forwarded to the carrier; raw RTP
sockets send a 440 Hz tone from the caller's side and a 1000 Hz tone from
the callee's, in real time. Midway the recording is paused for a second
(`Calls.pause_recording`, what the REST API of #8 calls) and resumed. The
finished file has the caller's tone on the left, the callee's on the right,
silence while paused, and its JSON names the call: as WAV, and as Opus in
Ogg decoded back. A browser (aiortc, WebRTC, Opus transcoded to PCMU)
answering a trunk call is recorded too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import numpy as np
import opuslib_next
import pytest

from switch.call.recording import NoSuchCall, NotRecorded
from switch.media import g711
from switch.media.ogg import read_packets, read_pages
from switch.media.wav import read_wav
from switch.sip.message import Request, Response, make_response
from switch.sip.sdp import parse_sdp
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.media.audio import peaks, rms
from tests.support.browser import Browser
from tests.support.sipclient import UdpPhone
from tests.support.sipclient import invite as invite_text

RECORD_DID = {"# record = true           # record calls to this number": "record = true #"}
OPUS = {"# [recording]": "[recording]", '# format = "wav"': 'format = "opus"'}


def _sdp(user: str, port: int, formats: str = "0") -> bytes:
    return (
        f"v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns={user}\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n"
    ).encode()


def _media_address(body: bytes) -> tuple[str, int]:
    sdp = parse_sdp(body)
    media = sdp.media[0]
    connection = sdp.media_connection(media)
    assert connection is not None
    return connection.host, media.port


def _ulaw_tone(freq: float, i: int) -> bytes:
    t = (160 * i + np.arange(160)) / 8000
    return g711.ulaw_encode((8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


def _rtp(i: int, ssrc: int, payload: bytes) -> bytes:
    return (
        bytes([0x80, 0]) + i.to_bytes(2, "big") + (160 * i).to_bytes(4, "big")
        + ssrc.to_bytes(4, "big") + payload
    )  # fmt: skip


async def _next(phone: UdpPhone, kind: type, what: str | int) -> Request | Response:
    while True:
        msg = await phone.receive(timeout=10)
        if isinstance(msg, Request) and kind is Request and msg.method == what:
            return msg
        if isinstance(msg, Response) and kind is Response and msg.status == what:
            return msg


def _in_dialog(phone: UdpPhone, method: str, answered: Response, cseq: int) -> str:
    return "\r\n".join([
        f"{method} {answered.contact[0].uri} SIP/2.0",
        f"Via: {phone.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: {answered.get('From')}",
        f"To: {answered.get('To')}",
        f"Call-ID: {answered.call_id}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
        "",
        "",
    ])  # fmt: skip


async def _json_of(node_dir: Path, timeout: float = 10.0) -> Path:
    """The metadata of the node's one recording, once it is complete."""
    for _ in range(int(timeout / 0.05)):
        found = list((node_dir / "recordings").rglob("*.json"))
        if found:
            assert len(found) == 1, found
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recording completed under {node_dir}")


async def _recorded_trunk_call(tmp_path: Path, changes: dict[str, str]):
    """A trunk call to DID 400 with tones both ways, paused from 1 s to 2 s.
    Returns the ended Call and the recording's metadata path."""
    async with (
        UdpPhone(("127.0.0.1", 9)) as carrier,
        UdpPhone(("127.0.0.1", 9)) as caller_audio,
        UdpPhone(("127.0.0.1", 9)) as callee_audio,
    ):
        changes = {
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"',
            **RECORD_DID,
            **changes,
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
        ):
            assert node.calls is not None
            ended = ended_calls(node)
            offer = _sdp("caller", caller_audio.address[1])
            length = f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}"
            text = invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:400@")
            trunk.send(text.replace("Content-Length: 0", length) + offer.decode())
            out = await _next(carrier, Request, "INVITE")
            relay_b = _media_address(out.body)
            ok = make_response(out, 200, to_tag="c1", headers=[
                ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
                ("Content-Type", "application/sdp"),
            ], body=_sdp("callee", callee_audio.address[1]))  # fmt: skip
            carrier.send(bytes(ok), sip_address(node))
            answered = await _next(trunk, Response, 200)
            relay_a = _media_address(answered.body)
            trunk.send(_in_dialog(trunk, "ACK", answered, 1))

            (call,) = node.calls.recordings.active
            assert call.recording_path.endswith(
                "/guarded-invite" + Path(call.recording_path).suffix
            )
            with pytest.raises(NoSuchCall, match="no call 999999"):
                node.calls.pause_recording(999999)

            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(150):  # 3 s of tones, both ways, in real time
                if i == 50:
                    status = node.calls.pause_recording(call.id)
                    assert status.paused and status.path == call.recording_path
                if i == 100:
                    assert not node.calls.resume_recording(call.id).paused
                caller_audio.send(_rtp(i, 0x1111, _ulaw_tone(440, i)), relay_a)
                callee_audio.send(_rtp(i, 0x2222, _ulaw_tone(1000, i)), relay_b)
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))

            trunk.send(_in_dialog(trunk, "BYE", answered, 2))
            bye = await _next(carrier, Request, "BYE")
            carrier.send(bytes(make_response(bye, 200)), sip_address(node))
            assert (await _next(trunk, Response, 200)).cseq.method == "BYE"
            meta_path = await _json_of(tmp_path / "n1")
            assert ended and ended[0] is call
            with pytest.raises(NoSuchCall):
                node.calls.resume_recording(call.id)  # over
            return call, meta_path


def _check_metadata(call, meta_path: Path, extension: str) -> tuple[dict, Path]:
    meta = json.loads(meta_path.read_text())
    path = meta_path.with_name(meta["file"])
    assert path.name == f"guarded-invite.{extension}"
    assert meta_path.name == f"guarded-invite.{extension}.json"
    # <directory>/<tenant>/<YYYY>/<MM>/<DD>/, the date the call began (tenant's zone: UTC)
    day = meta["started_at"][:10].split("-")
    assert path.parent.parts[-4:] == ("demo", *day)
    assert path.parents[4].name == "recordings"
    assert meta["call_id"] == "guarded-invite" and meta["call"] == call.id
    assert meta["tenant"] == "demo" and meta["caller"] == "trunk demo/demo-trunk"
    assert meta["channels"] == ["caller", "agent"]
    assert call.recording_path == str(path)
    ((begin, end),) = [(p["from"], p["to"]) for p in meta["paused"]]
    assert call.recording_paused == [(begin, end)]
    assert 0.3 < end - begin < 3.0  # a second, give or take a busy machine
    assert meta["paused_duration"] == pytest.approx(end - begin, abs=0.002)
    assert not list(path.parent.glob(".*.partial"))  # renamed: complete
    return meta, path


def _check_audio(left: np.ndarray, right: np.ndarray, rate: int, begin: float, end: float):
    """Caller's 440 Hz left, callee's 1000 Hz right, silence from `begin` to `end`."""

    def span(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return x[int(a * rate) : int(b * rate)]

    for x, freq in ((left, 440), (right, 1000)):
        before, after = span(x, begin - 0.5, begin - 0.1), span(x, end + 0.2, end + 0.6)
        assert rms(before) > 1000 and rms(after) > 1000
        assert peaks(before, rate, 1) == pytest.approx([freq], abs=5)
        assert peaks(after, rate, 1) == pytest.approx([freq], abs=5)
        assert rms(span(x, begin + 0.02, end - 0.02)) < 30  # paused: nothing of the call


async def test_a_recorded_call_in_wav(tmp_path):
    call, meta_path = await asyncio.wait_for(_recorded_trunk_call(tmp_path, {}), 60)
    meta, path = _check_metadata(call, meta_path, "wav")
    assert (meta["format"], meta["codec"], meta["rate"]) == ("wav", "pcm_s16le", 8000)
    audio = read_wav(path)
    assert (audio.rate, audio.channels) == (8000, 2)
    assert audio.duration == pytest.approx(meta["duration"], abs=0.001)
    assert meta["bytes"] == path.stat().st_size
    x = np.frombuffer(audio.pcm, "<i2").astype(np.float64)
    begin, end = call.recording_paused[0]
    _check_audio(x[0::2], x[1::2], 8000, begin, end)
    # Exactly silent in WAV (the times are rounded to the millisecond: 8 samples).
    assert not x[0::2][int(begin * 8000) + 8 : int(end * 8000) - 8].any()


async def test_a_recorded_call_in_opus(tmp_path):
    call, meta_path = await asyncio.wait_for(_recorded_trunk_call(tmp_path, OPUS), 60)
    meta, path = _check_metadata(call, meta_path, "opus")
    assert (meta["format"], meta["codec"], meta["bitrate"]) == ("opus", "opus", 32000)
    pages = list(read_pages(path.read_bytes()))  # every CRC checked
    head, _, *packets = read_packets(pages)
    pre_skip = int.from_bytes(head[10:12], "little")
    decoder = opuslib_next.Decoder(48000, 2)
    pcm = b"".join(decoder.decode(p, 5760) for p in packets)
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    length = pages[-1].granule - pre_skip
    assert length / 48000 == pytest.approx(meta["duration"], abs=0.001)
    x = x[2 * pre_skip : 2 * (pre_skip + length)]
    begin, end = call.recording_paused[0]
    _check_audio(x[0::2], x[1::2], 48000, begin, end)


async def test_a_call_that_is_not_recorded_says_so(tmp_path):
    async with (
        UdpPhone(("127.0.0.1", 9)) as carrier,
        running_node(tmp_path, changes={
            'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{carrier.address[1]}"'
        }) as node,
        UdpPhone(sip_address(node)) as trunk,
    ):  # fmt: skip
        assert node.calls is not None
        offer = _sdp("caller", 40000)
        length = f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}"
        text = invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:400@")
        trunk.send(text.replace("Content-Length: 0", length) + offer.decode())
        out = await _next(carrier, Request, "INVITE")
        ok = make_response(out, 200, to_tag="c1", headers=[
            ("Contact", f"<sip:4000@127.0.0.1:{carrier.address[1]}>"),
            ("Content-Type", "application/sdp"),
        ], body=_sdp("callee", 40002))  # fmt: skip
        carrier.send(bytes(ok), sip_address(node))
        answered = await _next(trunk, Response, 200)
        trunk.send(_in_dialog(trunk, "ACK", answered, 1))
        (call,) = node.calls._by_invite.values()
        with pytest.raises(NotRecorded, match=f"call {call.id} is not being recorded"):
            node.calls.pause_recording(call.id)
        trunk.send(_in_dialog(trunk, "BYE", answered, 2))
        bye = await _next(carrier, Request, "BYE")
        carrier.send(bytes(make_response(bye, 200)), sip_address(node))
        await _next(trunk, Response, 200)
        assert not (tmp_path / "n1" / "recordings").exists() or not list(
            (tmp_path / "n1" / "recordings").rglob("*.*")
        )


async def test_a_crashed_recording_is_reported_at_start(tmp_path, caplog):
    day = tmp_path / "n1" / "recordings" / "demo" / "2026" / "01" / "02"
    day.mkdir(parents=True)
    (day / ".abc.wav.partial").write_bytes(b"RIFF")
    with caplog.at_level("WARNING", logger="switch.call"):
        async with running_node(tmp_path):
            pass
    lines = [r.getMessage() for r in caplog.records if ".abc.wav.partial" in r.getMessage()]
    assert len(lines) == 1
    assert "was interrupted" in lines[0] and "Keep it" in lines[0] and "or delete it" in lines[0]


async def _browser_answers_recorded(tmp_path: Path) -> tuple[Path, dict]:
    from tests.integration.test_webrtc_calls import _ack, _far_end_talks, _register, _trunk_final
    from tests.support.sipclient import WsBrowser

    async with UdpPhone(("127.0.0.1", 9)) as media:
        changes = {
            '[tenants.demo.dids."400"]': (
                '[tenants.demo.dids."500"]\nagent = "1004"\nrecord = true\n\n'
                '[tenants.demo.dids."400"]'
            )
        }
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node)) as trunk,
            WsBrowser(f"{node.http_url}/sip") as ws,
        ):
            await _register(ws)
            browser = Browser(1000.0, ("opus",))  # transcoded: Opus to the browser
            try:
                offer = _sdp("far", media.address[1], "0 8").decode()
                length = f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}"
                text = invite_text(trunk, "5551234", 1).replace("sip:200@", "sip:500@")
                trunk.send(text.replace("Content-Length: 0", length) + offer)
                invite = await ws.receive(timeout=10)
                while not (isinstance(invite, Request) and invite.method == "INVITE"):
                    invite = await ws.receive(timeout=10)
                answer = await browser.answer(invite.body.decode())
                ok = make_response(invite, 200, to_tag="ws1", headers=[
                    ("Contact", "<sip:k3j2h1@df7jal23ls0d.invalid;transport=ws>"),
                    ("Content-Type", "application/sdp"),
                ], body=answer.encode())  # fmt: skip
                await ws.send(bytes(ok).decode())
                answered = await _trunk_final(trunk)
                assert answered.status == 200, answered.reason
                node_a = _media_address(answered.body)
                trunk.send(_ack(trunk, answered))
                await _far_end_talks(media, node_a, 3.0)  # 400 Hz from the trunk's side
                trunk.send(_in_dialog(trunk, "BYE", answered, 2))
                await _trunk_final(trunk)
                meta_path = await _json_of(tmp_path / "n1")
            finally:
                await browser.close()
            return meta_path, json.loads(meta_path.read_text())


async def test_a_browser_agents_call_is_recorded(tmp_path):
    meta_path, meta = await asyncio.wait_for(_browser_answers_recorded(tmp_path), 60)
    assert meta["callee"].startswith("agent 1004 ")
    audio = read_wav(meta_path.with_name(meta["file"]))
    x = np.frombuffer(audio.pcm, "<i2").astype(np.float64)
    left, right = x[0::2], x[1::2]
    # The trunk's 400 Hz on the left; the browser's 1000 Hz (Opus from it,
    # turned into PCMU by its leg before the tap) on the right; the last
    # two seconds of the call, when both have long been talking.
    tail = slice(len(left) - 2 * 8000, len(left) - 8000 // 4)
    assert rms(left[tail]) > 1000 and rms(right[tail]) > 1000
    assert peaks(left[tail], 8000, 1) == pytest.approx([400], abs=10)
    assert peaks(right[tail], 8000, 1) == pytest.approx([1000], abs=10)
