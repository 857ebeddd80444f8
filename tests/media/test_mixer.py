"""The mixer, pure: who hears whom checked by content (each participant
speaks a tone of its own frequency, each output is searched for tones by
FFT), the supervisor's roles, clipping, joining and leaving mid-stream, and
the fast path against a plain matrix product."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.mixer import MAX_PARTICIPANTS, Mixer, MixerError, Role

RATE = 8000
SAMPLES = 160  # 20 ms
TICKS = 10  # 200 ms of audio per check: FFT bins 5 Hz apart
# One frequency per participant, none a harmonic of another.
TONES = {"caller": 400, "agent": 700, "sup": 1100, "d": 1300, "e": 1700}
AMPLITUDE = 4000


def tone(frequency: float, tick: int, amplitude: float = AMPLITUDE) -> bytes:
    """Frame number `tick` of a continuous sine."""
    n = np.arange(tick * SAMPLES, (tick + 1) * SAMPLES)
    return np.rint(amplitude * np.sin(2 * np.pi * frequency * n / RATE)).astype("<i2").tobytes()


def frequencies(pcm: bytes) -> set[int]:
    """The tones in `pcm`: FFT peaks above a tenth of a test tone's level."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples)) / (len(samples) / 2)
    bins = np.fft.rfftfreq(len(samples), 1 / RATE)
    return {round(f) for f, a in zip(bins, spectrum, strict=True) if a > AMPLITUDE / 10}


def run(mixer: Mixer, speakers=None, ticks: int = TICKS) -> dict[str, bytes]:
    """Every participant (or `speakers`) speaks its tone for `ticks` frames;
    what each participant heard, end to end."""
    heard: dict[str, bytearray] = {p: bytearray() for p in mixer.participants}
    for tick in range(ticks):
        frames = {p: tone(TONES[p], tick) for p in (speakers or mixer.participants)}
        for p, frame in mixer.mix(frames).items():
            heard[p] += frame
    return {p: bytes(pcm) for p, pcm in heard.items()}


def heard_tones(mixer: Mixer, speakers=None) -> dict[str, set[int]]:
    return {p: frequencies(pcm) for p, pcm in run(mixer, speakers).items()}


def call(role: Role | None = None, **kwargs) -> Mixer:
    mixer = Mixer(RATE)
    mixer.join("caller")
    mixer.join("agent")
    if role is not None:
        mixer.join("sup", role, **kwargs)
    return mixer


def test_a_conference_member_hears_everyone_but_itself():
    mixer = Mixer(RATE)
    for p in ("caller", "agent", "sup", "d", "e"):
        mixer.join(p)
    everyone = set(TONES.values())
    assert heard_tones(mixer) == {p: everyone - {TONES[p]} for p in mixer.participants}


def test_a_two_party_call_hears_across():
    assert heard_tones(call()) == {"caller": {700}, "agent": {400}}


def test_a_mixed_frame_is_the_exact_sum_of_the_others():
    mixer = Mixer(RATE)
    for p in ("caller", "agent", "sup"):
        mixer.join(p)
    frames = {p: tone(TONES[p], 3) for p in ("caller", "agent", "sup")}
    out = mixer.mix(frames)

    def pcm(p):
        return np.frombuffer(frames[p], "<i2").astype(np.int32)

    assert np.array_equal(np.frombuffer(out["caller"], "<i2"), pcm("agent") + pcm("sup"))
    assert np.array_equal(np.frombuffer(out["sup"], "<i2"), pcm("caller") + pcm("agent"))


def test_listen_hears_both_and_is_heard_by_nobody():
    mixer = call(Role.LISTEN)
    assert heard_tones(mixer) == {"caller": {700}, "agent": {400}, "sup": {400, 700}}
    assert mixer.matrix() == {
        "caller": {"agent": 1.0},
        "agent": {"caller": 1.0},
        "sup": {"caller": 1.0, "agent": 1.0},
    }


def test_whisper_is_heard_by_the_agent_only_and_hears_both():
    mixer = call(Role.WHISPER, to="agent")
    assert heard_tones(mixer) == {"caller": {700}, "agent": {400, 1100}, "sup": {400, 700}}
    assert mixer.matrix() == {
        "caller": {"agent": 1.0},
        "agent": {"caller": 1.0, "sup": 1.0},
        "sup": {"caller": 1.0, "agent": 1.0},
    }


def test_barge_is_heard_by_both_and_hears_both():
    mixer = call(Role.BARGE)
    assert heard_tones(mixer) == {
        "caller": {700, 1100},
        "agent": {400, 1100},
        "sup": {400, 700},
    }


