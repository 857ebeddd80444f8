"""The audio mixer, sans-IO: conferences and the supervisor's listen, whisper, barge.

Every 20 ms the caller hands `Mixer.mix()` one frame per participant
(16-bit signed little-endian mono PCM at the mixer's rate, the node's
"linear" audio) and gets back, per participant, the frame it should hear.
A participant with no frame this tick (a lost packet, a jitter buffer that
ran dry, a phone on mute that stopped sending) counts as silence.

Who hears whom is a matrix: `W[listener][speaker]` is the gain at which
`listener` hears `speaker`; nobody ever hears themselves. Roles fill it in:

| role      | heard by                       | hears      |
|-----------|--------------------------------|------------|
| `PARTY`   | everyone                       | everyone   |
| `LISTEN`  | nobody                         | everyone   |
| `WHISPER` | its target (the agent) only    | everyone   |
| `BARGE`   | everyone                       | everyone   |
| `SOURCE`  | everyone                       | nobody     |

A two-party call with a supervisor is a three-party "conference" in which
the supervisor's row and column differ; a conference is the general case.
`SOURCE` is for a feed nobody answers (an announcement, music). Anything
else is one `set_hears(listener, speaker, gain)` away.

Cost is proportional to N, not N²: the matrix is held as two vectors,
"heard by everyone" and "hears everyone", plus a sparse table of
exceptions (a whisper is one). A tick sums the heard-by-everyone frames
once, and each listener's frame is that sum less its own voice, plus its
exceptions. The arithmetic is numpy over one (N, samples) float32 block;
float32 holds the sum of up to 512 full-scale int16 frames exactly.

Each participant also has a speaker gain (how loud it is in everyone's
mix: a quiet line raised, music lowered). A mix that goes beyond 16 bits
is clipped (saturated) to -32768..32767 rather than wrapping around,
which would be a loud crack; `clipped` counts the samples that were.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Mapping

import numpy as np

SAMPLE_BYTES = 2  # 16-bit linear PCM
MAX_PARTICIPANTS = 512  # float32 sums of this many int16 frames stay exact
_LOW, _HIGH = -32768.0, 32767.0


class MixerError(ValueError):
    """A call the mixer cannot honour: an unknown participant, a frame of the
    wrong size, a whisper with nobody to whisper to, a gain that is not one."""


class Role(enum.Enum):
    PARTY = "party"
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    SOURCE = "source"


# role -> (heard by everyone, hears everyone)
_ROLE_VECTORS: dict[Role, tuple[bool, bool]] = {
    Role.PARTY: (True, True),
    Role.LISTEN: (False, True),
    Role.WHISPER: (False, True),
    Role.BARGE: (True, True),
    Role.SOURCE: (True, False),
}


class Mixer:
    """N participants at one sample rate, mixed a frame at a time."""

    def __init__(self, rate: int = 8000, ptime_ms: int = 20) -> None:
        if rate <= 0 or ptime_ms <= 0 or rate * ptime_ms % 1000:
            raise MixerError(
                f"rate {rate} Hz and ptime {ptime_ms} ms do not make a whole number of samples"
            )
        self.rate = rate
        self.ptime_ms = ptime_ms
        self.samples = rate * ptime_ms // 1000
        self.frame_bytes = self.samples * SAMPLE_BYTES
        self.clipped = 0  # samples saturated since the mixer was made
        self._silence = bytes(self.frame_bytes)
        self._ids: list[Hashable] = []  # participants, in join order
        self._index: dict[Hashable, int] = {}
        self._roles: dict[Hashable, Role] = {}
        self._gains: dict[Hashable, float] = {}
        self._targets: dict[Hashable, Hashable] = {}  # whisperer -> who hears it
        self._overrides: dict[tuple[Hashable, Hashable], float] = {}  # set_hears()
        self._dirty = True
        # Built from the above by _build() when something changed.
        self._heard = np.zeros(0, np.float32)  # 1 if heard by everyone
        self._hears = np.zeros(0, np.float32)  # 1 if hears everyone
        self._gain = np.zeros(0, np.float32)
        self._own = np.zeros(0, np.float32)  # hears * heard: own voice to take out
        self._extra: list[tuple[int, int, float]] = []  # (listener, speaker, delta)

    # -- who is in -------------------------------------------------------------------

    def __contains__(self, participant: Hashable) -> bool:
        return participant in self._index

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def participants(self) -> tuple[Hashable, ...]:
        return tuple(self._ids)

    def join(
        self,
        participant: Hashable,
        role: Role = Role.PARTY,
        *,
        to: Hashable | None = None,
        gain: float = 1.0,
    ) -> None:
        """Add a participant; it is heard and hears from the next tick on.

        `to` is the one a `WHISPER` is heard by (the agent). Joining again
        changes the role and gain, like `set_role()` and `set_gain()`.
        """
        gain = _checked_gain(gain)
        new = participant not in self._index
        if new:
            if len(self._ids) >= MAX_PARTICIPANTS:
                raise MixerError(f"a mixer takes at most {MAX_PARTICIPANTS} participants")
            self._index[participant] = len(self._ids)
            self._ids.append(participant)
        try:
            self.set_role(participant, role, to=to)
        except MixerError:
            if new:
                self.leave(participant)
            raise
        self._gains[participant] = gain

    def leave(self, participant: Hashable) -> None:
        """Take a participant out, with every exception that names it. A
        whisper whose target left is heard by nobody. Unknown: no-op."""
        if participant not in self._index:
            return
        self._ids.remove(participant)
        self._index = {p: i for i, p in enumerate(self._ids)}
        self._roles.pop(participant, None)
        self._gains.pop(participant, None)
        self._targets = {w: t for w, t in self._targets.items() if participant not in (w, t)}
        self._overrides = {
            pair: g for pair, g in self._overrides.items() if participant not in pair
        }
        self._dirty = True

    def set_role(self, participant: Hashable, role: Role, *, to: Hashable | None = None) -> None:
        """Change what a participant hears and who hears it (a supervisor
        going from listen to whisper to barge mid-call)."""
        self._known(participant)
        if role is Role.WHISPER:
            if to is None:
                raise MixerError(f"whisper from {participant!r}: say who hears it (to=...)")
            self._known(to)
            if to == participant:
                raise MixerError(f"{participant!r} cannot whisper to itself")
            self._targets[participant] = to
        elif to is not None:
            raise MixerError(f"to= is for a whisper, not for role {role.value}")
        else:
            self._targets.pop(participant, None)
        self._roles[participant] = role
        self._dirty = True

    def set_gain(self, participant: Hashable, gain: float) -> None:
        """How loud `participant` is in everyone's mix (1.0: as it came)."""
        self._known(participant)
        self._gains[participant] = _checked_gain(gain)
        self._dirty = True

    def set_hears(self, listener: Hashable, speaker: Hashable, gain: float) -> None:
        """Override one cell of the matrix: `listener` hears `speaker` at
        `gain` (0 for not at all), whatever their roles say. Stays until
        either leaves or `clear_hears()` is called."""
        self._known(listener)
        self._known(speaker)
        if listener == speaker:
            raise MixerError(f"{listener!r} cannot hear itself")
        self._overrides[(listener, speaker)] = _checked_gain(gain)
        self._dirty = True

    def clear_hears(self, listener: Hashable, speaker: Hashable) -> None:
        """Back to what the roles say for this cell."""
        self._overrides.pop((listener, speaker), None)
        self._dirty = True

    def role(self, participant: Hashable) -> Role:
        self._known(participant)
        return self._roles[participant]

    def hears(self, listener: Hashable, speaker: Hashable) -> float:
        """The matrix cell: the gain at which `listener` hears `speaker`
        (before `speaker`'s own gain), 0.0 if it does not."""
        self._known(listener)
        self._known(speaker)
        if listener == speaker:
            return 0.0
        if (listener, speaker) in self._overrides:
            return self._overrides[(listener, speaker)]
        if self._targets.get(speaker) == listener:
            return 1.0
        heard, _ = _ROLE_VECTORS[self._roles[speaker]]
        _, hears = _ROLE_VECTORS[self._roles[listener]]
        return 1.0 if heard and hears else 0.0

    def matrix(self) -> dict[Hashable, dict[Hashable, float]]:
        """Who hears whom: for each listener, the speakers it hears and at what gain."""
        return {
            listener: {
                speaker: g for speaker in self._ids if (g := self.hears(listener, speaker)) != 0.0
            }
            for listener in self._ids
        }

    def _known(self, participant: Hashable) -> None:
        if participant not in self._index:
            raise MixerError(f"{participant!r} is not in this mixer")

    # -- mixing ----------------------------------------------------------------------

    def mix(self, frames: Mapping[Hashable, bytes]) -> dict[Hashable, bytes]:
        """One tick: each participant's frame in, what each one hears out.

        Participants missing from `frames` are silent this tick; frames of
        anyone not in the mixer (one that left a moment ago) are ignored.
        Every frame is `frame_bytes` long (MixerError otherwise: the jitter
        buffer in front of the mixer is what turns packets into whole frames).
        """
        ids = self._ids
        if not ids:
            return {}
        if self._dirty:
            self._build()
        silence = self._silence
        size = self.frame_bytes
        pcm = []
        for participant in ids:
            frame = frames.get(participant, silence)
            if len(frame) != size:
                raise MixerError(
                    f"frame of {len(frame)} bytes from {participant!r}; this mixer takes "
                    f"{size} ({self.ptime_ms} ms of 16-bit audio at {self.rate} Hz)"
                )
            pcm.append(frame)
        n = len(ids)
        voices = np.frombuffer(b"".join(pcm), dtype="<i2").reshape(n, self.samples)
        voices = voices * self._gain[:, None]  # float32, one row per speaker
        total = self._heard @ voices  # the sum of everyone everyone hears
        out = self._hears[:, None] * total - self._own[:, None] * voices
        for listener, speaker, delta in self._extra:
            out[listener] += delta * voices[speaker]
        np.rint(out, out=out)
        over = (out > _HIGH) | (out < _LOW)
        if over.any():
            self.clipped += int(np.count_nonzero(over))
            np.clip(out, _LOW, _HIGH, out=out)
        mixed = out.astype("<i2").tobytes()
        return {p: mixed[i * size : (i + 1) * size] for i, p in enumerate(ids)}

    def _build(self) -> None:
        """The vectors and the exceptions from roles, whispers and overrides.

        W = hears·heardᵀ - diag(hears·heard) + exceptions; `_extra` holds,
        for each cell where W differs from the first two terms, the difference.
        """
        ids, index = self._ids, self._index
        heard = np.array([_ROLE_VECTORS[self._roles[p]][0] for p in ids], np.float32)
        hears = np.array([_ROLE_VECTORS[self._roles[p]][1] for p in ids], np.float32)
        self._heard, self._hears = heard, hears
        self._own = heard * hears
        self._gain = np.array([self._gains[p] for p in ids], np.float32)
        cells: dict[tuple[Hashable, Hashable], float] = {}
        for whisperer, target in self._targets.items():
            cells[(target, whisperer)] = 1.0
        cells.update(self._overrides)
        extra = []
        for (listener, speaker), gain in cells.items():
            li, si = index[listener], index[speaker]
            delta = gain - float(hears[li] * heard[si])
            if delta:
                extra.append((li, si, delta))
        self._extra = extra
        self._dirty = False


def _checked_gain(gain: float) -> float:
    try:
        gain = float(gain)
    except (TypeError, ValueError):
        raise MixerError(f"gain {gain!r} is not a number")
    if not math.isfinite(gain) or gain < 0:
        raise MixerError(f"gain {gain} is not a finite number >= 0")
    return gain
