"""Frames of linear audio to a leg's codec, with prompts encoded once per node.

A prompt heard by 300 callers is the same 20 ms frames 300 times over. So
each codec has one `FrameCache` per process, keyed by the frame's bytes:
the first channel to send a frame encodes it, every other channel sending
the same frame gets the same payload. G.711 by table costs a few
microseconds and the cache saves most of them; Opus costs a hundred or so
(encoding is most of an Opus leg's cost) and the cache saves all of them.

Opus is a coder with memory: a frame is encoded well in the context of the
frames before it. A cache miss is encoded by the channel's own encoder,
which saw the frames before it in its own stream (the cache hits it did not
encode leave a stale context, heard at worst as a softer start of the next
new frame). The first caller to hear a prompt encodes it in order, and the
others get the payloads it made, in the same order: a prompt sounds the
same to all. Live audio (an echo with a delay) is encoded without the
cache: it is never the same twice.

A cache holds at most `MAX_FRAMES` frames (minutes of distinct audio at
8 kHz); when full it is emptied and refilled by what is playing now, which
is cheaper than keeping an LRU order on every hit.
"""

from __future__ import annotations

from collections.abc import Callable

from . import g711

PCMU, PCMA, OPUS = "pcmu", "pcma", "opus"
MAX_FRAMES = 20_000  # per codec: 400 s of distinct 20 ms frames
# The rate of the linear audio a channel plays in each codec: G.711 is
# 8 kHz; Opus toward a browser is wideband (16 kHz), which libopus codes
# at a fraction of 48 kHz's cost.
RATES = {PCMU: 8000, PCMA: 8000, OPUS: 16000}


class FrameCache:
    """Linear frame -> payload, for one codec; shared by every channel of a process."""

    def __init__(self, max_frames: int = MAX_FRAMES) -> None:
        self.max_frames = max_frames
        self._payloads: dict[bytes, bytes] = {}
        self.hits = 0
        self.misses = 0
        self.clears = 0

    def __len__(self) -> int:
        return len(self._payloads)

    def get(self, pcm: bytes) -> bytes | None:
        payload = self._payloads.get(pcm)
        if payload is None:
            self.misses += 1
        else:
            self.hits += 1
        return payload

    def put(self, pcm: bytes, payload: bytes) -> None:
        if len(self._payloads) >= self.max_frames:
            self._payloads.clear()
            self.clears += 1
        self._payloads[pcm] = payload


_caches: dict[str, FrameCache] = {}


def cache_for(codec: str) -> FrameCache:
    """The process's frame cache for `codec` ("pcmu", "pcma", "opus")."""
    cache = _caches.get(codec)
    if cache is None:
        cache = _caches[codec] = FrameCache()
    return cache


class FrameEncoder:
    """One channel's encoder: linear frames at `rate` in, payloads of `codec` out."""

    def __init__(self, codec: str, cache: FrameCache | None = None) -> None:
        codec = codec.lower()
        if codec not in RATES:
            raise ValueError(f"a channel speaks PCMU, PCMA or Opus; not {codec!r}")
        self.codec = codec
        self.rate = RATES[codec]
        self.frame_bytes = self.rate // 50 * 2  # 20 ms of 16-bit samples
        self.cache = cache if cache is not None else cache_for(codec)
        self._encode: Callable[[bytes], bytes] | None = None
        if codec == PCMU:
            self._encode = g711.ulaw_encode
        elif codec == PCMA:
            self._encode = g711.alaw_encode
        self._silence = bytes(self.frame_bytes)

    def _coder(self) -> Callable[[bytes], bytes]:
        if self._encode is None:  # Opus: made on first use (a libopus state per channel)
            from .opus import OpusEncoder

            self._encode = OpusEncoder(self.rate).encode
        return self._encode

    def encode(self, pcm: bytes, *, cached: bool = True) -> bytes:
        """The payload of one frame; `cached`: the frame is prompt audio, worth keeping."""
        if not cached:
            return self._coder()(pcm)
        payload = self.cache.get(pcm)
        if payload is None:
            payload = self._coder()(pcm)
            self.cache.put(pcm, payload)
        return payload

    def silence(self) -> bytes:
        """A frame of silence (cached like a prompt: every channel sends it)."""
        return self.encode(self._silence)
