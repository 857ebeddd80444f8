"""A browser's WebRTC audio end for tests: aiortc's RTCPeerConnection sending a tone.

aiortc plays the browser: full ICE, DTLS-SRTP, Opus and PCMU, the SDP a
browser sends. Its ICE agent (aioice) leaves 127.0.0.1 out of its host
candidates; tests stay on loopback, so `loopback_candidates` makes it
gather there alone (a browser on the same machine as the node).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Iterator
from unittest import mock

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame
from av.audio.resampler import AudioResampler

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz


@contextlib.contextmanager
def loopback_candidates() -> Iterator[None]:
    with mock.patch("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"]):
        yield


class ToneTrack(MediaStreamTrack):
    """A sine of `freq` Hz at about -10 dBFS, in real time, 20 ms a frame."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (self._pts + np.arange(FRAME)) / RATE
        pcm = (10000 * np.sin(2 * np.pi * self.freq * t)).astype("<i2")
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class Browser:
    """One peer connection with a tone track; what it hears is in `heard()`."""

    def __init__(self, freq: float = 1000.0, codecs: tuple[str, ...] = ("opus", "PCMU")) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceiver = self.pc.addTransceiver(ToneTrack(freq), direction="sendrecv")
        from aiortc.rtcrtpsender import RTCRtpSender

        wanted = [c.casefold() for c in codecs]
        available = RTCRtpSender.getCapabilities("audio").codecs
        preferred = [c for w in wanted for c in available if c.name.casefold() == w]
        self.transceiver.setCodecPreferences(preferred)
        self._pcm: list[np.ndarray] = []
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):
                    self._pcm.append(out.to_ndarray().reshape(-1).copy())

    async def offer(self) -> str:
        with loopback_candidates():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        with loopback_candidates():
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def heard(self, skip: float = 0.0) -> np.ndarray:
        """What the browser played out so far (48 kHz mono floats), minus the first `skip` s."""
        if not self._pcm:
            return np.zeros(0)
        pcm = np.concatenate(self._pcm).astype(np.float64)
        return pcm[int(skip * RATE) :]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()
