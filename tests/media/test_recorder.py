"""The recorder: the two sides aligned to the sample (gaps, jitter, a
silent side), pause and resume leaving silence, the file and its metadata,
and atomicity (a recorder killed midway leaves nothing under the final name)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.recorder import AGENT, CALLER, Recorder, Tracks, interleave, leftovers
from switch.media.tones import Step, Tone, render
from switch.media.wav import read_wav
from tests.media.audio import peaks, rms

RATE = 8000
FRAME = 160  # samples in 20 ms at 8 kHz
TONE = render(Tone((Step((400,), 5000),)), RATE)  # 5 s of a steady 400 Hz


def _frames(pcm: bytes, start: float = 0.0):
    """(time, frame) pairs of 20 ms frames of `pcm` beginning at `start`."""
    for i in range(0, len(pcm) // (2 * FRAME)):
        yield start + i * 0.02, pcm[2 * FRAME * i : 2 * FRAME * (i + 1)]


def _click_at(seconds: float, length: float = 3.0) -> bytes:
    """Silence with one full-scale sample at `seconds`."""
    x = np.zeros(int(length * RATE), "<i2")
    x[round(seconds * RATE)] = 30000
    return x.tobytes()


def _channels(stereo: bytes) -> tuple[np.ndarray, np.ndarray]:
    x = np.frombuffer(stereo, "<i2")
    return x[0::2], x[1::2]


def test_interleave():
    left = np.array([1, 2, 3], "<i2").tobytes()
    right = np.array([-1, -2, -3], "<i2").tobytes()
    assert np.frombuffer(interleave(left, right), "<i2").tolist() == [1, -1, 2, -2, 3, -3]


def test_clicks_land_at_their_sample_on_their_channel():
    tracks = Tracks(RATE)
    out = b""
    # Both sides fed frame by frame, interleaved as they would arrive; the
    # click is in the middle of a frame (at sample 8000 and 16003).
    left, right = _frames(_click_at(1.0)), _frames(_click_at(2.0 + 3 / RATE))
    for (tl, fl), (tr, fr) in zip(left, right, strict=True):
        out += tracks.feed(CALLER, tl, fl)
        out += tracks.feed(AGENT, tr, fr)
    out += tracks.finish()
    caller, agent = _channels(out)
    assert len(caller) == len(agent) == 3 * RATE
    assert np.flatnonzero(caller).tolist() == [8000]
    assert np.flatnonzero(agent).tolist() == [16003]


def test_gaps_become_silence_and_keep_the_channels_aligned():
    tracks = Tracks(RATE)
    out = b""
    click = _click_at(1.0)
    # The caller's phone sends only from 0.9 s to 1.1 s (silence
    # suppression), the agent's from 1.5 s, with lost packets at 1.98 s.
    for t, frame in _frames(click):
        if 0.9 <= t < 1.1:
            out += tracks.feed(CALLER, t, frame)
    for t, frame in _frames(_click_at(2.0)):
        if t >= 1.5 and not 1.95 < t < 1.99:
            out += tracks.feed(AGENT, t, frame)
    out += tracks.finish(3.0)
    caller, agent = _channels(out)
    assert len(caller) == 3 * RATE
    assert np.flatnonzero(caller).tolist() == [8000]
    assert np.flatnonzero(agent).tolist() == [16000]


@settings(max_examples=50, deadline=None)
@given(
    st.sets(st.integers(0, 99)),
    st.sets(st.integers(0, 99)),
    st.floats(0.1, 2.0),
)
def test_every_frame_lands_where_its_time_says_whatever_is_missing(left, right, skew):
    """Any frames missing on either side, in any pattern: each frame fed is
    at its own sample, everything else is silence, both channels as long."""
    tracks = Tracks(RATE, max_skew=skew)
    fed = sorted([(i, CALLER) for i in left] + [(i, AGENT) for i in right])
    out = b""
    for i, channel in fed:
        value = 1000 * (channel + 1) + i
        out += tracks.feed(channel, i * 0.02, np.full(FRAME, value, "<i2").tobytes())
    out += tracks.finish(2.0)
    for channel, frames in ((CALLER, left), (AGENT, right)):
        samples = _channels(out)[channel]
        assert len(samples) == 2 * RATE
        expected = np.zeros(2 * RATE, "<i2")
        for i in frames:
            expected[i * FRAME : (i + 1) * FRAME] = 1000 * (channel + 1) + i
        assert (samples == expected).all()


def test_jitter_in_the_timestamps_does_not_cut_words():
    tracks = Tracks(RATE)
    out = b""
    jitter = [0.004, -0.003, 0.009, -0.008, 0.0]
    for i, (t, frame) in enumerate(_frames(TONE[: 2 * RATE * 2])):  # 2 s
        out += tracks.feed(CALLER, t + jitter[i % 5], frame)
        out += tracks.feed(AGENT, t, frame)
    out += tracks.finish()
    caller, agent = _channels(out)
    # Contiguous: not a sample of silence inserted nor lost.
    assert caller.tobytes() == TONE[: 2 * RATE * 2]
    assert agent.tobytes() == caller.tobytes()


def test_audio_stamped_before_what_was_recorded_is_cut():
    tracks = Tracks(RATE)
    frame = np.full(FRAME, 1000, "<i2").tobytes()
    tracks.feed(CALLER, 0.0, frame)
    tracks.feed(CALLER, 0.0, np.full(FRAME, 7, "<i2").tobytes())  # a duplicate packet
    tracks.feed(CALLER, 0.02 - 0.015, np.full(FRAME, 5, "<i2").tobytes())  # 15 ms back
    caller, _ = _channels(tracks.finish())
    assert caller[:FRAME].tolist() == [1000] * FRAME
    # The duplicate is dropped; the 15 ms-early frame keeps its last 5 ms.
    assert caller[FRAME:].tolist() == [5] * 40


def test_a_frame_with_a_broken_time_is_refused():
    tracks = Tracks(RATE)
    frame = np.full(FRAME, 1000, "<i2").tobytes()
    out = tracks.feed(CALLER, 0.0, frame)
    assert tracks.feed(AGENT, 86400.0, frame) == b""  # a day later: a timestamp jump
    assert tracks.refused == 1
    out += tracks.feed(AGENT, 599.0, frame)  # ten minutes of silence is a call on hold
    _, agent = _channels(out + tracks.finish())
    assert len(agent) == 599 * RATE + FRAME and agent[-FRAME:].all() and not agent[:-FRAME].any()
    assert tracks.refused == 1


def test_a_silent_side_does_not_hold_the_other_back():
    tracks = Tracks(RATE, max_skew=1.0)
    out = b""
    for t, frame in _frames(TONE[: 2 * RATE * 3]):  # the caller speaks 3 s, the agent is muted
        out += tracks.feed(CALLER, t, frame)
    caller, agent = _channels(out)
    # Written as it comes, at most a second behind the caller.
    assert len(caller) >= 2 * RATE - FRAME
    assert not agent.any()
    assert caller.tobytes() == TONE[: len(caller) * 2]


def test_paused_audio_is_silence_on_both_channels():
    tracks = Tracks(RATE)
    out = b""
    for t, frame in _frames(TONE[: 2 * RATE * 4]):  # 4 s of tone both sides
        if round(t, 2) == 1.0:
            out += tracks.pause(1.0)
        if round(t, 2) == 2.5:
            tracks.resume(2.5)
        out += tracks.feed(CALLER, t, frame)
        out += tracks.feed(AGENT, t, frame)
    out += tracks.finish()
    for channel in _channels(out):
        assert len(channel) == 4 * RATE
        assert not channel[RATE : int(2.5 * RATE)].any()  # the card number: gone
        assert channel[:RATE].tobytes() == TONE[: 2 * RATE]  # before: all there
        assert channel[int(2.5 * RATE) :].tobytes() == TONE[5 * RATE : 8 * RATE]  # after
    assert tracks.paused == [(RATE, int(2.5 * RATE))]


def test_audio_received_before_the_pause_but_stamped_after_it_goes_too():
    tracks = Tracks(RATE)
    frame = np.full(FRAME, 1000, "<i2").tobytes()
    out = b""
    for t, _ in _frames(bytes(2 * RATE)):  # the caller is 1 s ahead of the agent
        out += tracks.feed(CALLER, t, frame)
    assert out == b""  # the agent may still send: nothing is final yet
    out += tracks.pause(0.5)
    out += tracks.feed(CALLER, 0.6, frame)  # dropped: paused
    tracks.resume(0.8)
    out += tracks.feed(CALLER, 0.7, frame)  # stamped inside the pause: dropped
    caller, agent = _channels(out + tracks.finish(1.0))
    assert caller[: RATE // 2].all() and not caller[RATE // 2 :].any()
    assert not agent.any() and len(agent) == RATE


def test_finish_while_paused_and_twice_paused():
    tracks = Tracks(RATE)
    tracks.pause(0.0)
    tracks.pause(0.5)  # already paused: the first time counts
    tracks.resume(1.0)
    tracks.resume(1.5)  # not paused: nothing
    out = tracks.pause(2.0)
    out += tracks.finish(3.0)
    assert len(out) == 2 * 2 * 3 * RATE and not any(out)
    assert tracks.paused == [(0, RATE), (2 * RATE, 3 * RATE)]


def test_a_recording_and_its_metadata(tmp_path):
    path = tmp_path / "2026" / "call-1.wav"
    began = datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC)
    rec = Recorder(path, call_id="abc@host", tenant="acme", start=100.0, started_at=began)
    left, right = _frames(_click_at(1.0)), _frames(_click_at(2.0))
    for (t, caller), (_, agent) in zip(left, right, strict=True):
        if round(t, 2) == 2.5:
            rec.pause(100.0 + t)  # the agent asks for the card number
        if round(t, 2) == 2.76:
            rec.resume(100.0 + 2.75)
        rec.feed(CALLER, 100.0 + t, caller)
        rec.feed(AGENT, 100.0 + t, agent)
    assert not path.exists()
    meta = rec.close(100.0 + 3.0)

    audio = read_wav(path)
    assert (audio.rate, audio.channels, audio.duration) == (8000, 2, 3.0)
    caller, agent = _channels(audio.pcm)
    assert np.flatnonzero(caller).tolist() == [8000]
    assert np.flatnonzero(agent).tolist() == [16000]
    assert json.loads((tmp_path / "2026" / "call-1.wav.json").read_text()) == meta
    assert meta == {
        "call_id": "abc@host",
        "tenant": "acme",
        "file": "call-1.wav",
        "format": "wav",
        "codec": "pcm_s16le",
        "rate": 8000,
        "channels": ["caller", "agent"],
        "started_at": "2026-11-23T14:00:00+00:00",
        "ended_at": "2026-11-23T14:00:03+00:00",
        "duration": 3.0,
        "paused_duration": 0.25,
        "paused": [{"from": 2.5, "to": 2.75}],
        "bytes": 44 + 4 * 3 * 8000,
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["call-1.wav", "call-1.wav.json"]
    with pytest.raises(RuntimeError, match="already closed"):
        rec.close(104.0)


def test_a_recording_at_16_khz(tmp_path):
    rec = Recorder(tmp_path / "r.wav", call_id="c", tenant="t", start=0.0, rate=16000)
    frame = bytes(640)
    rec.feed(CALLER, 0.0, frame)
    rec.feed(AGENT, 0.0, frame)
    rec.close(1.0)
    audio = read_wav(tmp_path / "r.wav")
    assert (audio.rate, audio.channels, audio.samples) == (16000, 2, 16000)


def test_an_aborted_recording_leaves_nothing(tmp_path):
    rec = Recorder(tmp_path / "r.wav", call_id="c", tenant="t", start=0.0)
    rec.feed(CALLER, 0.0, bytes(320))
    rec.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_recorder_killed_midway_leaves_no_file_under_the_final_name(tmp_path):
    path = tmp_path / "call.wav"
    script = textwrap.dedent(
        f"""
        import sys, time
        from switch.media.recorder import Recorder, CALLER, AGENT
        rec = Recorder({str(path)!r}, call_id="c", tenant="t", start=0.0)
        for i in range(250):  # 5 s
            rec.feed(CALLER, i * 0.02, b"\\x10\\x00" * 160)
            rec.feed(AGENT, i * 0.02, b"\\x20\\x00" * 160)
        rec.flush()
        print("recording", flush=True)
        time.sleep(60)
        """
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "recording"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert not path.exists()
    assert not (tmp_path / "call.wav.json").exists()
    partial = tmp_path / ".call.wav.partial"
    assert partial.exists() and partial.stat().st_size > 44  # what was written so far
    assert leftovers(tmp_path) == [partial]  # what a restarted node reports


def test_leftovers_are_found_at_any_depth_and_complete_recordings_are_not(tmp_path):
    done = Recorder(tmp_path / "a.wav", call_id="a", tenant="t", start=0.0)
    done.close(1.0)
    open_one = Recorder(
        tmp_path / "acme" / "2026-11-23" / "b.wav", call_id="b", tenant="t", start=0.0
    )
    assert leftovers(tmp_path) == [tmp_path / "acme" / "2026-11-23" / ".b.wav.partial"]
    open_one.abort()
    assert leftovers(tmp_path) == []


def test_what_the_recorder_refuses():
    with pytest.raises(ValueError, match="8000, 16000 or 48000 Hz, not 11025"):
        Tracks(11025)


def test_a_recording_is_never_overwritten(tmp_path):
    Recorder(tmp_path / "r.wav", call_id="c", tenant="t", start=0.0).close(1.0)
    before = (tmp_path / "r.wav").read_bytes()
    with pytest.raises(FileExistsError, match=r"r\.wav exists already"):
        Recorder(tmp_path / "r.wav", call_id="c", tenant="t", start=0.0)
    assert (tmp_path / "r.wav").read_bytes() == before


def _decode_opus(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """A recorder's Opus file decoded at 48 kHz: (left, right, samples)."""
    import opuslib_next

    from switch.media.ogg import read_packets, read_pages

    pages = list(read_pages(path.read_bytes()))
    head, tags, *packets = read_packets(pages)
    assert head.startswith(b"OpusHead") and tags.startswith(b"OpusTags")
    pre_skip = int.from_bytes(head[10:12], "little")
    decoder = opuslib_next.Decoder(48000, 2)
    x = np.frombuffer(b"".join(decoder.decode(p, 5760) for p in packets), "<i2")
    length = pages[-1].granule - pre_skip
    x = x[2 * pre_skip : 2 * (pre_skip + length)].astype(np.float64)
    return x[0::2], x[1::2], length