def test_a_source_is_heard_by_all_and_hears_nothing():
    mixer = call()
    mixer.join("sup", Role.SOURCE)  # say, an announcement into the call
    assert heard_tones(mixer) == {"caller": {700, 1100}, "agent": {400, 1100}, "sup": set()}


def test_a_supervisor_moves_from_listen_to_whisper_to_barge_and_back():
    mixer = call(Role.LISTEN)
    mixer.set_role("sup", Role.WHISPER, to="agent")
    assert heard_tones(mixer)["agent"] == {400, 1100}
    mixer.set_role("sup", Role.BARGE)
    assert heard_tones(mixer)["caller"] == {700, 1100}
    mixer.set_role("sup", Role.LISTEN)
    assert heard_tones(mixer) == {"caller": {700}, "agent": {400}, "sup": {400, 700}}
    assert mixer.role("sup") is Role.LISTEN


def test_two_supervisors_one_listening_one_whispering():
    mixer = call(Role.WHISPER, to="agent")
    mixer.join("d", Role.LISTEN)
    assert heard_tones(mixer) == {
        "caller": {700},
        "agent": {400, 1100},
        "sup": {400, 700},
        "d": {400, 700},  # the listener does not hear the whisper: it is for the agent
    }


def test_a_participant_without_a_frame_this_tick_is_silence():
    mixer = Mixer(RATE)
    for p in ("caller", "agent", "sup"):
        mixer.join(p)
    assert heard_tones(mixer, speakers=["caller", "sup"]) == {
        "caller": {1100},
        "agent": {400, 1100},
        "sup": {400},
    }
    assert mixer.mix({}) == {p: bytes(2 * SAMPLES) for p in ("caller", "agent", "sup")}


def test_join_and_leave_mid_stream():
    mixer = call()
    heard = {"caller": bytearray(), "agent": bytearray()}
    for tick in range(30):
        if tick == 10:
            mixer.join("sup", Role.BARGE)
            heard["sup"] = bytearray()
        if tick == 20:
            mixer.leave("caller")
        frames = {p: tone(TONES[p], tick) for p in ("caller", "agent", "sup")}
        for p, frame in mixer.mix(frames).items():  # frames of non-members are ignored
            heard[p] += frame
    before, during, after = (bytes(heard["agent"][i * 3200 : (i + 1) * 3200]) for i in range(3))
    assert frequencies(before) == {400}
    assert frequencies(during) == {400, 1100}
    assert frequencies(after) == {1100}
    assert len(heard["caller"]) == 20 * 2 * SAMPLES
    assert frequencies(bytes(heard["sup"][: 10 * 2 * SAMPLES])) == {400, 700}
    assert "caller" not in mixer and mixer.participants == ("agent", "sup")


def test_a_whisper_whose_agent_left_is_heard_by_nobody():
    mixer = call(Role.WHISPER, to="agent")
    mixer.join("d")
    mixer.leave("agent")
    assert heard_tones(mixer) == {"caller": {1300}, "sup": {400, 1300}, "d": {400}}


def test_an_empty_mixer_mixes_nothing():
    mixer = Mixer(RATE)
    assert mixer.mix({"ghost": bytes(320)}) == {}
    mixer.join("a")
    mixer.leave("a")
    mixer.leave("a")  # twice: no error
    assert len(mixer) == 0 and mixer.mix({}) == {}


def test_a_sum_beyond_16_bits_is_clipped_not_wrapped():
    mixer = Mixer(RATE)
    for p in ("a", "b", "c"):
        mixer.join(p)
    loud = np.full(SAMPLES, 30000, "<i2").tobytes()
    quiet = np.full(SAMPLES, -30000, "<i2").tobytes()
    out = mixer.mix({"a": loud, "b": loud, "c": loud})
    assert set(np.frombuffer(out["a"], "<i2")) == {32767}
    assert mixer.clipped == 3 * SAMPLES
    out = mixer.mix({"a": quiet, "b": quiet, "c": quiet})
    assert set(np.frombuffer(out["c"], "<i2")) == {-32768}
    assert mixer.clipped == 6 * SAMPLES
    out = mixer.mix({"a": loud, "b": quiet, "c": loud})  # cancels out for c, clips for b
    assert set(np.frombuffer(out["c"], "<i2")) == {0}
    assert set(np.frombuffer(out["b"], "<i2")) == {32767}


