"""The player, frame by frame: counts and padding, items played as one
stream, rates, loops, tones without end, stop, barge-in, music on hold."""

from __future__ import annotations

import pytest

from switch.media.player import Clip, Player, Silence, ToneItem, music_on_hold
from switch.media.tones import BEEP, melody, progress_tone, render
from switch.media.wav import Audio
from tests.media.audio import peaks


def _ramp(samples: int, rate: int = 8000) -> Audio:
    """Audio whose every sample is different: where it comes from is visible."""
    return Audio(
        b"".join((i % 30000).to_bytes(2, "little", signed=True) for i in range(samples)), rate
    )


def test_one_second_is_fifty_frames():
    clip = _ramp(8000)
    player = Player([Clip(clip)])
    frames = list(player)
    assert len(frames) == 50 and {len(f) for f in frames} == {320}
    assert b"".join(frames) == clip.pcm
    assert player.finished and player.reason == "end" and player.frames == 50
    assert player.next_frame() is None


def test_the_last_frame_is_padded_with_silence():
    clip = _ramp(8080)  # 1.01 s
    frames = list(Player([clip]))
    assert len(frames) == 51
    assert frames[-1] == clip.pcm[-160:] + bytes(160)


def test_items_play_as_one_stream():
    a, b = _ramp(240), Audio(bytes(range(256)) * 2, 8000)  # 30 ms and 32 ms
    frames = list(Player([Clip(a), Silence(10), b]))
    stream = a.pcm + bytes(160) + b.pcm
    assert len(frames) == 4  # 72 ms
    assert b"".join(frames) == stream + bytes(4 * 320 - len(stream))


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_frames_at_the_legs_rate(rate):
    beep = Audio(render(BEEP, 16000), 16000)  # a 16 kHz prompt
    frames = list(Player([beep], rate))
    assert len(frames) == 13  # 250 ms: 12.5 frames
    assert {len(f) for f in frames} == {rate // 50 * 2}
    assert peaks(b"".join(frames[1:11]), rate, 1) == pytest.approx([1000], abs=5)


def test_a_loop_starts_over():
    clip = _ramp(240)
    player = Player([clip, Silence(10)], loop=True)
    stream = b"".join(player.next_frame() for _ in range(10))  # 200 ms: five passes of 40 ms
    assert stream == (clip.pcm + bytes(160)) * 5
    assert not player.finished


def test_a_tone_without_end_until_stopped():
    busy = progress_tone("us", "busy")
    player = Player([ToneItem(busy)])
    frames = [player.next_frame() for _ in range(500)]  # 10 s: ten cycles
    assert b"".join(frames) == render(busy, 8000) * 10
    player.stop()
    assert player.finished and player.reason == "stopped"
    assert player.next_frame() is None


def test_a_tone_for_a_time_wraps_its_cycle_inside_frames():
    # The UK busy cycle is 750 ms (6000 samples), not a multiple of 20 ms.
    busy = progress_tone("uk", "busy")
    frames = list(Player([ToneItem(busy, 2000)]))
    assert len(frames) == 100
    assert b"".join(frames) == (render(busy, 8000) * 3)[: 2 * 16000]


def test_barge_in_stops_a_prompt():
    player = Player([_ramp(16000), Silence(1000)])
    for _ in range(10):
        player.next_frame()
    assert player.digit("5") is True
    assert player.finished and player.reason == "digit" and player.digit_pressed == "5"
    assert player.next_frame() is None
    assert player.digit("6") is False  # already finished: the first digit stays
    assert player.digit_pressed == "5"


def test_a_prompt_that_must_be_heard_is_not_interrupted():
    player = Player([_ramp(800)], interruptible=False)
    assert player.digit("1") is False
    assert len(list(player)) == 5 and player.reason == "end" and player.digit_pressed is None


def test_an_empty_playlist_is_finished_at_once():
    for items in ([], [Silence(0)], [Audio(b"", 8000)]):
        player = Player(items, loop=True)
        assert player.finished and player.next_frame() is None


def test_music_on_hold_loops_the_melody_and_ignores_keys():
    moh = music_on_hold(8000)
    tune = melody(8000)
    frames = len(tune) // 320 + 1
    stream = b"".join(moh.next_frame() for _ in range(2 * frames))
    assert stream == (tune * 3)[: len(stream)]
    assert moh.digit("1") is False and not moh.finished


def test_music_on_hold_from_a_queues_file():
    music = Audio(render(BEEP, 48000), 48000)  # 250 ms at 48 kHz
    moh = music_on_hold(16000, music)
    stream = b"".join(moh.next_frame() for _ in range(50))  # 1 s: four passes
    assert len(stream) == 32000
    assert peaks(stream, 16000, 1) == pytest.approx([1000], abs=2)
    moh.stop()
    assert moh.reason == "stopped"


def test_what_the_player_does_not_play():
    with pytest.raises(ValueError, match="8000, 16000 or 48000 Hz, not 44100"):
        Player([], 44100)
    with pytest.raises(ValueError, match="mono audio; this clip has 2 channels"):
        Player([Audio(bytes(8), 8000, 2)])
    with pytest.raises(TypeError, match="not a playlist item"):
        Player(["hello.wav"])