def test_an_opus_recording_with_a_pause(tmp_path):
    path = tmp_path / "call.opus"
    rec = Recorder(path, call_id="c", tenant="t", start=0.0, format="opus")
    left = render(Tone((Step((440,), 3000),)), RATE)
    right = render(Tone((Step((1000,), 3000),)), RATE)
    for (t, a), (_, b) in zip(_frames(left), _frames(right), strict=True):
        if round(t, 2) == 1.0:
            rec.pause(t)
        if round(t, 2) == 2.0:
            rec.resume(t)
        rec.feed(CALLER, t, a)
        rec.feed(AGENT, t, b)
    meta = rec.close(3.0)
    assert (meta["format"], meta["codec"], meta["duration"]) == ("opus", "opus", 3.0)
    assert meta["paused"] == [{"from": 1.0, "to": 2.0}] and meta["paused_duration"] == 1.0
    assert meta["bytes"] == path.stat().st_size
    assert 4000 < meta["bytes"] < 3 * 32000 / 8 * 1.3  # at most about 32 kbit/s (VBR)
    caller, agent, length = _decode_opus(path)
    assert length == 3 * 48000  # exactly as long as the call, trimmed
    for channel, freq in ((caller, 440), (agent, 1000)):
        assert peaks(channel[4800:43200], 48000, 1) == pytest.approx([freq], abs=3)
        assert peaks(channel[105600:139200], 48000, 1) == pytest.approx([freq], abs=3)
        assert rms(channel[49000:95000]) < 20  # paused: silence
        assert rms(channel[105600:139200]) > 2000


def test_a_short_opus_recording_is_still_a_whole_file(tmp_path):
    path = tmp_path / "short.opus"
    rec = Recorder(path, call_id="c", tenant="t", start=0.0, format="opus")
    meta = rec.close(0.0)  # answered and hung up at once: nothing recorded
    assert meta["duration"] == 0.0
    _, _, length = _decode_opus(path)
    assert length == 0


def test_an_abandoned_recording_stays_as_a_leftover(tmp_path):
    rec = Recorder(tmp_path / "r.wav", call_id="c", tenant="t", start=0.0)
    rec.feed(CALLER, 0.0, bytes(320))
    rec.abandon()  # the disk filled up, say
    assert leftovers(tmp_path) == [tmp_path / ".r.wav.partial"]
    assert not (tmp_path / "r.wav").exists()


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="recordings are wav or opus, not 'mp3'"):
        Recorder(tmp_path / "r.mp3", call_id="c", tenant="t", start=0.0, format="mp3")
    assert list(tmp_path.iterdir()) == []
