"""WAV files in and out: the audio format of prompts, music and recordings.

Audio inside the node is linear PCM: 16-bit signed, little-endian, mono
unless said otherwise ("linear" below). `Audio` holds such samples with
their rate and channel count; WAV is only how they are stored.

What is read: RIFF/WAVE with PCM 16-bit samples (format tag 1, or
WAVE_FORMAT_EXTENSIBLE with the PCM subformat) at 8, 16 or 48 kHz, mono or
stereo. Prompts and music must be mono (`read_prompt`); stereo is for
reading back the recorder's files. Anything else (44.1 kHz, 8-bit, 24-bit,
float, µ-law, ADPCM, MP3 in a WAV) is refused with an error that names what
was found and gives the sox command that converts it. Unknown chunks (LIST,
fact, cue...) are skipped. A data chunk whose size says "unknown" (writers
that stream, espeak-ng --stdout) runs to the end of the file.

`resample` converts mono linear between rates. It runs once per file (when a
prompt is loaded or a speech rendered), never per packet: a windowed-sinc
low-pass (so that nothing above the lower rate's band folds back) and
linear interpolation, vectorised with numpy.
"""

from __future__ import annotations

import os
import shlex
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_RATES = (8000, 16000, 48000)
SAMPLE_WIDTH = 2  # bytes: 16-bit linear
HEADER_SIZE = 44  # the canonical header `header()` writes

_FORMAT_PCM = 1
_FORMAT_EXTENSIBLE = 0xFFFE
# What other format tags are, to say so in the error.
_FORMAT_NAMES = {
    2: "Microsoft ADPCM",
    3: "32-bit float",
    6: "G.711 A-law",
    7: "G.711 µ-law",
    0x11: "IMA ADPCM",
    0x31: "GSM 6.10",
    0x55: "MP3",
}
# A data size this large is a placeholder from a writer that streams.
_STREAMED_SIZE = 0x7FFF0000
_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")


class WavError(ValueError):
    """A WAV file the node cannot use; the message says why and what to do."""


@dataclass(frozen=True)
class Audio:
    """Linear PCM samples: 16-bit little-endian, interleaved when stereo."""

    pcm: bytes
    rate: int
    channels: int = 1

    @property
    def samples(self) -> int:
        """Samples per channel."""
        return len(self.pcm) // (SAMPLE_WIDTH * self.channels)

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.samples / self.rate


def _describe(rate: int, channels: int, bits: int, fmt: str | None = None) -> str:
    khz = f"{rate / 1000:g} kHz"
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
    kind = fmt if fmt else f"{bits}-bit"
    return f"{khz} {layout} {kind}"


def _convert_hint(name: str, rate: int = 8000, channels: int = 1) -> str:
    """The sox command that makes `name` playable, ready to paste in a shell."""
    path = Path(name)
    target = path.with_name(f"{path.stem or 'audio'}-{rate // 1000}k.wav")
    return (
        f"convert it with sox {shlex.quote(name)} -r {rate} -c {channels} -b 16 "
        f"-e signed-integer {shlex.quote(str(target))}"
    )


def parse_wav(data: bytes, name: str = "audio.wav", *, any_rate: bool = False) -> Audio:
    """Read a WAV file's bytes; `name` is only for the error messages.

    `any_rate`: accept any sample rate (for audio the node converts itself,
    such as espeak-ng's 22.05 kHz), not only the ones it plays."""
    if len(data) < _RIFF.size or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        what = "empty" if not data else "not a WAV file (no RIFF/WAVE header)"
        raise WavError(f"{name} is {what}: {_convert_hint(name)}")
    pos = _RIFF.size
    fmt: tuple[int, int, int, int, int, int] | None = None
    subformat = None
    while pos + _CHUNK.size <= len(data):
        chunk_id, size = _CHUNK.unpack_from(data, pos)
        body = pos + _CHUNK.size
        if chunk_id == b"fmt ":
            if size < _FMT.size or body + size > len(data):
                raise WavError(f"{name} has a damaged fmt chunk: {_convert_hint(name)}")
            fmt = _FMT.unpack_from(data, body)
            if fmt[0] == _FORMAT_EXTENSIBLE and size >= 40:
                # cbSize, valid bits, channel mask, then the subformat GUID
                # whose first two bytes are the real format tag.
                subformat = struct.unpack_from("<H", data, body + 24)[0]
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError(f"{name} has its data before its fmt chunk: {_convert_hint(name)}")
            end = body + size
            if end > len(data):
                if size and size < _STREAMED_SIZE:
                    raise WavError(
                        f"{name} is truncated: its header says {size} bytes of audio, "
                        f"the file holds {len(data) - body}; export it again"
                    )
                end = len(data)
            return _audio(fmt, subformat, data[body:end], name, any_rate)
        pos = body + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise WavError(f"{name} has no fmt chunk: {_convert_hint(name)}")
    raise WavError(f"{name} has no data chunk (no audio): {_convert_hint(name)}")


