"""Generated tones: call progress, a beep, silence, music on hold.

A tone is a cadence: a list of steps, each a set of frequencies sounding
together for some milliseconds (no frequencies: a pause). `render()` turns
one full cycle of a cadence into linear PCM (16-bit little-endian mono) at
a leg's rate, once; the player then loops over those bytes, so a tone costs
a slice per 20 ms frame.

Call-progress tones follow ITU-T E.180 and the national plans an operator
expects to hear:

| country | ringback | busy |
|---|---|---|
| us (North America) | 440+480 Hz, 2 s on, 4 s off | 480+620 Hz, 0.5 s on, 0.5 s off |
| uk | 400+450 Hz, 0.4 on, 0.2 off, 0.4 on, 2 off | 400 Hz, 0.375 s on, 0.375 s off |
| eu (CEPT: de, fr, it, nl, es...) | 425 Hz, 1 s on, 4 s off | 425 Hz, 0.5 s on, 0.5 s off |
| cn | 450 Hz, 1 s on, 4 s off | 450 Hz, 0.35 s on, 0.35 s off |

Levels are in dBm0 per frequency: in G.711 a full-scale sine is +3.17
dBm0, so 0 dBm0 is a sine of amplitude 32767 / 10^(3.17/20), about 22 753.
Steps start and end with a 4 ms ramp: a tone switched on at full amplitude
clicks.

Music on hold, when a queue has no file, is `melody()`: a short tune of
soft, decaying notes (a fundamental and two quieter harmonics), looped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DBM0_AMPLITUDE = 32767 * 10 ** (-3.17 / 20)  # 0 dBm0 in 16-bit linear
_RAMP = 0.004  # seconds of fade in and out of each step


@dataclass(frozen=True)
class Step:
    """Frequencies (Hz) sounding together for `ms` milliseconds; none: a pause."""

    freqs: tuple[float, ...]
    ms: int


@dataclass(frozen=True)
class Tone:
    """A cadence of steps, repeated; `level` in dBm0 per frequency."""

    steps: tuple[Step, ...]
    level: float = -13.0

    @property
    def cycle_ms(self) -> int:
        return sum(step.ms for step in self.steps)


def _on_off(freqs: tuple[float, ...], *ms: int, level: float = -13.0) -> Tone:
    """Alternating on and off times, starting with on."""
    steps = tuple(Step(freqs if i % 2 == 0 else (), t) for i, t in enumerate(ms))
    return Tone(steps, level)


# Per country: the name an operator writes in the config -> its tones.
PROGRESS_TONES: dict[str, dict[str, Tone]] = {
    "us": {
        "ringback": _on_off((440, 480), 2000, 4000, level=-19),
        "busy": _on_off((480, 620), 500, 500, level=-24),
        "congestion": _on_off((480, 620), 250, 250, level=-24),
    },
    "uk": {
        "ringback": _on_off((400, 450), 400, 200, 400, 2000, level=-19),
        "busy": _on_off((400,), 375, 375, level=-13),
        "congestion": _on_off((400,), 400, 350, 225, 525, level=-13),
    },
    "eu": {
        "ringback": _on_off((425,), 1000, 4000, level=-13),
        "busy": _on_off((425,), 500, 500, level=-13),
        "congestion": _on_off((425,), 250, 250, level=-13),
    },
    "cn": {
        "ringback": _on_off((450,), 1000, 4000, level=-13),
        "busy": _on_off((450,), 350, 350, level=-13),
        "congestion": _on_off((450,), 700, 700, level=-13),
    },
}
COUNTRIES = tuple(PROGRESS_TONES)
# The beep before a voicemail or a recording: 1 kHz for a quarter second.
BEEP = Tone((Step((1000,), 250),), level=-10)


def progress_tone(country: str, name: str) -> Tone:
    """The `name` tone ("ringback", "busy", "congestion") of `country`."""
    tones = PROGRESS_TONES.get(country.lower())
    if tones is None:
        raise ValueError(
            f"no call-progress tones for country {country!r}: use one of {', '.join(COUNTRIES)}"
        )
    tone = tones.get(name)
    if tone is None:
        raise ValueError(f"no tone {name!r}: use one of {', '.join(tones)}")
    return tone


def silence(ms: int, rate: int) -> bytes:
    """`ms` milliseconds of silence in linear PCM at `rate`."""
    return bytes(2 * (rate * ms // 1000))


def _to_pcm(signal: np.ndarray) -> bytes:
    return np.clip(np.rint(signal), -32768, 32767).astype("<i2").tobytes()


def _ramp(n: int, rate: int) -> np.ndarray:
    envelope = np.ones(n)
    k = min(int(_RAMP * rate), n // 2)
    if k:
        rise = np.linspace(0.0, 1.0, k, endpoint=False)
        envelope[:k] = rise
        envelope[n - k :] = rise[::-1]
    return envelope


def render(tone: Tone, rate: int) -> bytes:
    """One full cycle of `tone` as linear PCM at `rate`."""
    amplitude = DBM0_AMPLITUDE * 10 ** (tone.level / 20)
    parts = []
    start = 0  # samples since the cycle began: the phase runs on across steps
    for step in tone.steps:
        n = rate * step.ms // 1000
        if step.freqs:
            t = (start + np.arange(n)) / rate
            wave = sum(np.sin(2 * np.pi * f * t) for f in step.freqs)
            parts.append(amplitude * wave * _ramp(n, rate))
        else:
            parts.append(np.zeros(n))
        start += n
    return _to_pcm(np.concatenate(parts)) if parts else b""


# The hold melody: (MIDI note, beats), 0 for a rest. A slow, calm phrase in
# C major, about 12 seconds long at 80 beats a minute.
_TUNE = (
    (72, 1), (76, 1), (79, 1), (76, 1), (74, 1), (77, 1), (81, 2),
    (79, 1), (76, 1), (72, 1), (74, 1), (76, 2), (0, 2),
)  # fmt: skip
_BEAT = 60 / 80


def melody(rate: int, level: float = -18.0) -> bytes:
    """The generated music on hold: one pass of the tune, to be looped."""
    amplitude = DBM0_AMPLITUDE * 10 ** (level / 20)
    parts = []
    for note, beats in _TUNE:
        n = int(rate * beats * _BEAT)
        if not note:
            parts.append(np.zeros(n))
            continue
        f = 440.0 * 2 ** ((note - 69) / 12)
        t = np.arange(n) / rate
        # A plucked, soft sound: quick attack, exponential decay, and two
        # harmonics (dropped where they would pass the leg's band).
        wave = np.zeros(n)
        for harmonic, weight in ((1, 1.0), (2, 0.3), (3, 0.1)):
            if harmonic * f < 0.45 * rate:
                wave += weight * np.sin(2 * np.pi * harmonic * f * t)
        envelope = np.exp(-2.5 * t) * _ramp(n, rate)
        parts.append(amplitude / 1.4 * wave * envelope)
    return _to_pcm(np.concatenate(parts))
