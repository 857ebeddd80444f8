"""Which calls are recorded, and what a recording does through a call's life
(answer, pause, attended transfer, end), on real relay ports without sockets."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from switch.call.model import Call
from switch.call.recording import NotRecorded, Recordings
from switch.call.routing import Router, Target
from switch.config import demo_config_text, load_config
from switch.media import g711
from switch.media.relay import LegMedia, MediaSession, RtcpPort, RtpPort
from switch.media.wav import read_wav
from switch.registrar.guard import Caller
from switch.sip.message import parse_message
from switch.store.location import MemoryLocationStore
from tests.media.audio import peaks

TRUNK = Caller("demo", "trunk", "demo-trunk")
AGENT = Caller("demo", "agent", "1001")
NUMBER = "+442079460000"  # a DID added for these tests, to agent 1001


def _config(tmp_path, tenant=None, did=None, route=None, number=None):
    """The demo config with `record` set (None: not written) on the tenant,
    DID 400, the route "external" and the DID NUMBER."""
    text = demo_config_text()
    lines = {
        "# record = false          # record its calls": tenant,
        "# record = true           # record calls to this number": did,
        "# record = true           # record calls on this route": route,
    }
    for comment, value in lines.items():
        if value is not None:
            text = text.replace(comment, f"record = {str(value).lower()} #", 1)
    extra = "" if number is None else f"record = {str(number).lower()}\n"
    text += f'\n[tenants.demo.dids."{NUMBER}"]\nagent = "1001"\n{extra}'
    text += f'\n[recording]\ndirectory = "{tmp_path / "rec"}"\n'
    path = tmp_path / "switch.toml"
    path.write_text(text)
    return load_config(path)


def _invite(call_id: str = "abc@host") -> object:
    return parse_message(
        (
            "INVITE sip:400@demo.invalid SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\n"
            "From: <sip:5551234@demo.invalid>;tag=1\r\nTo: <sip:400@demo.invalid>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )


def _call(caller: Caller, dialled: str, target: Target | None = None, call_id="abc@host") -> Call:
    return Call(caller, dialled, _invite(call_id), None, None, target=target)  # type: ignore[arg-type]


def _recordings(config) -> Recordings:
    return Recordings(config, Router(config, MemoryLocationStore()))


@pytest.mark.parametrize(
    ("settings", "recorded"),
    [
        ({}, False),  # nothing says so: not recorded
        ({"tenant": True}, True),  # the tenant's default
        ({"tenant": True, "did": False}, False),  # the DID says otherwise
        ({"did": True}, True),
    ],
)
async def test_a_trunk_call_is_recorded_as_its_did_or_tenant_says(tmp_path, settings, recorded):
    config = _config(tmp_path, **settings)
    target = await Router(config, MemoryLocationStore()).route(TRUNK, "400")
    assert _recordings(config).wanted(_call(TRUNK, "400", target)) is recorded


@pytest.mark.parametrize("dialled", [NUMBER, "02079460000", "442079460000"])
def test_the_did_is_found_in_any_format_the_carrier_sends(tmp_path, dialled):
    config = _config(tmp_path, number=True)
    assert _recordings(config).wanted(_call(TRUNK, dialled))


@pytest.mark.parametrize(
    ("settings", "recorded"),
    [({}, False), ({"route": True}, True), ({"tenant": True, "route": False}, False)],
)
async def test_an_agents_call_out_is_recorded_as_its_route_or_tenant_says(
    tmp_path, settings, recorded
):
    config = _config(tmp_path, **settings)
    target = await Router(config, MemoryLocationStore()).route(AGENT, "95551234")
    assert isinstance(target, Target) and target.route == "external"
    assert _recordings(config).wanted(_call(AGENT, "95551234", target)) is recorded


def test_an_internal_call_follows_the_tenant(tmp_path):
    target = Target("sip:1002@127.0.0.1", None, "agent", "1002")  # type: ignore[arg-type]
    assert not _recordings(_config(tmp_path)).wanted(_call(AGENT, "1002", target))
    assert _recordings(_config(tmp_path, tenant=True)).wanted(_call(AGENT, "1002", target))


def _leg() -> LegMedia:
    return LegMedia(RtpPort(), RtcpPort())


def _send(leg: LegMedia, freq: float, i: int, ssrc: int) -> None:
    """One 20 ms PCMU packet of a `freq` tone into the leg's port, as from its phone."""
    t = (160 * i + np.arange(160)) / 8000
    payload = g711.ulaw_encode((8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())
    packet = struct.pack("!BBHII", 0x80, 0, i, 160 * i, ssrc) + payload
    leg.rtp.datagram_received(packet, ("127.0.0.1", 40000 + ssrc % 1000))


async def _talk(legs: list[tuple[LegMedia, float, int]], seconds: float, first: int = 0) -> None:
    """Each (leg, tone, ssrc) sends in real time (so the shared clock ticks)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(int(seconds * 50)):
        for leg, freq, ssrc in legs:
            _send(leg, freq, first + k, ssrc)
        await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 - loop.time()))


async def test_a_recording_from_answer_to_end(tmp_path):
    config = _config(tmp_path, did=True)
    recordings = _recordings(config)
    call = _call(TRUNK, "400", await Router(config, MemoryLocationStore()).route(TRUNK, "400"))
    call.media = MediaSession(_leg(), _leg())
    recordings.answered(call)
    path = tmp_path / "rec" / "demo"
    assert call.recording_path.startswith(str(path)) and call.recording_path.endswith(
        "/abc_host.wav"  # the Call-ID, made safe for a file name
    )
    await _talk([(call.media.a, 440, 1), (call.media.b, 1000, 2)], 0.6)
    status = recordings.pause(call)
    assert status.paused and status.call == call.id
    await _talk([(call.media.a, 440, 1), (call.media.b, 1000, 2)], 0.4, first=30)
    assert not recordings.resume(call).paused
    await _talk([(call.media.a, 440, 1), (call.media.b, 1000, 2)], 0.6, first=50)
    recordings.ended(call)
    await recordings.close()  # waits for the file's commit
    assert call.media.a.rtp.tap is None and call.media.b.rtp.tap is None
    ((begin, end),) = call.recording_paused
    assert 0.3 < end - begin < 1.5  # 0.4 s, give or take a busy machine
    meta = json.loads(Path(call.recording_path + ".json").read_text())
    assert meta["paused"] == [{"from": begin, "to": end}]
    assert meta["call"] == call.id and meta["call_id"] == "abc@host"
    assert meta["caller"] == "trunk demo/demo-trunk" and meta["dialled"] == "400"
    x = np.frombuffer(read_wav(call.recording_path).pcm, "<i2").astype(np.float64)
    left, right = x[0::2], x[1::2]
    assert peaks(left[800:4000], 8000, 1) == pytest.approx([440], abs=5)
    assert peaks(right[800:4000], 8000, 1) == pytest.approx([1000], abs=5)
    assert not left[int(begin * 8000) + 8 : int(end * 8000) - 8].any()
    with pytest.raises(NotRecorded, match=f"call {call.id} is not being recorded"):
        recordings.pause(call)


async def test_a_second_call_with_the_same_call_id_gets_its_own_file(tmp_path):
    config = _config(tmp_path, tenant=True)
    recordings = _recordings(config)
    paths = []
    for _ in range(2):
        call = _call(TRUNK, "400")
        call.media = MediaSession(_leg(), _leg())
        recordings.answered(call)
        paths.append(call.recording_path)
        recordings.ended(call)
    await recordings.close()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["abc_host.wav", "abc_host-2.wav"]


async def test_an_attended_transfer_is_followed(tmp_path):
    # Call 1 (recorded): the customer (leg A) and agent 1 (leg B). Agent 1
    # calls agent 2 (call 2) and joins the customer to agent 2: agent 2's
    # leg of call 2 becomes leg B of call 1; call 2 ends.
    config = _config(tmp_path, tenant=True)
    recordings = _recordings(config)
    first, second = _call(TRUNK, "400", call_id="one"), _call(AGENT, "1002", call_id="two")
    first.media, second.media = MediaSession(_leg(), _leg()), MediaSession(_leg(), _leg())
    recordings.answered(first)
    recordings.answered(second)
    customer, agent2 = first.media.a, second.media.b
    await _talk([(customer, 440, 1), (first.media.b, 700, 2)], 0.6)
    first.media = MediaSession(customer, agent2)  # what Transfers._attended does
    recordings.joined(first, "b", second)
    recordings.ended(second)
    await _talk([(customer, 440, 1), (agent2, 1500, 3)], 1.0, first=30)
    recordings.ended(first)
    await recordings.close()
    x = np.frombuffer(read_wav(first.recording_path).pcm, "<i2").astype(np.float64)
    right = x[1::2]
    assert peaks(right[1000:4000], 8000, 1) == pytest.approx([700], abs=5)
    assert peaks(right[-7000:-1000], 8000, 1) == pytest.approx([1500], abs=5)
    assert agent2.rtp.tap is None  # both recordings let go of it


async def test_a_call_joined_from_a_recorded_one_starts_recording(tmp_path):
    # Only call 2 is recorded (an inbound customer); the transfer is taken
    # on call 1, so call 2 ends: the customer's conversation goes on being
    # recorded, in a recording of call 1.
    config = _config(tmp_path, did=True)
    recordings = _recordings(config)
    router = Router(config, MemoryLocationStore())
    internal = Target("sip:1002@127.0.0.1", None, "agent", "1002")  # type: ignore[arg-type]
    first = _call(AGENT, "1002", internal, call_id="one")
    second = _call(TRUNK, "400", await router.route(TRUNK, "400"), call_id="two")
    first.media, second.media = MediaSession(_leg(), _leg()), MediaSession(_leg(), _leg())
    recordings.answered(first)
    recordings.answered(second)
    assert not first.recording_path and second.recording_path
    first.media = MediaSession(first.media.a, second.media.a)
    recordings.joined(first, "b", second)
    recordings.ended(second)
    assert first.recording_path.endswith("/one.wav")
    await _talk([(first.media.b, 440, 1)], 0.4)
    recordings.ended(first)
    await recordings.close()
    assert json.loads(Path(first.recording_path + ".json").read_text())["call_id"] == "one"


def test_a_recording_directory_that_cannot_be_written_leaves_the_call_alone(tmp_path, caplog):
    (tmp_path / "rec").write_text("a file where the directory should be")
    config = _config(tmp_path, tenant=True)
    recordings = _recordings(config)
    call = _call(TRUNK, "400")
    call.media = MediaSession(_leg(), _leg())
    with caplog.at_level("ERROR", logger="switch.call"):
        recordings.answered(call)
    assert call.recording_path == "" and not recordings.active
    assert "cannot record to" in caplog.text and "writable" in caplog.text


def test_leftovers_are_reported(tmp_path, caplog):
    config = _config(tmp_path)
    day = tmp_path / "rec" / "demo" / "2026" / "03" / "04"
    day.mkdir(parents=True)
    (day / ".x.wav.partial").write_bytes(b"RIFF")
    time.sleep(0.01)
    (day / ".y.opus.partial").write_bytes(b"OggS")
    with caplog.at_level("WARNING", logger="switch.call"):
        found = _recordings(config).report_leftovers()
    assert [p.name for p in found] == [".x.wav.partial", ".y.opus.partial"]
    assert caplog.text.count("was interrupted") == 2
