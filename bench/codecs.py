"""Per-frame cost of the codec building blocks (switch/media), in µs per 20 ms frame.

- G.711 encode and decode, resampling 8 <-> 48 kHz, the jitter buffer.
- The Opus bindings side by side, encode + decode of one 48 kHz mono frame
  with the same settings (VoIP mode, 32 kbit/s, complexity 5): opuslib-next's
  own classes, PyAV (libopus through libavcodec) when it is installed, and
  switch.media.opus (opuslib-next's states, libopus called directly).
- A transcoded call's codec work: PCMU -> Opus and Opus -> PCMU for one frame
  each, with libopus at 8 kHz (the default) and at 48 kHz with our resampler;
  as a share of one core per call this is to be set against the issue's 1%.

The audio is two tones and some noise (Opus spends more on noise than on a
pure tone). The figure is the best of a few repeats, as timeit does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from switch.media import g711
from switch.media.jitter import JitterBuffer
from switch.media.opus import OpusDecoder, OpusEncoder
from switch.media.resample import Resampler
from switch.media.transcode import Transcoder
from switch.sip.sdp import Codec

from .report import Row

FRAME_US = 20_000  # one frame's worth of real time
CALL_TARGET = 1.0  # % of one core per transcoded call (issue #5)


def _audio(rate: int, seconds: float = 1.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(5).standard_normal(len(t))
    x = 6000 * np.sin(2 * math.pi * 440 * t) + 3000 * np.sin(2 * math.pi * 1234 * t) + 500 * noise
    return np.round(x).astype("<i2").tobytes()


def _frames(rate: int) -> list[bytes]:
    pcm, size = _audio(rate), rate // 50 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _per_call_us(fn: Callable[[int], object], n: int, repeats: int = 3) -> float:
    """Best mean time of fn(i) over n calls, in µs."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def _opuslib_classes() -> Callable[[int], object]:
    import opuslib_next

    encoder = opuslib_next.Encoder(48000, 1, "voip")
    encoder.bitrate, encoder.complexity = 32000, 5
    decoder = opuslib_next.Decoder(48000, 1)
    frames = _frames(48000)
    return lambda i: decoder.decode(encoder.encode(frames[i % 50], 960), 960)


def _pyav() -> Callable[[int], object] | None:
    try:
        import av
    except ImportError:
        return None
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.bit_rate = 32000
    encoder.options = {"application": "voip", "compression_level": "5"}
    encoder.open()
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout, decoder.format = 48000, "mono", "s16"
    arrays = [np.frombuffer(f, dtype="<i2").reshape(1, -1) for f in _frames(48000)]

    def run(i: int) -> list[bytes]:
        frame = av.AudioFrame.from_ndarray(arrays[i % 50], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        return [
            out.to_ndarray().tobytes()
            for packet in encoder.encode(frame)
            for out in decoder.decode(packet)
        ]

    return run


def _ours() -> Callable[[int], object]:
    # FEC off, like the other two, so that only the binding differs.
    encoder = OpusEncoder(48000, bitrate=32000, complexity=5, fec=False)
    decoder = OpusDecoder(48000)
    frames = _frames(48000)
    return lambda i: decoder.decode(encoder.encode(frames[i % 50]))


def _transcoded_call(opus_rate: int) -> Callable[[int], object]:
    pcmu, opus = Codec("PCMU", 8000, 1, 0), Codec("opus", 48000, 2, 111)
    to_browser = Transcoder(pcmu, opus, opus_rate=opus_rate)
    to_trunk = Transcoder(opus, pcmu, opus_rate=opus_rate)
    trunk = [g711.ulaw_encode(f) for f in _frames(8000)]
    browser_mic = OpusEncoder(48000)
    browser = [browser_mic.encode(f) for f in _frames(48000)]

    def run(i: int) -> None:
        to_browser.convert(trunk[i % 50])
        to_trunk.convert(browser[i % 50])

    return run


def _jitter() -> Callable[[int], object]:
    buffer = JitterBuffer()

    def run(i: int) -> None:
        buffer.push(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, b"x", i * 0.02)
        buffer.pop(i * 0.02)

    return run


def run(smoke: bool) -> list[Row]:
    n = 50 if smoke else 2000
    rows: list[Row] = []

    def row(figure: str, fn: Callable[[int], object] | None, note: str = "") -> float | None:
        value = None if fn is None else _per_call_us(fn, n)
        rows.append(Row("codecs", figure, value, "µs/frame", note=note))
        return value

    pcm8, ulaw = _frames(8000)[0], g711.ulaw_encode(_frames(8000)[0])
    row("G.711 µ-law encode, 20 ms", lambda i: g711.ulaw_encode(pcm8))
    row("G.711 µ-law decode, 20 ms", lambda i: g711.ulaw_decode(ulaw))
    up, down, pcm48 = Resampler(8000, 48000), Resampler(48000, 8000), _frames(48000)[0]
    row("resample 8 -> 48 kHz, 20 ms", lambda i: up.process(pcm8))
    row("resample 48 -> 8 kHz, 20 ms", lambda i: down.process(pcm48))
    row("jitter buffer push + pop, one packet", _jitter())
    row("Opus enc+dec 48 kHz: opuslib-next classes", _opuslib_classes())
    pyav = _pyav()
    row("Opus enc+dec 48 kHz: PyAV", pyav, note="" if pyav else "PyAV not installed")
    row("Opus enc+dec 48 kHz: switch.media.opus", _ours(), note="opuslib-next, direct calls")
    for rate in (8000, 48000):
        value = _per_call_us(_transcoded_call(rate), n)
        share = value / FRAME_US * 100
        how = "libopus at 8 kHz" if rate == 8000 else "libopus at 48 kHz + our resampler"
        rows.append(Row("codecs", f"PCMU <-> Opus call, both ways ({how})", value, "µs/frame"))
        rows.append(
            Row(
                "codecs",
                f"PCMU <-> Opus call codec CPU ({how})",
                share,
                "% of a core",
                target=f"<= {CALL_TARGET:g}",
                met=share <= CALL_TARGET,
                note="codec work only, no sockets",
            )
        )
    return rows