def _audio(
    fmt: tuple[int, ...], subformat: int | None, pcm: bytes, name: str, any_rate: bool
) -> Audio:
    tag, channels, rate, _byte_rate, _align, bits = fmt
    if tag == _FORMAT_EXTENSIBLE and subformat is not None:
        tag = subformat
    rate_ok = rate in SUPPORTED_RATES or (any_rate and rate > 0)
    if tag != _FORMAT_PCM or bits != 16 or not rate_ok or channels not in (1, 2):
        kind = _FORMAT_NAMES.get(tag) if tag != _FORMAT_PCM else None
        if tag not in (_FORMAT_PCM, *_FORMAT_NAMES):
            kind = f"format {tag:#x}"
        target = rate if rate in SUPPORTED_RATES else 8000
        raise WavError(
            f"{name} is {_describe(rate, channels, bits, kind)}: the node plays 16-bit PCM "
            f"at 8, 16 or 48 kHz; {_convert_hint(name, target)}"
        )
    frame = SAMPLE_WIDTH * channels
    if len(pcm) % frame:
        pcm = pcm[: len(pcm) - len(pcm) % frame]  # a cut-off last sample
    if sys.byteorder == "big":  # pragma: no cover (the node runs on little-endian machines)
        pcm = _swap(pcm)
    return Audio(pcm, rate, channels)


def read_wav(path: str | Path) -> Audio:
    """Read a WAV file (mono or stereo)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WavError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_wav(data, str(path))


def read_prompt(path: str | Path) -> Audio:
    """Read a WAV file meant to be played to a caller: it must be mono."""
    audio = read_wav(path)
    if audio.channels != 1:
        raise WavError(
            f"{path} is {_describe(audio.rate, audio.channels, 16)}: prompts and music are "
            f"mono; {_convert_hint(str(path), audio.rate)}"
        )
    return audio


def header(rate: int, channels: int, data_size: int) -> bytes:
    """The canonical 44-byte header of a 16-bit PCM WAV file."""
    align = SAMPLE_WIDTH * channels
    return (
        _RIFF.pack(b"RIFF", 36 + data_size, b"WAVE")
        + _CHUNK.pack(b"fmt ", _FMT.size)
        + _FMT.pack(_FORMAT_PCM, channels, rate, rate * align, align, 16)
        + _CHUNK.pack(b"data", data_size)
    )


def wav_bytes(audio: Audio) -> bytes:
    """A WAV file holding `audio`."""
    pcm = _swap(audio.pcm) if sys.byteorder == "big" else audio.pcm  # pragma: no branch
    return header(audio.rate, audio.channels, len(pcm)) + pcm


def write_wav(path: str | Path, audio: Audio) -> None:
    """Write `audio` to `path` atomically: a temporary file, then a rename,
    so that a reader never sees half a file under the final name (and two
    writers of the same file, two nodes sharing a cache, never mix theirs)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(wav_bytes(audio))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _swap(pcm: bytes) -> bytes:  # pragma: no cover (big-endian hosts only)
    return np.frombuffer(pcm, "<i2").astype(">i2").tobytes()


def _lowpass(cutoff: float, taps: int = 101) -> np.ndarray:
    """A windowed-sinc low-pass filter; `cutoff` as a fraction of the rate."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return h / h.sum()


def resample(pcm: bytes, rate: int, to_rate: int) -> bytes:
    """Mono linear PCM from `rate` to `to_rate` (any rates; once per file)."""
    if rate == to_rate or not pcm:
        return pcm
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    # Pass band: 90% of the lower rate's Nyquist frequency, so the filter's
    # transition band ends before anything can fold back.
    cutoff = 0.45 * min(rate, to_rate)
    if to_rate < rate:
        x = np.convolve(x, _lowpass(cutoff / rate), mode="same")
    count = len(x) * to_rate // rate
    positions = np.arange(count) * (rate / to_rate)
    y = np.interp(positions, np.arange(len(x)), x)
    if to_rate > rate:
        y = np.convolve(y, _lowpass(cutoff / to_rate), mode="same")
    return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
