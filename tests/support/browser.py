"""A browser's WebRTC audio end for tests: aiortc's RTCPeerConnection sending a tone.

aiortc plays the browser: full ICE, DTLS-SRTP, Opus and PCMU, the SDP a
browser sends. Its ICE agent (aioice) leaves 127.0.0.1 out of its host
candidates; tests stay on loopback, so `loopback_candidates` makes it
gather there alone (a browser on the same machine as the node).

aiortc cannot restart ICE by itself; `Browser.restart_ice` does what a
browser does (`RTCPeerConnection.restartIce()`): a new ICE agent (aioice) on
a new socket with new credentials, offered in a new SDP, connected to the
answer's, then put under the peer connection's DTLS transport, which goes
on with the same association and SRTP keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import re
import time
from collections.abc import Iterable, Iterator
from typing import Protocol
from unittest import mock

import numpy as np
from aioice import Candidate, Connection
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

    async def restart_ice(self) -> IceRestart:
        """Begin an ICE restart: the new agent's candidates are gathered."""
        return await IceRestart.begin(self)

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


class IceEnd(Protocol):
    """The far end's ICE parameters, as the node's SDP gives them."""

    ufrag: str
    pwd: str
    candidates: Iterable[str]


class IceRestart:
    """The browser's side of an ICE restart it starts (RFC 8445 §9), in steps:
    `offer` (its new SDP), `complete` (with the answer's ICE end), then
    `drop_old_path` (its old socket closed: media must be on the new one)."""

    def __init__(self, browser: Browser, old: Connection, new: Connection) -> None:
        self.ice = browser.transceiver.sender.transport.transport  # its RTCIceTransport
        self.old, self.new = old, new

    @classmethod
    async def begin(cls, browser: Browser) -> IceRestart:
        old = browser.transceiver.sender.transport.transport._connection
        new = Connection(ice_controlling=old.ice_controlling)  # roles stay (RFC 8445 §9)
        with loopback_candidates():
            await new.gather_candidates()
        new._queue = old._queue  # the DTLS transport goes on reading where it reads
        return cls(browser, old, new)

    @property
    def address(self) -> tuple[str, int]:
        """Where the browser now sends from (its new host candidate)."""
        candidate = self.new.local_candidates[0]
        return candidate.host, candidate.port

    def offer(self, previous: str) -> str:
        """`previous` (the browser's last SDP) with the new ICE credentials and candidates."""
        sdp = re.sub(r"a=ice-ufrag:\S+", f"a=ice-ufrag:{self.new.local_username}", previous)
        sdp = re.sub(r"a=ice-pwd:\S+", f"a=ice-pwd:{self.new.local_password}", sdp)
        sdp = re.sub(r"a=candidate:[^\r\n]*\r\n", "", sdp)
        lines = "".join(f"a=candidate:{c.to_sdp()}\r\n" for c in self.new.local_candidates)
        return sdp.replace("a=end-of-candidates", lines + "a=end-of-candidates", 1)

    async def complete(self, far: IceEnd) -> None:
        """Connect the new agent to the node's new end, then move the peer
        connection onto it."""
        new = self.new
        new.remote_username, new.remote_password = far.ufrag, far.pwd
        for line in far.candidates:
            await new.add_remote_candidate(Candidate.from_sdp(line))
        await new.add_remote_candidate(None)
        await new.connect()
        ice = self.ice
        ice._connection, ice._recv, ice._send = new, new.recv, new.send
        # aiortc watches its agent for closing: watch the new one from now on.
        ice._RTCIceTransport__monitor_task.cancel()
        ice._RTCIceTransport__monitor_task = asyncio.ensure_future(ice._monitor())

    async def drop_old_path(self) -> None:
        self.old._queue = asyncio.Queue()  # (its closing must not end the DTLS transport)
        await self.old.close()