def test_gains_scale_a_speaker_and_the_matrix_can_be_edited_cell_by_cell():
    mixer = call()
    mixer.join("sup", gain=0.5)
    frames = {p: tone(TONES[p], 0) for p in ("caller", "agent", "sup")}
    out = mixer.mix({"sup": frames["sup"]})
    half = np.rint(np.frombuffer(frames["sup"], "<i2") * np.float32(0.5)).astype("<i2")
    assert np.array_equal(np.frombuffer(out["caller"], "<i2"), half)
    mixer.set_gain("sup", 1.0)
    mixer.set_hears("caller", "sup", 0.0)  # the caller stops hearing sup
    mixer.set_hears("sup", "caller", 2.0)
    out = mixer.mix(frames)
    assert out["caller"] == frames["agent"]
    expected = 2 * np.frombuffer(frames["caller"], "<i2").astype(np.int32) + np.frombuffer(
        frames["agent"], "<i2"
    )
    assert np.array_equal(np.frombuffer(out["sup"], "<i2"), expected)
    assert mixer.hears("sup", "caller") == 2.0 and mixer.hears("caller", "sup") == 0.0
    mixer.clear_hears("caller", "sup")
    assert mixer.hears("caller", "sup") == 1.0


def test_a_mixer_at_48k_takes_960_sample_frames():
    mixer = Mixer(48000)
    assert mixer.samples == 960 and mixer.frame_bytes == 1920
    mixer.join("a")
    mixer.join("b")
    frame = np.arange(960, dtype="<i2").tobytes()
    assert mixer.mix({"a": frame})["b"] == frame


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda m: m.mix({"caller": bytes(100)}), "frame of 100 bytes from 'caller'"),
        (lambda m: m.join("sup", Role.WHISPER), "say who hears it"),
        (lambda m: m.join("sup", Role.WHISPER, to="nobody"), "'nobody' is not in this mixer"),
        (lambda m: m.join("agent", Role.WHISPER, to="agent"), "cannot whisper to itself"),
        (lambda m: m.join("sup", Role.LISTEN, to="agent"), "to= is for a whisper"),
        (lambda m: m.join("sup", gain=-1), "not a finite number"),
        (lambda m: m.set_gain("caller", float("nan")), "not a finite number"),
        (lambda m: m.set_gain("caller", "loud"), "gain 'loud' is not a number"),
        (lambda m: m.set_hears("caller", "caller", 1.0), "cannot hear itself"),
        (lambda m: m.set_role("ghost", Role.BARGE), "'ghost' is not in this mixer"),
        (lambda m: Mixer(11025, 10), "whole number of samples"),
    ],
)
def test_bad_calls_get_a_clear_error_and_change_nothing(action, message):
    mixer = call()
    with pytest.raises(MixerError, match=message):
        action(mixer)
    assert mixer.participants == ("caller", "agent")
    assert heard_tones(mixer) == {"caller": {700}, "agent": {400}}


def test_a_mixer_has_a_size_limit():
    mixer = Mixer(RATE)
    for p in range(MAX_PARTICIPANTS):
        mixer.join(p)
    with pytest.raises(MixerError, match="at most"):
        mixer.join("one more")


ROLES = st.sampled_from([Role.PARTY, Role.LISTEN, Role.BARGE, Role.SOURCE, Role.WHISPER])


@settings(max_examples=60, deadline=None)
@given(
    roles=st.lists(ROLES, min_size=1, max_size=7),
    gains=st.lists(st.sampled_from([0.0, 0.25, 1.0, 1.5]), min_size=7, max_size=7),
    overrides=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from([0.0, 0.5, 1.0])),
        max_size=5,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_fast_mix_equals_the_matrix_product(roles, gains, overrides, seed):
    """Whatever the roles and edits, each output is Σ W[l][s]·gain[s]·frame[s], clipped."""
    mixer = Mixer(RATE)
    for i, role in enumerate(roles):
        if role is Role.WHISPER and i > 0:
            mixer.join(i, role, to=i - 1, gain=gains[i])
        else:
            mixer.join(i, Role.PARTY if role is Role.WHISPER else role, gain=gains[i])
    for listener, speaker, gain in overrides:
        if listener != speaker and listener in mixer and speaker in mixer:
            mixer.set_hears(listener, speaker, gain)
    rng = np.random.default_rng(seed)
    frames = {
        p: rng.integers(-20000, 20000, SAMPLES, dtype="<i2").tobytes() for p in mixer.participants
    }
    out = mixer.mix(frames)
    matrix = mixer.matrix()
    for listener in mixer.participants:
        expected = np.zeros(SAMPLES, np.float64)
        for speaker, weight in matrix[listener].items():
            expected += weight * np.float32(gains[speaker]) * np.frombuffer(frames[speaker], "<i2")
        expected = np.clip(np.rint(expected), -32768, 32767)
        assert np.abs(np.frombuffer(out[listener], "<i2") - expected).max() <= 1
